"""Tenants: isolated simulators under /t/{name}/ so parallel CI jobs can share one server.

Isolation (grades, journal, faults, tokens, apps, reset, logins), the /_sim/tenants
control API and its errors, URL prefixes on pages and redirects, and concurrent
tenants against a real waitress server.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from conftest import assert_error, bearer, post_grade
from simulator import serving
from simulator.app import create_app
from simulator.tenants import DEFAULT_LIMIT, close_app, tenant_db_path

CLIENT_ID = "b4fd885bda79813831c3"        # the default roster's demo app
CLIENT_SECRET = "da526e74a665e82ccb6ae91b4bf56e28e5cea3bc"
REDIRECT = "http://127.0.0.1:5001/clever/callback"
SECTION = "af012569df64ae3e2f1eaf18"      # Grade 5 Math – Period 2 (district 1)
TEACHER = "cc326b2aff89af780abe710b"      # its teacher
STUDENT = "3b85bb5d1f0614c7ad7aac1c"      # one of its students
DISTRICT = "4e7112c9111e8c530d98db16"
SCHOOL = "5fe7280c5831ed6de553b2ed"


@pytest.fixture
def root():
    app = create_app({"DB": ":memory:", "SECRET_KEY": "test-secret"}, environ={})
    yield app
    close_app(app)


@pytest.fixture
def client(root):
    return root.test_client()


def make(client, name: str) -> dict:
    resp = client.post("/_sim/tenants", json={"name": name})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture
def ab(client):
    """Tenants a and b, besides the root (the default tenant)."""
    return make(client, "a"), make(client, "b")


def district_token(client, prefix: str) -> str:
    resp = client.get(f"{prefix}/_sim/apps/{CLIENT_ID}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["district_tokens"][DISTRICT]


def tenant_grade(client, prefix: str, token: str, assignment_id: str, score: float = 0.8):
    """The tenant's student's grade for ``assignment_id``, posted under ``prefix``."""
    return post_grade(client, token, prefix=prefix, assignmentID=assignment_id, userID=STUDENT,
                      percentage=score)


def grades(client, prefix: str) -> list[dict]:
    resp = client.get(f"{prefix}/_sim/grades")
    assert resp.status_code == 200
    return resp.get_json()["data"]


def journal_paths(client, prefix: str) -> list[str]:
    return [e["path"] for e in client.get(f"{prefix}/_sim/journal").get_json()["data"]]


# --- control API ----------------------------------------------------------------------------

def test_create_list_get_delete(client):
    made = make(client, "ci-job-1")
    assert made["name"] == "ci-job-1" and made["path"] == "/t/ci-job-1"
    assert made["base_url"] == "http://localhost/t/ci-job-1"
    assert made["db"] == ":memory:" and made["created"].endswith("Z")
    assert made["counts"]["apps"] == 1 and made["counts"]["grades"] == 0

    listing = client.get("/_sim/tenants").get_json()
    assert [t["name"] for t in listing["data"]] == ["ci-job-1"]
    assert listing["count"] == 1 and listing["limit"] == DEFAULT_LIMIT
    assert client.get("/_sim/tenants/ci-job-1").get_json()["name"] == "ci-job-1"
    health = client.get("/t/ci-job-1/_sim/health")
    assert health.status_code == 200 and health.get_json()["status"] == "ok"

    assert_error(client.post("/_sim/tenants", json={"name": "ci-job-1"}), 409,
                 "Tenant already exists", field="name", problem="is taken")

    resp = client.delete("/_sim/tenants/ci-job-1")
    assert resp.status_code == 200 and resp.get_json() == {"deleted": "ci-job-1", "closed": True}
    body = assert_error(client.get("/t/ci-job-1/_sim/health"), 404, "Unknown tenant 'ci-job-1'",
                        field="tenant")
    assert body["errors"][0]["hint"] == 'create it with POST /_sim/tenants {"name": "ci-job-1"}'
    assert_error(client.get("/_sim/tenants/ci-job-1"), 404, field="tenant")
    assert_error(client.delete("/_sim/tenants/ci-job-1"), 404, field="tenant")
    assert client.get("/_sim/tenants").get_json()["data"] == []
    # the name is free again, and the new tenant starts from scratch
    assert make(client, "ci-job-1")["counts"]["grades"] == 0


@pytest.mark.parametrize("name", ["..", "A", "a" * 70, "a/b", "", "-a", "a_b", "ü", 5, ["a"]])
def test_bad_names_are_400_naming_name(client, name):
    assert_error(client.post("/_sim/tenants", json={"name": name}), 400, "Invalid tenant",
                 field="name")
    assert client.get("/_sim/tenants").get_json()["data"] == []


def test_name_is_required(client):
    assert_error(client.post("/_sim/tenants", json={}), 400, field="name", problem="is required")
    assert_error(client.post("/_sim/tenants", content_type="application/json"), 400, field="name", problem="is required")
    assert_error(client.post("/_sim/tenants", data="{", content_type="application/json"), 400,
                 "Body is not valid JSON")


def test_longest_valid_name(client):
    name = "a" + "-9" * 31  # 63 characters
    make(client, name)
    assert client.get(f"/t/{name}/_sim/health").status_code == 200


def test_an_unknown_tenant_is_answered_with_the_canonical_error_bytes(client):
    resp = client.get("/t/nobody/v3.0/me")
    body = assert_error(resp, 404, "Unknown tenant 'nobody'", field="tenant")
    assert resp.get_data() == (json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                               + "\n").encode()
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/t/nope/v3.0/me", "/t/nope", "/t/nope/", "/t/BAD/_sim/health",
                                  "/t/../_sim/health", "/t", "/t/", "/t//nope//v1/grade"])
def test_unknown_tenant_is_a_404_with_the_fix(client, path):
    body = assert_error(client.get(path), 404, field="tenant")
    assert body["message"].startswith(("Unknown tenant", "No tenant in the path"))
    assert body["errors"][0].get("hint")


def test_tenant_limit():
    app = create_app({"DB": ":memory:", "TENANT_LIMIT": 2}, environ={})
    try:
        c = app.test_client()
        make(c, "one")
        make(c, "two")
        over = c.post("/_sim/tenants", json={"name": "three"})
        body = assert_error(over, 503, "Too many tenants", field="tenants",
                            problem="this server's limit is 2")
        assert over.headers["Retry-After"] == "10"
        assert "DELETE /_sim/tenants/" in body["errors"][0]["hint"]
        assert c.delete("/_sim/tenants/one").status_code == 200
        make(c, "three")
        assert c.get("/_sim/tenants").get_json()["limit"] == 2
    finally:
        close_app(app)


def test_tenant_routes_exist_on_the_root_only(client, ab):
    assert client.get("/t/a/_sim/tenants").status_code == 404
    assert client.post("/t/a/_sim/tenants", json={"name": "c"}).status_code == 404
    assert client.get("/t/a/t/b/_sim/health").status_code == 404  # no nesting


# --- isolation ------------------------------------------------------------------------------

def test_grades_journals_and_reset_are_separate(client, ab):
    token_a, token_b = district_token(client, "/t/a"), district_token(client, "/t/b")
    assert token_a != token_b != district_token(client, "")  # district-app tokens per tenant

    assert tenant_grade(client, "/t/a", token_a, "only-in-a").status_code == 200
    assert tenant_grade(client, "/t/b", token_b, "only-in-b", 0.5).status_code == 200
    assert [g["assignmentID"] for g in grades(client, "/t/a")] == ["only-in-a"]
    assert [g["assignmentID"] for g in grades(client, "/t/b")] == ["only-in-b"]
    assert grades(client, "") == []

    assert journal_paths(client, "/t/a") == ["/v1/grade"]   # the path as the tenant sees it
    assert journal_paths(client, "/t/b") == ["/v1/grade"]
    assert journal_paths(client, "") == []
    a_entry = client.get("/t/a/_sim/journal").get_json()["data"][0]
    assert a_entry["assignment_id"] == "only-in-a"

    listing = {t["name"]: t["counts"] for t in client.get("/_sim/tenants").get_json()["data"]}
    assert listing["a"]["grades"] == listing["b"]["grades"] == 1
    assert listing["a"]["journal"] == 1

    assert client.post("/t/a/_sim/reset", json={}).status_code == 200
    assert grades(client, "/t/a") == [] and journal_paths(client, "/t/a") == []
    assert [g["assignmentID"] for g in grades(client, "/t/b")] == ["only-in-b"]
    assert journal_paths(client, "/t/b") == ["/v1/grade"]
    # a's reset keeps its own apps and tokens
    assert tenant_grade(client, "/t/a", token_a, "again").status_code == 200


def test_root_reset_leaves_tenants_alone(client, ab):
    assert tenant_grade(client, "/t/a", district_token(client, "/t/a"), "kept").status_code == 200
    assert client.post("/_sim/reset", json={}).status_code == 200
    assert len(grades(client, "/t/a")) == 1


def test_grade_wait_sees_only_its_own_tenant(client, ab):
    tenant_grade(client, "/t/a", district_token(client, "/t/a"), "w1")
    found = client.get(f"/t/a/_sim/grades/wait?user_id={STUDENT}&assignment_id=w1&timeout=1")
    assert found.get_json()["timed_out"] is False
    missing = client.get(f"/t/b/_sim/grades/wait?user_id={STUDENT}&assignment_id=w1&timeout=0.1")
    assert missing.get_json() == {"data": None, "timed_out": True}


def test_faults_fire_only_in_their_tenant(client, ab):
    resp = client.post("/t/a/_sim/faults", json={"path": "/v1/grade", "status": 503, "count": 2})
    assert resp.status_code == 201
    assert client.get("/t/b/_sim/faults").get_json()["data"] == []
    assert client.get("/_sim/faults").get_json()["data"] == []

    assert tenant_grade(client, "/t/b", district_token(client, "/t/b"), "x").status_code == 200
    assert tenant_grade(client, "", district_token(client, ""), "x").status_code == 200
    assert tenant_grade(client, "/t/a", district_token(client, "/t/a"), "x").status_code == 503
    assert len(client.get("/t/a/_sim/faults").get_json()["data"]) == 1  # one use left


def test_tokens_and_codes_are_per_tenant(client, ab):
    minted = client.post("/t/a/_sim/tokens", json={"client_id": CLIENT_ID, "user_id": STUDENT})
    assert minted.status_code == 201
    il = minted.get_json()["access_token"]
    assert client.get("/t/a/v3.0/me", headers=bearer(il)).status_code == 200
    for prefix in ("/t/b", ""):
        assert client.get(f"{prefix}/v3.0/me", headers=bearer(il)).status_code == 401
        assert tenant_grade(client, prefix, il, "x").status_code == 401
    # a district-app token of b is unknown in a
    assert client.get("/t/a/v3.0/districts",
                      headers=bearer(district_token(client, "/t/b"))).status_code == 401

    code = client.post("/t/a/_sim/codes", json={"client_id": CLIENT_ID, "user_id": STUDENT})
    exchange = {"code": code.get_json()["code"], "grant_type": "authorization_code",
                "redirect_uri": REDIRECT}
    auth = (CLIENT_ID, CLIENT_SECRET)
    wrong = client.post("/t/b/oauth/tokens", data=exchange, auth=auth)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    right = client.post("/t/a/oauth/tokens", data=exchange, auth=auth)
    assert right.status_code == 200, right.get_data(as_text=True)


def test_apps_are_per_tenant(client, ab):
    resp = client.post("/t/a/_sim/apps", json={"name": "Mathly", "client_id": "mathly-a",
                                               "redirect_uris": ["http://localhost:5001/cb"]})
    assert resp.status_code == 201
    assert client.get("/t/a/_sim/apps/mathly-a").status_code == 200
    assert client.get("/t/b/_sim/apps/mathly-a").status_code == 404
    assert client.get("/_sim/apps/mathly-a").status_code == 404
    assert client.delete("/t/b/_sim/apps/" + CLIENT_ID).status_code == 200
    assert client.get("/t/a/_sim/apps/" + CLIENT_ID).status_code == 200
    assert client.get("/_sim/apps/" + CLIENT_ID).status_code == 200


def test_clock_is_per_tenant(client, ab):
    moved = client.post("/t/a/_sim/clock", json={"advance_s": 120}).get_json()
    assert moved["offset_s"] == 120
    assert client.post("/t/b/_sim/clock", json={"advance_s": 0}).get_json()["offset_s"] == 0


def test_tenants_inherit_the_root_settings():
    app = create_app({"DB": ":memory:", "STRICT": True, "APPS": [{
        "name": "Mathly", "client_id": "mathly-dev", "client_secret": "mathly-secret",
        "redirect_uris": ["http://localhost:5001/clever/callback"]}]}, environ={})
    try:
        c = app.test_client()
        make(c, "a")
        assert c.get("/t/a/_sim/health").get_json()["strict"] is True
        registered = c.get("/t/a/_sim/apps/mathly-dev")
        assert registered.status_code == 200
        assert registered.get_json()["client_secret"] == "mathly-secret"
        assert registered.get_json()["district_tokens"] != \
            c.get("/_sim/apps/mathly-dev").get_json()["district_tokens"]
    finally:
        close_app(app)


def test_logins_do_not_leak_between_tenants(client, ab):
    csrf = schoology_login(client, "/t/a", TEACHER)
    assert csrf
    assert "Rebecca" in client.get("/t/a/schoology").get_data(as_text=True)
    for prefix in ("", "/t/b"):
        who = client.get(f"{prefix}/schoology").get_data(as_text=True)
        assert "Nobody is logged in" in who


# --- file-backed tenants ------------------------------------------------------------------------

def test_file_backed_tenant_gets_its_own_file_and_delete_removes_it(tmp_path):
    db = tmp_path / "data" / "sim.db"
    path = Path(tenant_db_path({"DB": str(db)}, "a"))
    assert path == tmp_path / "data" / "sim.tenants" / "a.db"
    assert tenant_db_path({"DB": ":memory:"}, "a") == ":memory:"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"stale file from an earlier run")  # replaced, not reused
    app = create_app({"DB": str(db)}, environ={})
    try:
        c = app.test_client()
        assert make(c, "a")["db"] == str(path)
        assert path.stat().st_size > 100
        assert tenant_grade(c, "/t/a", district_token(c, "/t/a"), "f1").status_code == 200
        assert grades(c, "") == []
        assert c.delete("/_sim/tenants/a").get_json()["closed"] is True
        assert not path.exists() and not Path(str(path) + "-wal").exists()
        assert db.exists()
    finally:
        close_app(app)


def test_delete_waits_for_a_request_in_flight_then_closes(client, ab, monkeypatch):
    """A request in flight keeps the store open; the name is reusable once it ends."""
    monkeypatch.setattr("simulator.tenants.DRAIN_S", 0.1)
    token = district_token(client, "/t/a")
    assert client.post("/t/a/_sim/faults", json={"path": "/v1/grade",
                                                 "latency_ms": 1000}).status_code == 201
    result: dict = {}

    def slow_grade():
        result["resp"] = tenant_grade(client, "/t/a", token, "in-flight")

    t = threading.Thread(target=slow_grade)
    t.start()
    time.sleep(0.3)
    assert client.delete("/_sim/tenants/a").get_json() == {"deleted": "a", "closed": False}
    assert_error(client.get("/t/a/_sim/health"), 404, field="tenant")
    assert_error(client.post("/_sim/tenants", json={"name": "a"}), 409,
                 "Tenant is still being deleted", field="name")
    t.join(10)
    assert result["resp"].status_code == 200  # stored: its store closed after it
    make(client, "a")


def test_deleting_a_tenant_ends_its_long_polls_at_once(client, ab):
    """A long-poll no longer holds a deleted tenant's store (and its name: 409) for its whole
    timeout: it ends with a 404 saying the tenant was deleted, and the store closes."""
    result: dict = {}

    def long_poll():
        result["resp"] = client.get(f"/t/a/_sim/grades/wait?user_id={STUDENT}&timeout=60")

    t = threading.Thread(target=long_poll)
    t.start()
    time.sleep(0.3)
    assert client.delete("/_sim/tenants/a").get_json() == {"deleted": "a", "closed": True}
    t.join(10)
    assert_error(result["resp"], 404, "Tenant deleted", field="tenant",
                 problem="was deleted while this request waited")
    make(client, "a")


# --- URL prefixes -------------------------------------------------------------------------------

_URL_ATTR = re.compile(r'\b(?:href|action|src|data-[a-z-]+-url)="([^"]*)"')


def local_urls(text: str) -> list[str]:
    """Every same-origin absolute URL a page links to, submits to or loads."""
    return [html.unescape(u) for u in _URL_ATTR.findall(text) if u.startswith("/")]


def assert_prefixed(resp, prefix: str = "/t/a/") -> str:
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    text = resp.get_data(as_text=True)
    urls = local_urls(text)
    assert urls, "page has no links"
    bad = [u for u in urls if not u.startswith(prefix)]
    assert not bad, bad
    return text


def form_fields(text: str, action: str) -> dict:
    m = re.search(r'<form[^>]*action="' + re.escape(action) + r'"[^>]*>(.*?)</form>', text, re.S)
    assert m, f"no form to {action}"
    return {html.unescape(n): html.unescape(v) for n, v in
            re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', m.group(1))}


def schoology_login(client, prefix: str, user_id: str) -> str:
    home = client.get(f"{prefix}/schoology").get_data(as_text=True)
    fields = form_fields(home, f"{prefix}/schoology/persona")
    resp = client.post(f"{prefix}/schoology/persona", data={"csrf": fields["csrf"], "user_id": user_id})
    assert resp.status_code == 303 and resp.headers["Location"] == f"{prefix}/schoology"
    return fields["csrf"]


def test_a_tenants_persona_slots_live_under_its_prefix_with_its_cookie(client, ab):
    csrf = schoology_login(client, "/t/a", STUDENT)
    resp = client.post("/t/a/schoology/persona", data={"csrf": csrf, "user_id": TEACHER,
                                                       "slot": "new"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/t/a/u/1/schoology"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("clever_sim_session-t-a=") and "Path=/t/a;" in cookie
    text = assert_prefixed(client.get("/t/a/u/1/schoology"), "/t/a/")
    assert 'action="/t/a/u/1/schoology/persona"' in text and "Sections I teach" in text
    assert "My sections" in client.get("/t/a/schoology").get_data(as_text=True)
    assert client.get("/t/b/u/1/schoology").get_data(as_text=True).count("Nobody is logged in")


def test_login_page_and_authorize_redirect_keep_the_prefix(client, ab):
    query = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
             "state": "assignment:a1", "sim_district": DISTRICT, "sim_school": SCHOOL}
    page = client.get("/t/a/oauth/authorize", query_string=query)
    text = assert_prefixed(page)
    assert 'action="/t/a/oauth/login"' in text
    picks = re.findall(r'href="(\?[^"]*)"', text)  # district and school links: relative
    assert picks and all("sim_district=" in p for p in picks)
    fields = form_fields(text, "/t/a/oauth/login")

    resp = client.post("/t/a/oauth/login", data={**fields, "user_id": STUDENT})
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/t/a/u/0/oauth/authorize"  # the slot the persona went into
    assert parse_qs(location.query)["state"] == ["assignment:a1"]

    back = client.get(resp.headers["Location"])
    assert back.status_code == 302
    target = urlsplit(back.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
    params = parse_qs(target.query)
    assert params["state"] == ["assignment:a1"]
    token = client.post("/t/a/oauth/tokens", auth=(CLIENT_ID, CLIENT_SECRET), data={
        "code": params["code"][0], "grant_type": "authorization_code", "redirect_uri": REDIRECT})
    assert token.status_code == 200
    me = client.get("/t/a/v3.0/me", headers=bearer(token.get_json()["access_token"]))
    assert me.get_json()["data"]["id"] == STUDENT
    # the root's Clever knows nobody logged in and nothing of that code
    assert "Log in to" in client.get("/oauth/authorize", query_string=query).get_data(as_text=True)


def test_schoology_open_redirects_to_the_tenants_authorize(client, ab):
    link = client.post("/t/a/_sim/links", json={"section_id": SECTION, "client_id": CLIENT_ID,
                                                "assignment_id": "a100001", "name": "Fractions"})
    assert link.status_code == 201
    link_id = link.get_json()["id"]
    csrf = schoology_login(client, "/t/a", STUDENT)
    section = assert_prefixed(client.get(f"/t/a/schoology/sections/{SECTION}"))
    action = f"/t/a/schoology/sections/{SECTION}/assignments/{link_id}/open"
    assert f'action="{action}"' in section
    resp = client.post(action, data={"csrf": csrf})
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/t/a/u/0/oauth/authorize"  # this tab's persona slot, in the tenant
    assert parse_qs(location.query)["state"] == ["assignment:a100001"]
    launched = client.get(resp.headers["Location"])  # logged in through Schoology: straight on
    assert launched.status_code == 302 and launched.headers["Location"].startswith(REDIRECT)


def test_pages_link_within_the_tenant(client, ab):
    client.post("/t/a/_sim/links", json={"section_id": SECTION, "client_id": CLIENT_ID,
                                         "assignment_id": "a100001", "name": "Fractions"})
    tenant_grade(client, "/t/a", district_token(client, "/t/a"), "a100001")
    schoology_login(client, "/t/a", TEACHER)

    gradebook = assert_prefixed(client.get(f"/t/a/schoology/sections/{SECTION}/gradebook"))
    assert f'data-events-url="/t/a/schoology/sections/{SECTION}/gradebook/events"' in gradebook
    assert f'data-snapshot-url="/t/a/schoology/sections/{SECTION}/gradebook.json"' in gradebook
    assert 'src="/t/a/static/live.js"' in gradebook
    assert 'href="/t/a/inspector"' in gradebook
    detail = re.search(r'class="gb-points" href="([^"]+)"', gradebook).group(1)
    assert detail.startswith(f"/t/a/schoology/sections/{SECTION}/gradebook/")
    assert_prefixed(client.get(detail))
    snapshot = client.get(f"/t/a/schoology/sections/{SECTION}/gradebook.json").get_json()
    assert [c["detail_url"] for c in snapshot["cells"] if c.get("detail_url")] == [detail]
    assert client.get("/t/a/static/live.js").status_code == 200

    for path in ("/t/a/schoology", f"/t/a/schoology/sections/{SECTION}", "/t/a/schoology/gradebook",
                 f"/t/a/schoology/sections/{SECTION}/add", "/t/a/inspector", "/t/a/portal",
                 "/t/a/oauth/whoami"):
        assert_prefixed(client.get(path))
    entry = client.get("/t/a/_sim/journal").get_json()["data"][0]["id"]
    assert_prefixed(client.get(f"/t/a/inspector/{entry}"))


def test_root_pages_are_unchanged(client):
    schoology_login(client, "", TEACHER)
    text = client.get(f"/schoology/sections/{SECTION}").get_data(as_text=True)
    assert f'href="/schoology/sections/{SECTION}/gradebook"' in text
    assert 'href="/inspector"' in text
    assert not [u for u in local_urls(text) if u.startswith("/t/")]


# --- concurrency against a real server ------------------------------------------------------------

TENANTS = 4
THREADS_PER_TENANT = 3
GRADES_PER_THREAD = 8


def test_concurrent_tenants_on_a_real_server(tmp_path):
    app = create_app({"DB": str(tmp_path / "sim.db")}, environ={})
    running = serving.start_in_thread(app, port=0, threads=16)
    names = [f"job-{i}" for i in range(TENANTS)]
    errors: list[str] = []
    try:
        with httpx.Client(base_url=running.url, timeout=20) as http:
            # created concurrently too
            created = []

            def create(name):
                created.append(http.post("/_sim/tenants", json={"name": name}).status_code)

            makers = [threading.Thread(target=create, args=(n,)) for n in names]
            for t in makers:
                t.start()
            for t in makers:
                t.join(30)
            assert created == [201] * TENANTS
            tokens = {n: http.get(f"/t/{n}/_sim/apps/{CLIENT_ID}").json()["district_tokens"][DISTRICT]
                      for n in names}

        def worker(name: str, k: int) -> None:
            with httpx.Client(base_url=f"{running.url}/t/{name}", timeout=20) as c:
                for i in range(GRADES_PER_THREAD):
                    r = c.post("/v1/grade", headers=bearer(tokens[name]), json={
                        "assignmentID": f"{name}-{k}-{i}", "userID": STUDENT, "percentage": 0.5})
                    if r.status_code != 200:
                        errors.append(f"{name} {k} {i}: {r.status_code} {r.text[:200]}")
                    if i % 4 == 0:  # reads interleaved with writes
                        seen = c.get("/_sim/grades", params={"limit": 1000}).json()["data"]
                        foreign = [g for g in seen if not g["assignmentID"].startswith(name + "-")]
                        if foreign:
                            errors.append(f"{name} sees {foreign[0]['assignmentID']}")

        threads = [threading.Thread(target=worker, args=(n, k))
                   for n in names for k in range(THREADS_PER_TENANT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "workers hung"
        assert not errors, errors[:5]

        with httpx.Client(base_url=running.url, timeout=20) as http:
            for name in names:
                got = http.get(f"/t/{name}/_sim/grades", params={"limit": 1000}).json()["data"]
                expected = {f"{name}-{k}-{i}" for k in range(THREADS_PER_TENANT)
                            for i in range(GRADES_PER_THREAD)}
                assert {g["assignmentID"] for g in got} == expected
                assert len(got) == len(expected)
                journal = http.get(f"/t/{name}/_sim/journal", params={"path": "/v1/grade",
                                                                     "limit": 1000}).json()
                assert journal["total"] == len(expected)
            assert http.get("/_sim/grades").json()["data"] == []
            listing = http.get("/_sim/tenants").json()["data"]
            assert {t["name"]: t["counts"]["grades"] for t in listing} == \
                {n: THREADS_PER_TENANT * GRADES_PER_THREAD for n in names}
            assert listing[0]["base_url"] == f"{running.url}/t/{names[0]}"
            assert http.delete(f"/_sim/tenants/{names[0]}").json()["closed"] is True
            assert http.get(f"/t/{names[0]}/_sim/health").status_code == 404
        files = tmp_path / "sim.tenants"
        assert sorted(p.name for p in files.glob("*.db")) == [f"{n}.db" for n in names[1:]]
    finally:
        running.stop()
    # stop() closed every tenant's store; their files stay for inspection
    assert (tmp_path / "sim.tenants" / f"{names[1]}.db").exists()
