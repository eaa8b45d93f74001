"""The built-in signal generator: sine, square, sawtooth, triangle, noise, AC, DC.

From 1 Hz to millions of samples per second. Above ``block_rate`` the timer ticks at
``block_rate`` and each tick produces every sample that has come due, as one vectorised
block; timestamps are ``t0 + k / samplerate`` for integer ``k``, so they are exact and
never drift, whatever the tick jitter.
"""

from __future__ import annotations

import math

import numpy as np

from rtoc import Driver, Parameter, function

WAVEFORMS = {"sine": "Sine", "square": "Square", "sawtooth": "Sawtooth", "triangle": "Triangle",
             "noise": "Noise", "ac": "AC", "dc": "DC"}
MAX_CATCH_UP = 10.0  # seconds of samples produced at most after a stall


def waveform(kind: str, t: np.ndarray, frequency: float, amplitude: float, offset: float,
             phase: float, rng: np.random.Generator) -> np.ndarray:
    """Values of ``kind`` at times ``t`` (float64[n], seconds since the generator's origin).

    sine: ``A sin(2 pi f t + phase) + offset``; square: ``offset`` or ``offset + A``;
    sawtooth and triangle: ``-A .. A`` plus offset; noise: Gaussian, std ``A``, mean
    ``offset``; ac: ``+A``/``-A`` half periods; dc: ``A + offset``.
    """
    frac = np.mod(frequency * t + phase / (2 * np.pi), 1.0)
    if kind == "sine":
        return amplitude * np.sin(2 * np.pi * frequency * t + phase) + offset
    if kind == "square":
        return np.where(frac < 0.5, offset + amplitude, offset)
    if kind == "sawtooth":
        return amplitude * (2.0 * frac - 1.0) + offset
    if kind == "triangle":
        return amplitude * (1.0 - 4.0 * np.abs(frac - 0.5)) + offset
    if kind == "noise":
        return rng.normal(offset, abs(amplitude), t.shape[0])
    if kind == "ac":
        return np.where(frac < 0.5, amplitude, -amplitude)
    if kind == "dc":
        return np.full(t.shape[0], amplitude + offset)
    raise ValueError(f"unknown waveform {kind!r}")


def samples_due(t0: float, rate: float, now: float) -> int:
    """How many samples ``k = 0, 1, ...`` have ``t0 + k / rate <= now`` (exactly as the
    timestamps are computed, so a sample due at ``now`` is never left for the next tick)."""
    k = math.floor((now - t0) * rate)
    while t0 + (k + 1) / rate <= now:
        k += 1
    while k >= 0 and t0 + k / rate > now:
        k -= 1
    return k + 1


class Generator(Driver):
    """A signal generator; its signal is named after the waveform (``Generator.Sine``)."""

    samplerate = Parameter(50.0, "Samples per second of the signal", min=1e-3, max=1e7)
    waveform = Parameter("sine", "Waveform", choices=tuple(WAVEFORMS))
    frequency = Parameter(0.5, "Frequency in Hz", min=0.0)
    amplitude = Parameter(1.0, "Amplitude")
    offset = Parameter(0.0, "Offset added to every value")
    phase = Parameter(0.0, "Phase in radians")
    block_rate = Parameter(100.0, "Most timer ticks per second; faster rates come in blocks",
                           min=1.0, max=2000.0)
    signal = Parameter("", "Signal name; empty: named after the waveform", name="signal")

    def setup(self) -> None:
        self._rng = np.random.default_rng()
        self._origin = self._clock()
        self._restart_clock(self._origin)

    def tick_rate(self) -> float:
        return min(self.samplerate, self.block_rate)

    def _restart_clock(self, t0: float) -> None:
        """Sample ``k`` is due at ``t0 + k / _rate`` from now on."""
        self._t0, self._k, self._rate = t0, 0, self.samplerate

    def parameter_changed(self, name: str, value) -> None:
        if name == "samplerate":  # the hook runs only after setup(): _t0 is there
            # go on from the next sample of the old rate, at the new rate
            self._restart_clock(self._t0 + self._k / self._rate if self._k else self._clock())

    @property
    def signal_name(self) -> str:
        return self.signal or WAVEFORMS[self.waveform]

    def poll(self) -> None:
        rate = self._rate
        due = samples_due(self._t0, rate, self._clock())
        if due - self._k > MAX_CATCH_UP * rate:  # after a long stall: skip, don't flood
            self._k = due - int(MAX_CATCH_UP * rate)
        if due <= self._k:
            return
        k = np.arange(self._k, due, dtype=np.float64)
        t = self._t0 + k / rate
        y = waveform(self.waveform, t - self._origin, self.frequency, self.amplitude,
                     self.offset, self.phase, self._rng)
        self._k = due
        self.write(self.signal_name, t, y)

    @function
    def set_waveform(self, kind: str) -> str:
        """Switch the waveform (sine, square, sawtooth, triangle, noise, ac, dc)."""
        self.waveform = kind.lower()
        return self.signal_name

    @function
    def set_frequency(self, hz: float) -> float:
        """Set the frequency in Hz."""
        self.frequency = hz
        return self.frequency

    @function
    def changeType(self, stype: str) -> str:  # noqa: N802
        """RTOC's name for set_waveform ("Sinus" and "Random" are understood)."""
        aliases = {"sinus": "sine", "random": "noise"}
        return self.set_waveform(aliases.get(stype.lower(), stype.lower()))

    @function
    def setFrequency(self, freq: float, inverse: bool = False) -> float:  # noqa: N802
        """RTOC's name for set_frequency; ``inverse=True`` takes a period in seconds."""
        return self.set_frequency(1.0 / freq if inverse else freq)
