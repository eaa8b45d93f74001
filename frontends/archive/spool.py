"""Batches waiting on disk while the database is away (stopped server, full disk).

One file per batch, named by its number so they replay in order: a msgpack map with the
chunks' raw float64 bytes (never pickle). Each file is written to a temporary name,
fsync'd and renamed, then the folder is fsync'd: after a crash a batch is either complete
or absent. A file that cannot be read back is moved aside (``*.bad``), never replayed half.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from rtoc.frontends.archive.backend import ArchiveBatch, Chunk, Gap, SignalKey, Snapshot

from rtoc import wire
from rtoc.files import write_atomic_bytes

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, folder: Path):
        self.folder = folder

    def put(self, batch: ArchiveBatch) -> Path:
        path = self.folder / f"{batch.number:020d}.batch"
        write_atomic_bytes(path, encode(batch))
        return path

    def pending(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("*.batch"))

    def load(self, path: Path) -> ArchiveBatch | None:
        try:
            return decode(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("spooled batch %s cannot be read (%s): moved aside", path.name, exc)
            path.rename(path.with_suffix(".bad"))
            return None

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    @property
    def size(self) -> int:
        return len(self.pending())

    def last_number(self) -> int:
        files = self.pending()
        return int(files[-1].stem) if files else 0


def encode(batch: ArchiveBatch) -> bytes:
    return wire.pack({
        "v": 1, "number": batch.number,
        "chunks": [{"name": c.key.name, "epoch": c.key.epoch, "unit": c.key.unit,
                    "first_seq": c.first_seq, "t": np.ascontiguousarray(c.t, "<f8").tobytes(),
                    "y": np.ascontiguousarray(c.y, "<f8").tobytes()} for c in batch.chunks],
        "events": batch.events,
        "gaps": [{"name": g.key.name, "epoch": g.key.epoch, "unit": g.key.unit, "first_seq": g.first_seq,
                  "count": g.count, "t_from": g.t_from, "t_to": g.t_to} for g in batch.gaps],
        "snapshots": [{"name": s.key.name, "epoch": s.key.epoch, "unit": s.key.unit,
                       "first_seq": s.first_seq, "time": s.time,
                       "t": np.ascontiguousarray(s.t, "<f8").tobytes(),
                       "y": np.ascontiguousarray(s.y, "<f8").tobytes()} for s in batch.snapshots],
    })


def decode(data: bytes) -> ArchiveBatch:
    raw = wire.unpack(data)
    if raw.get("v") != 1:
        raise ValueError(f"unknown spool version {raw.get('v')!r}")
    chunks = []
    for c in raw["chunks"]:
        t, y = np.frombuffer(c["t"], "<f8"), np.frombuffer(c["y"], "<f8")
        if t.shape != y.shape:
            raise ValueError("t and y differ in length")
        chunks.append(Chunk(SignalKey(c["name"], c["epoch"], c["unit"]), c["first_seq"], t, y))
    gaps = [Gap(SignalKey(g["name"], g["epoch"], g["unit"]), g["first_seq"], g["count"],
                g["t_from"], g["t_to"]) for g in raw["gaps"]]
    snapshots = []
    for sn in raw.get("snapshots", []):  # spooled before snapshots were archived: none
        t, y = np.frombuffer(sn["t"], "<f8"), np.frombuffer(sn["y"], "<f8")
        if t.shape != y.shape:
            raise ValueError("a snapshot's t and y differ in length")
        snapshots.append(Snapshot(SignalKey(sn["name"], sn["epoch"], sn["unit"]), sn["first_seq"],
                                  sn["time"], t, y))
    return ArchiveBatch(raw["number"], chunks, list(raw["events"]), gaps, snapshots)
