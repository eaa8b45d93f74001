"""The notification queue: Telegram's rates, bursts coalesced (never silently dropped), a
byte bound, and notes kept while Telegram is away. Time is an argument."""

from __future__ import annotations

from rtoc.frontends.telegram.notify import Note, Notifier


def _run(n: Notifier, t0: float, seconds: float, step: float = 0.05) -> list:
    out, t = [], t0
    while t < t0 + seconds:
        out += [(t, o) for o in n.due(t)]
        t += step
    return out


def test_a_burst_of_500_events_is_coalesced_within_the_per_chat_rate() -> None:
    n = Notifier(chat_rate=1.0, total_rate=30.0)
    for i in range(500):  # 500 events in 10 s to one chat
        n.push(7, Note(f"event {i}", i % 3, "Gen" if i % 2 else "Sys"))
    sent = _run(n, 0.0, 12.0)
    times = [t for t, _ in sent]
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[1:], strict=False))  # 1 per second
    assert sum(o.notes for _, o in sent) == 500  # every event accounted for
    assert n.stats["coalesced"] == 500 - len(sent) and n.stats["dropped"] == 0
    assert "more events" in sent[0][1].text or len(sent) == 500


def test_the_total_rate_holds_across_chats() -> None:
    n = Notifier(chat_rate=1.0, total_rate=30.0)
    for chat in range(100):
        n.push(chat, Note("x"))
    first = n.due(0.0)
    assert len(first) == 30
    assert len(n.due(0.5)) == 15  # refilled at 30/s
    assert n.waiting == 55


def test_a_full_queue_drops_the_oldest_counts_them_and_says_so() -> None:
    n = Notifier(max_bytes=1024, coalesce_after=1000)
    for i in range(200):
        n.push(1, Note(f"note {i:04d}" + "." * 90))
    assert n.bytes <= 1024 and n.stats["dropped"] == 200 - n.waiting
    (out,) = n.due(0.0)
    assert "older notifications were dropped" in out.text


def test_notes_wait_while_telegram_is_away_and_keep_their_order() -> None:
    n = Notifier()
    n.push(1, Note("first"))
    n.push(1, Note("second"))
    (out,) = n.due(0.0)
    n.failed(out, retry_at=20.0)  # the send failed: Telegram away for 20 s
    assert n.due(10.0) == [] and n.next_deadline() == 20.0
    (again,) = n.due(20.0)
    assert again.text == "first" and n.stats["sent"] == 1
    assert n.due(21.0)[0].text == "second"


def test_the_gap_to_a_chat_counts_from_when_its_message_was_sent() -> None:
    """The burst bench measured 0.89 s between two messages to one chat: the gap counted
    from taking the message, and a round's sends go out one after another."""
    n = Notifier(chat_rate=1.0)
    n.push(1, Note("a"))
    n.push(1, Note("b", rendered=True))  # rendered: not coalesced with "a"
    (out,) = n.due(0.0)
    n.sent(out, 0.15)  # this send took 150 ms
    assert n.due(1.0) == [] and n.next_deadline() == 1.15
    assert n.due(1.15)[0].text == "b"


def test_a_note_with_a_file_goes_alone_and_files_are_bounded_apart() -> None:
    """RTOC's telegram_send_photo/_document/_plot: the file goes as it is, never folded into
    a summary; files waiting are bounded in bytes of their own and the oldest drops, counted."""
    n = Notifier(coalesce_after=2, max_file_bytes=1000)
    pic = ("photo", "a.png", b"x" * 400)
    for i in range(4):
        n.push(7, Note(f"text {i}"))
    n.push(7, Note("picture", file=pic))
    n.push(7, Note("after"))
    first = n.due(0.0)[0]
    assert first.file is None and first.notes == 4  # the four texts, summarised
    second = n.due(1.0)[0]
    assert second.file == pic and second.text == "picture"
    n.failed(second, 2.0)  # Telegram away: it comes back whole, with its file
    assert n.file_bytes == 400 and n.due(2.0)[0].file == pic
    for i in range(3):  # 1200 bytes of files > 1000: the oldest file note drops
        n.push(8, Note(f"pic {i}", file=("document", f"{i}.csv", bytes([i]) * 400)))
    assert n.file_bytes == 800 and n.stats["dropped"] == 1
    outs = [o for now in (10.0, 11.0, 12.0) for o in n.due(now)]
    assert [o.file[1] for o in outs if o.chat_id == 8] == ["1.csv", "2.csv"]


def test_review_a_shared_file_counts_once_and_an_upload_that_keeps_failing_goes_as_text() -> None:
    """Review: a 10 MiB photo for 4 users counted 40 MiB against the 32 MiB bound (one
    copy dropped at once); an upload that kept timing out blocked the chat's alarms."""
    n = Notifier(max_file_bytes=32 << 20)
    photo = ("photo", "cam.png", bytes(10 << 20))
    for chat in (1, 2, 3, 4):
        n.push(chat, Note("cam", file=photo))
    assert n.file_bytes == 10 << 20 and n.stats["dropped"] == 0
    for out in n.due(0.0):
        if out.chat_id != 1:
            n.sent(out, 0.0)
        else:
            first = out
    assert n.file_bytes == 0  # taken: on their way, no longer waiting
    n.push(1, Note("alarm"))
    n.failed(first, 0.0)  # chat 1's upload timed out: back at the front, with its file
    assert n.file_bytes == 10 << 20
    now = 0.0
    for _ in range(2):  # ... and again, and again
        now += 2.0
        (out,) = [o for o in n.due(now) if o.chat_id == 1]
        assert out.file == photo
        n.failed(out, now)
    assert n.stats["files_dropped"] == 1 and n.file_bytes == 0
    texts = [o for t in (8.0, 10.0, 12.0) for o in n.due(t) if o.chat_id == 1]
    assert texts[0].file is None and "could not be sent" in texts[0].text
    assert any(o.text == "alarm" for o in texts)
