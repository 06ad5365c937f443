"""Snapshots: export the whole state, load it into a fresh simulator, refuse bad ones whole;
``GET``/``POST /_sim/snapshot`` and ``clever-sim snapshot save|load``."""

from __future__ import annotations

import base64
import copy
import json

import httpx
import pytest
from click.testing import CliRunner

from conftest import assert_error, bearer, district_token, grade_ok, il_token
from simulator import snapshot as snap
from simulator import snapshot_schema
from simulator.app import create_app
from simulator.control.snapshot_routes import bp as snapshot_bp
from simulator.roster_gen import generate_roster
from simulator.serving import start_in_thread
from simulator.snapshot_cli import snapshot as snapshot_cli

CUSTOM_APP = {"name": "Mathly", "client_id": "mathly-dev", "client_secret": "mathly-secret",
              "redirect_uris": ["http://localhost:5001/clever/callback"],
              "assignments_url": "http://localhost:5001/clever/assignments"}


def with_snapshot_routes(app):
    """The blueprint, until app.py registers it itself."""
    if "snapshot" not in app.blueprints:
        app.register_blueprint(snapshot_bp)
    return app


def new_app(**settings):
    return with_snapshot_routes(create_app({"DB": ":memory:", **settings}, environ={}))


@pytest.fixture
def client(app):
    return with_snapshot_routes(app).test_client()


@pytest.fixture
def fresh():
    app = new_app()
    yield app
    app.extensions["clever_sim"].close()


def basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def comparable(doc: dict) -> dict:
    out = dict(doc)
    out.pop("created")
    return out


@pytest.fixture
def busy(sim, client, student, other_student, district_id):
    """A simulator with something of everything: returns what the test checks later."""
    demo = sim.store.get_app(sim.roster["apps"][0]["client_id"])
    custom = client.post("/_sim/apps", json=CUSTOM_APP).get_json()
    token = il_token(sim, student["id"])
    grade_ok(client, token, {"assignmentID": "a1", "percentage": 0.5})
    first = grade_ok(client, token, {"assignmentID": "a1", "scoreGiven": 9, "scoreMaximum": 10,
                                       "attempt": 2})
    dtoken = district_token(sim, district_id, sim.store.get_app("mathly-dev"))
    grade_ok(client, dtoken, {"assignmentID": "g7", "userID": other_student["id"], "percentage": 0.25})
    section = next(s for s in sim.roster["sections"] if student["id"] in s["students"])
    link = client.post("/_sim/links", json={"section_id": section["id"], "client_id": demo.client_id,
                                            "assignment_id": "a1", "max_points": 20}).get_json()
    client.post("/_sim/clock", json={"advance_s": 30})
    code = client.post("/_sim/codes", json={"client_id": demo.client_id,
                                            "user_id": student["id"]}).get_json()["code"]
    return {"il_token": token, "grade": first, "district_token": dtoken, "custom": custom,
            "link": link, "code": code, "demo": demo}


# --- round trip ------------------------------------------------------------------------

def test_round_trip_into_a_fresh_simulator_keeps_everything(sim, client, busy, student, fresh,
                                                           other_student):
    doc = client.get("/_sim/snapshot").get_json()
    assert doc["format"] == "clever-sim-snapshot" and doc["version"] == 1
    assert {len(doc[k]) for k in ("grades",)} == {2} and len(doc["grade_history"]) == 3
    assert doc["clock_offset_s"] == 30

    target = fresh.test_client()
    target.get("/v3.0/me")  # something in the target's journal, to see it go
    answer = target.post("/_sim/snapshot", json=doc)
    assert answer.status_code == 200, answer.get_json()
    loaded = answer.get_json()
    assert loaded["status"] == "loaded"
    assert loaded["counts"] == {"districts": 2, "users": len(sim.roster["users"]),
                                "sections": len(sim.roster["sections"]), "apps": 2,
                                "district_tokens": 4, "il_tokens": 1, "grades": 2,
                                "grade_history": 3, "schoology_assignments": 1,
                                "roster_replaced": False}

    # grades, with their history, links and apps (credentials included) are the same
    assert target.get("/_sim/grades").get_json() == client.get("/_sim/grades").get_json()
    history = f"/_sim/grades/{busy['grade']['id']}/history"
    assert target.get(history).get_json() == client.get(history).get_json()
    assert [v["version"] for v in target.get(history).get_json()["data"]] == [1, 2]
    assert target.get("/_sim/links").get_json() == client.get("/_sim/links").get_json()
    assert target.get("/_sim/apps").get_json() == client.get("/_sim/apps").get_json()
    assert target.post("/_sim/clock", json={"advance_s": 0}).get_json()["offset_s"] == 30

    # tokens still work: district-app tokens listed and accepted, the il token reads /me
    listing = target.get("/oauth/tokens?owner_type=district", headers=basic("mathly-dev", "mathly-secret"))
    assert busy["district_token"] in [t["access_token"] for t in listing.get_json()["data"]]
    assert target.get(f"/v3.0/users/{other_student['id']}",
                      headers=bearer(busy["district_token"])).status_code == 200
    me = target.get("/v3.0/me", headers=bearer(busy["il_token"]))
    assert me.status_code == 200 and me.get_json()["data"]["id"] == student["id"]

    # the loaded grade is overwritten as version 3, and the sequence goes on from the loaded one
    before = max(g["seq"] for g in doc["grades"])
    again = grade_ok(target, busy["il_token"], {"assignmentID": "a1", "percentage": 1})
    assert again["id"] == busy["grade"]["id"] and again["version"] == 3 and again["linked"] is True
    seqs = {g["assignmentID"]: g["seq"] for g in target.get("/_sim/grades").get_json()["data"]}
    assert seqs["a1"] == before + 1

    # not in a snapshot: auth codes (the one minted before is unknown) and the journal
    exchange = target.post("/oauth/tokens", headers=basic(busy["demo"].client_id, busy["demo"].client_secret),
                           data={"grant_type": "authorization_code", "code": busy["code"],
                                 "redirect_uri": busy["demo"].primary_redirect_uri})
    assert exchange.status_code == 400 and exchange.get_json()["error"] == "invalid_grant"
    journal = target.get("/_sim/journal").get_json()["data"]
    assert all(e["path"] != "/v3.0/me" or e["status"] == 200 for e in journal)
    assert not any(e["path"] == "/v3.0/me" and e["status"] == 401 for e in journal)


def test_export_of_a_loaded_snapshot_is_the_same_document(client, busy, fresh):
    doc = client.get("/_sim/snapshot").get_json()
    target = fresh.test_client()
    assert target.post("/_sim/snapshot", json=doc).status_code == 200
    assert comparable(target.get("/_sim/snapshot").get_json()) == comparable(doc)


def test_loading_replaces_the_previous_state_whole(client, busy, fresh, sim):
    empty = comparable(fresh.test_client().get("/_sim/snapshot").get_json())
    assert client.post("/_sim/snapshot", json={**empty, "created": "x"}).status_code == 200
    assert client.get("/_sim/grades").get_json()["data"] == []
    assert client.get("/_sim/links").get_json()["data"] == []
    apps = client.get("/_sim/apps").get_json()["data"]
    assert [a["name"] for a in apps] == ["Demo Partner (reference)"]
    assert client.get("/v3.0/me", headers=bearer(busy["il_token"])).status_code == 401
    assert client.get("/v3.0/me", headers=bearer(busy["district_token"])).status_code == 401


def test_a_snapshot_with_another_roster_replaces_the_roster(client, sim, tmp_path):
    roster = generate_roster(schools=1, teachers=2, students=4, sections=2, seed=3)
    source = new_app(ROSTER=roster)
    try:
        src = source.test_client()
        student = next(u for u in roster["users"] if "student" in u["roles"])
        token = il_token(source.extensions["clever_sim"], student["id"])
        grade_ok(src, token, {"assignmentID": "x1", "percentage": 0.9})
        doc = src.get("/_sim/snapshot").get_json()
    finally:
        source.extensions["clever_sim"].close()
    answer = client.post("/_sim/snapshot", json=doc)
    assert answer.status_code == 200 and answer.get_json()["counts"]["roster_replaced"] is True
    assert sim.roster == doc["roster"]
    assert sim.district_ids == [d["id"] for d in roster["districts"]]
    personas = client.get("/_sim/personas?role=student").get_json()["data"]
    assert sorted(p["id"] for p in personas) == sorted(u["id"] for u in roster["users"]
                                                        if "student" in u["roles"])
    assert client.get("/v3.0/me", headers=bearer(token)).get_json()["data"]["id"] == student["id"]
    # a new app is connected to the loaded roster's districts
    new = client.post("/_sim/apps", json={"name": "N", "redirect_uris": ["http://x.test/cb"]}).get_json()
    assert new["districts"] == sim.district_ids


def test_download_names_a_file(client):
    answer = client.get("/_sim/snapshot?download=1")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="clever-sim-snapshot-')
    assert "Content-Disposition" not in client.get("/_sim/snapshot").headers


def test_a_snapshot_bigger_than_the_app_wide_1_mib_cap_loads(client, busy, fresh):
    doc = client.get("/_sim/snapshot").get_json()
    doc["grades"][0]["record"]["context"] = {"essay": "x" * (2 * 1024 * 1024)}
    raw = json.dumps(doc).encode()
    assert len(raw) > fresh.config["MAX_CONTENT_LENGTH"]
    answer = fresh.test_client().post("/_sim/snapshot", data=raw, content_type="application/json")
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]


def test_body_over_the_snapshot_limit_is_413(client, monkeypatch):
    from simulator.control import snapshot_routes

    monkeypatch.setattr(snapshot_routes, "SNAPSHOT_BODY_LIMIT", 100)
    assert_error(client.post("/_sim/snapshot", data=b"{" + b" " * 200 + b"}",
                             content_type="application/json"), 413, field="(body)")


@pytest.mark.parametrize("body, problem", [
    (b"", "is empty"), (b"{nope", "line 1"), (b"[]", "must be a JSON object")])
def test_unreadable_bodies_are_400(client, body, problem):
    answer = client.post("/_sim/snapshot", data=body, content_type="application/json")
    assert answer.status_code == 400
    assert problem in json.dumps(answer.get_json())


# --- refusing bad snapshots ------------------------------------------------------------

def _tamper(doc: dict, how: str) -> None:
    if how == "version":
        doc["version"] = 2
    elif how == "format":
        doc["format"] = "something-else"
    elif how == "unknown user":
        doc["grades"][0]["user_id"] = "f" * 24
        doc["grades"][0]["record"]["userID"] = "f" * 24
    elif how == "teacher grade":
        teacher = next(u for u in doc["roster"]["users"] if "teacher" in u["roles"])
        doc["grades"][0]["user_id"] = teacher["id"]
        doc["grades"][0]["record"]["userID"] = teacher["id"]
    elif how == "missing key":
        del doc["tokens"]
    elif how == "missing field":
        del doc["apps"][0]["client_secret"]
    elif how == "wrong type":
        doc["grades"][1]["version"] = "2"
    elif how == "bad url":
        doc["apps"][1]["redirect_uris"] = ["not a url"]
    elif how == "token kind":
        doc["tokens"][0]["kind"] = "admin"
    elif how == "token app":
        doc["tokens"][-1]["client_id"] = "nobody"
    elif how == "history orphan":
        doc["grade_history"][0]["grade_id"] = "0" * 24
        doc["grade_history"][0]["record"]["id"] = "0" * 24
    elif how == "link section":
        doc["schoology_assignments"][0]["section_id"] = "e" * 24
        doc["schoology_assignments"][0]["data"]["section_id"] = "e" * 24
    elif how == "duplicate grade":
        doc["grades"].append({**doc["grades"][0], "id": "1" * 24, "seq": 99,
                              "record": {**doc["grades"][0]["record"], "id": "1" * 24}})
    elif how == "roster":
        doc["roster"]["users"][0]["district"] = "d" * 24
    elif how == "roster course with a nul":
        doc["roster"]["sections"][0]["course"] += "\u0000"
    elif how == "roster v2 id with a nul":
        admin = next(u for u in doc["roster"]["users"] if "legacy_id" in u["roles"].get("district_admin", {}))
        admin["roles"]["district_admin"]["legacy_id"] = "admin\u00001"
    elif how == "extra key":
        doc["journal"] = []
    elif how == "clock":
        doc["clock_offset_s"] = -5
    else:  # pragma: no cover
        raise AssertionError(how)


TAMPERED = [
    ("version", "$.version", "is 2; this clever-sim reads version 1"),
    ("format", "$.format", "must be 'clever-sim-snapshot'"),
    ("unknown user", "$.grades[0].user_id", "no user 'ffffffffffffffffffffffff' in $.roster.users"),
    ("teacher grade", "$.grades[0].user_id", "is not a student"),
    ("missing key", "$.tokens", "is missing"),
    ("missing field", "$.apps[0].client_secret", "is missing"),
    ("wrong type", "$.grades[1].version", 'must be a whole number ≥ 1, not the string "2"'),
    ("bad url", "$.apps[1].redirect_uris[0]", "is not an absolute http(s) URL"),
    ("token kind", "$.tokens[0].kind", 'must be "il" or "district"'),
    ("token app", "$.tokens[", "no app 'nobody' in $.apps"),
    ("history orphan", "$.grade_history[0].grade_id", "in $.grades"),
    ("link section", "$.schoology_assignments[0].section_id", "in $.roster.sections"),
    ("duplicate grade", "$.grades[2]", "a second grade for the same app, student and assignment"),
    ("roster", "$.roster.users[0].district", ""),
    ("roster course with a nul", "$.roster.sections[0].course", "is not a valid id"),
    ("roster v2 id with a nul", "$.roster.users[", 'v2 id "admin\\u00001" of user'),
    ("extra key", "$.journal", "unknown key"),
    ("clock", "$.clock_offset_s", "must be a number of seconds"),
]


@pytest.mark.parametrize("how, path, problem", TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_snapshot_is_refused_with_its_path_and_changes_nothing(
        client, busy, sim, student, how, path, problem):
    doc = client.get("/_sim/snapshot").get_json()
    bad = copy.deepcopy(doc)
    _tamper(bad, how)
    # the simulator moves on (other grades), then refuses the snapshot: nothing changes
    client.post("/_sim/reset", json={})
    grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "kept", "percentage": 0.1})
    state = comparable(client.get("/_sim/snapshot").get_json())
    answer = client.post("/_sim/snapshot", json=bad)
    body = assert_error(answer, 400, "Invalid snapshot: nothing was loaded")
    assert any(e["field"].startswith(path) and problem in e["problem"] for e in body["errors"]), body
    assert comparable(client.get("/_sim/snapshot").get_json()) == state
    with pytest.raises(snap.SnapshotError) as caught:
        snap.import_state(sim, bad)
    assert any(p.path.startswith(path) for p in caught.value.problems)


def test_non_object_snapshot_is_refused(sim):
    with pytest.raises(snap.SnapshotError, match=r"^\$: a snapshot must be a JSON object"):
        snap.import_state(sim, [])


def test_a_failed_write_restores_the_roster_and_keeps_the_old_state(client, sim, busy, monkeypatch):
    roster = generate_roster(schools=1, teachers=1, students=3, sections=1, seed=5)
    source = new_app(ROSTER=roster)
    try:
        doc = source.test_client().get("/_sim/snapshot").get_json()
    finally:
        source.extensions["clever_sim"].close()
    state = comparable(client.get("/_sim/snapshot").get_json())
    districts = sim.district_ids

    def boom():
        raise RuntimeError("disk full")

    monkeypatch.setattr(sim.store, "clear_caches", boom)  # fails inside the one transaction
    with pytest.raises(RuntimeError, match="disk full"):
        snap.import_state(sim, doc)
    monkeypatch.undo()
    assert comparable(client.get("/_sim/snapshot").get_json()) == state
    assert sim.district_ids == districts
    assert client.get("/v3.0/me", headers=bearer(busy["il_token"])).status_code == 200



def another_roster_snapshot(seed: int = 5) -> dict:
    """A snapshot of a simulator on a generated roster, with a grade and a linked assignment."""
    roster = generate_roster(schools=1, teachers=1, students=3, sections=1, seed=seed)
    source = new_app(ROSTER=roster)
    try:
        sim = source.extensions["clever_sim"]
        src = source.test_client()
        student = next(u for u in roster["users"] if "student" in u["roles"])
        grade_ok(src, il_token(sim, student["id"]), {"assignmentID": "r1", "percentage": 0.4})
        app = sim.store.get_app(roster["apps"][0]["client_id"]) if roster.get("apps") else \
            sim.store.list_apps()[0]
        assert src.post("/_sim/links", json={"section_id": roster["sections"][0]["id"],
                                             "client_id": app.client_id,
                                             "assignment_id": "r1"}).status_code in (200, 201)
        return src.get("/_sim/snapshot").get_json()
    finally:
        source.extensions["clever_sim"].close()


def test_a_load_that_fails_late_leaves_roster_and_grades_as_they_were(client, sim, busy, monkeypatch):
    """The roster is replaced first, in the same transaction as everything else: a database
    error on the last insert (the links) rolls the new roster back with the rest."""
    import sqlite3
    from contextlib import contextmanager

    doc = another_roster_snapshot()
    assert doc["schoology_assignments"]  # the failing insert has rows to write
    before = comparable(snap.export_state(sim))
    assert before["roster"] != doc["roster"]
    districts, digest = sim.district_ids, sim.store.get_meta("roster_digest")
    seen: list[str] = []

    class FailingLinks:
        """The transaction's connection, except that inserting links fails (disk full)."""

        def __init__(self, conn):
            self._conn = conn

        def __getattr__(self, name):
            return getattr(self._conn, name)

        def executemany(self, sql, rows):
            seen.append(sql.split("(")[0])
            if sql.startswith("INSERT INTO schoology_assignments"):
                raise sqlite3.OperationalError("database or disk is full")
            return self._conn.executemany(sql, rows)

    real = sim.store.transaction

    @contextmanager
    def transaction():
        with real() as db:
            yield FailingLinks(db)

    monkeypatch.setattr(sim.store, "transaction", transaction)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        snap.import_state(sim, doc)
    monkeypatch.undo()
    assert "INSERT INTO users" in seen and "INSERT INTO grades" in seen  # the roster part ran

    after = comparable(snap.export_state(sim))
    for part in ("roster", "apps", "tokens", "grades", "grade_history", "schoology_assignments"):
        assert after[part] == before[part], part
    assert sim.store.get_meta("roster_digest") == digest
    assert sim.district_ids == districts
    # the simulator goes on as before: the token works, the next grade follows the old ones
    assert client.get("/v3.0/me", headers=bearer(busy["il_token"])).status_code == 200
    again = grade_ok(client, busy["il_token"], {"assignmentID": "a1", "percentage": 1})
    assert again["version"] == 3
    assert max(g["seq"] for g in snap.export_state(sim)["grades"]) == \
        max(g["seq"] for g in before["grades"]) + 1


_KILL_MID_LOAD = """
import json, os, sys
from simulator import snapshot as snap
from simulator import snapshot_schema
from simulator.store import Store

def die():  # the last step inside the load's transaction: the process dies before COMMIT
    os._exit(17)

Store.clear_caches = lambda self: die()
doc = json.load(open(sys.argv[2]))
with snap.DatabaseState(sys.argv[1]) as state:
    snap.import_state(state, doc)
"""


@pytest.mark.slow
def test_a_process_killed_mid_load_leaves_the_previous_state_on_disk(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    db = str(tmp_path / "sim.db")
    app = with_snapshot_routes(create_app({"DB": db}, environ={}))
    sim = app.extensions["clever_sim"]
    try:
        student = next(u for u in sim.roster["users"] if "student" in u["roles"])
        grade_ok(app.test_client(), il_token(sim, student["id"]),
                   {"assignmentID": "k1", "percentage": 0.3})
    finally:
        sim.close()
    with snap.DatabaseState(db) as state:
        before = comparable(snap.export_state(state))
    file = tmp_path / "other.json"
    file.write_text(json.dumps(another_roster_snapshot()))

    root = str(Path(snap.__file__).resolve().parents[1])
    child = subprocess.run([sys.executable, "-c", _KILL_MID_LOAD, db, str(file)], cwd=root,
                           env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == 17, child.stderr

    with snap.DatabaseState(db) as state:
        assert comparable(snap.export_state(state)) == before


def test_a_load_that_changes_the_roster_gives_the_simulator_its_districts(sim, client):
    doc = another_roster_snapshot()
    wanted = [d["id"] for d in doc["roster"]["districts"]]
    assert sim.district_ids != wanted
    loaded = snap.import_state(sim, doc)
    assert loaded["roster_replaced"] is True
    assert sim.district_ids == wanted
    assert client.get("/_sim/health").get_json()["districts"] == len(wanted)
    # loading the same roster again changes nothing about them
    assert snap.import_state(sim, doc)["roster_replaced"] is False
    assert sim.district_ids == wanted


def test_a_state_replacement_that_fails_midway_keeps_the_old_roster_and_grades(sim, client,
                                                                               student):
    grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "h1", "percentage": 0.5})
    before, districts = sim.roster, sim.district_ids
    other = generate_roster(schools=1, teachers=1, students=1, sections=1, seed=9)
    with pytest.raises(RuntimeError, match="disk full"):
        with sim.clever.replacing_state(other, dict) as load:
            assert load.roster_replaced is True  # written, not yet committed
            raise RuntimeError("disk full")
    assert sim.roster == before and sim.district_ids == districts
    assert [g.assignment_id for g in sim.clever.grades()] == ["h1"]


# --- the CLI ---------------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(snapshot_cli, list(args), catch_exceptions=False)


@pytest.fixture
def live():
    """Two simulators on free ports (waitress), as `clever-sim serve` would run them."""
    servers = [start_in_thread(new_app()) for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def test_cli_save_and_load_through_running_simulators(live, tmp_path):
    source, target = live
    sim = source.app.extensions["clever_sim"]
    student = next(u for u in sim.roster["users"] if "student" in u["roles"])
    token = il_token(sim, student["id"])
    http = httpx.Client(trust_env=False, timeout=10)
    assert http.post(source.url + "/v1/grade", json={"assignmentID": "c1", "percentage": 0.75},
                     headers=bearer(token)).status_code == 200
    file = tmp_path / "state.json"
    saved = invoke("save", str(file), "--url", source.url)
    assert saved.exit_code == 0, saved.output
    assert f"saved {source.url} to {file}" in saved.output and "1 grade(s) (1 version(s))" in saved.output
    assert json.loads(file.read_text())["grades"][0]["record"]["lti_score"] == "0.75"

    loaded = invoke("load", str(file), "--url", target.url)
    assert loaded.exit_code == 0, loaded.output
    assert f"loaded {file} into {target.url}" in loaded.output
    grades = http.get(target.url + "/_sim/grades").json()["data"]
    assert [g["lti_score"] for g in grades] == ["0.75"]
    assert http.get(target.url + "/v3.0/me", headers=bearer(token)).status_code == 200


def test_cli_save_to_stdout(live):
    result = CliRunner().invoke(snapshot_cli, ["save", "-", "--url", live[0].url])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["format"] == "clever-sim-snapshot"


def test_cli_save_and_load_against_database_files(tmp_path):
    db = str(tmp_path / "sim.db")
    app = with_snapshot_routes(create_app({"DB": db}, environ={}))
    sim = app.extensions["clever_sim"]
    client = app.test_client()
    client.post("/_sim/apps", json=CUSTOM_APP)
    student = next(u for u in sim.roster["users"] if "student" in u["roles"])
    token = il_token(sim, student["id"], sim.store.get_app("mathly-dev"))
    grade_ok(client, token, {"assignmentID": "d1", "percentage": 0.6})
    grade_ok(client, token, {"assignmentID": "d1", "percentage": 0.7})
    expected = comparable(client.get("/_sim/snapshot").get_json())
    sim.close()

    file = tmp_path / "state.json"
    saved = invoke("save", str(file), "--db", db)
    assert saved.exit_code == 0, saved.output
    assert comparable(json.loads(file.read_text())) == {**expected, "clock_offset_s": 0.0}

    new_db = str(tmp_path / "new" / "loaded.db")
    loaded = invoke("load", str(file), "--db", new_db)
    assert loaded.exit_code == 0, loaded.output
    assert "2 version(s)" in loaded.output

    served = create_app({"DB": new_db}, environ={})  # as `clever-sim serve --db` opens it
    try:
        c = served.test_client()
        assert c.get("/v3.0/me", headers=bearer(token)).get_json()["data"]["id"] == student["id"]
        grades = c.get("/_sim/grades").get_json()["data"]
        assert [(g["assignmentID"], g["version"], g["lti_score"]) for g in grades] == [("d1", 2, "0.7")]
        assert c.get("/_sim/apps/mathly-dev").get_json()["client_secret"] == "mathly-secret"
    finally:
        served.extensions["clever_sim"].close()


def test_cli_load_into_a_database_checks_the_snapshot_once_before_opening_it(
        sim, tmp_path, monkeypatch):
    file = tmp_path / "state.json"
    snap.write_snapshot_file(snap.export_state(sim), file)
    checks = []
    validate = snapshot_schema.validate
    monkeypatch.setattr(snapshot_schema, "validate", lambda doc: checks.append(1) or validate(doc))

    loaded = invoke("load", str(file), "--db", str(tmp_path / "loaded.db"))
    assert loaded.exit_code == 0, loaded.output
    assert len(checks) == 1  # not again inside import_state

    doc = json.loads(file.read_text())
    doc["grades"] = [{"id": "g"}]
    file.write_text(json.dumps(doc))
    refused = invoke("load", str(file), "--db", str(tmp_path / "refused.db"))
    assert refused.exit_code == 2 and "$.grades[0].user_id: is missing" in refused.output
    assert not (tmp_path / "refused.db").exists()


def test_cli_errors_are_clear_and_exit_2(tmp_path, live):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    file = tmp_path / "s.json"

    down = invoke("save", str(file), "--url", f"http://127.0.0.1:{port}")
    assert down.exit_code == 2
    assert f"cannot reach the simulator at http://127.0.0.1:{port}" in down.output
    assert "Traceback" not in down.output and not file.exists()

    assert invoke("save", str(file), "--url", live[0].url).exit_code == 0
    doc = json.loads(file.read_text())
    doc["grade_history"] = [{"seq": 1, "grade_id": "nope", "version": 1, "record": {},
                             "received_at": "t"}]
    doc["version"] = 1
    doc["apps"][0]["scopes"] = "read:user_id"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    refused = invoke("load", str(bad), "--url", live[1].url)
    assert refused.exit_code == 2
    assert "not a loadable snapshot (2 problem(s)); nothing was changed" in refused.output
    assert "$.apps[0].scopes:" in refused.output
    assert "$.grade_history[0].grade_id: no grade 'nope' in $.grades" in refused.output

    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "clever-sim-snapshot",\n "version": 1,,}')
    result = invoke("load", str(broken), "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 2 and "is not valid JSON" in result.output and "line 2" in result.output
    assert not (tmp_path / "x.db").exists()

    missing = invoke("load", str(tmp_path / "nothing.json"), "--url", live[1].url)
    assert missing.exit_code == 2 and "no such file" in missing.output

    both = invoke("save", str(file), "--url", live[0].url, "--db", "x.db")
    assert both.exit_code == 2 and "not both" in both.output

    no_db = invoke("save", str(file), "--db", str(tmp_path / "absent.db"))
    assert no_db.exit_code == 2 and "no database at" in no_db.output


def test_cli_load_from_stdin(live):
    saved = CliRunner().invoke(snapshot_cli, ["save", "-", "--url", live[0].url])
    loaded = CliRunner().invoke(snapshot_cli, ["load", "-", "--url", live[1].url], input=saved.stdout)
    assert loaded.exit_code == 0, loaded.output
    assert f"loaded - into {live[1].url}" in loaded.output


def test_cli_load_of_a_snapshot_over_the_server_cap_says_to_use_db(live, tmp_path):
    """The server refuses bodies over 1 MiB before reading them (resource limits), so a big
    snapshot goes in through the database file instead; the CLI says so."""
    source, target = live
    sim = source.app.extensions["clever_sim"]
    student = next(u for u in sim.roster["users"] if "student" in u["roles"])
    token = il_token(sim, student["id"])
    for i in range(40):  # ~40 grades of 40 KiB context each: over 1.5 MiB in all
        assert httpx.post(source.url + "/v1/grade", trust_env=False, headers=bearer(token),
                          json={"assignmentID": f"big{i}", "percentage": 0.5,
                                "notes": "x" * 40_000}).status_code == 200
    file = tmp_path / "big.json"
    assert invoke("save", str(file), "--url", source.url).exit_code == 0
    assert file.stat().st_size > 1024 * 1024
    loaded = invoke("load", str(file), "--url", target.url)
    assert loaded.exit_code == 2, loaded.output
    assert "--db" in loaded.output and "Traceback" not in loaded.output
    assert httpx.get(target.url + "/_sim/grades", trust_env=False).json()["data"] == []


ROSTER_NOTE = ("note: the roster was replaced by the snapshot's; `clever-sim serve` reloads its "
               "configured roster at start-up when that differs, so serve this database with "
               "the roster the snapshot was made with (--roster)\n")


@pytest.fixture
def snapshots(tmp_path):
    """Snapshot files of the packaged roster (``same.json``) and of another (``other.json``)."""
    for name, settings in (("same", {}), ("other", {"ROSTER": generate_roster(
            schools=1, teachers=2, students=4, sections=2, seed=3)})):
        app = new_app(**settings)
        try:
            snap.write_snapshot_file(snap.export_state(app.extensions["clever_sim"]),
                                     tmp_path / f"{name}.json")
        finally:
            app.extensions["clever_sim"].close()
    return tmp_path


def _load_into_db(folder, snapshot: str, db: str) -> str:
    if db == "existing.db":  # a database `clever-sim serve` made with the packaged roster
        create_app({"DB": str(folder / db)}, environ={}).extensions["clever_sim"].close()
    result = invoke("load", str(folder / snapshot), "--db", str(folder / db))
    assert result.exit_code == 0, result.output
    return result.stderr


# (snapshot file, database, whether the roster changed and the note is printed)
NOTE_CASES = [
    ("same.json", "existing.db", False),
    ("other.json", "existing.db", True),
    ("same.json", "new.db", True),  # a new database had no roster: the snapshot's was stored
]


@pytest.mark.parametrize("snapshot, db, noted", NOTE_CASES)
def test_cli_load_into_a_database_notes_a_replaced_roster_only(snapshots, snapshot, db, noted):
    assert _load_into_db(snapshots, snapshot, db) == (ROSTER_NOTE if noted else "")


@pytest.mark.parametrize("snapshot, noted", [("same.json", False), ("other.json", True)])
def test_cli_load_into_a_running_simulator_notes_a_replaced_roster_only(live, snapshots, snapshot,
                                                                        noted):
    result = invoke("load", str(snapshots / snapshot), "--url", live[1].url)
    assert result.exit_code == 0, result.output
    assert result.stderr == (ROSTER_NOTE if noted else "")
    again = invoke("load", str(snapshots / snapshot), "--url", live[1].url)
    assert again.stderr == ""  # the roster it holds now is the snapshot's
