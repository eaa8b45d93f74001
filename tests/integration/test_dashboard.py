"""The web dashboard (frontends/websocket/static) served by a real instance's websocket
server: its HTTP routes with urllib, and the page itself in a real headless Chromium.

The browser is Debian's ``chromium`` driven by Playwright (``pip install playwright``; no
``playwright install``: the browser comes from apt, see .ci/run). Without them the browser
test is skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from rtoc.frontends.websocket.auth import hash_password

from rtoc.app.harness import Instance

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "frontends" / "websocket" / "static"
SCREENSHOT = ROOT / "build" / "screenshots" / "dashboard.png"

# two devices, so the filter has something to hide; anonymous visitors may only read, the
# user "op" may also control the devices
PASSWORD = "dashboard-test"
CONFIG = f'''
[websocket]
port = 0
anonymous = "read"
[[websocket.users]]
name = "op"
role = "write"
password_hash = "{hash_password(PASSWORD)}"
[[drivers]]
name = "Generator"
driver = "generator"
[drivers.params]
samplerate = 200.0
frequency = 0.5

[[drivers]]
name = "Other"
driver = "generator"
[drivers.params]
samplerate = 10.0
waveform = "square"
'''

# an event text with markup: the feed must show it as text
EVENT_TEXT = "dashboard <b>test</b> & co"


@pytest.fixture(scope="module")
def inst() -> Iterator[Instance]:
    with Instance.start(CONFIG, ("Generator.Sine", "Other.Square")) as inst:
        yield inst


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.headers["Content-Type"], r.read()


def test_static_files_are_served_and_contained(inst: Instance) -> None:
    base = inst.ws_url()
    for path, kind in (("", "text/html"), ("index.html", "text/html"),
                       ("static/app.js", "javascript"), ("static/style.css", "text/css")):
        status, ctype, body = _get(base + path)
        assert status == 200 and kind in ctype and "charset=utf-8" in ctype, (path, ctype)
        assert body
    for bad in ("static/../x", "static/../http.py", "static/..%2Fhttp.py", "static/%2e%2e%2fhttp.py",
                "static/.hidden", "static/", "static/nothing.js", "static/sub/app.js"):
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(base + bad)
        err.value.close()  # (its socket, else an unraisable ResourceWarning)
        assert err.value.code == 404, bad


def test_dashboard_needs_nothing_from_elsewhere() -> None:
    """Offline: no CDN, no absolute URL in what the page loads."""
    for f in STATIC.iterdir():
        text = f.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//""",
                             text), f.name
    # data goes into the page as text only
    assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write",
                         (STATIC / "app.js").read_text())


def _playwright():
    """Playwright's sync API, or a skip (a failure under CI=true) naming what is missing."""
    missing = []
    if not os.path.exists(CHROMIUM):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("playwright (pip install playwright)")
    if missing:
        reason = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return sync_playwright


def _driver(inst: Instance, name: str) -> dict:
    return next(d for d in inst.client.request("drivers")["drivers"] if d["name"] == name)


def _driver_state(inst: Instance, name: str) -> str:
    return _driver(inst, name)["state"]


def _param(inst: Instance, driver: str, param: str):
    return next(p["value"] for p in _driver(inst, driver)["parameters"] if p["name"] == param)


def _wait_written(inst: Instance, name: str, n: int, timeout: float = 30.0) -> None:
    """Poll until ``n`` samples of ``name`` have been written."""
    deadline = time.monotonic() + timeout
    while True:
        sig = next(s for s in inst.client.request("signals")["signals"] if s["name"] == name)
        if sig["written"] >= n:
            return
        assert time.monotonic() < deadline, f"{name}: {sig['written']} of {n} samples written"
        time.sleep(0.1)


def test_dashboard_in_chromium(inst: Instance) -> None:
    sync_playwright = _playwright()
    url = inst.ws_url()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.goto(url)
            page.wait_for_function("document.getElementById('conn').textContent === 'connected'")
            page.wait_for_function("document.getElementById('who').textContent === 'anonymous · read'")

            # the latest value changes live
            value = page.locator('.sig-row[data-name="Generator.Sine"] .col-value')
            value.wait_for()
            first = value.text_content()
            page.wait_for_function(
                """v => document.querySelector('.sig-row[data-name="Generator.Sine"] .col-value')
                       .textContent !== v""", arg=first, timeout=5_000)

            # the filter narrows the table
            page.locator('.sig-row[data-name="Other.Square"]').wait_for()
            page.fill("#filter", "sine")
            shown = page.eval_on_selector_all("#signals .sig-row", "rows => rows.map(r => r.dataset.name)")
            assert shown == ["Generator.Sine"]
            assert page.text_content("#signal-count") == "1 of 2"
            page.fill("#filter", "")
            assert page.locator("#signals .sig-row").count() == 2

            # a click on a row plots the signal, and the plot opens with the last window's
            # history (at least 3 s of samples exist by then), not only what comes after
            _wait_written(inst, "Generator.Sine", 3 * 200)
            clicked = page.evaluate("Date.now() / 1000")
            page.click('.sig-row[data-name="Generator.Sine"]')
            canvas = '.plot[data-name="Generator.Sine"] canvas'
            page.wait_for_function(
                f"""() => {{ const c = document.querySelector('{canvas}');
                            return c && Number(c.dataset.points) > 20; }}""")
            page.wait_for_function(
                f"""t => Number(document.querySelector('{canvas}').dataset.oldest) < t - 2""",
                arg=clicked, timeout=5_000)
            inked = page.eval_on_selector(canvas, """c => {
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }""")
            assert inked > 500  # axes, labels and the line

            # reading does not show the controls; a login does
            card = '.device[data-name="Generator"]'
            page.locator(f"{card} .device-state").wait_for()
            assert not page.is_visible(f"{card} .device-toggle")
            page.click("#login-toggle")
            page.fill("#login-user", "op")
            page.fill("#login-password", "wrong")
            page.click("#login button[type=submit]")
            page.wait_for_function("document.getElementById('login-msg').textContent !== ''")
            assert page.text_content("#login-msg") == "wrong user or password"
            page.fill("#login-password", PASSWORD)
            page.click("#login button[type=submit]")
            page.wait_for_function("document.getElementById('who').textContent === 'op · write'")
            assert not page.is_visible("#login")

            # a parameter goes out typed (a number stays a number), a function gets JSON args
            page.fill(f'{card} input[data-param="frequency"]', "2")
            page.press(f'{card} input[data-param="frequency"]', "Enter")
            inst.wait_for(lambda: _param(inst, "Generator", "frequency") == 2.0, timeout=10)
            page.fill(f"{card} .fn:has(.fn-call:text-is('set_frequency()')) .fn-args", "[1.5]")
            page.click(f"{card} .fn-call:text-is('set_frequency()')")
            page.wait_for_function(f"document.querySelector('{card} .msg').textContent === 'set_frequency() → 1.5'")
            assert _param(inst, "Generator", "frequency") == 1.5

            # stop and start the generator with its button
            page.wait_for_function(
                f"document.querySelector('{card} .device-toggle').textContent === 'Stop'")
            page.click(f"{card} .device-toggle")
            inst.wait_for(lambda: _driver_state(inst, "Generator") == "stopped", timeout=10)
            page.wait_for_function(
                f"document.querySelector('{card} .device-state').textContent === 'stopped'")
            page.click(f"{card} .device-toggle")  # now "Start"
            inst.wait_for(lambda: _driver_state(inst, "Generator") == "running", timeout=15)
            page.wait_for_function(
                f"document.querySelector('{card} .device-state').textContent === 'running'")

            # an event from a rule added over the control plane reaches the feed, as text
            inst.client.request("rule_put", kind="event", rule={
                "name": "dashboard", "cond": "Generator.Sine > 0.5", "trigger": "rising",
                "text": EVENT_TEXT, "id": "dash", "priority": 2})
            page.locator(".event.prio-2 .text", has_text=EVENT_TEXT).first.wait_for(timeout=10_000)
            assert page.locator(".event b").count() == 0  # the markup stayed text

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            page.click("#logout")
            page.wait_for_function("document.getElementById('who').textContent === 'anonymous · read'")
            assert not page.is_visible(f"{card} .device-toggle")
            assert not errors, errors
        finally:
            browser.close()
