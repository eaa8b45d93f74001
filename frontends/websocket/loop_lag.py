"""How late the websocket process's event loop wakes up: the stall every client feels.

A task asks to wake every ``PERIOD`` s and records how much later it woke (:class:`LoopLag`,
pure: the caller passes the times). ``/metrics`` shows the quantiles of the last ``WINDOW``
wake-ups and the largest since the start; the attack suite and the benches read them.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

PERIOD = 0.02    # s between wake-ups asked for (50 a second: cheap on a Raspberry Pi)
WINDOW = 3000    # wake-ups kept for the quantiles (60 s at PERIOD)


class LoopLag:
    def __init__(self, window: int = WINDOW) -> None:
        self.lags = np.zeros(window)
        self.n = 0            # wake-ups recorded since the start
        self.max = 0.0        # largest lag since the start, s

    def record(self, asked: float, woke: float) -> None:
        lag = max(0.0, woke - asked)
        self.lags[self.n % len(self.lags)] = lag
        self.n += 1
        self.max = max(self.max, lag)

    def quantiles(self, qs: tuple[float, ...] = (0.5, 0.99, 1.0)) -> dict[float, float]:
        """Quantiles of the lags in the window (zeros before the first wake-up)."""
        kept = self.lags[:min(self.n, len(self.lags))]
        if not len(kept):
            return {q: 0.0 for q in qs}
        return dict(zip(qs, np.quantile(kept, qs).tolist(), strict=True))

    def samples(self) -> list[tuple[str, str, dict[str, str], float]]:
        """``/metrics`` lines (``http.prometheus``'s tuples)."""
        text = f"Event loop lag over the last {len(self.lags)} wake-ups every {PERIOD} s (seconds)"
        out = [("rtoc_ws_loop_lag_seconds", text, {"quantile": str(q)}, v)
               for q, v in self.quantiles().items()]
        out.append(("rtoc_ws_loop_lag_max_seconds", "Largest event loop lag since the start", {}, self.max))
        return out

    async def watch(self, clock=time.monotonic) -> None:
        while True:
            asked = clock() + PERIOD
            await asyncio.sleep(PERIOD)
            self.record(asked, clock())
