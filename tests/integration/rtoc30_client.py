"""Drive RTOC 3.0's own ``RTWebsocketClient`` through a plan; run IN the RTOC 3.0 venv.

``python rtoc30_client.py '<plan json>'`` where the plan is ``{"host", "port", "password"
(or null), "second_password", "steps": [...]}``; each step is ``{"send": {...}}`` (sent with
the client's ``send(**kwargs)``), ``{"json": {...}}`` (its ``sendWebsocketJSON``) and/or
``{"second": true}`` (a second client connects), then waits (at most ``timeout`` s) for a
message received after it that has the key ``wait`` (default ``"error"``: a reply; pushes
never have it; a list: each of them in some message), or for the connection to close
(``wait: "closed"``). Prints one JSON object: per step what arrived (as the server sent it,
decoded the way the client decodes) and what the client's own callbacks got (``handle_*``,
``on_*``), plus the raw frames of the first messages and how the connection closed.

This file is not a test: it is copied next to RTOC 3.0 and run by test_rtoc30_client.py.
"""

import json
import sys
import threading
import time

import websocket
from RTOC.RTLogger import RTWebsocket
from RTOC.RTLogger.RTWebsocketClient import HOST_WHITELIST, RTWebsocketClient

HANDLED = {  # the client's callbacks -> the message key each is called with
    "authorize": "authorized", "pluginList": "pluginList", "signalList": "signalList",
    "plugin": "plugin", "latest": "latest", "automation": "automation", "client": "client",
    "events": "events", "signal": "signal", "userAction": "userAction", "logger": "logger",
    "event": "event", "session": "session", "signals": "signals",
}

plan = json.loads(sys.argv[1])
host, port, password = plan["host"], plan["port"], plan.get("password")
key = RTWebsocket.hashPassword(password) if password else None
lock = threading.Condition()
raw, decoded, handled, closed = [], [], [], []  # the first client's
second_decoded = []  # what the second client received
made = []


class Recording(websocket.WebSocketApp):
    """websocket-client 0.57's app with spies on what arrives and how it closes; the
    client's own callbacks still get everything, unchanged."""

    def __init__(self, url, on_message=None, on_error=None, on_close=None, **kw):
        first = not made
        made.append(url)
        secret = key if first else (RTWebsocket.hashPassword(plan["second_password"])
                                    if plan.get("second_password") else None)

        def spy(ws, message):
            on_message(message)  # RTWebsocketClient.handle_message: decrypts, dispatches
            with lock:
                try:
                    plain = (json.loads(message) if host in HOST_WHITELIST
                             else RTWebsocket.recv(message, secret))
                except Exception as exc:
                    plain = {"undecodable": type(exc).__name__, "raw": str(message)[:400]}
                if first:
                    raw.append(message)
                    decoded.append(plain)
                else:
                    second_decoded.append(plain)
                lock.notify_all()

        def spy_close(ws, code=None, reason=None):
            if first:
                with lock:
                    closed.append([code, reason.decode() if isinstance(reason, bytes) else reason])
                    lock.notify_all()
            on_close()

        super().__init__(url, on_message=spy, on_error=on_error, on_close=spy_close, **kw)


websocket.WebSocketApp = Recording  # RTWebsocketClient.connect makes one


def record(name):
    def callback(*args):
        with lock:
            handled.append([name, *args])
    return callback


def instrumented(c):
    for name in HANDLED:
        setattr(c, "handle_" + name, record(name))
    for name in ("RTOCError", "unknown"):
        setattr(c, "handle_" + name, record(name))
    for name in ("on_open", "on_close", "on_error"):
        setattr(c, name, record(name))
    return c


def done(step, want, start):
    """The step's wait is over (call it holding ``lock``)."""
    if want == "closed":
        return bool(closed)
    got = [m for m in decoded[start:] if isinstance(m, dict)]
    seen = all(any(w in m for m in got) for w in ([want] if isinstance(want, str) else want))
    # a second client: also until it was answered (its login takes scrypt time)
    return seen and (not step.get("second") or any("authorized" in m for m in second_decoded))


client = instrumented(RTWebsocketClient())  # no host: connect() below, after the spies
client.connect(host, port=port, password=password)
results, second = [], None
for step in plan["steps"]:
    want, timeout = step.get("wait", "error"), step.get("timeout", 10)
    with lock:
        start, seen = len(decoded), len(handled)
    if step.get("second"):
        second = RTWebsocketClient()
        second.connect(host, port=port, password=plan.get("second_password"))
    if "send" in step:
        client.send(**step["send"])
    if "json" in step:
        client.sendWebsocketJSON(step["json"])
    end = time.monotonic() + timeout
    with lock:
        while not done(step, want, start) and time.monotonic() < end:
            lock.wait(0.05)
        results.append({"send": step.get("send", step.get("json")), "wait": want, "ok": done(step, want, start),
                        "seconds": round(timeout - (end - time.monotonic()), 3),
                        "got": decoded[start:], "handled": handled[seen:]})
client.disconnect()
if second is not None:
    second.disconnect()
time.sleep(0.2)
with lock:
    print(json.dumps({"steps": results, "raw": raw[:4], "closed": closed, "handled": handled,
                      "second": second_decoded}, default=repr))
