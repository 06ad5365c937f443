"""Issue 12 row 4 in a real Chromium: a page of another site tries every state change.

The simulator runs on 127.0.0.1; the attacker's page is served by a second server on
127.0.0.2 (another site to the browser). The page fires, at once, what a web page can send
without CORS permission: ``fetch`` in ``no-cors`` mode (text/plain, form-encoded and
body-less POSTs), ``navigator.sendBeacon``, and auto-submitted ``<form>`` posts (text/plain
JSON smuggling, form-encoded) into hidden frames; plus a CORS ``fetch`` with JSON, which
needs a preflight the simulator never grants. Afterwards the simulator's state is exactly
as before, every request that reached it was answered 403, and the JSON one never left
the browser.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.browser

FAULT = {"path": "/v1/grade", "status": 503, "count": 1_000_000}
APP = {"name": "Evil", "redirect_uris": ["http://attacker.invalid/cb"]}
# (path, body) of each state change the issue saw a page make, and the rest of the API
CHANGES = [
    ("/_sim/faults", FAULT),
    ("/_sim/apps", APP),
    ("/_sim/tenants", {"name": "evil"}),
    ("/_sim/clock", {"advance_s": 86400}),
    ("/_sim/reset", {}),
    ("/_sim/links", {"section_id": "x", "client_id": "y", "assignment_id": "z"}),
    ("/t/ci/_sim/faults", FAULT),
]

PAGE = """<!doctype html><meta charset="utf-8"><title>cute cats</title>
<body><script>
const SIM = %(sim)s, CHANGES = %(changes)s;
const attempts = [];
for (const [path, body] of CHANGES) {
  const text = JSON.stringify(body);
  attempts.push(fetch(SIM + path, {method: "POST", mode: "no-cors", body: text,
                                   headers: {"Content-Type": "text/plain"}}).catch(() => 0));
  attempts.push(fetch(SIM + path, {method: "POST", mode: "no-cors", body: text}).catch(() => 0));
  attempts.push(fetch(SIM + path, {method: "POST", mode: "no-cors",
                                   body: new URLSearchParams({json: text})}).catch(() => 0));
  attempts.push(fetch(SIM + path, {method: "POST", mode: "no-cors"}).catch(() => 0));
  navigator.sendBeacon(SIM + path, new Blob([text], {type: "text/plain"}));
  // CORS with JSON: needs a preflight; the simulator grants none, so it is never sent
  attempts.push(fetch(SIM + path, {method: "POST", body: text,
                                   headers: {"Content-Type": "application/json"}})
                .then(() => "sent", () => "blocked").then(r => window.corsResults.push(r)));
  // a form smuggling JSON in a text/plain body: name + "=" + value is {"...": "=", ...}
  for (const enctype of ["text/plain", "application/x-www-form-urlencoded"]) {
    const frame = document.createElement("iframe");
    frame.name = "f" + Math.random().toString(36).slice(2);
    document.body.appendChild(frame);
    const form = document.createElement("form");
    form.method = "POST"; form.action = SIM + path; form.enctype = enctype;
    form.target = frame.name;
    const input = document.createElement("input");
    input.name = text.slice(0, -1) + ', "pad": "'; input.value = '"}';
    form.appendChild(input);
    document.body.appendChild(form);
    attempts.push(new Promise(done => { frame.onload = done; setTimeout(done, 5000); }));
    form.submit();
  }
}
// a cross-site persona switch on the fake Schoology (a state-changing HTML form)
const persona = document.createElement("form");
persona.method = "POST"; persona.action = SIM + "/schoology/persona"; persona.target = "pf";
persona.innerHTML = '<input name="user_id" value="x"><input name="csrf" value="x">';
const pf = document.createElement("iframe"); pf.name = "pf"; document.body.appendChild(pf);
document.body.appendChild(persona);
attempts.push(new Promise(done => { pf.onload = done; setTimeout(done, 5000); }));
persona.submit();
window.corsResults = [];
Promise.all(attempts).then(() => { document.title = "done"; });
</script>"""


class _AttackerSite(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def simulator():
    from simulator.app import create_app
    from simulator.serving import start_in_thread

    running = start_in_thread(create_app({"DB": ":memory:"}, environ={}), "127.0.0.1", 0)
    # a tenant the page tries to fault through /t/ci/
    running.app.test_client().post("/_sim/tenants", json={"name": "ci"})
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def attacker_site(simulator):
    handler = type("Handler", (_AttackerSite,), {"page": (PAGE % {
        "sim": json.dumps(simulator.url), "changes": json.dumps(CHANGES)}).encode()})
    try:
        server = ThreadingHTTPServer(("127.0.0.2", 0), handler)
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.0.2 (another loopback address) here: {exc}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _state(running) -> dict:
    sim = running.app.extensions["clever_sim"]
    tenants = running.app.extensions["clever_sim_tenants"]
    return {"faults": sim.faults.list(), "apps": [a.client_id for a in sim.store.list_apps()],
            "tenants": sorted(t.name for t in tenants.list()), "clock": sim.clock.offset,
            "tenant_faults": tenants.get("ci").sim.faults.list()}


def test_page_on_another_site_changes_nothing(new_context, simulator, attacker_site):
    before = _state(simulator)
    page = new_context().new_page()
    answers: list[tuple[str, str, int]] = []
    sent: list[tuple[str, str]] = []
    page.on("request", lambda r: sent.append((r.method, r.url))
            if r.url.startswith(simulator.url) else None)
    page.on("response", lambda r: answers.append((r.request.method, r.url, r.status))
            if r.url.startswith(simulator.url) else None)
    page.goto(attacker_site)
    page.wait_for_function("document.title === 'done'", timeout=20_000)
    page.wait_for_timeout(300)  # beacons are fire-and-forget: let the last answers arrive

    assert _state(simulator) == before
    posts = [(url, status) for method, url, status in answers if method == "POST"]
    # every path was tried by no-cors fetches, beacons and forms; each reached the server
    for path, _ in CHANGES:
        reached = [status for url, status in posts if url == simulator.url + path]
        assert len(reached) >= 5, f"{path}: only {reached} reached the simulator ({sent})"
        assert set(reached) == {403}, f"{path}: answered {reached}"
    assert (simulator.url + "/schoology/persona", 403) in posts
    # the JSON fetch needs CORS: the browser never sent it
    results = page.evaluate("window.corsResults")
    assert results == ["blocked"] * len(CHANGES)
