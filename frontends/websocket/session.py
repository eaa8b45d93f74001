"""One websocket client's state: who it is, what it may do, what it subscribed to.

Pure: no sockets, no clock. The protocol core changes it; the server's fan-out asks it
which pushes the client wants (``wants_signal``, ``wants_event``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rtoc.frontends.websocket.auth import role_at_least


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

    def log_in(self, user: str, role: str) -> None:
        self.user, self.role = user, role

    def log_out(self) -> None:
        self.user, self.role = None, self.anonymous_role

    def may(self, need: str) -> bool:
        return role_at_least(self.role, need)

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

    def subscribe(self, kind: str, name: str) -> None:
        (self.signals if kind == "signal" else self.devices).add(name)

    def unsubscribe(self, kind: str, name: str) -> None:
        (self.signals if kind == "signal" else self.devices).discard(name)

    def subscribe_all(self) -> None:
        self.all_signals = True

    def unsubscribe_all(self) -> None:
        self.all_signals = False
        self.signals.clear()
        self.devices.clear()

    def subscription(self) -> dict:
        return {"signals": sorted(self.signals), "devices": sorted(self.devices),
                "all": self.all_signals, "views": sorted(self.views),
                "eventLevel": self.event_level}
