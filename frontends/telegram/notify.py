"""The notification queue: Telegram's rate limits, coalescing of bursts, a byte bound.

Telegram takes about one message per second per chat and 30 per second in all. Events come
faster (a 500-event burst in 10 s), so each chat has a queue; when its turn comes and more
than ``coalesce_after`` notes wait, they go out as one summary ("… and 37 more events from
Generator"), never silently dropped. While Telegram is away the queues wait, bounded by
``max_bytes`` of text in all; past it the oldest notes drop, counted, and the chat's next
message says how many. A note may carry a file (a plugin's picture, document or plot):
such a note goes alone, never into a summary, and the files waiting are bounded apart
(``max_file_bytes``, each file counted once however many chats wait for it; past it the
oldest note with a file drops, counted the same way). A file that fails ``FILE_TRIES``
times (an upload that keeps timing out on a slow link) goes as its text alone, so the
chat's later alarms are not stuck behind it (``files_dropped``). Pure: time is an argument (``due(now)``, ``next_deadline()``).
"""

from __future__ import annotations

import html
from collections import Counter, deque
from dataclasses import dataclass

MAX_SUMMARY_LINES = 3
FILE_TRIES = 3


@dataclass(frozen=True)
class Note:
    text: str
    priority: int = 0
    source: str = ""  # the device, for the summary
    rendered: bool = False  # a whole message already (a summary sent back after a failure)
    buttons: tuple = ()     # a single note's buttons: rows of (label, action, *args), minted when sent
    count: int = 1          # notifications it stands for (a summary sent back holds several)
    file: tuple[str, str, bytes] | None = None  # (kind "photo" | "document", file name, bytes)
    tries: int = 0          # failed sends so far


@dataclass(frozen=True)
class Outgoing:
    chat_id: int
    text: str
    notes: int  # notifications this message carries
    buttons: tuple = ()
    file: tuple[str, str, bytes] | None = None
    tries: int = 0


class Notifier:
    def __init__(self, chat_rate: float = 1.0, total_rate: float = 30.0, max_bytes: int = 1 << 20,
                 coalesce_after: int = 2, max_file_bytes: int = 32 << 20):
        self.chat_gap, self.total_rate = 1.0 / chat_rate, total_rate
        self.max_bytes, self.coalesce_after = max_bytes, coalesce_after
        self.max_file_bytes, self.file_bytes = max_file_bytes, 0
        self._files: dict[int, list] = {}  # id(bytes) -> [bytes, notes holding it]
        self.queues: dict[int, deque[Note]] = {}
        self.next_at: dict[int, float] = {}
        self.dropped_for: Counter[int] = Counter()
        self.tokens, self.refilled = total_rate, None
        self.bytes = 0
        self.stats = {"queued": 0, "sent": 0, "coalesced": 0, "dropped": 0, "messages": 0,
                      "files_dropped": 0}

    def push(self, chat_id: int, note: Note) -> None:
        self.queues.setdefault(chat_id, deque()).append(note)
        self.bytes += len(note.text)
        self._hold(note)
        self.stats["queued"] += note.count
        while self.bytes > self.max_bytes:
            chat = max(self.queues, key=lambda c: len(self.queues[c]))
            self._drop(chat, 0)
        while self.file_bytes > self.max_file_bytes:
            chat, i = min(((c, i) for c, q in self.queues.items() for i, n in enumerate(q) if n.file),
                          key=lambda ci: ci[1])
            self._drop(chat, i)

    def _drop(self, chat: int, i: int) -> None:
        q = self.queues[chat]
        note = q[i]
        del q[i]
        self.bytes -= len(note.text)
        self._release(note)
        self.stats["dropped"] += note.count
        self.dropped_for[chat] += note.count
        if not q:
            del self.queues[chat]

    @property
    def waiting(self) -> int:
        return sum(n.count for q in self.queues.values() for n in q)

    def _refill(self, now: float) -> None:
        if self.refilled is not None:
            self.tokens = min(self.total_rate, self.tokens + (now - self.refilled) * self.total_rate)
        self.refilled = now

    def due(self, now: float) -> list[Outgoing]:
        """The messages that may go now, at most one per chat, within the total rate."""
        self._refill(now)
        out = []
        for chat in sorted(self.queues, key=lambda c: self.next_at.get(c, 0.0)):
            if self.tokens < 1:
                break
            if self.next_at.get(chat, 0.0) > now:
                continue
            out.append(self._take(chat))
            self.next_at[chat] = now + self.chat_gap
            self.tokens -= 1
        return out

    def _take(self, chat: int) -> Outgoing:
        q = self.queues.pop(chat)
        plain = next((i for i, n in enumerate(q) if n.file is not None), len(q))  # notes before a file
        if plain <= self.coalesce_after or q[0].rendered:
            notes = [q.popleft()]
        else:
            notes = [q.popleft() for _ in range(plain)]
            self.stats["coalesced"] += len(notes) - 1
        if q:
            self.queues[chat] = q
        self.bytes -= sum(len(n.text) for n in notes)
        for n in notes:
            self._release(n)
        text = notes[0].text if len(notes) == 1 else summary(notes)
        if self.dropped_for[chat]:
            text += f"\n({self.dropped_for.pop(chat)} older notifications were dropped: queue full)"
        count = sum(n.count for n in notes)
        self.stats["sent"] += count
        self.stats["messages"] += 1
        return Outgoing(chat, text, count, notes[0].buttons if len(notes) == 1 else (), notes[0].file,
                        notes[0].tries)

    def sent(self, out: Outgoing, now: float) -> None:
        """``out`` reached Telegram at ``now``: the chat's next message waits a full gap
        from here (counted from the take, a round sent one after another came closer)."""
        self.next_at[out.chat_id] = max(self.next_at.get(out.chat_id, 0.0), now + self.chat_gap)

    def failed(self, out: Outgoing, retry_at: float) -> None:
        """Sending ``out`` failed (Telegram away, or RetryAfter): it goes back to the front
        of its chat's queue, and the chat waits until ``retry_at``."""
        note = Note(out.text, rendered=True, buttons=out.buttons, count=out.notes, file=out.file,
                    tries=out.tries + 1)
        if note.file is not None and note.tries >= FILE_TRIES:  # its text goes alone
            note = Note(f"{out.text}\n(the file {note.file[1]} could not be sent)", rendered=True,
                        count=out.notes)
            self.stats["files_dropped"] += 1
        self.queues.setdefault(out.chat_id, deque()).appendleft(note)
        self.bytes += len(note.text)
        self._hold(note)
        self.stats["sent"] -= out.notes
        self.stats["messages"] -= 1
        self.next_at[out.chat_id] = max(self.next_at.get(out.chat_id, 0.0), retry_at)

    def refused(self, out: Outgoing) -> None:
        """Telegram will never take ``out`` (the chat blocked the bot, a bad request): its
        notifications are counted as dropped, not sent, and the queue goes on."""
        self.stats["sent"] -= out.notes
        self.stats["messages"] -= 1
        self.stats["dropped"] += out.notes

    def _hold(self, note: Note) -> None:
        if note.file is None:
            return
        held = self._files.get(id(note.file[2]))
        if held is None:
            self._files[id(note.file[2])] = [note.file[2], 1]
            self.file_bytes += len(note.file[2])
        else:
            held[1] += 1

    def _release(self, note: Note) -> None:
        if note.file is None:
            return
        held = self._files.get(id(note.file[2]))
        if held is not None:
            held[1] -= 1
            if held[1] <= 0:
                del self._files[id(note.file[2])]
                self.file_bytes -= len(note.file[2])

    def next_deadline(self) -> float | None:
        """When :meth:`due` may next return something (None: nothing waits)."""
        if not self.queues:
            return None
        soonest = min(self.next_at.get(c, 0.0) for c in self.queues)
        if self.tokens < 1 and self.refilled is not None:
            soonest = max(soonest, self.refilled + (1 - self.tokens) / self.total_rate)
        return soonest


def summary(notes: list[Note]) -> str:
    """One message for a burst: the first notes in full, then what else came, by device."""
    shown = notes[:MAX_SUMMARY_LINES]
    rest = notes[MAX_SUMMARY_LINES:]
    lines = [n.text for n in shown]  # each at most screens.MAX_NOTE: three fit in a message
    if rest:
        worst = Counter(n.priority for n in rest)
        kinds = ", ".join(f"{worst[p]} {name}" for p, name in ((2, "errors"), (1, "warnings"))
                          if worst[p])
        sources = Counter(n.source or "rtoc" for n in rest)
        where = ", ".join(f"{html.escape(s[:80], quote=False)} ({k})" for s, k in sources.most_common(5))
        more = sum(n.count for n in rest)
        lines.append(f"… and {more} more events{f' ({kinds})' if kinds else ''} from {where}")
    return "\n\n".join(lines)
