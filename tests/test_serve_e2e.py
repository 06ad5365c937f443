"""The whole partner flow over real HTTP against a live `clever-sim serve` subprocess,
exactly as a partner's app would call it, and persistence across restarts."""

from __future__ import annotations

import base64
import re
import signal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from conftest import post_grade_over_http
from fake_browser import login_redirect, open_live_stream
from serverproc import ServerProcess
from simulator.control_client import ControlClient

CLIENT_ID = "b4fd885bda79813831c3"
CLIENT_SECRET = "da526e74a665e82ccb6ae91b4bf56e28e5cea3bc"
REDIRECT = "http://127.0.0.1:5001/clever/callback"


@pytest.fixture
def server(tmp_path):
    with ServerProcess(["--db", str(tmp_path / "sim.db")], cwd=tmp_path) as srv:
        yield srv


def browser_login(base: str, student_id: str, state: str) -> dict:
    """Click through the fake Clever login the way a browser does; return the redirect's query."""
    query = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "state": state}
    location = login_redirect(base + "/oauth/authorize?" + urlencode(query), student_id)
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_partner_flow_over_real_http(server):
    base = server.url
    student = next(p for p in httpx.get(base + "/_sim/personas?role=student").json()["data"]
                   if p["name"].startswith("José"))
    # 1. Schoology link → Clever authorize → partner redirect URI with the launch state.
    query = browser_login(base, student["id"], "assignment:a100001")
    assert query["state"] == "assignment:a100001"
    # 2. The partner exchanges the code (HTTP Basic, JSON body, as Clever's docs show).
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    token = httpx.post(base + "/oauth/tokens", headers={"Authorization": f"Basic {basic}"},
                       json={"code": query["code"], "grant_type": "authorization_code",
                             "redirect_uri": REDIRECT}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    # 3. /v3.0/me then the user record.
    me = httpx.get(base + "/v3.0/me", headers=auth)
    assert me.status_code == 200 and me.headers["X-RateLimit-Limit"] == "1200"
    assert me.json()["data"]["id"] == student["id"]
    user = httpx.get(base + f"/v3.0/users/{student['id']}", headers=auth).json()["data"]
    assert user["name"]["first"] == "José"
    # 4. The student finishes; the partner POSTs the grade with the il token.
    grade = httpx.post(base + "/v1/grade", headers=auth,
                       json={"assignmentID": "a100001", "scoreGiven": 8, "scoreMaximum": 10})
    assert grade.status_code == 200, grade.text
    # 5. QA sees it through the control API.
    stored = httpx.get(base + "/_sim/grades", params={"user_id": student["id"]}).json()["data"]
    assert [(g["assignmentID"], g["lti_score"]) for g in stored] == [("a100001", "0.8")]
    journal = httpx.get(base + "/_sim/journal").json()["data"]
    assert {"/oauth/tokens", "/v3.0/me", "/v1/grade"} <= {e["path"] for e in journal}


def _post_grades(base: str, student_id: str, n: int) -> list[str]:
    """Post ``n`` grades for the student; the assignment ids the server acknowledged."""
    with ControlClient(base) as control:
        token = control.il_token(CLIENT_ID, student_id)
    acked = []
    for i in range(n):
        resp = post_grade_over_http(base, token, {"assignmentID": f"p{i}", "percentage": round(i / n, 3)})
        if resp.status_code == 200:
            acked.append(f"p{i}")
    return acked


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_acknowledged_grades_survive_restart(tmp_path, sig):
    db = tmp_path / "sim.db"
    first = ServerProcess(["--db", str(db)], cwd=tmp_path)
    try:
        student = httpx.get(first.url + "/_sim/personas?role=student").json()["data"][0]["id"]
        acked = _post_grades(first.url, student, 25)
    finally:
        first.stop(sig)
    assert len(acked) == 25
    with ServerProcess(["--db", str(db)], cwd=tmp_path) as second:
        stored = httpx.get(second.url + "/_sim/grades", params={"user_id": student}).json()["data"]
    assert sorted(g["assignmentID"] for g in stored) == sorted(acked)


def test_serve_is_ready_quickly_and_prints_base_urls_and_credentials(server):
    text = "".join(server.output)
    for host in ("https://clever.com ", "https://api.clever.com ", "https://grades-api.beta.clever.com "):
        assert host in text
    assert CLIENT_ID in text and CLIENT_SECRET in text
    assert "Ready in" in text
    # the server it runs on (waitress unless asked: only it can drop a connection unanswered)
    assert re.search(r"^Server: waitress \d+\.\d+\S* \(", text, re.M), text


def test_serve_reports_a_busy_port_without_traceback(server, tmp_path):
    import subprocess
    import sys

    port = server.url.rsplit(":", 1)[1]
    result = subprocess.run([sys.executable, "-m", "simulator.cli", "serve", "--port", port, "--db", ":memory:"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "cannot listen on" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_serve_starts_a_new_database_from_the_roster_cache(tmp_path, how):
    cache = tmp_path / "cache"
    args, env = (["--roster-cache", str(cache)], None) if how == "flag" else \
        ([], {"CLEVER_SIM_ROSTER_CACHE": str(cache)})
    first = ServerProcess(["--db", str(tmp_path / "a.db"), *args], env=env)
    try:
        users = httpx.get(first.url + "/_sim/personas").json()
    finally:
        first.stop()
    assert len(list(cache.glob("roster-*.db"))) == 1  # written by the first load
    entry = next(cache.glob("roster-*.db"))
    stamp = entry.stat().st_mtime_ns
    second = ServerProcess(["--db", str(tmp_path / "b.db"), *args], env=env)
    try:
        assert httpx.get(second.url + "/_sim/personas").json() == users
    finally:
        second.stop()
    assert entry.stat().st_mtime_ns == stamp  # taken from the cache, not written again


@pytest.mark.parametrize("kind", ["waitress", "granian"])
def test_sigterm_ends_a_live_gradebook_stream_with_bye_and_its_last_chunk(tmp_path, kind):
    """`clever-sim serve` stopped by SIGTERM (Ctrl+C alike) ends each open live stream before
    it closes: before, its server loop was over when the signal arrived and the stream was
    cut mid-response (Chrome: ERR_INCOMPLETE_CHUNKED_ENCODING)."""
    from simulator.app import create_app
    from simulator.web import login_cookie

    key = "k" * 64  # the same signing key here and in the server: a teacher's cookie is valid there
    local = create_app({"DB": ":memory:", "SECRET_KEY": key}, environ={})
    section = local.extensions["clever_sim"].roster["sections"][0]
    (name, value), = login_cookie(local, section["teacher"]).items()
    local.extensions["clever_sim"].close()
    srv = ServerProcess(["--db", str(tmp_path / "sim.db"), "--server", kind],
                        env={"CLEVER_SIM_SECRET_KEY": key}, cwd=tmp_path)
    try:
        port = int(srv.url.rsplit(":", 1)[1])
        with open_live_stream(port, f"/schoology/sections/{section['id']}/gradebook/events",
                              f"{name}={value}") as conn:
            got = b""
            srv.proc.send_signal(signal.SIGTERM)
            while chunk := conn.recv(65536):
                got += chunk
        assert srv.proc.wait(timeout=15) == 0
    finally:
        srv.stop()
    assert b'event: bye\ndata: {"reason":"the simulator is stopping"}\n\n' in got
    assert got.endswith(b"\r\n0\r\n\r\n"), got[-200:]
    assert "Stopped." in srv.read_rest()
