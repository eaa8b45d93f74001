#!/usr/bin/env python
"""Issue 14: the Telegram bot end to end. A real ``rtoc run`` whose bot (the real
python-telegram-bot 22) talks to tests/bot_api.py's local Bot API server; a driver of this
runner (written to a temporary file) streams ``Bench.Signal`` at 1 kHz and raises events
when its functions are called. Three measurements:

1. event -> sendMessage: ``--events`` warnings, one every ``--interval`` s (slower than the
   1 msg/s per-chat limit, so nothing coalesces); latency = the request's arrival at the
   Bot API server minus the ``time.time()`` the event text carries (taken just before
   ``Driver.event``); p50/p99/max. The server records ``time.monotonic()`` per call: it is
   turned into wall-clock time with this process's (time - monotonic) offset.
2. /plot latency: ``--samples`` samples (default 86.4 M: 24 h at 1 kHz) imported into the
   archive before the live stream (the archiver's ``import`` op, in ``--chunk`` pieces) and
   ``--plot-events`` info events spread over them; ``/plot Bench.Signal 24h`` sent as a user
   message ``--plots`` times, time to the sendPhoto request; the same for 10m.
3. a burst: ``--burst`` warnings within ``--burst-seconds`` s to the paired admin and
   ``--newcomers`` chats let in by the admin: per chat messages, events accounted for
   (one per note shown plus the "… and N more events" of a summary), coalesced, dropped,
   the shortest gap between two messages to one chat, and the most messages in any 1-s
   window over all chats; the bot's own counters (``notify_*``) before and after.

Prints and writes ``bench/results/telegram-latest.json``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtoc.app.harness import Instance
from rtoc.paths import instance_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bot_api import BotApiServer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TOKEN = "123456:BENCHtokenSECRETabcdefghijklm"
ADMIN = 100
RATE = 1000.0  # Hz of Bench.Signal, live and imported
PERIODS = {"24h": 86400.0, "10m": 600.0}
OFFSET = time.time() - time.monotonic()  # the server's Call.time (monotonic) -> wall clock

DRIVER = '''
import time

import numpy as np

from rtoc import Driver, Parameter, function

RATE = 1000.0


def values(t):
    return np.sin(2 * np.pi * t / 3600.0) + 0.2 * np.sin(2 * np.pi * t / 7.0)


class TgBench(Driver):
    """Bench.Signal at 1 kHz (t0 + k / RATE), and events on request."""

    samplerate = Parameter(20.0, "ticks per second", persist=False)

    def setup(self):
        self.t0 = None
        self.k = 0

    def poll(self):
        now = time.time()
        if self.t0 is None:
            self.t0 = now
        n = int((now - self.t0) * RATE) - self.k
        if n > 0:
            t = self.t0 + (self.k + np.arange(n)) / RATE
            self.write("Signal", t, values(t))
            self.k += n

    @function
    def first(self):
        """The time of the first live sample (None before the first tick)."""
        return self.t0

    @function
    def fire(self, tag, n=1, priority=1, first=0):
        """``n`` events now; each text carries time.time() taken just before it is raised."""
        for i in range(n):
            t = time.time()
            self.event(f"{tag} #{first + i} t={t!r}", sname="Signal", priority=priority, x=t)
        return n

    @function
    def history(self, n, t_from, t_to):
        """``n`` info events spread over [t_from, t_to] (marks for the plots)."""
        for i, t in enumerate(np.linspace(t_from, t_to, n + 2)[1:-1].tolist()):
            self.event(f"history #{i}", sname="Signal", priority=0, x=t)
        return n
'''

CONFIG = '''
[[drivers]]
name = "Bench"
driver = "tg_bench_driver:TgBench"

[telegram]
token = "{token}"
base_url = "{base}"
'''


def values(t: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * t / 3600.0) + 0.2 * np.sin(2 * np.pi * t / 7.0)


def wall(call) -> float:
    return call.time + OFFSET


def pct(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0}
    a = np.array(xs) * 1e3
    return {"n": len(xs), "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1),
            "min_ms": round(float(a.min()), 1), "mean_ms": round(float(a.mean()), 1)}


def tg_stats(inst: Instance) -> dict:
    procs = inst.client.request("status")["processes"]
    return dict(next(p for p in procs if p["name"] == "telegram").get("stats") or {})


def fresh_stats(inst: Instance, timeout: float = 20.0) -> dict:
    """The bot's counters after its next report (they come every 5 s)."""
    before = tg_stats(inst)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = tg_stats(inst)
        if now != before:
            return now
    return tg_stats(inst)


def text_of(call) -> str:
    return str(call.params.get("text") or call.params.get("caption") or "")


def wait_text(api: BotApiServer, chat: int, pattern: str, timeout: float = 20.0) -> dict:
    def found(server: BotApiServer):
        return next((m for m in reversed(server.messages(chat))
                     if re.search(pattern, m.get("text") or m.get("caption") or "")), None)
    found.__name__ = f"a message to {chat} matching {pattern!r}"
    return api.wait_for(found, timeout)


def button(message: dict, label: str) -> str:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return next(b["callback_data"] for row in rows for b in row if b["text"] == label)


def call(inst: Instance, function: str, *args, timeout: float = 30.0):
    return inst.client.request("call", driver="Bench", function=function, args=list(args),
                               timeout=timeout).get("result")


# -- 1. event -> sendMessage ---------------------------------------------------------------

def latency(inst: Instance, api: BotApiServer, n: int, interval: float) -> dict:
    pattern = re.compile(r"lat #(\d+) t=([0-9.]+)")

    def arrived(server: BotApiServer) -> dict:
        seen = {}
        for c in server.sent("sendMessage", ADMIN):
            for m in pattern.finditer(text_of(c)):
                seen.setdefault(int(m.group(1)), (wall(c) - float(m.group(2)), c))
        return seen

    start = time.monotonic() + 0.5
    for i in range(n):
        time.sleep(max(0.0, start + i * interval - time.monotonic()))
        call(inst, "fire", "lat", 1, 1, i)
    def all_arrived(server: BotApiServer) -> dict | None:
        got = arrived(server)
        return got if len(got) >= n else None

    seen = api.wait_for(all_arrived, 60)
    lat = [seen[i][0] for i in sorted(seen)]
    messages = {id(c) for _, c in seen.values()}
    out = {"events": n, "interval_s": interval, "messages": len(messages),
           "latency": pct(lat), "over_200ms": sum(x > 0.2 for x in lat),
           "all_ms": [round(x * 1e3, 1) for x in lat]}
    print(f"event -> sendMessage: {out['latency']} ({out['messages']} messages, "
          f"{out['over_200ms']} over 200 ms)", flush=True)
    return out


# -- 2. /plot --------------------------------------------------------------------------------

def load_history(inst: Instance, samples: int, chunk: int, events: int) -> dict:
    t_live = inst.wait_for(lambda: call(inst, "first"), 30)
    t_start = t_live - samples / RATE
    t0 = time.monotonic()
    done = 0
    while done < samples:
        k = np.arange(done, min(samples, done + chunk), dtype=np.float64)
        t = t_start + k / RATE
        inst.client.request("import", signal="Bench.Signal", timeout=300.0,
                            t=t.tobytes(), y=values(t).tobytes())
        done += len(k)
        if done % (10 * chunk) == 0 or done == samples:
            print(f"  imported {done:,} samples in {time.monotonic() - t0:.0f} s", flush=True)
    took = time.monotonic() - t0
    call(inst, "history", events, t_start, t_live)
    inst.wait_for(lambda: len(inst.client.request(
        "archive_events", limit=100_000, **{"from": t_start, "to": t_live})["events"]) >= events,
        60, interval=0.5)
    archived = inst.client.request("query", timeout=120.0, sql=(
        "select count(*) from samples s join signals g on g.id = s.signal "
        "where g.name = 'Bench.Signal'"))["rows"][0][0]
    out = {"imported": samples, "import_s": round(took, 1),
           "import_rate_per_s": round(samples / took), "history_events": events,
           "t_first_imported": t_start, "t_first_live": t_live,
           "archived_samples_of_signal": archived}
    print(f"history: {samples:,} samples imported in {took:.1f} s "
          f"({samples / took / 1e6:.2f} M/s), {archived:,} archived in all", flush=True)
    return out


def plots(inst: Instance, api: BotApiServer, period: str, rounds: int) -> dict:
    runs = []
    for _ in range(rounds):
        before = len(api.sent("sendPhoto", ADMIN))
        t0 = time.monotonic()
        api.user_message(ADMIN, f"/plot Bench.Signal {period}")
        calls = api.wait_for(lambda s, b=before: s.sent("sendPhoto", ADMIN)[b:], 180)
        photo = calls[0]
        took = photo.time - t0
        caption = text_of(photo)
        m = re.search(r"(\d+) points, (\d+) events", caption)
        runs.append({"s": round(took, 3), "png_bytes": len(photo.files["photo"][1]),
                     "points": int(m.group(1)) if m else None,
                     "events": int(m.group(2)) if m else None})
        print(f"  /plot {period}: {took:.3f} s  {caption}", flush=True)
        time.sleep(1.0)
    t_to = time.time()
    t_from = t_to - PERIODS[period]
    n = inst.client.request("query", timeout=120.0, sql=(
        "select count(*) from samples s join signals g on g.id = s.signal "
        f"where g.name = 'Bench.Signal' and s.t >= {t_from!r} and s.t <= {t_to!r}"))["rows"][0][0]
    secs = [r["s"] for r in runs]
    out = {"period": period, "runs": runs, "median_s": round(float(np.median(secs)), 3),
           "min_s": min(secs), "max_s": max(secs), "samples_in_period_after": n,
           "parts": parts(inst, PERIODS[period])}
    print(f"/plot {period}: median {out['median_s']} s over {rounds} ({n:,} samples in the "
          "period)", flush=True)
    return out


def parts(inst: Instance, period: float, rounds: int = 3) -> dict:
    """Where a plot's time goes, asked the way the bot asks (from this process): the
    archiver's decimated history, the archived events, and render_png of that data."""
    from rtoc.frontends.telegram.plot import Mark, Series, points_for, render_png

    hist, evs, render = [], [], []
    for _ in range(rounds):
        now = time.time()
        span = {"from": now - period, "to": now}
        t0 = time.monotonic()
        r = inst.client.request("history", signal="Bench.Signal", timeout=120.0,
                                max_points=points_for(1280), **span)
        t1 = time.monotonic()
        events = inst.client.request("archive_events", limit=5000, **span)["events"]
        t2 = time.monotonic()
        series = [Series("Bench.Signal", "", np.frombuffer(r["t"]), np.frombuffer(r["y"]))]
        marks = [Mark(e["time"], e.get("text", ""), int(e.get("priority", 0))) for e in events]
        render_png(series, marks, t0=now - period, t1=now, title="Bench.Signal")
        t3 = time.monotonic()
        hist.append(t1 - t0)
        evs.append(t2 - t1)
        render.append(t3 - t2)
    out = {k: round(float(np.median(v)), 3) for k, v in
           (("history_s", hist), ("archive_events_s", evs), ("render_png_s", render))}
    out.update(sql_parts(inst, period, points_for(1280) // 2, rounds))
    print(f"  parts (median of {rounds}, from the runner): {out}", flush=True)
    return out


def sql_parts(inst: Instance, period: float, bins: int, rounds: int) -> dict:
    """The history op's two DuckDB queries over the raw ``samples`` rows (duck.py
    history_span, history_minmax; long ranges are now answered from the per-second
    ``rollup`` instead), timed through the ``query`` op: the count/min/max over the range,
    then the min/max per bin. The cost a plot of the range has without the rollup."""
    def sql(text: str) -> tuple[list, float]:
        t0 = time.monotonic()
        rows = inst.client.request("query", sql=text, timeout=120.0)["rows"]
        return rows, time.monotonic() - t0

    ((sid,),), _ = sql("select id from signals where name = 'Bench.Signal'")
    span, minmax = [], []
    for _ in range(rounds):
        now = time.time()
        where = f"signal = {sid} and t >= {now - period!r} and t <= {now!r}"
        ((n, lo, hi),), took = sql(f"select count(*), min(t), max(t) from samples where {where}")
        span.append(took)
        scale = bins / (hi - lo) if n and hi > lo else 0.0
        _, took = sql(f"""
            select least(floor((t - {lo!r}) * {scale!r}), {bins - 1})::bigint as k,
                   coalesce(arg_min(t, y) filter (where not isnan(y)), min(t)),
                   coalesce(min(y) filter (where not isnan(y)), 'NaN'),
                   coalesce(arg_max(t, y) filter (where not isnan(y)), min(t)),
                   coalesce(max(y) filter (where not isnan(y)), 'NaN')
            from samples where {where} group by k order by k""")
        minmax.append(took)
    return {"sql_span_s": round(float(np.median(span)), 3),
            "sql_minmax_s": round(float(np.median(minmax)), 3)}


# -- 3. the burst ----------------------------------------------------------------------------

def let_in(api: BotApiServer, chats: list[int]) -> None:
    for chat in chats:
        api.user_message(chat, "/start", first_name=f"User{chat}")
        ask = wait_text(api, ADMIN, rf"User{chat} .* wants to use the bot")
        api.press(ADMIN, ask["message_id"], button(ask, "let in as read"))
        wait_text(api, chat, r"you may use the bot now \(read\)")


def accounted(text: str) -> tuple[int, int, int]:
    """(events in a message: notes shown + "… and N more", N more, dropped mentioned)."""
    shown = len(re.findall(r"burst #\d+ t=", text))
    more = sum(int(x) for x in re.findall(r"and (\d+) more events", text))
    dropped = sum(int(x) for x in re.findall(r"\((\d+) older notifications were dropped", text))
    return shown + more, more, dropped


def burst(inst: Instance, api: BotApiServer, chats: list[int], total: int,
          seconds: float) -> dict:
    stats_before = fresh_stats(inst)
    calls_per = max(1, int(round(seconds)))
    per_call = total // calls_per
    t_begin = time.monotonic()
    fired, raised = 0, []
    for j in range(calls_per):
        time.sleep(max(0.0, t_begin + j * seconds / calls_per - time.monotonic()))
        n = per_call if j < calls_per - 1 else total - fired
        raised.append(time.time())
        call(inst, "fire", "burst", n, 1, fired)
        fired += n
    last_raise = time.time()

    def burst_calls(server: BotApiServer, chat: int) -> list:
        return [c for c in server.sent("sendMessage", chat) if c.time >= t_begin
                and "burst #" in text_of(c)]

    def all_in(server: BotApiServer) -> bool:
        return all(sum(accounted(text_of(c))[0] for c in burst_calls(server, chat)
                       if c.ok) >= total for chat in chats)

    try:
        api.wait_for(all_in, 120)
    except TimeoutError as exc:
        print(f"  not every event accounted for: {str(exc).splitlines()[0]}", flush=True)
    time.sleep(3.0)  # anything late or extra
    stats_after = fresh_stats(inst)
    per_chat, every = {}, []
    for chat in chats:
        cs = burst_calls(api, chat)
        times = sorted(c.time for c in cs)
        every += times
        parts = [accounted(text_of(c)) for c in cs if c.ok]
        gaps = np.diff(times) if len(times) > 1 else np.array([])
        events = sum(p[0] for p in parts)
        per_chat[chat] = {
            "messages": len(cs), "ok": sum(c.ok for c in cs), "events_accounted": events,
            "summaries": sum(p[1] > 0 for p in parts),
            "coalesced": events - len(parts),  # notes that went out in another note's message
            "dropped_mentioned": sum(p[2] for p in parts),
            "min_gap_s": round(float(gaps.min()), 3) if len(gaps) else None,
            "first_s": round(times[0] - t_begin, 3) if times else None,
            "last_after_last_raise_s": round(wall_of(times[-1]) - last_raise, 3) if times else None,
        }
        print(f"  chat {chat}: {per_chat[chat]}", flush=True)
    every.sort()
    window = max((int(np.searchsorted(every, t + 1.0, "left")) - i
                  for i, t in enumerate(every)), default=0)
    delta = {k: stats_after.get(k, 0) - stats_before.get(k, 0) for k in
             ("notify_queued", "notify_sent", "notify_coalesced", "notify_dropped",
              "notify_messages")}
    out = {"events": total, "seconds": seconds, "calls": calls_per, "chats": chats,
           "per_chat": per_chat, "max_messages_in_1s_all_chats": window,
           "stats_delta": delta, "notify_waiting_after": stats_after.get("notify_waiting"),
           "stats_after": stats_after,
           "raised_within_s": round(last_raise - raised[0], 3)}
    print(f"burst: max {window} messages in any 1 s over all chats; bot counters {delta}, "
          f"waiting {out['notify_waiting_after']}", flush=True)
    return out


def wall_of(monotonic: float) -> float:
    return monotonic + OFFSET


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=60, help="latency: events raised")
    ap.add_argument("--interval", type=float, default=1.5, help="latency: s between events")
    ap.add_argument("--samples", type=int, default=86_400_000, help="plot: samples imported")
    ap.add_argument("--chunk", type=int, default=1_000_000, help="plot: samples per import")
    ap.add_argument("--plot-events", type=int, default=200, help="plot: events in the history")
    ap.add_argument("--plots", type=int, default=5, help="plot: requests per period")
    ap.add_argument("--burst", type=int, default=500, help="burst: events")
    ap.add_argument("--burst-seconds", type=float, default=10.0)
    ap.add_argument("--newcomers", type=int, default=3, help="burst: chats besides the admin")
    ap.add_argument("--skip", nargs="*", default=[], choices=("latency", "plot", "burst"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rtoc-bench-tg-"))
    (tmp / "tg_bench_driver.py").write_text(DRIVER)
    env = {"PYTHONPATH": str(tmp)}
    result: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}
    offset_start = time.time() - time.monotonic()
    try:
        with BotApiServer(token=TOKEN) as api:
            config = CONFIG.replace("{token}", TOKEN).replace(
                "{base}", f"http://127.0.0.1:{api.port}")
            with Instance.start(config, ("Bench.Signal",), folder=tmp / "instance",
                                env=env) as inst:
                api.wait_sent("setMyCommands", timeout=30)
                api.wait_for(lambda s: s.sent("getUpdates"), 30)
                code = re.search(r"/pair (\w+)", inst.cli("telegram", "pair")).group(1)
                api.user_message(ADMIN, f"/pair {code}", first_name="Root")
                wait_text(api, ADMIN, "paired: you are an admin")
                if "latency" not in args.skip:
                    result["latency"] = latency(inst, api, args.events, args.interval)
                if "plot" not in args.skip:
                    result["history"] = load_history(inst, args.samples, args.chunk,
                                                     args.plot_events)
                    result["plot_24h"] = plots(inst, api, "24h", args.plots)
                    result["plot_10m"] = plots(inst, api, "10m", args.plots)
                if "burst" not in args.skip:
                    chats = [ADMIN] + [200 + i for i in range(1, args.newcomers + 1)]
                    let_in(api, chats[1:])
                    result["burst"] = burst(inst, api, chats, args.burst, args.burst_seconds)
                result["bot_api_errors"] = list(api.errors)
                log = inst.log()
            result["tracebacks_in_log"] = log.count("Traceback")
            result["shm_left"] = instance_dir(inst.name).exists()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["clock_offset_drift_ms"] = round((time.time() - time.monotonic() - offset_start) * 1e3, 3)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "telegram-latest.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"written to {RESULTS / 'telegram-latest.json'}; tracebacks in the instance's log: "
          f"{result.get('tracebacks_in_log')}; /dev/shm folder left: {result.get('shm_left')}")


if __name__ == "__main__":
    main()
