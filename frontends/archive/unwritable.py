"""Batches that could be neither written nor spooled (the database away or refusing, and the
spool's disk full too): what they held, kept as gap rows until the database takes writes
again, and whether this outage was reported yet. Pure; the archiver's writer thread and its
main loop share one (``lock``)."""

from __future__ import annotations

import threading

from rtoc.frontends.archive.backend import ArchiveBatch, Gap


class Unwritable:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gaps: list[Gap] = []   # merged per ring where they touch
        self.samples = 0            # lost in all (counted, as gap rows once written)
        self.events = 0             # events lost with them
        self.reason = ""            # the current outage's error ("": none)
        self.unreported = False     # the main loop owes one warning event for this outage

    def lost(self, batch: ArchiveBatch, exc: BaseException) -> bool:
        """``batch`` is lost; True when this starts an outage (log it, report it once)."""
        gaps = [Gap(c.key, c.first_seq, c.n, float(c.t[0]), float(c.t[-1]))
                for c in batch.chunks if c.n] + list(batch.gaps)
        with self.lock:
            for g in gaps:
                self._add(g)
            self.samples += batch.samples
            self.events += len(batch.events)
            first = not self.reason
            self.reason = f"{type(exc).__name__}: {exc}"
            self.unreported = self.unreported or first
            return first

    def _add(self, g: Gap) -> None:
        for i, old in enumerate(self.gaps):
            if old.key == g.key and old.first_seq + old.count == g.first_seq:
                self.gaps[i] = Gap(g.key, old.first_seq, old.count + g.count, old.t_from, g.t_to)
                return
        self.gaps.append(g)

    def take_gaps(self) -> list[Gap]:
        """The gap rows to write with the next batch the database takes (handed over once;
        give them back with :meth:`give_back` if that write fails)."""
        with self.lock:
            gaps, self.gaps = self.gaps, []
            return gaps

    def give_back(self, gaps: list[Gap]) -> None:
        with self.lock:
            for g in gaps:
                self._add(g)

    def recovered(self) -> str:
        """A batch was written or spooled again: the outage's reason if one ends now."""
        with self.lock:
            reason, self.reason = self.reason, ""
            return reason

    def take_report(self) -> bool:
        with self.lock:
            owed, self.unreported = self.unreported, False
            return owed
