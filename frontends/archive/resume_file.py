"""Where each ring's archiving got to, kept beside the spool: the end of what was spooled,
per ``(name, epoch)`` (what the database took, it says itself; noting only spooled batches
keeps a file write and fsync off the normal write path).

An archiver that restarts while the database is away (or still behind its spool) could not
ask the database where to go on: it started at seq 0, recorded everything older than the
ring as lost, then replayed the spool holding those very samples (2.5 M phantom lost samples
in the issue). With this file its resume point is the larger of the database's and this.
Updated after every batch (an atomic write); a missing or unreadable file is just empty.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from rtoc.frontends.archive.backend import ArchiveBatch

from rtoc.files import write_atomic

log = logging.getLogger(__name__)
EPOCHS_KEPT = 4  # per signal name: older rings get no new samples


class ResumeFile:
    def __init__(self, path: Path):
        self.path = path
        self.ends: dict[tuple[str, int], int] = self._load()
        self.lock = threading.Lock()  # the writer thread and the main loop both note batches

    def _load(self) -> dict[tuple[str, int], int]:
        try:
            raw = json.loads(self.path.read_text())
            return {(str(name), int(epoch)): int(end) for name, epoch, end in raw}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError) as exc:
            log.warning("archive: %s unreadable (%s): resuming from the database alone", self.path, exc)
            return {}

    def note(self, batch: ArchiveBatch) -> None:
        """``batch`` was spooled: its chunks, gaps and snapshots count as archived."""
        with self.lock:
            self._note(batch)

    def _note(self, batch: ArchiveBatch) -> None:
        changed = False
        for key, end in [((c.key.name, c.key.epoch), c.first_seq + c.n) for c in batch.chunks] + \
                        [((g.key.name, g.key.epoch), g.first_seq + g.count) for g in batch.gaps] + \
                        [((x.key.name, x.key.epoch), x.first_seq + x.n) for x in batch.snapshots]:
            if end > self.ends.get(key, -1):
                self.ends[key] = end
                changed = True
        if changed:
            self._prune()
            try:
                write_atomic(self.path, json.dumps([[n, e, v] for (n, e), v in sorted(self.ends.items())]))
            except OSError as exc:  # a full disk: the database's resume points still hold
                log.debug("archive: cannot write %s: %s", self.path, exc)

    def _prune(self) -> None:
        by_name: dict[str, list[int]] = {}
        for name, epoch in self.ends:
            by_name.setdefault(name, []).append(epoch)
        for name, epochs in by_name.items():
            for epoch in sorted(epochs)[:-EPOCHS_KEPT]:
                del self.ends[(name, epoch)]

    def merged(self, database: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """The resume points: per key the larger of the database's and this file's."""
        out = dict(database)
        with self.lock:
            ends = dict(self.ends)
        for key, end in ends.items():
            out[key] = max(end, out.get(key, 0))
        return out
