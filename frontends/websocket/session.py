"""One websocket client's state: who it is, what it may do, what it subscribed to.

Pure: no sockets, no clock. The protocol core changes it; the server's fan-out asks it
which pushes the client wants (``wants_signal``, ``wants_event``), and its bus subscription
which topics (``topics``, every name checked again by :func:`validate.topic`).
:class:`SubscriptionLimit` bounds the names one client and all clients together subscribe.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field

from rtoc.frontends.websocket.auth import role_at_least
from rtoc.frontends.websocket.validate import topic

from rtoc import wire
from rtoc.errors import BadRequest, RtocError

log = logging.getLogger(__name__)


@dataclass(eq=False)  # one object per connection, hashable by identity
class Session:
    """``role`` is the effective role: the logged-in user's, else the anonymous one."""

    address: str
    role: str
    anonymous_role: str
    user: str | None = None
    signals: set[str] = field(default_factory=set)   # "Device.Signal"
    devices: set[str] = field(default_factory=set)
    all_signals: bool = False
    views: set[str] = field(default_factory=set)     # resampled view streams (dashboard)
    event_level: int = 0                             # push events with priority >= this
    events: bool = True                              # push events at all
    dropped: int = 0                                 # pushes lost to a full send queue
    reported_dropped: int = 0
    version: int = 0                                 # bumped by every subscription change
    _topics: tuple[int, set[bytes]] | None = field(default=None, repr=False)

    def log_in(self, user: str, role: str) -> None:
        self.user, self.role = user, role

    def log_out(self) -> None:
        self.user, self.role = None, self.anonymous_role

    def may(self, need: str) -> bool:
        return role_at_least(self.role, need)

    @property
    def budget_key(self) -> str:
        """Whose /dev/shm ring budget the rings this client creates count against: its
        user, else its address ([supervisor] shm_per_client each)."""
        return f"user:{self.user}" if self.user else f"address:{self.address}"

    def wants_signal(self, name: str) -> bool:
        """Raw pushes of ``name`` ("Device.Signal")."""
        if not self.may("read"):
            return False
        if self.all_signals or name in self.signals:
            return True
        device = name.partition(".")[0]
        return device in self.devices

    def wants_view(self, name: str) -> bool:
        """Resampled view pushes of ``name``."""
        return name in self.views and self.may("read")

    def report_dropped(self) -> bool:
        """True once after pushes were lost since the last report (which this marks
        made): the client is due a ``dropped`` report."""
        if self.dropped == self.reported_dropped:
            return False
        self.reported_dropped = self.dropped
        return True

    def wants_event(self, priority: int) -> bool:
        return self.events and self.may("read") and priority >= self.event_level

    def changed(self) -> None:
        """Mark the subscriptions changed (whoever changes the sets directly calls this)."""
        self.version += 1

    def subscribe(self, kind: str, name: str) -> None:
        (self.signals if kind == "signal" else self.devices).add(name)
        self.changed()

    def unsubscribe(self, kind: str, name: str) -> None:
        (self.signals if kind == "signal" else self.devices).discard(name)
        self.changed()

    def subscribe_all(self) -> None:
        self.all_signals = True
        self.changed()

    def unsubscribe_all(self) -> None:
        self.all_signals = False
        self.signals.clear()
        self.devices.clear()
        self.changed()

    def subscription_count(self) -> int:
        """Names subscribed (signals, devices and views; "all" counts as none)."""
        return len(self.signals) + len(self.devices) + len(self.views)

    def topics(self) -> set[bytes]:
        """The bus topics this session needs; a name that breaks the rule (none should get
        this far) is left out and logged, never subscribed. Computed again only after
        :meth:`changed` (the server asks after every batch of messages)."""
        if self._topics is not None and self._topics[0] == self.version:
            return self._topics[1]
        want: set[bytes] = set()
        if self.all_signals:
            want.add(wire.DATA_PREFIX.encode())
        for prefix, names, device in ((wire.DATA_PREFIX, self.signals, False),
                                      (wire.DATA_PREFIX, self.devices, True),
                                      (wire.VIEW_PREFIX, self.views, False)):
            for name in names:
                try:
                    want.add(topic(prefix, name, device))
                except RtocError:
                    log.warning("not subscribing %s's bad name %r", self.address, name[:60])
        self._topics = (self.version, want)
        return want

    def subscription(self) -> dict:
        return {"signals": sorted(self.signals), "devices": sorted(self.devices),
                "all": self.all_signals, "views": sorted(self.views),
                "eventLevel": self.event_level}


class SubscriptionLimit:
    """How many names (signals, devices, views) one client (``per_client``) and all clients
    together (``total``) may subscribe; ``refused`` counts the subscriptions it turned down.

    The sessions it counts are those that subscribed through it (weakly held) and, at each
    :meth:`live`, exactly the server's connected ones, so a gone client frees its share.
    """

    def __init__(self, per_client: int = 1000, total: int = 20_000):
        self.per_client, self.total = per_client, total
        self.sessions: weakref.WeakSet[Session] = weakref.WeakSet()
        self.refused = 0

    def used(self) -> int:
        return sum(s.subscription_count() for s in list(self.sessions))

    def admit(self, session: Session, after: int) -> None:
        """Allow ``session`` to hold ``after`` names, else BadRequest (nothing changes).
        Shrinking is always allowed."""
        now = session.subscription_count()
        if after > now:
            if after > self.per_client:
                self.refused += 1
                raise BadRequest(f"at most {self.per_client} subscriptions per client "
                                 f"(this would make {after}; [websocket] max_subscriptions)")
            others = sum(s.subscription_count() for s in list(self.sessions) if s is not session)
            if others + after > self.total:
                self.refused += 1
                raise BadRequest(f"the server holds {others} subscriptions of other clients; "
                                 f"at most {self.total} in all ([websocket] "
                                 "max_subscriptions_total)")
        self.sessions.add(session)

    def live(self, sessions: Iterable[Session]) -> None:
        """The connected sessions now (the server calls this when they change)."""
        self.sessions = weakref.WeakSet(sessions)
