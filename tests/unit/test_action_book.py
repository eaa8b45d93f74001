"""Unit tests of rtoc.pipeline.action_book: requests in flight and samples awaiting a ring."""

from __future__ import annotations

import numpy as np
from rtoc.pipeline.action_book import ActionBook

from rtoc.events.rules import Effect

SET = Effect("a", "set", "G", "amplitude", value=2.0)
WRITE = Effect("w", "write", "Lab", "Flag", value=1.0)


def test_a_request_is_remembered_until_answered() -> None:
    book = ActionBook("act-1")
    rid = book.ask(SET, "ev", 10.0)
    assert rid == "act-1-1" and book.ask(SET, "ev", 10.0) == "act-1-2"
    p = book.answered(rid)
    assert p is not None and p.effect is SET and p.cause == "ev" and p.since == 10.0
    assert book.answered(rid) is None  # once
    assert book.answered(["not", "a", "rid"]) is None


def test_requests_never_answered_expire() -> None:
    book = ActionBook("act-1", expire=60.0)
    old = book.ask(SET, "e1", 0.0)
    new = book.ask(WRITE, "e2", 30.0)
    assert book.expired(60.0) == []
    gone = book.expired(60.5)
    assert [p.cause for p in gone] == ["e1"] and book.answered(old) is None
    assert book.answered(new) is not None
    rid = book.ask(SET, "e3", 0.0)
    book.forget(rid)  # could not be sent
    assert book.expired(1000.0) == []


def test_samples_wait_for_their_ring_bounded() -> None:
    book = ActionBook("act-1", max_unwritten=3)
    assert book.queue("Lab.Flag", 1.0, 10.0) is True  # the first: ask for the ring
    assert [book.queue("Lab.Flag", float(t), 10.0 + t) for t in (2, 3, 4)] == [False] * 3
    t, y = book.take_unwritten("Lab.Flag")
    assert t.tolist() == [2.0, 3.0, 4.0] and y.tolist() == [12.0, 13.0, 14.0]  # the newest kept
    assert t.dtype == np.float64 and t.flags.c_contiguous and y.flags.c_contiguous
    assert book.take_unwritten("Lab.Flag") is None
    book.queue("Lab.Other", 1.0, 1.0)
    book.drop_unwritten("Lab.Other")
    assert book.take_unwritten("Lab.Other") is None
