#!/usr/bin/env python
"""End-to-end benchmarks with real ``rtoc run`` instances (through ``rtoc.app.harness``).

Stages (``--only`` picks some; all run by default):

* ``stream``     (1b) a driver process calling ``stream(value, "S")`` in a tight loop;
  samples/s that reach the ring (``written`` of the ``signals`` op) and the subscriber.
* ``throughput`` (3)  driver -> ring -> engine -> ZeroMQ -> a subscriber in this process:
  ``BlockWriter`` writes 64k-sample blocks at rising rates (changed through the control
  plane, one instance); each rate is held ``--step-seconds``; the highest rate with
  nothing lost (ring overwrite, bus gap), the subscriber keeping up (lag bounded) and the
  driver keeping up is then held again for ``--hold-seconds``.
* ``latency``    (3)  the generator at 100 kS/s in 1000 blocks/s; latency = receipt time
  (``time.time()`` here) minus the timestamp of the newest (and the oldest) sample of each
  batch, over ``--latency-seconds``, for several ``[engine]`` settings.
* ``idle``       (4)  10 signals at 1 Hz (10 generator drivers, or one bench driver with 10
  signals); CPU of the engine, the supervisor and the drivers over ``--idle-seconds``.

Results: a table on stdout and JSON in ``bench/results/e2e-<time>.json`` (and
``e2e-latest.json``). Every instance is stopped and its /dev/shm folder checked, even on
failure or Ctrl-C. Targets are printed next to the figures, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rtoc.pipeline.bus import DataBatch, Subscriber

from rtoc.app.harness import Instance
from rtoc.paths import SHM_ROOT, instance_dir

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p)}
STAGES = ("stream", "throughput", "latency", "idle")
EXTRA_STAGES = ("coldstart", "stall")  # diagnostics, only with --only

# [engine] settings tried by the latency stage: name -> table (empty: the defaults)
ENGINE_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "max_delay=1ms": {"max_delay": 0.001},
    "min_batch=100": {"min_batch": 100},
    "tick=0.5ms+max_delay=0.5ms": {"tick": 0.0005, "max_delay": 0.0005},
    "tick=5ms+max_delay=10ms": {"tick": 0.005, "max_delay": 0.01},
}

EXTRA_ENV: dict[str, str] = {}  # --env: for experiments (e.g. glibc malloc settings)
_instances: list[str] = []  # names of every instance started, for the /dev/shm check


# -- helpers ---------------------------------------------------------------------------
def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def config(drivers: list[tuple[str, str, dict[str, Any]]], engine: dict[str, Any] | None = None,
           log_level: str = "WARNING") -> str:
    """TOML for ``Instance.start``: drivers as (name, driver, params), an [engine] table."""
    lines = [f'log_level = "{log_level}"']
    if engine:
        lines.append("[engine]")
        lines += [f"{k} = {toml_value(v)}" for k, v in engine.items()]
    for name, driver, params in drivers:
        lines += ["[[drivers]]", f'name = "{name}"', f'driver = "{driver}"']
        if params:
            lines.append("[drivers.params]")
            lines += [f"{k} = {toml_value(v)}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def start(cfg: str, ready: tuple[str, ...]) -> Instance:
    inst = Instance.start(cfg, ready_signals=ready, env={**ENV, **EXTRA_ENV}, timeout=90.0)
    _instances.append(inst.name)
    return inst


def written(inst: Instance, name: str) -> int:
    sigs = inst.client.request("signals")["signals"]
    return next(s["written"] for s in sigs if s["name"] == name)


def call(inst: Instance, driver: str, function: str) -> Any:
    return inst.client.request("call", driver=driver, function=function, timeout=10.0)["result"]


def set_param(inst: Instance, driver: str, param: str, value: Any) -> Any:
    return inst.client.request("set", driver=driver, param=param, value=value, timeout=10.0)["value"]


class CpuMeter:
    """CPU time of the instance's processes (and of this one) over a window, in % of a core."""

    def __init__(self, inst: Instance, include_self: bool = True):
        st = inst.client.request("status")
        self.procs: dict[str, psutil.Process] = {"supervisor": psutil.Process(st["pid"])}
        for p in st["processes"]:
            if p["pid"]:
                label = "engine" if p["kind"] == "engine" else f"driver:{p['name']}"
                self.procs[label] = psutil.Process(p["pid"])
        if include_self:
            self.procs["subscriber (bench process)"] = psutil.Process()
        self.t0 = 0.0
        self.c0: dict[str, float] = {}

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        try:
            c = p.cpu_times()
            return c.user + c.system
        except psutil.NoSuchProcess:
            return float("nan")

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = {k: self._cpu(p) for k, p in self.procs.items()}

    def stop(self) -> dict[str, float]:
        dt = time.monotonic() - self.t0
        out = {k: round(100.0 * (self._cpu(p) - self.c0[k]) / dt, 2) for k, p in self.procs.items()}
        drivers = [v for k, v in out.items() if k.startswith("driver:")]
        if len(drivers) > 1:
            out["drivers (sum)"] = round(sum(drivers), 2)
        return out

    def rss_mib(self) -> dict[str, int]:
        out = {}
        for k, p in self.procs.items():
            try:
                out[k] = p.memory_info().rss >> 20
            except psutil.NoSuchProcess:
                pass
        return out


@dataclass
class Pump:
    """Receives one signal's batches on a subscriber and keeps the counts."""

    sub: Subscriber
    name: str
    received: int = 0
    batches: int = 0
    lag: float = float("nan")      # receipt time - newest sample's time, of the last batch
    max_lag: float = 0.0
    on_batch: Callable[[DataBatch, float], None] | None = None

    def run(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            msg = self.sub.recv(timeout=min(left, 0.2))
            if isinstance(msg, DataBatch) and msg.name == self.name and msg.n:
                now = time.time()
                self.received += msg.n
                self.batches += 1
                self.lag = now - float(msg.t[-1])
                self.max_lag = max(self.max_lag, self.lag)
                if self.on_batch is not None:
                    self.on_batch(msg, now)

    def drain(self, max_seconds: float, lag: float = 0.05) -> None:
        """Receive until the subscriber is within ``lag`` s of the writer (or time is up)."""
        until = time.monotonic() + max_seconds
        while time.monotonic() < until:
            self.run(0.1)
            if self.lag == self.lag and self.lag < lag:
                return

    def losses(self) -> tuple[int, int]:
        """(lost in the ring before the engine read them, gaps on the bus)."""
        c = self.sub.counters.signals.get(self.name)
        return (c.lost, c.gap) if c is not None else (0, 0)

    def reset_max(self) -> None:
        self.max_lag = 0.0


@dataclass
class Latencies:
    """Receipt time minus the newest / oldest sample's time, per batch (seconds)."""

    newest: list[float] = field(default_factory=list)
    oldest: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def record(self, b: DataBatch, now: float) -> None:
        self.newest.append(now - float(b.t[-1]))
        self.oldest.append(now - float(b.t[0]))
        self.sizes.append(b.n)


def si(v: float | None, unit: str = "S/s") -> str:
    if v is None or v != v:
        return "-"
    for div, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.2f} {p}{unit}"
    return f"{v:.2f} {unit}"


def log(msg: str) -> None:
    print(msg, flush=True)


# -- 1b: stream() end to end ---------------------------------------------------------------
def bench_stream(args: argparse.Namespace) -> dict:
    name = "F.S"
    cfg = config([("F", "rtoc_bench_drivers:StreamFlood", {"samplerate": 100.0, "burst": 0.01})])
    log(f"[stream] StreamFlood: stream() single samples in a tight loop, {args.stream_seconds:g} s")
    with start(cfg, (name,)) as inst, inst.subscriber([name]) as sub:
        pump = Pump(sub, name)
        pump.run(1.5)
        meter = CpuMeter(inst)
        w0, d0, r0, l0 = written(inst, name), call(inst, "F", "stats"), pump.received, pump.losses()
        meter.start()
        t0 = time.monotonic()
        pump.run(args.stream_seconds)
        dt = time.monotonic() - t0
        w1, d1, r1, l1 = written(inst, name), call(inst, "F", "stats"), pump.received, pump.losses()
        cpu = meter.stop()
        busy = d1["busy"] - d0["busy"]
        res = {
            "seconds": round(dt, 3),
            "ring_samples_per_s": (w1 - w0) / dt,
            "subscriber_samples_per_s": (r1 - r0) / dt,
            "in_poll_samples_per_s": (d1["produced"] - d0["produced"]) / busy if busy else None,
            "poll_duty": busy / dt,
            "lost_ring": l1[0] - l0[0], "lost_bus": l1[1] - l0[1],
            "cpu_percent": cpu, "target_samples_per_s": 1e6,
        }
    log(f"  ring {si(res['ring_samples_per_s'])}, subscriber {si(res['subscriber_samples_per_s'])}, "
        f"inside poll {si(res['in_poll_samples_per_s'])} (duty {res['poll_duty']:.0%}), "
        f"lost {res['lost_ring']}+{res['lost_bus']}, cpu {cpu}")
    return res


# -- 3: throughput ---------------------------------------------------------------------------
def _step(inst: Instance, pump: Pump, meter: CpuMeter, rate: float, seconds: float,
          settle: float) -> dict:
    set_param(inst, "B", "samplerate", float(rate))
    pump.run(settle)
    pump.reset_max()
    s0, r0, l0, w0 = call(inst, "B", "stats"), pump.received, pump.losses(), written(inst, "B.Block")
    meter.start()
    t0 = time.monotonic()
    pump.run(seconds)
    dt = time.monotonic() - t0
    s1, r1, l1, w1 = call(inst, "B", "stats"), pump.received, pump.losses(), written(inst, "B.Block")
    cpu = meter.stop()
    res = {
        "offered_samples_per_s": rate, "seconds": round(dt, 3),
        "ring_samples_per_s": (w1 - w0) / dt,
        "received_samples_per_s": (r1 - r0) / dt,
        "lost_ring": l1[0] - l0[0], "lost_bus": l1[1] - l0[1],
        "driver_skipped": s1["skipped"] - s0["skipped"],
        "lag_end_s": round(pump.lag, 4), "lag_max_s": round(pump.max_lag, 4),
        "cpu_percent": cpu, "rss_mib": meter.rss_mib(),
    }
    res["held"] = bool(res["lost_ring"] == 0 and res["lost_bus"] == 0 and res["driver_skipped"] == 0
                       and res["received_samples_per_s"] >= 0.97 * rate and res["lag_end_s"] < 0.5)
    log(f"  {si(rate):>12} offered: received {si(res['received_samples_per_s']):>12}, "
        f"lost {res['lost_ring']}+{res['lost_bus']}, skipped {res['driver_skipped']}, "
        f"lag end/max {res['lag_end_s'] * 1e3:.1f}/{res['lag_max_s'] * 1e3:.1f} ms, "
        f"engine {cpu.get('engine')}% driver {cpu.get('driver:B')}% sub "
        f"{cpu.get('subscriber (bench process)')}% -> {'held' if res['held'] else 'NOT held'}")
    return res


def bench_throughput(args: argparse.Namespace) -> dict:
    name = "B.Block"
    rates = [float(r) * 1e6 for r in args.rates.split(",")]
    # starts at 1 MS/s: the ring gets its largest size (capacity_for(rate, 4 s) >= 2**22)
    # and the engine is not lapped while the instance starts
    cfg = config([("B", "rtoc_bench_drivers:BlockWriter",
                   {"samplerate": 1e6, "block": 65536, "block_rate": 500.0})], args.engine_table)
    log(f"[throughput] BlockWriter 64k-sample write()s; rates {args.rates} MS/s, "
        f"{args.step_seconds:g} s each, then the best held for {args.hold_seconds:g} s")
    steps: list[dict] = []
    holds: list[dict] = []
    with start(cfg, (name,)) as inst, inst.subscriber([name]) as sub:
        pump = Pump(sub, name)
        meter = CpuMeter(inst)
        sig = next(s for s in inst.client.request("signals")["signals"] if s["name"] == name)
        pump.drain(5.0)
        for rate in rates:
            steps.append(_step(inst, pump, meter, rate, args.step_seconds, settle=1.0))
            if not steps[-1]["held"]:
                break
        passed = sorted((s["offered_samples_per_s"] for s in steps if s["held"]), reverse=True)
        rate = passed[0] if passed else None
        while rate is not None and args.hold_seconds > 0 and len(holds) < args.hold_tries:
            # the best step first; after a failure, the best step at most 60 % of it
            log(f"  hold {si(rate)} for {args.hold_seconds:g} s")
            set_param(inst, "B", "samplerate", 1e6)
            pump.drain(15.0)
            holds.append(_step(inst, pump, meter, rate, args.hold_seconds, settle=1.0))
            if holds[-1]["held"]:
                break
            rate = next((r for r in passed if r <= 0.6 * rate), None)
    best = next((h["offered_samples_per_s"] for h in holds if h["held"]), None)
    return {"ring_capacity": sig["capacity"], "engine": args.engine_table, "steps": steps,
            "holds": holds, "best_held_samples_per_s": best, "target_samples_per_s": 20e6}


# -- 3: latency --------------------------------------------------------------------------------
def bench_latency(args: argparse.Namespace) -> list[dict]:
    name = "G.Sine"
    out = []
    variants = args.latency_variants.split(",")
    log(f"[latency] generator 100 kS/s, 1000 blocks/s; {args.latency_seconds:g} s per [engine] "
        f"variant: {', '.join(variants)}")
    for variant in variants:
        table = ENGINE_VARIANTS[variant]
        cfg = config([("G", "generator", {"samplerate": 100000.0, "block_rate": 1000.0})], table)
        lat = Latencies()
        with start(cfg, (name,)) as inst, inst.subscriber([name]) as sub:
            pump = Pump(sub, name)
            pump.run(2.0)
            meter = CpuMeter(inst)
            l0 = pump.losses()
            pump.on_batch = lat.record
            meter.start()
            t0 = time.monotonic()
            pump.run(args.latency_seconds)
            dt = time.monotonic() - t0
            cpu = meter.stop()
            l1 = pump.losses()
        sizes = lat.sizes
        nw, od = np.array(lat.newest) * 1e3, np.array(lat.oldest) * 1e3
        res = {"variant": variant, "engine": table, "seconds": round(dt, 3), "batches": len(sizes),
               "batches_per_s": len(sizes) / dt, "mean_batch": float(np.mean(sizes)) if sizes else 0.0,
               "samples_per_s": float(np.sum(sizes)) / dt,
               "lost_ring": l1[0] - l0[0], "lost_bus": l1[1] - l0[1], "cpu_percent": cpu,
               "target_p99_ms": 5.0}
        for label, arr in (("newest_ms", nw), ("oldest_ms", od)):
            res[label] = ({"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)),
                           "max": float(arr.max()), "min": float(arr.min())} if arr.size else {})
        out.append(res)
        n = res["newest_ms"]
        o = res["oldest_ms"]
        log(f"  {variant:<28} newest p50/p99/max {n.get('p50', 0):.2f}/{n.get('p99', 0):.2f}/"
            f"{n.get('max', 0):.2f} ms, oldest p50/p99 {o.get('p50', 0):.2f}/{o.get('p99', 0):.2f} ms, "
            f"{res['batches_per_s']:.0f} batches/s of {res['mean_batch']:.0f}, "
            f"lost {res['lost_ring']}+{res['lost_bus']}, engine cpu {cpu.get('engine')}%")
    return out


# -- 4: idle ------------------------------------------------------------------------------------
def bench_idle(args: argparse.Namespace) -> list[dict]:
    modes = ["generators", "bench"] if args.idle_mode == "both" else [args.idle_mode]
    out = []
    for mode in modes:
        if mode == "generators":
            drivers = [(f"G{i}", "generator", {"samplerate": 1.0}) for i in range(10)]
            ready = tuple(f"G{i}.Sine" for i in range(10))
            what = "10 generator drivers at 1 Hz"
        else:
            drivers = [("Slow", "rtoc_bench_drivers:SlowSignals", {"samplerate": 1.0, "count": 10})]
            ready = tuple(f"Slow.S{i}" for i in range(10))
            what = "one driver streaming 10 signals at 1 Hz"
        log(f"[idle] {what}; CPU over {args.idle_seconds:g} s")
        with start(config(drivers, args.engine_table), ready) as inst:
            time.sleep(3.0)  # let start-up work (imports, numba cache loads) finish
            meter = CpuMeter(inst, include_self=False)
            meter.start()
            time.sleep(args.idle_seconds)
            cpu = meter.stop()
            rss = meter.rss_mib()
        res = {"mode": mode, "what": what, "seconds": args.idle_seconds, "cpu_percent": cpu,
               "rss_mib": rss, "target_engine_percent": 5.0}
        out.append(res)
        log(f"  engine {cpu.get('engine')}%, supervisor {cpu.get('supervisor')}%, drivers "
            f"{cpu.get('drivers (sum)', next((v for k, v in cpu.items() if k.startswith('driver:')), None))}%")
    return out


# -- diagnostics (only with --only) ------------------------------------------------------------
def _engine(inst: Instance) -> psutil.Process:
    st = inst.client.request("status")
    return psutil.Process(next(p["pid"] for p in st["processes"] if p["kind"] == "engine"))


def bench_coldstart(args: argparse.Namespace) -> dict:
    """The driver writes ``--diag-rate`` from its first tick, so the engine starts behind
    (the ring lapped): how long until data flows, how much is lost, how much memory."""
    name, rate = "B.Block", args.diag_rate * 1e6
    cfg = config([("B", "rtoc_bench_drivers:BlockWriter", {"samplerate": rate, "block": 65536})],
                 args.engine_table)
    log(f"[coldstart] BlockWriter at {si(rate)} from the start; 6 s")
    with start(cfg, (name,)) as inst, inst.subscriber([name]) as sub:
        eng = _engine(inst)
        t0 = time.monotonic()
        arrivals: list[float] = []
        pump = Pump(sub, name, on_batch=lambda b, now: arrivals.append(time.monotonic()))
        peak = 0
        samples = []
        while time.monotonic() - t0 < 6.0:
            pump.run(0.25)
            rss = eng.memory_info().rss >> 20
            peak = max(peak, rss)
            samples.append((round(time.monotonic() - t0, 2), pump.received, rss))
        lost, gap = pump.losses()
    gaps = np.diff([t0, *arrivals]) if arrivals else np.array([6.0])
    res = {"rate": rate, "first_batch_after_s": (arrivals[0] - t0) if arrivals else None,
           "longest_silence_s": float(gaps.max()), "lost_ring": lost, "lost_bus": gap,
           "engine_rss_peak_mib": peak, "timeline": samples}
    log(f"  first batch after {res['first_batch_after_s']}, longest silence "
        f"{res['longest_silence_s']:.3f} s, lost {lost}+{gap}, engine RSS peak {peak} MiB")
    return res


def bench_stall(args: argparse.Namespace) -> dict:
    """A subscriber that stops reading for ``--stall-seconds`` while ``--diag-rate`` flows:
    the engine's memory and CPU, and whether the engine itself loses samples."""
    name, rate = "B.Block", args.diag_rate * 1e6
    cfg = config([("B", "rtoc_bench_drivers:BlockWriter", {"samplerate": 1e6, "block": 65536})],
                 args.engine_table)
    log(f"[stall] a subscriber stops reading for {args.stall_seconds:g} s at {si(rate)}")
    timeline = []
    with start(cfg, (name,)) as inst, inst.subscriber([name]) as sub:
        eng, me = _engine(inst), psutil.Process()
        pump = Pump(sub, name)
        set_param(inst, "B", "samplerate", rate)
        pump.run(2.0)
        lost0 = pump.losses()[0]
        eng.cpu_percent()
        for i in range(int(args.stall_seconds)):
            time.sleep(1.0)
            timeline.append({"s": i + 1, "reading": False, "engine_rss_mib": eng.memory_info().rss >> 20,
                             "engine_cpu": eng.cpu_percent(), "subscriber_rss_mib": me.memory_info().rss >> 20})
        for i in range(6):
            r0 = pump.received
            pump.run(1.0)
            timeline.append({"s": int(args.stall_seconds) + i + 1, "reading": True,
                             "received_per_s": pump.received - r0, "lag_s": round(pump.lag, 3),
                             "engine_rss_mib": eng.memory_info().rss >> 20, "engine_cpu": eng.cpu_percent()})
        lost, gap = pump.losses()
        ring_lost = next(s["lost"] for s in inst.client.request("signals")["signals"] if s["name"] == name)
    peak_cpu = max(t["engine_cpu"] for t in timeline if not t["reading"])
    res = {"rate": rate, "stall_s": args.stall_seconds, "lost_ring_during": lost - lost0,
           "lost_ring_engine_total": ring_lost, "bus_gap": gap,
           "engine_rss_peak_mib": max(t["engine_rss_mib"] for t in timeline),
           "engine_cpu_peak_during_stall": peak_cpu, "timeline": timeline}
    log(f"  engine RSS peak {res['engine_rss_peak_mib']} MiB, engine CPU peak {peak_cpu}% while the "
        f"subscriber stalled; lost in the ring {res['lost_ring_during']}, bus gap {gap}")
    return res


# -- report ---------------------------------------------------------------------------------------
def table(results: dict) -> str:
    rows: list[tuple[str, str, str]] = []
    if "stream" in results:
        r = results["stream"]
        rows.append(("1b stream() e2e, samples/s into the ring", si(r["ring_samples_per_s"]), ">= 1 MS/s"))
        rows.append(("1b   ... received by the subscriber", si(r["subscriber_samples_per_s"]),
                     f"lost {r['lost_ring'] + r['lost_bus']}"))
        rows.append(("1b   ... inside poll() (per busy second)", si(r["in_poll_samples_per_s"]), ""))
    if "throughput" in results:
        r = results["throughput"]
        held = [s for s in r["steps"] if s["held"]]
        rows.append((f"3  highest {r['steps'][0]['seconds']:.0f}-s step held, 0 lost",
                     si(held[-1]["offered_samples_per_s"]) if held else "none", ">= 20 MS/s"))
        rows.append(("3  highest rate held for the whole hold, 0 lost", si(r["best_held_samples_per_s"]),
                     ">= 20 MS/s sustained"))
        for h in r["holds"]:
            rows.append((f"3    hold {h['seconds']:.0f} s at {si(h['offered_samples_per_s'])}",
                         si(h["received_samples_per_s"]),
                         f"lost {h['lost_ring']}+{h['lost_bus']}, {'held' if h['held'] else 'NOT held'}"))
        fail = [s for s in r["steps"] if not s["held"]]
        if fail:
            f = fail[0]
            rows.append((f"3    first step not held: {si(f['offered_samples_per_s'])}",
                         si(f["received_samples_per_s"]), f"lost {f['lost_ring']}+{f['lost_bus']}, "
                         f"lag {f['lag_end_s'] * 1e3:.0f} ms"))
    for r in results.get("latency", []):
        n = r["newest_ms"]
        rows.append((f"3  latency newest p50/p99/max [{r['variant']}]",
                     f"{n.get('p50', 0):.2f}/{n.get('p99', 0):.2f}/{n.get('max', 0):.2f} ms",
                     f"p99 <= 5 ms; oldest p99 {r['oldest_ms'].get('p99', 0):.2f} ms, engine "
                     f"{r['cpu_percent'].get('engine')}%"))
    for r in results.get("idle", []):
        c = r["cpu_percent"]
        drivers = c.get("drivers (sum)", next((v for k, v in c.items() if k.startswith("driver:")), None))
        rows.append((f"4  idle engine CPU [{r['mode']}]", f"{c.get('engine')} %",
                     f"< 5 %; supervisor {c.get('supervisor')} %, drivers {drivers} %"))
    if "coldstart" in results:
        r = results["coldstart"]
        rows.append((f"diag cold start at {si(r['rate'])}: longest silence", f"{r['longest_silence_s']:.2f} s",
                     f"lost {r['lost_ring']}+{r['lost_bus']}, engine RSS peak {r['engine_rss_peak_mib']} MiB"))
    if "stall" in results:
        r = results["stall"]
        rows.append((f"diag subscriber stalled {r['stall_s']:g} s at {si(r['rate'])}: engine RSS peak",
                     f"{r['engine_rss_peak_mib']} MiB", f"engine CPU peak {r['engine_cpu_peak_during_stall']}%, "
                     f"lost in the ring {r['lost_ring_during']}, bus gap {r['bus_gap']}"))
    w0 = max(len(a) for a, _, _ in rows) if rows else 10
    w1 = max(len(b) for _, b, _ in rows) if rows else 10
    return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows)


def leftovers() -> list[str]:
    mine = [instance_dir(n).name for n in _instances]
    return sorted(p.name for p in SHM_ROOT.glob("rtoc-*") if p.name in mine)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--only", action="append", choices=STAGES + EXTRA_STAGES,
                    help=f"run only this stage (repeatable); default: {', '.join(STAGES)}")
    ap.add_argument("--stream-seconds", type=float, default=10.0)
    ap.add_argument("--rates", default="10,20,30,40,50,60,80,100,120",
                    help="throughput steps in M samples/s, rising; stops at the first not held")
    ap.add_argument("--step-seconds", type=float, default=3.0)
    ap.add_argument("--hold-seconds", type=float, default=10.0)
    ap.add_argument("--hold-tries", type=int, default=3,
                    help="holds at most; after a failed one, the best step <= 60 %% of it")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--latency-variants", default=",".join(ENGINE_VARIANTS),
                    help=f"comma-separated, of: {', '.join(ENGINE_VARIANTS)}")
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--idle-mode", choices=("generators", "bench", "both"), default="generators")
    ap.add_argument("--diag-rate", type=float, default=20.0,
                    help="M samples/s of the coldstart and stall diagnostics")
    ap.add_argument("--stall-seconds", type=float, default=14.0)
    ap.add_argument("--engine", action="append", default=[], metavar="KEY=VALUE",
                    help="[engine] setting for the stream/throughput/idle stages (repeatable)")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment variable for the instance's processes (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: bench/results/e2e-<time>.json)")
    args = ap.parse_args(argv)
    for v in args.latency_variants.split(","):
        if v not in ENGINE_VARIANTS:
            ap.error(f"unknown latency variant {v!r}; known: {', '.join(ENGINE_VARIANTS)}")
    args.engine_table = {}
    for kv in args.engine:
        k, _, v = kv.partition("=")
        args.engine_table[k.strip()] = int(v) if v.strip().isdigit() else float(v)
    for kv in args.env:
        k, _, v = kv.partition("=")
        EXTRA_ENV[k.strip()] = v
    stages = args.only or list(STAGES)

    # SIGTERM unwinds like Ctrl-C, so every `with Instance` cleans up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "platform": platform.platform(), "load_avg_at_start": os.getloadavg()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    t0 = time.monotonic()
    code = 0
    try:
        for stage in STAGES + EXTRA_STAGES:
            if stage in stages:
                results[stage] = globals()[f"bench_{stage}"](args)
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    finally:
        results["seconds"] = round(time.monotonic() - t0, 1)
        results["shm_leftovers"] = left = leftovers()
        RESULTS.mkdir(exist_ok=True)
        out = args.out or RESULTS / f"e2e-{time.strftime('%Y%m%d-%H%M%S')}.json"
        text = json.dumps(results, indent=2, default=str)
        out.write_text(text)
        if args.out is None:
            (RESULTS / "e2e-latest.json").write_text(text)
    print()
    print(table(results))
    print(f"\n{results['seconds']:g} s; JSON: {out}")
    if left:
        print(f"WARNING: instance folders left in /dev/shm: {left}")
        code = code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
