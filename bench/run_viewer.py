#!/usr/bin/env python
"""Issue 15: the viewer (``rtoc view``) end to end, offscreen (QT_QPA_PLATFORM=offscreen,
software rendering), against real instances. Three measurements:

1. live, local: an instance with ``--signals`` generators (``G0`` .. ``G15``) at each
   ``--rate`` samples/s (several rates: one instance each); a MainWindow on the local bus
   with every ``Gi.Sine`` on one plot (window "10 s"). Start-up first: ``--settle`` s, then
   until nothing waits for the worker and every signal's newest point is < 2 s old (at most
   ``--settle-max`` s; the panel asks the archive for the part of the window older than the
   first live point, per signal); then ``--seconds`` s measured. Reported: the
   rates the instance really reached (``written`` counters over the window, and the
   engine's ``rate``), the viewer's frames per second (``draw()`` calls; the QTimer asks for
   one every 16 ms), ``draw()``'s own time (``window.frame_times``: the panels' refresh,
   i.e. ``setData``), the paint of the plot (pyqtgraph's ``GraphicsView.paintEvent``, timed
   by wrapping it in this process; Qt paints after ``draw()`` returns), the interval between
   two frames, and a frame's cost (``draw()`` plus the paints until the next ``draw()``);
   the CPU share of the GUI thread (``time.thread_time``), of every other thread of this
   process (psutil, by native id: the viewer's worker, zmq's, the websocket client's), of
   this whole process and of the instance's processes; the lag (now - the newest point of
   each signal in the model, sampled every 0.5 s); every call of the worker on its source
   (read, request by op, events, history: count, share of the wall time, p50/max), timed by
   wrapping them on the source object.
2. live, remote: the same over the websocket binary subprotocol (``RemoteSource`` on
   ``ws://``), plus the server's dropped frames (``/metrics``) and the client's counters.
3. zoom: an instance with ``Z`` at 1 kHz; ``--zoom-samples`` (86.4 M: 24 h at 1 kHz)
   imported before its live samples (the archiver's ``import`` op, float64 bytes, as
   bench/run_telegram.py does); a window following the live edge of ``Z.Sine`` ("10 s"),
   then the window box set to "24 h": the time until the curve's data reaches back 23 h
   (the history request went to the worker, the archive answered, a frame set it; also
   until what pyqtgraph draws of it, ``getData()``, does), with the request, the archive
   call and the reply's arrival timed on the way, and the history points drawn. ``--zooms``
   times (the model's history cleared between; each at a later "now", so each range
   differs); then, with the live buffer full (its capacity cut to ``--full-buffer`` s of
   points in this process), 24 h held ``--hold`` s: the history requests the panel sends.

Also: ``Trace.add`` of one view message into an empty and a full live buffer, timed alone.
PySide6 6.12.0 on CPython < 3.12 drops references to None and True (see ``SINGLETONS``):
the leak is measured at the start and, if there, those singletons are made immortal in this
process, or it would abort within seconds of drawing. Each instance has a guard process
that stops it and removes its folders should this process die without cleaning up.

Prints and writes ``bench/results/viewer-latest.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import pyqtgraph as pg  # noqa: E402
import PySide6  # noqa: E402
from PySide6 import QtCore, QtWidgets  # noqa: E402
from rtoc.frontends.viewer.source import LocalSource, RemoteSource  # noqa: E402
from rtoc.frontends.viewer.window import MainWindow  # noqa: E402

from rtoc import config as config_mod  # noqa: E402
from rtoc.app.harness import Instance  # noqa: E402
from rtoc.paths import instance_dir  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ZOOM_RATE = 1000.0


# -- PySide6 6.12.0 (abi3 wheel) on CPython < 3.12 drops references to None (at every call of
# a void method: QPainter.setPen, QObject.setObjectName, ...) and to True/False (somewhere in
# pyqtgraph's paint path): painting a plot takes their reference counts to 0 within seconds
# and the process aborts ("none_dealloc", "bool_dealloc"). Measured here; if so, these
# singletons are made immortal in this process (as CPython 3.12 does) so the measurement
# can run at all. ``rtoc view`` itself needs another PySide6 (or Python >= 3.12).
SINGLETONS = {"None": None, "True": True, "False": False}


def none_leak_per_call() -> float:
    obj = QtCore.QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        obj.setObjectName("x")
    return (before - sys.getrefcount(None)) / 1000


def immortal_singletons() -> bool:
    if sys.version_info >= (3, 12):
        return False
    import ctypes

    for obj in SINGLETONS.values():
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    return True


def refcounts() -> dict[str, int]:
    return {k: sys.getrefcount(v) for k, v in SINGLETONS.items()}


NONE_LEAK = none_leak_per_call()
REFS_AT_START = refcounts()
IMMORTAL = immortal_singletons() if NONE_LEAK > 0.5 else False

# -- a guard per instance: should this process die without cleaning up (an abort in Qt is
# not an exception), the guard stops the instance's process group and removes its folders
GUARD = r"""
import os, shutil, signal, sys, time
runner, pid, folders = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def alive(p):
    try:
        os.kill(p, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
while alive(runner) and alive(pid):
    time.sleep(1.0)
if alive(pid):
    for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + wait
        while alive(pid) and time.monotonic() < end:
            time.sleep(0.2)
    for f in folders:
        shutil.rmtree(f, ignore_errors=True)
"""
GUARDS: list[subprocess.Popen] = []


@contextlib.contextmanager
def instance(config: str, ready: tuple[str, ...], timeout: float):
    with Instance.start(config, ready, timeout=timeout) as inst:
        GUARDS.append(subprocess.Popen(
            [sys.executable, "-c", GUARD, str(os.getpid()), str(inst.proc.pid), str(inst.folder),
             str(instance_dir(inst.name))], start_new_session=True, stdin=subprocess.DEVNULL))
        yield inst


# -- timing of the plot's paint (wrapped here, in this process only) ------------------------
PAINTS: list[tuple[float, float]] = []  # (start, seconds) of each GraphicsView.paintEvent
_paint = pg.GraphicsView.paintEvent


def _timed_paint(self, ev):
    start = time.perf_counter()
    try:
        return _paint(self, ev)
    finally:
        PAINTS.append((start, time.perf_counter() - start))


pg.GraphicsView.paintEvent = _timed_paint


# -- helpers -------------------------------------------------------------------------------
def spin(seconds: float) -> None:
    """Run Qt's event loop for ``seconds``."""
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(max(0, int(seconds * 1000)), loop.quit)
    loop.exec()


def wait_until(pred, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        spin(step)


def curve_t(panel, name: str) -> np.ndarray:
    t, _ = panel.curves[name].getData()
    return np.empty(0) if t is None else t


def pct(xs, scale: float = 1e3, unit: str = "ms") -> dict:
    a = np.asarray(list(xs), float) * scale
    if not len(a):
        return {"n": 0}
    r = lambda v: round(float(v), 2)  # noqa: E731
    return {"n": len(a), f"p50_{unit}": r(np.percentile(a, 50)), f"p99_{unit}": r(np.percentile(a, 99)),
            f"max_{unit}": r(a.max()), f"mean_{unit}": r(a.mean())}


def threads_cpu() -> dict[int, tuple[str, float]]:
    """Every thread of this process: native id -> (its name, user + system seconds)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for th in psutil.Process().threads():
        try:
            comm = Path(f"/proc/self/task/{th.id}/comm").read_text().strip()
        except OSError:
            comm = "?"
        out[th.id] = (names.get(th.id) or comm, th.user_time + th.system_time)
    return out


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and its descendants, by pid."""
    out = {}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            c = p.cpu_times()
            out[p.pid] = c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return out


def others() -> dict:
    """What else runs on this machine (load, the busiest processes not of this runner)."""
    ps = subprocess.run(["ps", "-eo", "pid,ppid,pcpu,etime,args", "--sort=-pcpu"],
                        capture_output=True, text=True).stdout.splitlines()
    return {"loadavg": [round(x, 2) for x in os.getloadavg()],
            "top": [line[:200] for line in ps[1:12]]}


def signals_of(inst: Instance) -> dict[str, dict]:
    return {s["name"]: s for s in inst.client.request("signals")["signals"]}


class SourceTimer:
    """Times every call the viewer's worker makes on its source (``read``, ``request`` by
    op, ``events``, ``history``), by wrapping them on the source object: where the worker
    spends its time. Installed before the window (its worker starts at once)."""

    def __init__(self, source) -> None:
        self.calls: list[tuple[str, float, float, str | None]] = []  # op, start, seconds, error
        self._wrap_all(source)
        real_lane = source.lane  # the history worker's own source: timed the same way
        source.lane = lambda: self._wrap_all(real_lane())

    def _wrap_all(self, source):
        for name in ("read", "request", "events", "history"):
            setattr(source, name, self._wrap(name, getattr(source, name)))
        return source

    def _wrap(self, name: str, real):
        def timed(*a, **kw):
            op = f"request:{a[0]}" if name == "request" and a else name
            start, err = time.perf_counter(), None
            try:
                return real(*a, **kw)
            except Exception as exc:
                err = type(exc).__name__
                raise
            finally:
                self.calls.append((op, start, time.perf_counter() - start, err))
        return timed

    def figures(self, t0: float, t1: float) -> dict:
        ops: dict[str, list] = {}
        for op, start, took, err in list(self.calls):
            if t0 <= start <= t1:
                ops.setdefault(op, []).append((took, err))
        wall = t1 - t0
        out = {op: {"n": len(v), "share_of_wall": round(sum(x for x, _ in v) / wall, 3),
                    "p50_ms": round(float(np.median([x for x, _ in v])) * 1e3, 1),
                    "max_ms": round(max(x for x, _ in v) * 1e3, 1),
                    "errors": sorted({e for _, e in v if e})} for op, v in sorted(ops.items())}
        return out


class Probe(QtCore.QObject):
    """Hooks on a running window: every frame (after ``draw()``), the lag every 0.5 s. Lives in the GUI thread (its slots run there)."""

    def __init__(self, win: MainWindow, names: tuple[str, ...]):
        super().__init__()
        self.win, self.names = win, names
        self.frame_end: list[float] = []     # perf_counter after each draw()
        self.draw_s: list[float] = []        # draw()'s own time (window.frame_times)
        self.lags: list[float] = []
        self.lag_max: list[float] = []       # per sample, the worst signal
        self.on_frame_extra = None
        self.active = False
        win.timer.timeout.connect(self.frame)  # connected after draw(): runs after it
        self.lag_timer = QtCore.QTimer(self)
        self.lag_timer.timeout.connect(self.lag)

    def start(self) -> None:
        self.active = True
        PAINTS.clear()
        self.lag_timer.start(500)
        self.refs0 = refcounts()
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.t1 = time.perf_counter()
        self.refs1 = refcounts()
        self.active = False
        self.lag_timer.stop()
        self.paints = [p for p in PAINTS if self.t0 <= p[0] <= self.t1]

    def detach(self) -> None:
        try:
            self.win.timer.timeout.disconnect(self.frame)
        except (RuntimeError, TypeError):
            pass

    @QtCore.Slot()
    def frame(self) -> None:
        if self.active:
            self.frame_end.append(time.perf_counter())
            self.draw_s.append(self.win.frame_times[-1])
        if self.on_frame_extra is not None:
            self.on_frame_extra()

    @QtCore.Slot()
    def lag(self) -> None:
        now = time.time()
        lags = [now - float(tr.t[-1]) for n in self.names
                if len((tr := self.win.model.trace(n)).t)]
        if lags:
            self.lags += lags
            self.lag_max.append(max(lags))

    def figures(self) -> dict:
        wall = self.t1 - self.t0
        ends = np.array(self.frame_end)
        starts = ends - np.array(self.draw_s)
        paint = [d for _, d in self.paints]
        p_start = np.array([a for a, _ in self.paints])
        p_cum = np.concatenate([[0.0], np.cumsum(paint)])
        cost = []  # per frame: draw() + the paints until the next frame's draw()
        for i in range(len(starts) - 1):
            a, b = starts[i], starts[i + 1]
            pa, pb = np.searchsorted(p_start, [a, b])
            cost.append(self.draw_s[i] + p_cum[pb] - p_cum[pa])
        intervals = np.diff(ends)
        return {
            "wall_s": round(wall, 3), "frames": len(ends),
            "fps": round(len(ends) / wall, 2),
            "frame_interval": pct(intervals),
            "frames_late_over_25ms": int((intervals > 0.025).sum()),
            "draw": pct(self.draw_s),
            "paint": pct(paint), "paints": len(paint),
            "paints_per_s": round(len(paint) / wall, 2),
            "frame_cost": pct(cost), "frames_cost_over_25ms": int((np.array(cost) > 0.025).sum()),
            "lag": pct(self.lags, 1.0, "s"), "lag_worst_signal": pct(self.lag_max, 1.0, "s"),
            # references dropped per second (the PySide6 leak; see none_leak_per_call)
            "refs_dropped_per_s": {k: round((self.refs0[k] - self.refs1[k]) / wall) for k in SINGLETONS},
        }


# -- 1 and 2: live ----------------------------------------------------------------------------
def trace_add_cost(points: int = 100, rounds: int = 300) -> dict:
    """``Trace.add`` of one view message (``points`` points) into an empty and into a full
    live buffer (``LIVE_POINTS``, reached after ~131 s at 2000 view points/s): it
    concatenates the whole buffer every time."""
    from rtoc.frontends.viewer.model import LIVE_POINTS, Trace

    out = {"live_points": LIVE_POINTS, "points_per_message": points}
    for label, fill in (("empty", 0), ("full", LIVE_POINTS)):
        tr = Trace()
        tr.add(np.arange(fill, dtype=np.float64), np.zeros(fill))
        t = float(fill)
        took = []
        for _ in range(rounds):
            x = t + np.arange(points, dtype=np.float64)
            start = time.perf_counter()
            tr.add(x, np.zeros(points))
            took.append(time.perf_counter() - start)
            t += points
        out[f"{label}_us"] = round(float(np.median(took)) * 1e6, 1)
    return out


def live_config(n: int, rate: float) -> str:
    return "".join(f'[[drivers]]\nname = "G{i}"\ndriver = "generator"\n[drivers.params]\n'
                   f'samplerate = {rate!r}\nblock_rate = 100.0\n\n' for i in range(n))


def watch(inst: Instance, source, names: tuple[str, ...], seconds: float, settle: float,
          settle_max: float, settings: Path, remote: bool) -> dict:
    """One window on ``source`` with every signal on one plot; the figures of ``seconds``."""
    timer = SourceTimer(source)
    win = MainWindow(source, settings, default_signals=names)
    states: list[tuple[float, str, str]] = []
    win.worker.state.connect(lambda st, detail: states.append((time.perf_counter(), st, detail[:200])))
    win.show()
    probe = None
    try:
        panel = win.panels[0]
        panel.window_box.setCurrentText("10 s")
        t_open = time.monotonic()
        with_data = lambda: sum(len(curve_t(panel, n)) > 10 for n in names)  # noqa: E731
        try:
            wait_until(lambda: with_data() == len(names), 60, "every curve has data")
            first_data_s = round(time.monotonic() - t_open, 2)
        except TimeoutError:  # measured all the same (an overloaded instance starves some)
            first_data_s = None
        curves_with_data = with_data()
        # settle: until the 10 s window is all live points (before that the panel asks the
        # archive for the part older than the first live point: the start-up's own figures)
        settle_probe = Probe(win, names)
        settle_probe.start()
        spin(settle)

        def current() -> bool:  # nothing queued for the worker, every signal's lag < 2 s
            now = time.time()
            return win.worker.jobs.qsize() == 0 and win.history_worker.jobs.qsize() == 0 and all(
                len(tr.t) and now - tr.t[-1] < 2.0 for tr in (win.model.trace(n) for n in names))
        try:
            wait_until(current, settle_max, "the live edge current")
            live_after = round(time.perf_counter() - settle_probe.t0, 2)
        except TimeoutError:
            live_after = None
        settle_probe.stop()
        settle_probe.detach()
        startup = settle_probe.figures()
        startup = {"seconds": round(settle_probe.t1 - settle_probe.t0, 2),
                   "live_edge_current_after_s": live_after, "fps": startup["fps"], "frame_interval": startup["frame_interval"],
                   "lag": startup["lag"], "worker_calls": timer.figures(settle_probe.t0, settle_probe.t1)}
        probe = Probe(win, names)
        sig0 = signals_of(inst)
        metrics0 = inst.metrics() if remote else {}
        received0 = win.model.received
        messages = [0]  # view messages handed to the model (Trace.add calls)
        real_on_points = win.model.on_points

        def counted(*a) -> None:
            messages[0] += 1
            real_on_points(*a)
        win.model.on_points = counted
        cpu0 = {"gui": time.thread_time(), "threads": threads_cpu(),
                "process": sum(psutil.Process().cpu_times()[:2]), "instance": tree_cpu(inst.proc.pid)}
        t0 = time.perf_counter()
        probe.start()
        spin(seconds)
        probe.stop()
        wall = time.perf_counter() - t0
        cpu1 = {"gui": time.thread_time(), "threads": threads_cpu(),
                "process": sum(psutil.Process().cpu_times()[:2]), "instance": tree_cpu(inst.proc.pid)}
        received = win.model.received - received0
        sig1 = signals_of(inst)
        out = probe.figures()
        out["worker_calls"] = timer.figures(probe.t0, probe.t1)
        out["startup"] = startup
        out["worker_state_changes"] = [(round(t - probe.t0, 2), st, d) for t, st, d in states
                                       if probe.t0 <= t <= probe.t1]
        out["worker_disconnects_before_window"] = sum(st == "disconnected" for t, st, _ in states
                                                      if t < probe.t0)
        share = lambda k: round((cpu1[k] - cpu0[k]) / wall, 3)  # noqa: E731
        threads: dict[str, float] = {}  # by name (Qt's and zmq's threads by their comm)
        for tid, (tname, c) in cpu1["threads"].items():
            tname = "GUI (main)" if tid == threading.main_thread().native_id else tname
            threads[tname] = threads.get(tname, 0.0) + (c - cpu0["threads"].get(tid, (tname, 0.0))[1]) / wall
        threads = {k: round(v, 3) for k, v in sorted(threads.items(), key=lambda kv: -kv[1])}
        procs = {p["pid"]: p["name"] for p in inst.client.request("status")["processes"] if p.get("pid")}
        inst_cpu = {pid: (c - cpu0["instance"].get(pid, 0.0)) / wall for pid, c in cpu1["instance"].items()}
        by_name: dict[str, float] = {}
        for pid, c in inst_cpu.items():
            key = procs.get(pid, "supervisor" if pid == inst.proc.pid else "other")
            key = "drivers" if key.startswith("G") and key[1:].isdigit() else key
            by_name[key] = round(by_name.get(key, 0.0) + c, 3)
        written = {n: (sig1[n]["written"] - sig0[n]["written"]) / wall for n in names}
        points = {n: len(win.model.trace(n).t) for n in names}
        out.update({
            "first_data_s": first_data_s, "curves_with_data_at_start": curves_with_data,
            "curves_with_data_at_end": with_data(),
            "plot_px": [panel.plot.getViewBox().width(), panel.plot.getViewBox().height()],
            "cpu_share": {"gui_thread": share("gui"), "worker_thread": threads.get("viewer-worker"),
                          "client_thread": threads.get("rtoc-client"),
                          "this_process": share("process"), "threads_of_this_process": threads,
                          "instance_total": round(sum(inst_cpu.values()), 3),
                          "instance_by_process": dict(sorted(by_name.items(), key=lambda kv: -kv[1]))},
            "view_points_per_s_per_signal": round(received / wall / len(names), 1),
            "view_messages_per_s": round(messages[0] / wall, 1),
            "rates_written_per_s": {"mean": round(float(np.mean(list(written.values())))),
                                    "min": round(min(written.values())),
                                    "max": round(max(written.values())),
                                    "total": round(sum(written.values())),
                                    "per_signal": [round(v) for v in written.values()]},
            "live_points_per_signal_at_end": list(points.values()),
            "engine_rate_end": {"total": round(sum(sig1[n].get("rate", 0.0) for n in names)),
                                "min": round(min(sig1[n].get("rate", 0.0) for n in names))},
            "lost_in_window": sum(sig1[n].get("lost", 0) - sig0[n].get("lost", 0) for n in names),
        })
        if remote:
            m1 = inst.metrics()
            key = "rtoc_ws_binary_frames_dropped_total"
            client = getattr(win.worker.source, "client", None)
            out["ws"] = {"server_frames_dropped": m1.get(key, 0.0) - metrics0.get(key, 0.0),
                         "client_dropped_frames_reported": getattr(client, "dropped_frames", None),
                         "client_queue_dropped": getattr(client, "queue_dropped", None),
                         "client_reconnects": getattr(client, "reconnects", None)}
        return out
    finally:
        if probe is not None:
            probe.detach()
        win.close()
        win.deleteLater()
        spin(0.2)


def live(rate: float, n: int, seconds: float, settle: float, settle_max: float, tmp: Path,
         skip: list[str]) -> dict:
    names = tuple(f"G{i}.Sine" for i in range(n))
    out: dict = {"rate_asked_per_signal": rate, "signals": n}
    print(f"live: {n} x {rate:,.0f} samples/s", flush=True)
    with instance(live_config(n, rate), names, 180) as inst:
        time.sleep(3.0)
        cfg = config_mod.load(inst.folder / "rtoc.toml")
        s0, w0 = signals_of(inst), time.monotonic()
        time.sleep(3.0)
        s1, w1 = signals_of(inst), time.monotonic()
        rates = [(s1[x]["written"] - s0[x]["written"]) / (w1 - w0) for x in names]
        out["rates_before_viewer"] = {"mean": round(float(np.mean(rates))), "min": round(min(rates)),
                                      "total": round(sum(rates))}
        print(f"  written before the viewer: {out['rates_before_viewer']}", flush=True)
        out["rates_before_viewer"]["per_signal"] = [round(r) for r in rates]
        for kind in ("local", "remote"):
            if kind in skip:
                continue
            try:
                source = (LocalSource(cfg) if kind == "local" else
                          RemoteSource(inst.ws_url().replace("http", "ws", 1)))
                out[kind] = watch(inst, source, names, seconds, settle, settle_max,
                                  tmp / f"{kind}.json", kind == "remote")
                print(f"  {kind}: {summary(out[kind])}" + (f"; ws {out[kind]['ws']}" if kind == "remote" else ""),
                      flush=True)
            except Exception as exc:  # reported, and the next part runs
                out[kind] = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"  {kind}: {out[kind]['error']}", flush=True)
        log = inst.log()
        out["tracebacks_in_log"] = log.count("Traceback")
        out["log_tail"] = log[-3000:]
        name = inst.name
    out["shm_left"] = instance_dir(name).exists()
    return out


def summary(r: dict) -> str:
    return (f"{r['fps']} fps, interval p50/p99 {r['frame_interval'].get('p50_ms')}/"
            f"{r['frame_interval'].get('p99_ms')} ms, draw p50/p99 {r['draw'].get('p50_ms')}/"
            f"{r['draw'].get('p99_ms')} ms, paint p50/p99 {r['paint'].get('p50_ms')}/"
            f"{r['paint'].get('p99_ms')} ms ({r['paints_per_s']}/s), draw+paint p50/p99 "
            f"{r['frame_cost'].get('p50_ms')}/{r['frame_cost'].get('p99_ms')} ms, "
            f"GUI thread {r['cpu_share']['gui_thread']}, worker {r['cpu_share']['worker_thread']}, "
            f"process {r['cpu_share']['this_process']}, instance {r['cpu_share']['instance_total']} cores, "
            f"lag p50/p99 {r['lag'].get('p50_s')}/{r['lag'].get('p99_s')} s, "
            f"written {r['rates_written_per_s']['total']:,}/s; worker calls "
            + ", ".join(f"{op} {v['n']}x share {v['share_of_wall']} max {v['max_ms']} ms{' ' + str(v['errors']) if v['errors'] else ''}"
                        for op, v in r["worker_calls"].items()))


# -- 3: zoom -----------------------------------------------------------------------------------
def values(t: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * t / 3600.0) + 0.2 * np.sin(2 * np.pi * t / 7.0)


def import_history(inst: Instance, samples: int, chunk: int, t_end: float) -> dict:
    """``samples`` at 1 kHz ending before ``t_end`` (the live samples' start)."""
    t_start = t_end - samples / ZOOM_RATE
    t0 = time.monotonic()
    done = 0
    while done < samples:
        k = np.arange(done, min(samples, done + chunk), dtype=np.float64)
        t = t_start + k / ZOOM_RATE
        inst.client.request("import", signal="Z.Sine", timeout=300.0, t=t.tobytes(), y=values(t).tobytes())
        done += len(k)
        if done % (10 * chunk) == 0 or done == samples:
            print(f"  imported {done:,} samples in {time.monotonic() - t0:.0f} s", flush=True)
    took = time.monotonic() - t0
    archived = inst.client.request("query", timeout=120.0, sql=(
        "select count(*) from samples s join signals g on g.id = s.signal "
        "where g.name = 'Z.Sine'"))["rows"][0][0]
    return {"imported": samples, "import_s": round(took, 1), "import_rate_per_s": round(samples / took),
            "t_first_imported": t_start, "t_last_imported": t_end - 1 / ZOOM_RATE,
            "archived_samples_of_signal": archived}


class ZoomProbe(QtCore.QObject):
    """Times of one zoom: the panel's history request, the worker's call of the archive,
    the reply's arrival in the GUI thread, the first frame whose curve reaches back."""

    def __init__(self, win: MainWindow, name: str):
        super().__init__()
        self.win, self.name = win, name
        self.reset()
        win.panels[0].history_wanted.connect(self.wanted)
        win.history_worker.reply.connect(self.replied)
        source = win.history_worker.source
        real = source.history

        def timed(*a, **kw):  # runs on the worker thread
            start = time.perf_counter()
            try:
                return real(*a, **kw)
            finally:
                self.calls.append((start, time.perf_counter(), a[1:3]))
        source.history = timed

    def reset(self) -> None:
        self.requests: list[tuple[float, float, float, int]] = []
        self.calls: list[tuple[float, float, tuple]] = []
        self.replies: list[tuple[float, int]] = []
        self.drawn: float | None = None      # the curve's data (as set) reaches back
        self.displayed: float | None = None  # ... and what pyqtgraph draws of it too
        self.goal: float | None = None

    @QtCore.Slot(str, float, float, int)
    def wanted(self, name: str, t0: float, t1: float, width: int) -> None:
        self.requests.append((time.perf_counter(), t0, t1, width))

    @QtCore.Slot(object, object, object)
    def replied(self, tag, result, error) -> None:
        if tag[0] == "history":
            self.replies.append((time.perf_counter(), 0 if result is None else len(result[0])))

    def check(self) -> None:  # after each draw()
        if self.goal is None:
            return
        curve = self.win.panels[0].curves[self.name]
        if self.drawn is None and curve.xData is not None and len(curve.xData) and curve.xData[0] <= self.goal:
            self.drawn = time.perf_counter()
        if self.displayed is None:
            t = curve_t(self.win.panels[0], self.name)
            if len(t) and t[0] <= self.goal:
                self.displayed = time.perf_counter()


def zoom(args, tmp: Path) -> dict:
    name = "Z.Sine"
    cfg_text = ('[[drivers]]\nname = "Z"\ndriver = "generator"\n[drivers.params]\n'
                f'samplerate = {ZOOM_RATE!r}\nfrequency = 0.1\n')
    t_live = time.time()  # the generator's first sample comes after this
    print(f"zoom: {args.zoom_samples:,} samples at 1 kHz imported, then live", flush=True)
    out: dict = {}
    with instance(cfg_text, (name,), 120) as inst:
        out["history"] = import_history(inst, args.zoom_samples, args.chunk, t_live)
        print(f"  {out['history']}", flush=True)
        cfg = config_mod.load(inst.folder / "rtoc.toml")
        win = MainWindow(LocalSource(cfg), tmp / "zoom.json", default_signals=(name,))
        win.show()
        try:
            panel = win.panels[0]
            panel.window_box.setCurrentText("10 s")
            wait_until(lambda: len(curve_t(panel, name)) > 100, 60, "the live curve")
            spin(2.0)
            probe = ZoomProbe(win, name)
            trace = win.model.trace(name)
            runs = []
            for i in range(args.zooms):
                panel.window_box.setCurrentText("10 s")
                trace.history, trace.asked = None, None
                spin(1.5)
                probe.reset()
                frames = Probe(win, (name,))
                frames.on_frame_extra = probe.check
                now = time.time()
                # reached: the curve's first point within 1/24 of the imported span from its
                # start (24 h imported: older than now - 23 h)
                first = out["history"]["t_first_imported"]
                probe.goal = first + (t_live - first) / 24
                frames.start()
                start = time.perf_counter()
                panel.window_box.setCurrentText("24 h")
                try:
                    wait_until(lambda: probe.drawn is not None, 120, "the 24 h curve")
                    with contextlib.suppress(TimeoutError):
                        wait_until(lambda: probe.displayed is not None, 2.0, "displayed")
                except TimeoutError as exc:
                    t = curve_t(panel, name)
                    h = trace.history
                    runs.append({"run": i + 1, "error": str(exc), "requests": probe.requests[:5],
                                 "calls": len(probe.calls), "replies": probe.replies[:5],
                                 "history": None if h is None else [h.t0, h.t1, h.width, len(h.t)],
                                 "asked": trace.asked, "live_start": trace.live_start,
                                 "curve_first_age_h": round((now - float(t[0])) / 3600, 3) if len(t) else None,
                                 "view_range": panel.plot.getViewBox().viewRange()[0]})
                    print(f"  zoom {i + 1}: {runs[-1]}", flush=True)
                    continue
                finally:
                    frames.lag()
                    frames.stop()
                    frames.detach()
                f = frames.figures()
                t = curve_t(panel, name)
                data_t = panel.curves[name].xData
                live0 = trace.live_start
                req = probe.requests[0][0] if probe.requests else None
                call = probe.calls[0] if probe.calls else None
                rep = probe.replies[0] if probe.replies else None
                ms = lambda a, b: None if a is None or b is None else round((b - a) * 1e3, 1)  # noqa: E731
                run = {"run": i + 1, "ms": ms(start, probe.drawn),
                       "click_to_request_ms": ms(start, req),
                       "request_to_worker_call_ms": ms(req, call[0] if call else None),
                       "archive_call_ms": ms(call[0], call[1]) if call else None,
                       "call_end_to_reply_in_gui_ms": ms(call[1] if call else None, rep[0] if rep else None),
                       "reply_to_drawn_ms": ms(rep[0] if rep else None, probe.drawn),
                       "requests": len(probe.requests), "history_points": rep[1] if rep else None,
                       "max_points_asked": probe.requests[0][3] if probe.requests else None,
                       "displayed_ms": ms(start, probe.displayed),
                       "data_points_before_live": int((data_t < live0).sum()),
                       "data_first_age_h": round((now - float(data_t[0])) / 3600, 3),
                       "displayed_points": len(t),
                       "displayed_points_before_live": int((t < live0).sum()),
                       "displayed_first_age_h": round((now - float(t[0])) / 3600, 3),
                       "live_points": len(trace.t),
                       "frames_meanwhile": f["frames"],
                       "frame_interval_max_ms": f["frame_interval"].get("max_ms"),
                       "live_lag_max_s": f["lag"].get("max_s")}
                runs.append(run)
                print(f"  zoom {i + 1}: {run}", flush=True)
                spin(0.5)
            ok = [r["ms"] for r in runs if r.get("ms") is not None]
            shown = [r["displayed_ms"] for r in runs if r.get("displayed_ms") is not None]
            out["runs"] = runs
            out["median_ms"] = round(float(np.median(ok)), 1) if ok else None
            out["displayed_median_ms"] = round(float(np.median(shown)), 1) if shown else None
            out["displayed_in_runs"] = len(shown)
            if args.hold > 0:
                out["hold"] = hold(win, probe, trace, args)
                print(f"  hold: {out['hold']}", flush=True)
        finally:
            win.close()
            win.deleteLater()
            spin(0.2)
        out["tracebacks_in_log"] = inst.log().count("Traceback")
        iname = inst.name
    out["shm_left"] = instance_dir(iname).exists()
    return out


def hold(win: MainWindow, probe: ZoomProbe, trace, args) -> dict:
    """24 h shown while the live buffer is full (it drops its oldest point at every new
    one): how many history requests the panel sends, how many the worker ran, the live
    edge's lag meanwhile; then the requests still queued are dropped (here) and the time
    until the live points flow again."""
    panel = win.panels[0]
    keep = int(args.full_buffer * ZOOM_RATE)
    trace.capacity = keep
    panel.window_box.setCurrentText("10 s")
    spin(args.full_buffer + 2.0)  # the buffer fills to the cut capacity
    trace.history, trace.asked = None, None
    probe.reset()
    frames = Probe(win, (trace_name := probe.name,))
    frames.start()
    panel.window_box.setCurrentText("24 h")
    spin(args.hold)
    frames.stop()
    frames.detach()
    f = frames.figures()
    queued = win.history_worker.jobs.qsize()
    panel.window_box.setCurrentText("10 s")
    trace.capacity = type(trace)().capacity
    while True:  # what the worker would still run: dropped, so the window can close
        try:
            win.history_worker.jobs.get_nowait()
        except Exception:
            break
    t0 = time.monotonic()
    try:
        wait_until(lambda: len(win.model.trace(trace_name).t) and
                   time.time() - win.model.trace(trace_name).t[-1] < 1.0, 120, "live points again")
        recovered = round(time.monotonic() - t0, 2)
    except TimeoutError:
        recovered = None
    return {"live_buffer_points": keep, "hold_s": args.hold, "requests_sent": len(probe.requests),
            "requests_per_s": round(len(probe.requests) / args.hold, 1),
            "archive_calls_started": len(probe.calls), "replies": len(probe.replies),
            "jobs_queued_at_end": queued,
            "archive_call": pct([b - a for a, b, _ in probe.calls]),
            "fps": f["fps"], "frame_interval": f["frame_interval"], "live_lag": f["lag"],
            "live_again_after_s": recovered}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, nargs="+", default=[1e6],
                    help="samples/s per signal; several: one live run each")
    ap.add_argument("--signals", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0, help="live: measured seconds per window")
    ap.add_argument("--settle", type=float, default=15.0,
                    help="live: s after the curves have data before the measurement (start-up figures)")
    ap.add_argument("--settle-max", type=float, default=120.0,
                    help="live: then at most this long until the live edge is current (lag < 2 s)")
    ap.add_argument("--zoom-samples", type=int, default=86_400_000, help="zoom: samples imported (1 kHz)")
    ap.add_argument("--chunk", type=int, default=1_000_000, help="zoom: samples per import request")
    ap.add_argument("--zooms", type=int, default=5)
    ap.add_argument("--hold", type=float, default=10.0, help="zoom: s of 24 h with a full live buffer (0: skip)")
    ap.add_argument("--full-buffer", type=float, default=5.0, help="zoom: s of points the live buffer keeps then")
    ap.add_argument("--skip", nargs="*", default=[], choices=("local", "remote", "zoom"))
    args = ap.parse_args()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("RTOC viewer bench")
    tmp = Path(tempfile.mkdtemp(prefix="rtoc-bench-viewer-"))
    result: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": vars(args),
                    "platform": os.environ.get("QT_QPA_PLATFORM"), "cpus": os.cpu_count(),
                    "versions": {"python": sys.version.split()[0], "PySide6": PySide6.__version__,
                                 "pyqtgraph": pg.__version__},
                    "pyside_refcount_leak": {"none_refs_dropped_per_void_call": NONE_LEAK,
                                             "refcounts_at_start": REFS_AT_START,
                                             "made_immortal_here": IMMORTAL},
                    "others_at_start": others()}
    try:
        result["trace_add"] = trace_add_cost()
        print(f"Trace.add of one view message: {result['trace_add']}", flush=True)
        if "local" not in args.skip or "remote" not in args.skip:
            result["live"] = []
            for rate in args.rate:
                try:
                    result["live"].append(live(rate, args.signals, args.seconds, args.settle,
                                               args.settle_max, tmp, args.skip))
                except Exception as exc:  # reported; the other parts run
                    result["live"].append({"rate_asked_per_signal": rate, "signals": args.signals,
                                           "error": f"{type(exc).__name__}: {exc}"[:4000]})
                    print(f"live {rate:g}: {result['live'][-1]['error']}", flush=True)
        if "zoom" not in args.skip:
            try:
                result["zoom"] = zoom(args, tmp)
                print(f"zoom: median {result['zoom'].get('median_ms')} ms (set on the curve), "
                      f"{result['zoom'].get('displayed_median_ms')} ms (drawn by pyqtgraph)", flush=True)
            except Exception as exc:
                result["zoom"] = {"error": f"{type(exc).__name__}: {exc}"[:4000]}
                print(f"zoom: {result['zoom']['error']}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for g in GUARDS:  # each ends within a second of its instance
            try:
                g.wait(10)
            except subprocess.TimeoutExpired:
                g.kill()
                g.wait()
    result["others_at_end"] = others()
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "viewer-latest.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"written to {RESULTS / 'viewer-latest.json'}")


if __name__ == "__main__":
    main()
