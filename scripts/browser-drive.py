#!/usr/bin/env python3
"""browser-drive.py: the operator's views of the status page, driven in
headless Chromium like an operator would (browser-test.sh starts the stack
and calls it).

It speaks the DevTools protocol over --remote-debugging-pipe (JSON messages
ending in NUL on file descriptors 3 and 4), so it needs nothing but Python's
standard library. With the environment of browser-test.sh it:

  - opens the page with a key that is not an admin key: the login form says
    so and no view is shown (the 403 is handled, not a broken page);
  - opens it with an admin key: the overview shows the outcomes per route;
  - the routes view lists the routes with what the workers report (echo's
    worker, and the open breaker of route down, whose upstream is not
    there, as the admin API tells it); pauses route echo through its button
    and checks through the admin API that it took effect, then resumes it
    likewise;
  - lists the dead letters, selects one, asks to replay it, checks that
    nothing happened before the confirmation, confirms, and checks through
    the API that the request was replayed;
  - filters the dead letters by route (only that route's are listed), then
    asks to purge every dead letter of route echo, checks that nothing was
    purged before the confirmation, confirms, and checks through the API
    that echo's are gone and the other route's are not;
  - opens the charts and waits until echo's are drawn with non-zero data;
  - saves a screenshot of each view (overview, routes, dead letters,
    charts) as PNG in $SHOTS.

Environment: INGRESS (base URL), ADMIN_KEY, USER_KEY (not an admin key,
the tenant of the dead letters), DEAD_IDS (space-separated, of route once),
ECHO_DEAD_ID (a dead letter of route echo), SHOTS (a directory), WORK (a
scratch directory for Chromium's profile).
"""
import base64
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

INGRESS = os.environ["INGRESS"]
ADMIN_KEY = os.environ["ADMIN_KEY"]
USER_KEY = os.environ["USER_KEY"]
DEAD_IDS = os.environ["DEAD_IDS"].split()
ECHO_DEAD_ID = os.environ["ECHO_DEAD_ID"]
SHOTS = os.environ["SHOTS"]
WORK = os.environ["WORK"]
WIDTH = 1100


def say(msg):
    print(f"browser-drive.py: {msg}", file=sys.stderr, flush=True)


def fail(msg):
    say(msg)
    raise SystemExit(1)


def api(path, key, body=None):
    """Calls the ingress; returns (status, parsed body)."""
    req = urllib.request.Request(INGRESS + path, method="POST" if body is not None else "GET")
    req.add_header("Authorization", f"Bearer {key}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Browser:
    """One headless Chromium and one page, over the DevTools pipe."""

    def __init__(self):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        profile = os.path.join(WORK, "drive-profile")
        os.makedirs(profile, exist_ok=True)
        # Chromium reads commands from fd 3 and writes answers to fd 4. The
        # pipes are not inheritable (PEP 446); the copies dup2 makes are, and
        # close_fds=False keeps them (Popen would close them after preexec_fn).
        # Copied above 10 first: a pipe may itself be fd 3 or 4.
        def fds():
            r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.close(r)
            os.close(w)
        self.log = open(os.path.join(WORK, "chromium-drive.log"), "w")
        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "about:blank"],
            preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=self.log, env=dict(os.environ, HOME=WORK))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.session = None

    def start(self):
        """Opens the page this driver works on."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.resize(900)

    def close(self):
        try:
            self.send("Browser.close")
        except (OSError, SystemExit):
            pass  # gone already: it is waited for (or killed) below
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def read_message(self, deadline):
        while b"\0" not in self.buf:
            if time.monotonic() > deadline:
                fail("Chromium did not answer in time")
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                fail("Chromium closed the pipe (see chromium-drive.log)")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            reply = self.read_message(deadline)
            if reply.get("id") != self.next_id:
                continue  # an event, or an answer nobody waits for
            if "error" in reply:
                fail(f"{method}: {reply['error']}")
            return reply.get("result", {})

    def call(self, method, params=None):
        return self.send(method, params, self.session)

    def resize(self, height):
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def eval(self, expr):
        r = self.call("Runtime.evaluate",
                      {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            fail(f"{expr}: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    def wait(self, expr, what, timeout_s=20):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.eval(expr)
            if value:
                return value
            time.sleep(0.2)
        body = self.eval("document.body ? document.body.innerText : ''")
        fail(f"{what}: not within {timeout_s} s; the page showed:\n{body}")

    def open(self, url):
        # about:blank first: a new fragment alone would not load the page again.
        self.call("Page.navigate", {"url": "about:blank"})
        self.call("Page.navigate", {"url": url})
        self.wait("document.readyState === 'complete' && !!document.getElementById('state')",
                  f"loading {url}")

    def click(self, selector):
        ok = self.eval(f"(function () {{ var e = document.querySelector({json.dumps(selector)});"
                       " if (!e || e.disabled) return false; e.click(); return true; })()")
        if not ok:
            fail(f"nothing to click at {selector}")

    def screenshot(self, name):
        """Saves the whole page (up to 2000 px high) as SHOTS/name."""
        self.resize(300)  # the page's own height, not the window's
        time.sleep(0.3)  # laid out at that size
        height = self.eval("Math.ceil(document.documentElement.scrollHeight) + 16")
        self.resize(min(max(int(height), 300), 2000))
        time.sleep(0.3)  # a frame at the new size
        png = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        self.resize(900)
        path = os.path.join(SHOTS, name)
        with open(path, "wb") as f:
            f.write(png)
        say(f"saved {path} ({len(png)} bytes)")


def visible(selector):
    return (f"(function () {{ var e = document.querySelector({json.dumps(selector)});"
            " return !!e && !e.closest('[hidden]'); })()")


def route_doc(name):
    status, doc = api("/v1/admin/routes", ADMIN_KEY)
    if status != 200:
        fail(f"GET /v1/admin/routes: {status} {doc}")
    for r in doc["routes"]:
        if r["name"] == name:
            return r
    fail(f"route {name} is not listed: {doc}")


def route_state(name):
    return route_doc(name)["state"]


def dead_ids(route):
    status, doc = api(f"/v1/admin/dead?route={route}&limit=1000", ADMIN_KEY)
    if status != 200:
        fail(f"GET /v1/admin/dead: {status} {doc}")
    return {d["id"] for d in doc["dead"]}


def cell_of(route, column):
    """An expression for the text of column (0-based) of route's row in the routes view."""
    return (f"(function () {{ var s = document.querySelector(\"[data-route-state='{route}']\");"
            f" var tr = s && s.closest('tr'); return tr ? tr.children[{column}].textContent : ''; }})()")


def check_non_admin(b):
    b.open(f"{INGRESS}/#token={USER_KEY}")
    b.wait("document.getElementById('state').textContent === 'forbidden'", "the 403 shown")
    if not b.eval(visible("#login")) or b.eval(visible("#main")) or b.eval(visible("#nav")):
        fail("a key that is not an admin key sees more than the login form")
    why = b.eval("document.getElementById('login-why').textContent")
    if "not an admin key" not in why:
        fail(f"the login form does not say why: {why!r}")
    if b.eval("sessionStorage.getItem('sluice-admin-token')"):
        fail("the refused key stays in sessionStorage")
    say("ok: a key that is not an admin key sees only the login form, told why")


def check_overview(b):
    b.open(f"{INGRESS}/#token={ADMIN_KEY}")
    b.wait("document.getElementById('state').textContent === 'live'", "the overview live")
    b.wait("Array.prototype.some.call(document.querySelectorAll('#routes td:first-child'),"
           " function (td) { return td.textContent === 'echo'; })", "echo's outcomes")
    if not b.eval(visible("#view-overview")) or b.eval(visible("#view-routes")):
        fail("an admin key does not land on the overview")
    b.screenshot("page-overview.png")
    say("ok: the overview shows the outcomes per route")


def check_routes(b):
    b.open(f"{INGRESS}/#token={ADMIN_KEY}&view=routes")
    b.wait(visible("button[data-route='echo'][data-action='pause']"), "echo's pause button")
    if b.eval("location.hash") != "#view=routes":
        fail("the key stayed in the address")
    # The workers column: the fleet's report, and a breaker that is not closed.
    workers = b.wait(f"(function () {{ var t = {cell_of('echo', 6)};"
                     " return /^1 worker\\b/.test(t) ? t : ''; })()", "echo's worker reported")
    breaker = b.wait("(function () { var s = document.querySelector(\"[data-route-state='down']\");"
                     " var d = s && s.closest('tr').querySelector('[data-breaker]');"
                     " return d ? d.dataset.breaker + ': ' + d.textContent : ''; })()",
                     "down's breaker shown", timeout_s=30)
    fleet = route_doc("down")["fleet"]
    if fleet["upstreams"][0]["breaker"] == "closed":
        fail(f"the page shows {breaker!r}, the admin API a closed breaker: {fleet}")
    say(f"ok: the routes view shows the fleet: echo {workers!r}; down {breaker!r}")
    b.click("button[data-route='echo'][data-action='pause']")
    b.wait("(function () { var s = document.querySelector(\"[data-route-state='echo']\");"
           " return s && s.textContent === 'paused'; })()", "echo shown paused")
    if route_state("echo") != "paused":
        fail("the page showed echo paused, the admin API does not")
    b.wait(visible("button[data-route='echo'][data-action='resume']"), "echo's resume button")
    b.screenshot("page-routes.png")
    b.click("button[data-route='echo'][data-action='resume']")
    b.wait("(function () { var s = document.querySelector(\"[data-route-state='echo']\");"
           " return s && s.textContent === 'running'; })()", "echo shown running")
    if route_state("echo") != "running":
        fail("the page showed echo running again, the admin API does not")
    say("ok: echo paused and resumed through the page, as the admin API tells")


def replays(rid):
    status, doc = api(f"/v1/requests/{rid}", USER_KEY)
    if status != 200:
        fail(f"GET /v1/requests/{rid}: {status} {doc}")
    return doc.get("replays", 0)


def ask_confirmation(b, button, want):
    """Clicks button, checks the confirmation the page asks, and waits a second
    so that an action sent without it would be seen by the caller's check."""
    b.click(button)
    b.wait(visible("#dead-confirm"), f"the confirmation of {button}")
    text = b.eval("document.getElementById('dead-confirm-text').textContent")
    if text != want:
        fail(f"the confirmation of {button} says {text!r}")
    time.sleep(1)


def check_dead(b):
    b.click("nav button[data-view='dead']")
    for rid in DEAD_IDS:
        b.wait(f"!!document.querySelector(\".dead-pick[value='{rid}']\")", f"dead letter {rid} listed")
    rid = DEAD_IDS[0]
    b.eval(f"document.querySelector(\".dead-pick[value='{rid}']\").checked = true")
    ask_confirmation(b, "#dead-replay-sel", "Replay 1 dead letter?")
    if replays(rid) != 0:
        fail("the replay went out before it was confirmed")
    b.screenshot("page-dead-letters.png")
    b.click("#dead-confirm-yes")
    b.wait("document.getElementById('dead-msg').textContent === 'replayed 1'", "the replay's answer")
    if replays(rid) != 1:
        fail(f"request {rid} does not show its replay")
    if b.eval(visible("#dead-confirm")):
        fail("the confirmation stayed open")
    say(f"ok: dead letters listed, {rid} replayed after the confirmation")


def listed():
    return ("Array.prototype.map.call(document.querySelectorAll('#dead-rows tr'),"
            " function (tr) { return tr.children.length > 3 ?"
            " tr.children[1].textContent + ' ' + tr.children[3].textContent : ''; })")


def choose_route(b, route):
    b.wait(f"!!document.querySelector(\"#dead-route option[value='{route}']\")",
           f"route {route} in the filter")
    b.eval(f"(function () {{ var s = document.getElementById('dead-route'); s.value = '{route}';"
           " s.dispatchEvent(new Event('change')); })()")


def check_filter_and_purge(b):
    # Filtered by route: only that route's dead letters.
    choose_route(b, "once")
    rows = b.wait(f"(function () {{ var r = {listed()};"
                  " return r.length && r.every(function (x) { return / once$/.test(x); }) ? r : null; })()",
                  "only route once's dead letters listed")
    if not any(x.startswith(DEAD_IDS[1] + " ") for x in rows):
        fail(f"route once's dead letter {DEAD_IDS[1]} is not listed: {rows}")
    choose_route(b, "echo")
    b.wait(f"(function () {{ var r = {listed()};"
           f" return r.length === 1 && r[0] === '{ECHO_DEAD_ID} echo'; }})()",
           "only route echo's dead letter listed")
    # Purge every one of the route, after the confirmation only.
    once_before = dead_ids("once")
    ask_confirmation(b, "#dead-purge-route", "Purge for good every dead letter of echo?")
    if ECHO_DEAD_ID not in dead_ids("echo"):
        fail("the purge went out before it was confirmed")
    b.click("#dead-confirm-yes")
    b.wait("document.getElementById('dead-msg').textContent === 'purged 1'", "the purge's answer")
    if dead_ids("echo"):
        fail(f"route echo still has dead letters: {dead_ids('echo')}")
    if not once_before <= dead_ids("once"):
        fail("the purge of echo took dead letters of route once")
    b.wait("document.getElementById('dead-rows').textContent.indexOf('no dead letters of echo') >= 0",
           "the emptied listing")
    say(f"ok: filtered by route; echo's dead letter {ECHO_DEAD_ID} purged after the confirmation")


def check_charts(b):
    b.click("nav button[data-view='charts']")
    b.wait("(function () { var s = document.querySelector(\"svg[data-route='echo'][data-kind='rates']\");"
           " return s && +s.dataset.max > 0 && s.querySelectorAll('polyline, circle').length > 0; })()",
           "echo's rates charted above 0", timeout_s=40)
    b.wait("!!document.querySelector(\"svg[data-route='echo'][data-kind='backlog'] polyline, svg[data-route='echo'][data-kind='backlog'] circle\")",
           "echo's backlog charted", timeout_s=20)
    b.screenshot("page-charts.png")
    say("ok: the charts are drawn with non-zero data")


def main():
    os.makedirs(SHOTS, exist_ok=True)
    # browser-test.sh's timeout sends SIGTERM: Chromium is closed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b = Browser()
    try:
        b.start()
        check_non_admin(b)
        check_overview(b)
        check_routes(b)
        check_dead(b)
        check_filter_and_purge(b)
        check_charts(b)
    finally:
        b.close()


if __name__ == "__main__":
    main()
