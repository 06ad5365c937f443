"""Issue 12, rows 3 and 4: revocation is immediate, and only the local developer or CI
drives the control API (the browser half of row 4 is in tests/browser/test_cross_site.py).

Row 3 races real requests against revocations on a file database (WAL readers see the
last COMMIT while a revocation is still in its transaction: where the race lived), many
trials each, and asserts what a partner depends on: once the revoking call has answered,
the old token is refused and stores nothing.
"""

from __future__ import annotations

pytest_plugins = ["pytester"]

import json  # noqa: E402
import threading  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from conftest import assert_error, post_grade  # noqa: E402
from simulator import guard  # noqa: E402
from simulator.app import create_app  # noqa: E402
from simulator.clever import grades  # noqa: E402
from simulator.config import ConfigError, build_config  # noqa: E402
from simulator.errors import InvalidToken  # noqa: E402

TRIALS = 40   # the issue saw the race in 5 of 40 trials
HAMMERS = 4   # threads using the token while it is revoked


@pytest.fixture
def file_app(tmp_path):
    app = create_app({"DB": str(tmp_path / "sim.db"), "SECRET_KEY": "t"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


def _json(resp):
    assert resp.status_code < 500, resp.get_data(as_text=True)
    return resp.get_json()


def _student(app) -> tuple[str, str]:
    roster = app.extensions["clever_sim"].roster
    district = roster["districts"][0]["id"]
    student = next(u for u in roster["users"] if "student" in u["roles"]
                   and u["district"] == district)
    return district, student["id"]


def _grade(client, token: str, user_id: str, n: int):
    return post_grade(client, token, assignmentID=f"a{n}", userID=user_id, percentage=0.5)


def _race(app, token: str, user_id: str, revoke) -> tuple[int, list[int]]:
    """Use ``token`` from HAMMERS threads while ``revoke()`` runs; then, after it answered,
    use it again. Returns (status of the first use after the revocation answered,
    statuses seen by the hammers after it answered)."""
    answered = threading.Event()
    stop = threading.Event()
    started = threading.Barrier(HAMMERS + 1)
    late: list[int] = []

    def hammer(k: int) -> None:
        client = app.test_client()
        started.wait()
        n = 0
        while not stop.is_set():
            was_answered = answered.is_set()
            status = _grade(client, token, user_id, k * 10_000 + n).status_code
            if was_answered:  # this request began after the revocation answered
                late.append(status)
            n += 1

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(HAMMERS)]
    for t in threads:
        t.start()
    started.wait()
    revoke()
    answered.set()
    after = _grade(app.test_client(), token, user_id, 999_999).status_code
    while len(late) < 2 * HAMMERS:  # let each hammer send a few requests after the answer
        if not any(t.is_alive() for t in threads):
            break
        threading.Event().wait(0.001)
    stop.set()
    for t in threads:
        t.join(10)
    return after, late


def test_deleted_apps_district_token_stores_no_grade_once_delete_answered(file_app):
    control = file_app.test_client()
    district, student = _student(file_app)
    for trial in range(TRIALS):
        view = _json(control.post("/_sim/apps", json={
            "name": f"doomed {trial}", "redirect_uris": ["http://localhost:9/cb"]}))
        client_id, token = view["client_id"], view["district_tokens"][district]
        counted: list[int] = []

        def delete() -> None:
            assert control.delete(f"/_sim/apps/{client_id}").status_code == 200
            counted.append(len(_json(control.get("/_sim/grades",
                                                 query_string={"client_id": client_id}))["data"]))

        after, late = _race(file_app, token, student, delete)
        assert after == 401, f"trial {trial}: a deleted app's token still answered {after}"
        assert set(late) <= {401}, f"trial {trial}: after DELETE answered the token got {late}"
        final = len(_json(control.get("/_sim/grades", query_string={"client_id": client_id}))["data"])
        assert final == counted[0], (f"trial {trial}: {final - counted[0]} grade(s) stored "
                                     "with the token after DELETE answered")
        me = control.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401


def test_reset_revokes_il_tokens_for_every_later_request(file_app):
    control = file_app.test_client()
    sim = file_app.extensions["clever_sim"]
    client_id = sim.roster["apps"][0]["client_id"]
    _, student = _student(file_app)
    for trial in range(TRIALS):
        token = _json(control.post("/_sim/tokens", json={"client_id": client_id,
                                                          "user_id": student}))["access_token"]
        after, late = _race(file_app, token, student,
                            lambda: control.post("/_sim/reset", json={}).status_code == 200 or None)
        assert after == 401, f"trial {trial}: an il token still answered {after} after reset"
        assert set(late) <= {401}, f"trial {trial}: after reset answered the token got {late}"
        left = _json(control.get("/_sim/grades"))["data"]
        assert left == [], f"trial {trial}: {len(left)} grade(s) stored after reset answered"


def test_disconnecting_a_district_revokes_its_token_at_once(file_app):
    control = file_app.test_client()
    sim = file_app.extensions["clever_sim"]
    district, student = _student(file_app)
    for trial in range(TRIALS):
        view = _json(control.post("/_sim/apps", json={
            "name": f"narrowed {trial}", "redirect_uris": ["http://localhost:9/cb"]}))
        client_id, token = view["client_id"], view["district_tokens"][district]
        others = [d for d in sim.district_ids if d != district]

        def disconnect() -> None:
            patched = control.patch(f"/_sim/apps/{client_id}", json={"districts": others})
            assert patched.status_code == 200, patched.get_json()

        after, late = _race(file_app, token, student, disconnect)
        assert after == 401, f"trial {trial}: a disconnected district's token answered {after}"
        assert set(late) <= {401}, f"trial {trial}: after PATCH answered the token got {late}"


def test_codes_exchanged_while_reset_runs_yield_no_working_token(file_app):
    """A code redeemed just before a reset must not become a token after it."""
    control = file_app.test_client()
    sim = file_app.extensions["clever_sim"]
    app = sim.roster["apps"][0]
    _, student = _student(file_app)
    for trial in range(TRIALS):
        codes = [_json(control.post("/_sim/codes", json={"client_id": app["client_id"],
                                                          "user_id": student}))["code"]
                 for _ in range(3 * HAMMERS)]
        issued: list[str] = []
        started = threading.Barrier(HAMMERS + 1)

        def exchange(mine: list[str]) -> None:
            client = file_app.test_client()
            started.wait()
            for code in mine:
                resp = client.post("/oauth/tokens", data={
                    "code": code, "grant_type": "authorization_code",
                    "redirect_uri": app["redirect_uris"][0]},
                    auth=(app["client_id"], app["client_secret"]))
                assert resp.status_code in (200, 400), resp.get_data(as_text=True)
                if resp.status_code == 200:
                    issued.append(resp.get_json()["access_token"])

        threads = [threading.Thread(target=exchange, args=(codes[k::HAMMERS],))
                   for k in range(HAMMERS)]
        for t in threads:
            t.start()
        started.wait()
        assert control.post("/_sim/reset", json={}).status_code == 200
        for t in threads:
            t.join(10)
        working = [t for t in issued
                   if control.get("/me", headers={"Authorization": f"Bearer {t}"}).status_code == 200]
        assert working == [], f"trial {trial}: {len(working)} token(s) outlived the reset"


def test_lookup_racing_a_revocation_never_caches_the_revoked_token(file_app):
    """The exact interleaving of the race: the SELECT sees the token, the revocation
    commits, then the lookup would fill the cache."""
    sim = file_app.extensions["clever_sim"]
    district, _ = _student(file_app)
    app = sim.clever.register_app({"name": "raced", "redirect_uris": ["http://localhost:9/cb"]})
    token = sim.store.district_tokens(app.client_id, district)[0].access_token
    plain_read = sim.store.read

    @contextmanager
    def read_then_revoke():
        with plain_read() as db:
            yield db
        sim.store.read = plain_read
        sim.store.delete_app(app.client_id)  # lands between the SELECT and the cache fill

    sim.store.read = read_then_revoke
    assert sim.store.get_token(token) is not None  # this lookup began before the revocation
    assert sim.store.get_token(token) is None      # the next one must not find it cached


def test_grade_checked_before_a_revocation_is_refused_at_write(file_app):
    """A grade whose token was looked up before DELETE committed is not stored after it."""
    sim = file_app.extensions["clever_sim"]
    district, student = _student(file_app)
    app = sim.clever.register_app({"name": "raced", "redirect_uris": ["http://localhost:9/cb"]})
    generation = sim.store.token_generation
    token = sim.store.get_token(sim.store.district_tokens(app.client_id, district)[0]
                                .access_token)
    sim.store.delete_app(app.client_id)
    with pytest.raises(InvalidToken) as caught:
        grades.submit_grade(sim, token, {"assignmentID": "a1", "userID": student,
                                         "percentage": Decimal("0.5")}, generation)
    assert "revoked" in caught.value.errors[0].problem
    assert sim.store.list_grades(client_id=app.client_id) == []


# --- row 4: who may drive the control API (table-driven, one guard at a time) --------------

ROOT = Path(__file__).resolve().parent.parent
JSON = {"Content-Type": "application/json"}
FAULT = {"path": "/v1/grade", "status": 503, "count": 1_000_000}


@pytest.fixture
def guarded():
    """A simulator told one extra host name and given a control token."""
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", "ALLOWED_HOSTS": ["sim.ci.internal"],
                      "CONTROL_TOKEN": "s3cret-token"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


@pytest.mark.parametrize("host, allowed", [
    ("localhost", True), ("localhost:8080", True), ("LOCALHOST:8080", True),
    ("app.localhost:8080", True), ("127.0.0.1:8080", True), ("127.9.8.7", True),
    ("[::1]:8080", True), ("[::1]", True), ("localhost.:8080", True),
    ("sim.ci.internal:8080", True), ("SIM.CI.INTERNAL", True),
    ("attacker.example:8080", False), ("localhost.attacker.example", False),
    ("127.0.0.1.attacker.example", False), ("10.0.0.5:8080", False), ("[::2]:8080", False),
    ("sim.ci.internal.attacker.example", False), ("", True),
])
def test_host_rule_allows_loopback_and_told_names_only(host, allowed):
    policy = guard.ControlPolicy(frozenset({"sim.ci.internal"}))
    assert guard.host_allowed(host, policy) is allowed


def test_host_rule_star_allows_any_name():
    assert guard.host_allowed("attacker.example:80", guard.ControlPolicy(frozenset({"*"})))


@pytest.mark.parametrize("origin, host, same", [
    ("http://localhost:8080", "localhost:8080", True),
    ("http://LOCALHOST:8080", "localhost:8080", True),
    ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
    ("http://[::1]:8080", "[::1]:8080", True),
    ("http://localhost", "localhost:80", True),
    ("http://localhost:8080", "127.0.0.1:8080", False),  # another origin, though both loopback
    ("http://localhost:5001", "localhost:8080", False),   # the partner's dev page: same site
    ("http://127.0.0.2:8080", "127.0.0.1:8080", False),
    ("https://attacker.example", "localhost:8080", False),
    ("null", "localhost:8080", False),                    # sandboxed frame, file: page
    ("http://localhost:99999", "localhost:8080", False),  # not a URL
    ("ftp://localhost:8080", "localhost:8080", False),
])
def test_origin_must_be_this_servers_own(origin, host, same):
    assert guard.same_origin(origin, host) is same


# Each state change an attacking page tried in the issue, and the rest of the control API.
STATE_CHANGES = [
    ("POST", "/_sim/faults", FAULT),
    ("POST", "/_sim/apps", {"name": "evil", "redirect_uris": ["http://attacker.example/cb"]}),
    ("POST", "/_sim/tenants", {"name": "evil"}),
    ("POST", "/_sim/clock", {"advance_s": 86400}),
    ("POST", "/_sim/reset", {}),
    ("POST", "/_sim/tokens", {"client_id": "x", "user_id": "y"}),
    ("POST", "/_sim/snapshot", {}),
    ("PATCH", "/_sim/apps/demo", {"name": "x"}),
    ("DELETE", "/_sim/faults", None),
    ("POST", "/t/ci-1/_sim/faults", FAULT),
]


@pytest.mark.parametrize("method, path, body", STATE_CHANGES)
@pytest.mark.parametrize("headers, problem", [
    ({"Origin": "http://attacker.example"}, "Origin"),
    ({"Origin": "null"}, "Origin"),
    ({"Origin": "http://127.0.0.2:8080"}, "Origin"),
    ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),
    ({"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"}, "Sec-Fetch-Site"),
])
def test_control_state_change_from_another_site_is_refused(client, sim, method, path, body,
                                                           headers, problem):
    before = (sim.faults.list(), sim.clock.offset, len(sim.store.list_apps()))
    resp = client.open(path, method=method, headers=headers,
                       **({"json": body} if body is not None else {}))
    assert_error(resp, 403, "Cross-site request refused…", field=problem)
    assert (sim.faults.list(), sim.clock.offset, len(sim.store.list_apps())) == before


@pytest.mark.parametrize("method, path, body", [c for c in STATE_CHANGES if c[0] != "DELETE"])
@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None])
def test_control_body_that_is_not_json_is_refused_with_415(client, sim, method, path, body,
                                                           content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    before = (sim.faults.list(), sim.clock.offset)
    resp = client.open(path, method=method, data=json.dumps(body), headers=headers)
    out = assert_error(resp, 415, f"Content-Type must be application/json (got {content_type or 'none'})",
                       field="Content-Type")
    assert "application/json" in out["errors"][0]["hint"]
    assert (sim.faults.list(), sim.clock.offset) == before


@pytest.mark.parametrize("path", ["/_sim/snapshot", "/_sim/apps", "/_sim/journal", "/_sim/health",
                                  "/_sim/docs", "/t/x/_sim/snapshot", "/_sim//snapshot",
                                  "/inspector"])
def test_control_reads_under_a_foreign_host_are_refused(client, path):
    """DNS rebinding: the attacker's page reaches the server under the attacker's name."""
    resp = client.get(path, headers={"Host": "attacker.example:8080"})
    out = assert_error(resp, 403, "Host not allowed…", field="Host")
    assert "--allowed-host attacker.example" in out["errors"][0]["hint"]
    assert "client_secret" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("method, path", [
    ("GET", "/v3.0/me"), ("POST", "/v1/grade"), ("POST", "/oauth/tokens"), ("GET", "/oauth/authorize"),
    ("GET", "/schoology"), ("GET", "/oauth/whoami"), ("GET", "/static/sim.css")])
def test_emulated_clever_and_pages_answer_any_host(client, method, path):
    """Partners' apps and browsers reach the emulated Clever under any name (Docker, CI)."""
    resp = client.open(path, method=method, headers={"Host": "clever-sim:8080"})
    assert resp.status_code not in (401, 403) or "Host" not in resp.get_data(as_text=True)
    assert resp.status_code < 500
    assert "Host not allowed" not in resp.get_data(as_text=True)


def test_same_origin_state_change_and_tools_without_origin_still_work(client, sim):
    ok = client.post("/_sim/faults", json=FAULT, headers={"Origin": "http://localhost",
                                                         "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 201
    assert client.post("/_sim/clock", json={"advance_s": 1}).status_code == 200  # curl, CI
    assert client.delete("/_sim/faults").status_code == 200  # DELETE needs no Content-Type
    assert client.post("/_sim/reset", data=b"", content_type="application/json").status_code == 200


@pytest.mark.parametrize("path, form", [
    ("/oauth/logout", {"csrf": "x"}), ("/oauth/login", {"csrf": "x", "user_id": "u"}),
    ("/schoology/persona", {"csrf": "x", "user_id": "u"}),
    ("/portal/apps/demo/launch", {"csrf": "x"}),
    ("/schoology/sections/s1/add/demo", {"csrf": "x"}),
])
def test_html_form_posts_from_another_site_are_refused(client, path, form):
    resp = client.post(path, data=form, headers={"Origin": "http://attacker.example",
                                                 "Sec-Fetch-Site": "cross-site"})
    assert_error(resp, 403, "Cross-site request refused…", field="Sec-Fetch-Site")


@pytest.mark.parametrize("headers, message, problem", [
    ({}, "Control token required", "is missing"),
    ({"Authorization": "Basic czNjcmV0LXRva2Vu"}, "Control token required", "is not a Bearer token"),
    ({"Authorization": "Bearer wrong"}, "Control token is wrong", "does not carry"),
    ({"Authorization": "Bearer s3cret-token-and-more"}, "Control token is wrong", "does not carry"),
    ({"Authorization": "Bearer "}, "Control token required", "is not a Bearer token"),
])
@pytest.mark.parametrize("method, path", [("GET", "/_sim/snapshot"), ("GET", "/_sim/apps"),
                                          ("POST", "/_sim/reset"), ("GET", "/t/ci/_sim/grades")])
def test_control_token_is_required_when_set(guarded, headers, message, problem, method, path):
    resp = guarded.test_client().open(path, method=method, headers=headers,
                                      **({"json": {}} if method == "POST" else {}))
    assert_error(resp, 401, message, field="Authorization", problem=problem)
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="clever-sim control API"'


def test_control_token_opens_the_control_api_and_health_and_docs_stay_open(guarded):
    client = guarded.test_client()
    auth = {"Authorization": "Bearer s3cret-token"}
    assert client.get("/_sim/snapshot", headers=auth).status_code == 200
    assert client.post("/_sim/reset", json={}, headers={"authorization": "bearer s3cret-token"}
                       ).status_code == 200
    assert client.get("/_sim/apps", headers={**auth, "Host": "sim.ci.internal:8080"}).status_code == 200
    for free in ("/_sim/health", "/_sim/docs", "/_sim/openapi.json"):
        assert client.get(free).status_code == 200, free
    # the token never opens a foreign host, nor a cross-site change
    assert client.get("/_sim/apps", headers={**auth, "Host": "evil.example"}).status_code == 403
    assert client.post("/_sim/reset", json={}, headers={**auth, "Sec-Fetch-Site": "cross-site"}
                       ).status_code == 403
    # the emulated Clever API never asks for it
    assert client.get("/v3.0/me").status_code == 401
    assert "Control token" not in client.get("/v3.0/me").get_data(as_text=True)


@pytest.mark.parametrize("environ, expected", [
    ({"CLEVER_SIM_ALLOWED_HOSTS": "clever-sim, sim.internal"}, ["clever-sim", "sim.internal"]),
    ({"CLEVER_SIM_ALLOWED_HOSTS": "*"}, ["*"]),
    ({"CLEVER_SIM_ALLOWED_HOSTS": ""}, []),
])
def test_allowed_hosts_from_env(environ, expected):
    assert build_config(environ=environ)["ALLOWED_HOSTS"] == expected


def test_allowed_hosts_and_token_from_toml(tmp_path):
    path = tmp_path / "sim.toml"
    path.write_text('[simulator]\nallowed_hosts = ["clever-sim"]\ncontrol_token = "t0k"\n')
    cfg = build_config(str(path), environ={})
    assert (cfg["ALLOWED_HOSTS"], cfg["CONTROL_TOKEN"]) == (["clever-sim"], "t0k")


@pytest.mark.parametrize("override, problem", [
    ({"ALLOWED_HOSTS": "clever-sim"}, "allowed_hosts must be a list"),
    ({"ALLOWED_HOSTS": [""]}, "allowed_hosts must be a list"),
    ({"CONTROL_TOKEN": ""}, "control_token must be a non-empty string"),
    ({"CONTROL_TOKEN": "two words"}, "control_token must be a non-empty string"),
    ({"CONTROL_TOKEN": 42}, "control_token must be a non-empty string"),
])
def test_bad_guard_settings_are_config_errors(override, problem):
    with pytest.raises(ConfigError, match=problem):
        build_config(environ={}, overrides=override)


def test_docker_image_lets_other_containers_drive_it_by_name():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'CLEVER_SIM_ALLOWED_HOSTS="*"' in text
    policy = guard.policy_from_config(build_config(environ={"CLEVER_SIM_ALLOWED_HOSTS": "*"}))
    assert guard.host_allowed("clever-sim:8080", policy)


# --- row 4: the tools send the control token ----------------------------------------------

TOKEN = "ci-shared-token"


@pytest.fixture
def token_server():
    from simulator.serving import start_in_thread

    server = start_in_thread(create_app({"DB": ":memory:", "CONTROL_TOKEN": TOKEN}, environ={}))
    yield server
    server.stop()


def test_snapshot_cli_sends_the_control_token(token_server, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from simulator.snapshot_cli import snapshot

    monkeypatch.delenv("CLEVER_SIM_CONTROL_TOKEN", raising=False)
    out = tmp_path / "state.json"
    runner = CliRunner()
    refused = runner.invoke(snapshot, ["save", str(out), "--url", token_server.url])
    assert refused.exit_code == 2
    assert "HTTP 401: Control token required" in refused.output
    assert "Authorization: is missing" in refused.output and "Traceback" not in refused.output
    saved = runner.invoke(snapshot, ["save", str(out), "--url", token_server.url,
                                     "--control-token", TOKEN])
    assert saved.exit_code == 0, saved.output
    loaded = runner.invoke(snapshot, ["load", str(out), "--url", token_server.url],
                           env={"CLEVER_SIM_CONTROL_TOKEN": TOKEN})
    assert loaded.exit_code == 0, loaded.output
    assert "loaded" in loaded.output


def test_contract_suite_sends_the_control_token(token_server, tmp_path, monkeypatch):
    from contract_tests.harness import SimClient, SimError

    monkeypatch.delenv("CLEVER_SIM_CONTROL_TOKEN", raising=False)
    with pytest.raises(SimError, match="401: Control token required"):
        SimClient(token_server.url).get("/_sim/apps")
    assert SimClient(token_server.url, TOKEN).get("/_sim/apps")["data"]
    from contract_tests.runner import run_contract
    from test_contract_suite import write_toml

    toml = write_toml(tmp_path / "partner.toml", "http://127.0.0.1:9", "token-proof")
    without = run_contract(str(toml), sim_url=token_server.url, emit=lambda _: None)
    assert without.exit_code == 2 and "Control token required" in without.output
    monkeypatch.setenv("CLEVER_SIM_CONTROL_TOKEN", TOKEN)
    with_env = run_contract(str(toml), sim_url=token_server.url, emit=lambda _: None)
    # past the control API: it now stops at the partner app, which is not running
    assert "Control token" not in with_env.output
    assert "127.0.0.1:9" in with_env.output


def test_pytest_fixture_sends_the_control_token(token_server, pytester, monkeypatch):
    monkeypatch.delenv("CLEVER_SIM_CONTROL_TOKEN", raising=False)
    pytester.makepyfile(test_remote="""
        def test_drives_the_shared_simulator(clever_sim):
            student = clever_sim.students()[0]
            clever_sim.register_app(name="Temp", redirect_uris=["http://localhost:9/cb"])
            assert clever_sim.grades() == []
    """)
    from test_pytest_plugin import run

    ok = run(pytester, "--clever-sim-url", token_server.url, "--clever-sim-control-token", TOKEN)
    ok.assert_outcomes(passed=1)
    refused = run(pytester, "--clever-sim-url", token_server.url)
    refused.stdout.fnmatch_lines(["*401*Control token required*"])
    monkeypatch.setenv("CLEVER_SIM_CONTROL_TOKEN", TOKEN)
    run(pytester, "--clever-sim-url", token_server.url).assert_outcomes(passed=1)


def test_serve_on_all_addresses_names_them_and_warns(monkeypatch):
    from simulator import cli, serving

    monkeypatch.setattr(serving, "machine_addresses", lambda host: ["192.0.2.7"])
    app = create_app({"DB": ":memory:", "ALLOWED_HOSTS": ["192.0.2.7"]}, environ={})
    try:
        text = cli.exposure_notice(app, "0.0.0.0", 8080)
        assert "all addresses (0.0.0.0:8080)" in text and "http://192.0.2.7:8080" in text
        assert "WARNING: anyone who can reach this port can drive the control API" in text
        assert "--control-token" in text
        assert "Control API host names: localhost, 127.0.0.1, 192.0.2.7" in text
        assert cli.exposure_notice(app, "127.0.0.1", 8080) == ""
        app.config["CONTROL_TOKEN"] = TOKEN
        assert "WARNING" not in cli.exposure_notice(app, "0.0.0.0", 8080)
        assert TOKEN not in cli.exposure_notice(app, "0.0.0.0", 8080)
    finally:
        app.extensions["clever_sim"].close()


def test_serve_answers_under_the_addresses_it_listens_on(monkeypatch):
    from simulator import cli, serving

    monkeypatch.setattr(serving, "machine_addresses", lambda host: ["192.0.2.7"])
    assert cli.serve_allowed_hosts([], (), "127.0.0.1") is None
    assert cli.serve_allowed_hosts([], ("clever-sim",), "0.0.0.0") == ["clever-sim", "192.0.2.7"]
    assert cli.serve_allowed_hosts(["sim.ci"], ("clever-sim",), "0.0.0.0") == \
        ["sim.ci", "clever-sim", "192.0.2.7"]


def test_machine_addresses_are_real_and_never_loopback():
    from simulator.serving import machine_addresses

    found = machine_addresses("0.0.0.0")
    assert all(not a.startswith("127.") for a in found)
    assert machine_addresses("10.1.2.3") == ["10.1.2.3"]
