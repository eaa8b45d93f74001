"""The built-in system driver: CPU, memory, load, network and disk rates of the host.

Uses psutil (portable, well kept; it saves parsing /proc by hand on each platform).
"""

from __future__ import annotations

import os

import psutil

from rtoc import Driver, Parameter


class System(Driver):
    """Host statistics, one sample per signal per tick."""

    samplerate = Parameter(1.0, "Samples per second", min=0.01, max=100.0)

    def setup(self) -> None:
        psutil.cpu_percent(None)  # the first call only primes the counter
        self._last: tuple[float, tuple[int, int, int, int]] | None = None

    def _counters(self) -> tuple[int, int, int, int]:
        net = psutil.net_io_counters()
        disk = psutil.disk_io_counters()
        return (net.bytes_recv if net else 0, net.bytes_sent if net else 0,
                disk.read_bytes if disk else 0, disk.write_bytes if disk else 0)

    def poll(self) -> None:
        now = self._clock()
        values = [psutil.cpu_percent(None), psutil.virtual_memory().percent, os.getloadavg()[0]]
        names = ["CPU", "Memory", "Load"]
        units = ["%", "%", ""]
        counters = self._counters()
        if self._last is not None and now > self._last[0]:
            dt = now - self._last[0]
            rates = [(c - p) / dt for c, p in zip(counters, self._last[1], strict=True)]
            values += rates
            names += ["NetRx", "NetTx", "DiskRead", "DiskWrite"]
            units += ["B/s"] * 4
        self._last = (now, counters)
        self.stream(values, names, unit=units, x=now)
