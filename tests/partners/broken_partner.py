"""A small, correct partner app with one switch per bug, for proving the contract suite.

With no bug switched on it passes every check. Each name in ``BUGS`` turns on one
realistic mistake; ``tests/test_contract_suite.py`` asserts that the suite fails exactly
the check(s) meant to catch it.

    server = BrokenPartner(sim_url, "client", "secret", bugs={"percentage_80"}).start()
    server.url ... server.stop()

Runs on waitress in this process (port 0). Talks to the simulator only through Clever's
endpoints (``/oauth/tokens``, ``/v3.0/me``, ``/v1/grade``).
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from urllib.parse import quote

import httpx
from flask import Flask, Response, abort, jsonify, redirect, request
from waitress.server import create_server

from simulator.serving import stop_waitress

BUGS = {
    "assignments_missing_type": "assignments have no \"type\"",
    "duplicate_ids": "two assignments share one id",
    "ids_change_between_calls": "ids carry a per-call counter",
    "long_ids": "ids are 70+ characters with dashes",
    "html_instead_of_json": "the assignments URL answers an HTML page",
    "no_auth_check": "the assignments URL answers without checking the token",
    "slow_assignments": "the assignments URL takes SLOW_S seconds",
    "ignores_state": "every login lands on the dashboard",
    "mangles_state_id": "the assignment id is cut at the first '/'",
    "exchanges_code_twice": "the code is exchanged twice",
    "secret_in_url": "the exchange also puts client_id/client_secret in the URL's query string",
    "secret_in_auth_param": "the exchange also puts ?auth=client_id:client_secret in its URL",
    # not a mistake: the suite must pass it (LOGIN-010 once flagged any parameter named secret)
    "nonce_named_secret": "the exchange's URL carries ?secret=<a fresh nonce>, not the client secret",
    "wrong_redirect_uri": "the exchange sends the callback URL with a trailing slash",
    "no_me_hardcoded_user": "never calls /me; logs everyone in as one hard-coded user",
    "500_without_state": "a login without state is a server error",
    "500_on_invalid_code": "an unknown code is a server error",
    "500_on_reused_code": "a used code is a server error",
    "500_on_unknown_assignment": "an unknown assignment page is a server error",
    "reflects_assignment_id": "the not-found page echoes the assignment id unescaped",
    "redirects_to_state_url": "a URL in state (after assignment: or alone) is followed",
    "percentage_80": "sends percentage 80 instead of 0.8",
    "wrong_user_id_district_token": "sends someone else's userID with a district-app token",
    "omits_user_id_district_token": "omits userID with a district-app token",
    "text_plain": "sends the grade as text/plain",
    "no_retry_503": "does not retry after 5xx",
    "ignores_retry_after": "retries a 429 at once",
    "no_backoff": "retries 5xx at once, without a pause",
    "fixed_backoff": "retries 5xx after the same 0.5 s pause every time",
    "il_401_gives_up": "after a 401 with the student's il token, gives up (no new token)",
    "district_401_gives_up": "keeps its cached district-app token after a 401 and gives up",
    "no_retry_network_errors": "a dropped or timed-out grade POST is not sent again",
    "retries_permanent_errors": "retries every 4xx like a 5xx",
    "duplicate_storm": "posts every grade 5 times",
    "hook_hangs": "the completion hook never answers",
    "hook_sends_nothing": "the completion hook answers 200 and sends no grade",
}

ASSIGNMENTS = [
    {"id": "alg1", "name": "Linear Equations", "description": "Solve one-variable equations.",
     "standards": ["CCSS.MATH.CONTENT.8.EE.C.7"], "format": "percentage"},
    {"id": "geo2", "name": "Angles and Triangles", "format": "points", "max": 20},
    {"id": "bio3", "name": "Cells and Organelles", "description": "Parts of a cell.",
     "format": "percentage"},
    {"id": "chem4", "name": "Balancing Equations", "format": "points", "max": 8},
]
HARDCODED_USER = "5a0000000000000000000001"
SOMEONE_ELSE = "5a00000000000000000000ff"
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
BACKOFF_S = (0.15, 0.25, 0.5, 0.5)   # pauses before retries 1, 2, 3 (growing)


def create_broken_partner(sim_url: str, client_id: str, client_secret: str, *,
                          bugs: set[str] | frozenset[str] = frozenset(), redirect_uri: str = "",
                          slow_s: float = 0.8, stop: threading.Event | None = None) -> Flask:
    unknown = set(bugs) - set(BUGS)
    if unknown:
        raise ValueError(f"unknown bugs: {sorted(unknown)}")
    app = Flask(__name__)
    app.config["REDIRECT_URI"] = redirect_uri
    app.url_map.merge_slashes = False
    http = httpx.Client(timeout=TIMEOUT, trust_env=False)
    sessions: dict[str, dict] = {}
    il_tokens: dict[str, str] = {}  # user id -> il token of their newest login
    district_tokens: dict[str, str] = {}
    calls = itertools.count(1)
    stop = stop or threading.Event()
    sim = sim_url.rstrip("/")
    hanging = threading.Semaphore(0)  # released once per finished hanging hook
    app.extensions["broken_partner"] = {"http": http, "stop": stop, "hanging": hanging,
                                        "hung": [0]}

    def ids() -> list[str]:
        n = next(calls) if "ids_change_between_calls" in bugs else 0
        out = []
        for a in ASSIGNMENTS:
            base = a["id"]
            if "long_ids" in bugs:
                base = f"{base}-" + "x" * 70
            out.append(f"{base}v{n}" if n else base)
        if "duplicate_ids" in bugs:
            out[1] = out[0]
        return out

    def find(assignment_id: str) -> dict | None:
        for a in ASSIGNMENTS:
            base = f"{a['id']}-" + "x" * 70 if "long_ids" in bugs else a["id"]
            if assignment_id == base or ("ids_change_between_calls" in bugs
                                         and assignment_id.startswith(base + "v")):
                return a
        return None

    def me(token: str) -> dict | None:
        resp = http.get(f"{sim}/v3.0/me", headers={"Authorization": f"Bearer {token}"})
        return resp.json()["data"] if resp.status_code == 200 else None

    def user() -> dict | None:
        return sessions.get(request.cookies.get("bp_session", ""))

    def page(title: str, status: int = 200) -> Response:
        return Response(f"<!doctype html><title>{title}</title><h1>{title}</h1>", status,
                        mimetype="text/html")

    @app.get("/clever/assignments")
    def assignments():
        if "no_auth_check" not in bugs:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or me(auth[7:].strip()) is None:
                return jsonify({"error": "invalid token"}), 401
        if "slow_assignments" in bugs:
            time.sleep(slow_s)
        if "html_instead_of_json" in bugs:
            return page("Assignments")
        items = []
        for a, aid in zip(ASSIGNMENTS, ids()):
            item = {"name": a["name"], "id": aid, "type": "assignment"}
            if "assignments_missing_type" in bugs:
                del item["type"]
            for key in ("description", "standards"):
                if key in a:
                    item[key] = a[key]
            items.append(item)
        return jsonify({"assignments": items})

    def exchange(code: str) -> tuple[str | None, str]:
        uri = app.config["REDIRECT_URI"] + ("/" if "wrong_redirect_uri" in bugs else "")
        leak = {"client_id": client_id, "client_secret": client_secret} if "secret_in_url" in bugs else None
        if "secret_in_auth_param" in bugs:
            leak = {"auth": f"{client_id}:{client_secret}"}
        if "nonce_named_secret" in bugs:
            leak = {"secret": secrets.token_hex(8)}
        resp = http.post(f"{sim}/oauth/tokens", auth=(client_id, client_secret), params=leak,
                         json={"code": code, "grant_type": "authorization_code", "redirect_uri": uri})
        body = resp.json()
        if resp.status_code == 200:
            return body["access_token"], ""
        return None, body.get("error_description", "")

    @app.get("/clever/callback")
    def callback():
        code = request.args.get("code")
        if not code:
            return page("Missing code", 400)
        token, error = exchange(code)
        if "exchanges_code_twice" in bugs:
            again, _ = exchange(code)
            token = token or again
        if token is None:
            if "500_on_reused_code" in bugs and "already used" in error:
                abort(500)
            if "500_on_invalid_code" in bugs and "Unknown authorization code" in error:
                abort(500)
            return page("Login failed", 401)
        if "no_me_hardcoded_user" in bugs:
            who = {"id": HARDCODED_USER, "district": "unknown"}
        else:
            who = me(token)
            if who is None:
                return page("Login failed", 401)
        sid = secrets.token_urlsafe(16)
        sessions[sid] = {"id": who["id"], "district": who["district"], "token": token}
        il_tokens[who["id"]] = token
        state = request.args.get("state") or ""
        if not state and "500_without_state" in bugs:
            abort(500)
        target = "/dashboard"
        wanted = state[len("assignment:"):] if state.startswith("assignment:") else state
        if "redirects_to_state_url" in bugs and wanted.startswith(("http:", "https:", "//")):
            target = wanted  # "send them back where they came from": an open redirect
        elif state.startswith("assignment:") and "ignores_state" not in bugs:
            aid = state[len("assignment:"):]
            if "mangles_state_id" in bugs:
                aid = aid.split("/")[0]
            target = "/assignments/" + quote(aid, safe="")
        resp = redirect(target, code=302)
        resp.set_cookie("bp_session", sid, httponly=True, samesite="Lax")
        return resp

    @app.get("/login")
    def login():
        return page("Please log in")

    @app.get("/dashboard")
    def dashboard():
        return page("Dashboard") if user() else redirect("/login")

    @app.get("/assignments/<path:assignment_id>")
    def assignment(assignment_id: str):
        if not user():
            return redirect("/login")
        if find(assignment_id) is None:
            if "500_on_unknown_assignment" in bugs:
                abort(500)
            if "reflects_assignment_id" in bugs:
                return page(f"No assignment {assignment_id}", 404)
            return page("Assignment not found", 404)
        return page(f"Assignment {assignment_id}")

    def district_token(district: str, refresh: bool = False) -> str | None:
        if refresh or district not in district_tokens:
            resp = http.get(f"{sim}/oauth/tokens", auth=(client_id, client_secret),
                            params={"owner_type": "district", "district": district})
            data = (resp.json().get("data") or []) if resp.status_code == 200 else []
            if not data:
                return None
            district_tokens[district] = data[0]["access_token"]
        return district_tokens[district]

    def post_grade(token: str, body: dict) -> list[int]:
        headers = {"Authorization": f"Bearer {token}"}
        if "text_plain" in bugs:
            headers["Content-Type"] = "text/plain"
        else:
            headers["Content-Type"] = "application/json"
        tries: list = []
        for attempt in range(4):
            try:
                resp = http.post(f"{sim}/v1/grade", content=json.dumps(body), headers=headers)
            except httpx.TransportError as exc:
                tries.append(type(exc).__name__)
                if "no_retry_network_errors" in bugs or attempt == 3:
                    break
                time.sleep(BACKOFF_S[attempt])
                continue
            tries.append(resp.status_code)
            if resp.status_code < 300:
                break
            if resp.status_code == 429:
                wait = 0.0 if "ignores_retry_after" in bugs else \
                    float(resp.headers.get("Retry-After", "0.05"))
            elif resp.status_code >= 500 and "no_retry_503" not in bugs:
                wait = 0.0 if "no_backoff" in bugs else 0.5 if "fixed_backoff" in bugs \
                    else BACKOFF_S[attempt]
            elif resp.status_code == 401:
                break  # a new token is needed first: send_grade's business
            elif "retries_permanent_errors" in bugs:
                wait = BACKOFF_S[attempt]
            else:
                break
            time.sleep(wait)
        return tries

    def send_grade(grade: dict, district: str, il_token: str | None) -> list:
        """POST with the il token (else the district-app token); after a 401, once more
        with the district-app token Clever lists now."""
        token = il_token or district_token(district)
        if token is None:
            return ["no district-app token"]
        tries = post_grade(token, grade)
        if tries[-1] != 401 or (il_token and "il_401_gives_up" in bugs) \
                or (not il_token and "district_401_gives_up" in bugs):
            return tries
        fresh = district_token(district, refresh=True)
        return tries + (post_grade(fresh, grade) if fresh else ["no district-app token"])

    @app.post("/test-hooks/complete")
    def complete():
        if "hook_hangs" in bugs:
            app.extensions["broken_partner"]["hung"][0] += 1
            try:
                stop.wait(60)
            finally:
                hanging.release()
            return Response(b"", 504)
        if "hook_sends_nothing" in bugs:
            return jsonify({"status": "ok"})
        body = request.get_json(force=True, silent=True) or {}
        a = find(str(body.get("assignment_id", "")))
        if a is None:
            return jsonify({"error": "unknown assignment"}), 404
        district = str(body.get("district_id"))
        il_token = il_tokens.get(str(body.get("user_id")))
        if il_token is None and district_token(district) is None:
            return jsonify({"error": "no district-app token"}), 502
        score = body["score"]
        grade: dict = {"assignmentID": body["assignment_id"], "userID": body["user_id"]}
        if "percentage_80" in bugs:
            grade["percentage"] = round(score * 100, 6)
        elif a["format"] == "points":
            grade.update(scoreGiven=round(score * a["max"], 6), scoreMaximum=a["max"])
        else:
            grade["percentage"] = score
        if "wrong_user_id_district_token" in bugs:
            grade["userID"] = SOMEONE_ELSE
        if "omits_user_id_district_token" in bugs:
            del grade["userID"]
        tries = []
        for _ in range(5 if "duplicate_storm" in bugs else 1):
            tries += send_grade(grade, district, il_token)
        ok = isinstance(tries[-1], int) and tries[-1] < 300
        return jsonify({"status": "sent" if ok else "failed", "tries": tries}), 200 if ok else 502

    return app


class BrokenPartner:
    """The broken partner served by waitress in a daemon thread; always ``stop()`` it."""

    def __init__(self, sim_url: str, client_id: str, client_secret: str, *,
                 bugs: set[str] | frozenset[str] = frozenset(), slow_s: float = 0.8):
        self.stop_event = threading.Event()
        self.app = create_broken_partner(sim_url, client_id, client_secret, bugs=bugs,
                                         slow_s=slow_s, stop=self.stop_event)
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=8,
                                    channel_timeout=30, ident="broken-partner")
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.app.config["REDIRECT_URI"] = f"{self.url}/clever/callback"
        self.thread: threading.Thread | None = None

    def start(self) -> "BrokenPartner":
        self.thread = threading.Thread(target=self.server.run, name="broken-partner", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        ext = self.app.extensions["broken_partner"]
        for _ in range(ext["hung"][0]):  # let hanging hooks answer before the socket closes
            ext["hanging"].acquire(timeout=2)
        if ext["hung"][0]:
            time.sleep(0.1)
        # Closed from inside the server's loop (server.close() from here raced its select():
        # EBADF in the server thread, seen once in a full run).
        stop_waitress(self.server, self.thread)
        self.app.extensions["broken_partner"]["http"].close()

    def __enter__(self) -> "BrokenPartner":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
