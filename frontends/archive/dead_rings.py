"""A dead instance's rings: what the archiver had not archived when the whole instance was
killed at once (the OOM killer, ``systemctl kill -s KILL``, a container stop).

The next ``rtoc run`` keeps them aside in ``dead-<ns>/`` of the instance folder, with the
manifest of what each holds (``pipeline.registry``); the archiver, starting, reads each from
the archive's resume point on (what the ring no longer holds becomes a gap row with its
exact count), writes them, adds an ``rtoc.instance_down`` event for the interval nothing
was measured, and only then are they removed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, Gap, SignalKey, Snapshot
from rtoc.pipeline.registry import MANIFEST
from rtoc.pipeline.ring import Ring, RingReader
from rtoc.pipeline.ring_kernels import SNAPSHOT

from rtoc.errors import RtocError
from rtoc.model import Event

log = logging.getLogger(__name__)


def recover(folder: Path, resume: dict[tuple[str, int], int], number, now: float) -> Iterator[ArchiveBatch]:
    """One batch per ring of the dead instance in ``folder`` (``dead-<ns>/``) holding what
    lies beyond ``resume`` (``(name, epoch) -> next seq``), then one with the downtime
    event; ``number()`` numbers the batches. A ring or manifest that cannot be read is
    logged and skipped."""
    try:
        entries = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        log.error("archive: the manifest of %s is unreadable (%s): its rings are lost", folder, exc)
        return
    last = -math.inf
    for e in entries if isinstance(entries, list) else []:
        try:
            key = SignalKey(str(e["name"]), int(e["epoch"]), str(e.get("unit") or ""))
            ring = Ring.open(folder / Path(str(e["path"])).name)
        except (KeyError, TypeError, ValueError, OSError, RtocError) as exc:
            log.warning("archive: a ring of %s cannot be read (%s)", folder, exc)
            continue
        try:
            start = resume.get((key.name, key.epoch), 0)
            plotted = e.get("content") == "snapshot" or int(ring.hdr[SNAPSHOT]) > 0
            # plotted: its last content whole, from where the plot began (before the resume
            # point when it grew with hold="on")
            cursor = min(start, int(ring.hdr[SNAPSHOT])) if plotted else start
            res = RingReader(ring, cursor=cursor, max_batch=ring.capacity).read()
        finally:
            ring.close()
        if plotted:
            cut = max(0, min(len(res.t), res.snapshot - res.first))
            if len(res.t) > cut:
                log.warning("archive: the last snapshot of %s taken from the dead instance's ring", key.name)
                # when it was shown is not kept in the ring (x need not be time): found now
                yield ArchiveBatch(number(), snapshots=[Snapshot(key, res.first + cut, now, res.t[cut:],
                                                                 res.y[cut:])])
            continue
        gaps = []
        if res.first > start:  # overwritten before anyone archived it: recorded exactly
            t0 = float(res.t[0]) if len(res.t) else now
            gaps.append(Gap(key, start, res.first - start, t0, t0))
        chunks = [Chunk(key, res.first, res.t, res.y)] if len(res.t) else []
        if chunks:
            last = max(last, float(res.t[-1]))
        if chunks or gaps:
            log.warning("archive: %d samples of %s taken from the dead instance's ring (%d lost)",
                        len(res.t), key.name, res.first - start if gaps else 0)
            yield ArchiveBatch(number(), chunks, [], gaps)
    if math.isfinite(last):
        yield ArchiveBatch(number(), [], [down_event(last, now)], [])


def down_event(since: float, until: float) -> dict:
    """The record of an interval the instance measured nothing (its last sample to now)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    text = (f"the instance was down from {stamp} for {until - since:.1f} s (killed as a whole); "
            "nothing was measured in between")
    return Event(until, text, "rtoc", "instance", 1, "rtoc.instance_down", until - since,
                 {"from": since, "to": until}).to_dict()
