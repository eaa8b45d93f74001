"""A driver whose setup() fails on some values of a parameter, loaded as ``picky_driver:Picky``.

(Not a test module itself: it defines no tests.)
"""

from __future__ import annotations

from rtoc import Driver, Parameter


class Picky(Driver):
    """Streams ``limit``; its setup() refuses a limit over 10 (as a device would)."""

    samplerate = Parameter(20.0, "Hz")
    limit = Parameter(1.0, "refused by setup() above 10")

    def setup(self) -> None:
        if self.limit > 10:
            raise RuntimeError(f"the device refuses limit {self.limit}")

    def poll(self) -> None:
        self.stream(self.limit, "Limit")
