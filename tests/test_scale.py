"""Scale: a generated mid-size district (20 schools, 600 teachers, 4,000 students) with tens of
thousands of grades.  Every list pages, and every query the data API, the control API, the
gradebook, the inspector and the persona pickers run is answered from an index — checked
with EXPLAIN QUERY PLAN on the very statements the requests ran (no wall-clock limits:
bench/scale.py measures the times at full size).
"""

from __future__ import annotations

import json
import random
import re
from contextlib import contextmanager

import pytest


from simulator import roster as roster_mod
from simulator.app import create_app
from simulator.roster_gen import generate_roster, write_roster
from conftest import bearer, log_in

SIZES = {"schools": 20, "teachers": 600, "students": 4000, "sections": 800}
GRADES_PER_STUDENT = 10  # 40,000 current grades (+ history)
ASSIGNMENTS = [f"unit{k:02d}" for k in range(GRADES_PER_STUDENT)]
# Tables that grow with the district or the traffic: never read whole.
BIG = {"users", "people", "school_people", "sections", "section_members", "grades",
       "grade_history", "schoology_assignments", "tokens", "auth_codes"}


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A file-backed simulator with the mid-size roster, grades, links and a full journal."""
    tmp = tmp_path_factory.mktemp("scale")
    doc = generate_roster(seed=2, **SIZES)
    path = tmp / "roster.json"
    with open(path, "w", encoding="utf-8") as fh:
        write_roster(doc, fh)
    app = create_app({"DB": str(tmp / "scale.db"), "ROSTER": str(path), "SECRET_KEY": "t",
                      "JOURNAL_CAP": 2000, "JOURNAL_MAX_MB": 64}, environ={})
    sim = app.extensions["clever_sim"]
    client = app.test_client()
    client_id = doc["apps"][0]["client_id"]
    district = doc["districts"][0]["id"]
    dtoken = sim.store.district_tokens(client_id, district)[0].access_token
    sections = sorted(doc["sections"], key=lambda s: -len(s["students"]))
    section = sections[0]
    for s in sections[:30]:
        for a in ASSIGNMENTS[:4]:
            assert client.post("/_sim/links", json={"section_id": s["id"], "client_id": client_id,
                                                    "assignment_id": a}).status_code == 201
    resp = client.post("/v1/grade", headers=bearer(dtoken),
                       json={"assignmentID": "template", "userID": section["students"][0],
                             "percentage": 0.5})
    assert resp.status_code == 200
    _bulk_grades(sim, resp.get_json()["data"], client_id,
                 [u for u in doc["users"] if "student" in u["roles"]])
    for i in range(2200):  # real POSTs: overwrites, and a journal past its cap
        student = section["students"][i % len(section["students"])]
        assert client.post("/v1/grade", headers=bearer(dtoken),
                           json={"assignmentID": ASSIGNMENTS[i % 4], "userID": student,
                                 "percentage": (i % 100) / 100}).status_code == 200
    yield {"app": app, "sim": sim, "client": client, "doc": doc, "dtoken": dtoken,
           "district": district, "section": section, "client_id": client_id, "path": path,
           "db": tmp / "scale.db"}
    sim.close()


def _bulk_grades(sim, template: dict, client_id: str, students: list[dict]) -> None:
    rng = random.Random(3)
    store = sim.store
    seq = store.max_grade_seq()
    rows = []
    for a in ASSIGNMENTS:
        for u in students:
            seq += 1
            gid = f"{rng.getrandbits(96):024x}"
            pct = rng.randint(0, 100) / 100
            text = json.dumps({**template, "id": gid, "assignmentID": a, "userID": u["id"],
                               "district": u["district"], "percentage": pct,
                               "lti_score": str(pct), "version": 1})
            rows.append((gid, client_id, u["id"], a, u["district"], text, seq))
    with store.transaction() as db:
        db.executemany("INSERT INTO grades(id, client_id, user_id, assignment_id, district_id, "
                       "version, record, created, updated, seq) VALUES (?, ?, ?, ?, ?, 1, ?, 'c', 'u', ?)",
                       rows)  # the insert trigger appends each one's history row
        db.execute("ANALYZE")
    store.clear_caches()  # written behind the store's back: let it re-read


# --- query plans -------------------------------------------------------------------------

@contextmanager
def statements(sim):
    """Collect the SQL (with values) the store runs on this thread's connection (held for
    the block: the test client serves on this thread, so every query uses it)."""
    with sim.store.connection() as conn:
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        try:
            yield seen
        finally:
            conn.set_trace_callback(None)


def plan(sim, sql: str) -> list[str]:
    with sim.store.connection() as conn:
        return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]


def full_scans(sim, sql: str) -> list[str]:
    """Plan steps that read a big table or index from end to end."""
    out = []
    bounded = re.search(r"\bLIMIT\b", sql, re.I) is not None
    for step in plan(sim, sql):
        m = re.match(r"SCAN (\w+)", step)
        if not m or m.group(1) not in BIG:
            continue
        if "USING" in step and bounded:  # an index walked in order, stopped by LIMIT
            continue
        out.append(step)
    return out


def selects(seen: list[str]) -> list[str]:
    return [s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))]


def assert_indexed(big, *paths, headers=None, expect: dict[str, str] | None = None):
    """GET each path (200) and check every SELECT it ran; ``expect`` maps a SQL fragment to
    the index its plan must name."""
    sim, client = big["sim"], big["client"]
    with statements(sim) as seen:
        for path in paths:
            resp = client.get(path, headers=headers or {})
            assert resp.status_code == 200, (path, resp.status_code, resp.get_data(as_text=True)[:300])
    queries = selects(seen)
    assert queries, paths
    for sql in queries:
        assert not full_scans(sim, sql), (sql, plan(sim, sql))
    for fragment, index in (expect or {}).items():
        matching = [q for q in queries if fragment in q]
        assert matching, (fragment, queries)
        for q in matching:
            assert any(index in step for step in plan(sim, q)), (q, plan(sim, q))
    return queries


def test_data_api_lists_page_on_indexes(big):
    users = sorted(u["id"] for u in big["doc"]["users"])
    middle = users[len(users) // 2]
    auth = bearer(big["dtoken"])
    queries = assert_indexed(
        big, "/v3.0/users", f"/v3.0/users?starting_after={middle}",
        f"/v3.0/users?ending_before={middle}", "/v3.0/users?role=teacher&limit=500",
        f"/v2.1/students?starting_after={middle}", "/v2.1/teachers?limit=50",
        "/v3.0/sections?limit=200",
        f"/v3.0/sections?starting_after={big['section']['id']}", "/v3.0/schools", "/v3.0/terms",
        f"/v3.0/users/{middle}", f"/v3.0/sections/{big['section']['id']}", headers=auth,
        expect={"FROM users t WHERE t.district_id": "users_district",
                "r.role = 'teacher'": "SEARCH r USING",  # people by role: user_roles' keys
                "JOIN legacy_ids l": "l USING INDEX sqlite_autoindex_legacy_ids_1",  # v2 id order
                "FROM sections t WHERE t.district_id": "sections_district",
                "FROM terms t WHERE t.district_id": "terms_district"})
    for sql in queries:  # pages come straight off an index: nothing sorted
        if "ORDER BY" in sql:
            assert not [s for s in plan(big["sim"], sql) if "TEMP B-TREE" in s], (sql, plan(big["sim"], sql))


def test_every_user_of_the_district_pages_exactly_once_both_ways(big):
    auth = bearer(big["dtoken"])
    want = sorted(u["id"] for u in big["doc"]["users"])
    seen, uri = [], "/v3.0/users?limit=1000"
    while uri:
        body = big["client"].get(uri, headers=auth).get_json()
        seen += [row["data"]["id"] for row in body["data"]]
        uri = next((link["uri"] for link in body["links"] if link["rel"] == "next"), None)
    assert seen == want
    back, uri = [], f"/v3.0/users?limit=700&ending_before={want[-1]}"
    while uri:
        body = big["client"].get(uri, headers=auth).get_json()
        back = [row["data"]["id"] for row in body["data"]] + back
        uri = next((link["uri"] for link in body["links"] if link["rel"] == "prev"), None)
    assert back == want[:-1]


def test_control_api_grades_personas_and_history_use_indexes(big):
    section = big["section"]
    student = section["students"][1]
    newest = big["sim"].store.max_grade_seq()
    assert_indexed(
        big, f"/_sim/grades?user_id={student}", "/_sim/grades?assignment_id=unit07&limit=100",
        f"/_sim/grades?user_id={student}&assignment_id=unit02",
        f"/_sim/grades?after_seq={newest - 50}",
        f"/_sim/grades/wait?user_id={student}&assignment_id=unit01&timeout=0",
        "/_sim/personas", "/_sim/personas?role=teacher&limit=50",
        f"/_sim/personas?district_id={big['district']}&role=student&limit=50",
        expect={f"FROM grades g WHERE g.user_id = '{student}' ORDER BY": "grades_user",
                "WHERE g.assignment_id = 'unit07'": "grades_by_assignment",
                # the write order: grade_writes' rowid, then each grade by its id
                "FROM grade_writes w CROSS JOIN grades g": "SEARCH w USING INTEGER PRIMARY KEY",
                "r.role = 'teacher' ORDER BY": "user_roles_any_district",  # any district, by id
                "m.user_n = u.n CROSS JOIN sections s ON s.n = m.section_n WHERE u.id IN":
                    "section_members_user"})
    grade = big["client"].get(f"/_sim/grades?user_id={student}").get_json()["data"][0]
    assert_indexed(big, f"/_sim/grades/{grade['id']}/history",
                   f"/_sim/grades/{grade['id']}/history?after_version=1&limit=5",
                   expect={"FROM grade_history WHERE grade_id": "grade_history_grade"})


def test_control_lists_page_with_cursors(big):
    client = big["client"]
    first = client.get("/_sim/personas?limit=250").get_json()
    assert len(first["data"]) == 250 and first["has_more"]
    everyone, uri = [], "/_sim/personas?role=teacher&limit=250"
    while uri:
        body = client.get(uri).get_json()
        everyone += body["data"]
        uri = next((link["uri"] for link in body["links"] if link["rel"] == "next"), None)
    teachers = sorted(u["id"] for u in big["doc"]["users"] if "teacher" in u["roles"])
    assert [p["id"] for p in everyone] == teachers
    assert all(p["role"] == "teacher" for p in everyone)
    assert len(client.get("/_sim/personas").get_json()["data"]) == 1000  # the default page
    for bad in ("limit=0", "limit=10001", "starting_after=nope"):
        assert client.get(f"/_sim/personas?{bad}").status_code == 400
    grades, after = [], None
    while True:
        body = client.get("/_sim/grades?assignment_id=unit05&limit=900"
                          + (f"&after_seq={after}" if after else "")).get_json()
        grades += body["data"]
        if not body["has_more"]:
            break
        after = body["next_after_seq"]
    assert len(grades) == SIZES["students"] == len({g["userID"] for g in grades})
    assert [g["seq"] for g in grades] == sorted(g["seq"] for g in grades)


def test_gradebook_pages_use_indexes_and_the_section_list_pages(big):
    section = big["section"]
    log_in(big["client"], section["teacher"])  # a gradebook is its teachers' page
    queries = assert_indexed(
        big, "/schoology/gradebook", f"/schoology/gradebook?after={section['id']}",
        f"/schoology/sections/{section['id']}/gradebook",
        f"/schoology/sections/{section['id']}/gradebook.json",
        f"/schoology/sections/{section['id']}/gradebook.csv")
    assert any("FROM grades g WHERE g.user_id" in q for q in queries)
    doc = big["client"].get(f"/schoology/sections/{section['id']}/gradebook.json").get_json()
    assert len(doc["students"]) == len(set(section["students"]))
    cell = doc["cells"][0]
    assert_indexed(big, cell["detail_url"])
    seen, after = [], None
    while True:
        page = big["client"].get("/schoology/gradebook" + (f"?after={after}" if after else ""))
        ids = re.findall(r'/schoology/sections/([0-9a-f]{24})/gradebook"', page.get_data(as_text=True))
        seen += list(dict.fromkeys(ids))
        nxt = re.search(r'\?after=([0-9a-f]{24})', page.get_data(as_text=True))
        if not nxt or len(seen) >= SIZES["sections"]:
            break
        after = nxt.group(1)
    assert sorted(seen) == sorted(s["id"] for s in big["doc"]["sections"])
    log_in(big["client"], None)  # the module's other tests start logged out


def test_inspector_and_journal_page_without_touching_the_database(big):
    sim, client = big["sim"], big["client"]
    assert len(sim.journal) == sim.journal.cap == 2000 and sim.journal.dropped > 0
    student = big["section"]["students"][2]
    with statements(sim) as seen:
        for path in ("/inspector", "/inspector?page=40", f"/inspector?user={student}",
                     "/_sim/journal?limit=100", f"/_sim/journal?user_id={student}&limit=10"):
            assert client.get(path).status_code == 200
    for sql in selects(seen):
        assert not full_scans(sim, sql), (sql, plan(sim, sql))
    newest = client.get("/_sim/journal?limit=1").get_json()["data"][0]["id"]
    body = client.get(f"/_sim/journal?after_id={newest - 300}&limit=100").get_json()
    ids = [e["id"] for e in body["data"]]
    assert ids == list(range(newest, newest - 100, -1)) and body["total"] == 300


def test_persona_pickers_list_one_school_at_a_time_from_indexes(big):
    doc = big["doc"]
    school = doc["schools"][0]
    def schools_of(user: dict) -> set:
        data = next(iter(user["roles"].values()))
        return {data.get("school"), *data.get("schools", [])}

    at_school = [u for u in doc["users"] if school["id"] in schools_of(u)]
    app_id = big["client_id"]
    login = (f"/oauth/authorize?response_type=code&client_id={app_id}"
             f"&sim_district={big['district']}&sim_school={school['id']}")
    queries = assert_indexed(big, login, f"/schoology?school={school['id']}",
                             expect={"FROM school_people sp JOIN people": "PRIMARY KEY"})
    assert queries
    page = big["client"].get(login).get_data(as_text=True)
    shown = re.findall(r'data-user-id="([0-9a-f]{24})"', page)
    assert shown and len(shown) == min(200, len(at_school))
    assert set(shown) <= {u["id"] for u in at_school}
    if len(at_school) > 200:
        assert "sim_page=2" in page
    home = big["client"].get("/schoology").get_data(as_text=True)
    assert home.count("<option") < 200  # schools only, no 4,600 people
    assert "pick a school or search" in home
    found = big["client"].get("/schoology?q=" + doc["users"][5]["name"]["last"]).get_data(as_text=True)
    assert f'value="{doc["users"][5]["id"]}"' in found or "Only the first" in found


def test_restart_on_the_same_database_does_not_parse_the_roster_again(big, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the roster file was parsed again")

    monkeypatch.setattr(roster_mod, "_parse_json_text", refuse)
    monkeypatch.setattr(roster_mod, "validate_roster", refuse)
    again = create_app({"DB": str(big["db"]), "ROSTER": str(big["path"]), "SECRET_KEY": "t"},
                       environ={})
    try:
        sim = again.extensions["clever_sim"]
        assert sim.store.count("users") == len(big["doc"]["users"])  # staff and contacts too
        assert sim.district_ids == [big["district"]]
        assert not hasattr(sim, "_roster_doc")
    finally:
        again.extensions["clever_sim"].close()


def test_the_store_holds_the_roster_exactly_and_no_copy_is_kept(big):
    sim = big["sim"]
    assert sim.roster == big["doc"]  # read back from the store, in the file's order
    assert "roster" not in vars(sim)  # a property: nothing resident


def test_data_api_nested_paths_read_on_indexes(big):
    """A teacher's sections and students, a school's sections and users, a section's users, and
    the v2 teacher list (paged by v2 id) never read a big table whole."""
    section = big["section"]
    teacher = section["teachers"][0]
    legacy = big["sim"].store.legacy_ids()[0][teacher]
    assert_indexed(
        big, f"/v3.0/users/{teacher}/sections", f"/v3.0/users/{teacher}/myStudents?limit=50",
        f"/v3.0/sections/{section['id']}/users?role=student", f"/v3.0/schools/{section['school']}/sections",
        f"/v3.0/schools/{section['school']}/users?limit=50",
        "/v2.1/teachers?limit=100", f"/v2.1/teachers/{legacy}/students?limit=50",
        headers=bearer(big["dtoken"]),
        expect={"FROM sections WHERE school_id": "sections_school",
                "JOIN legacy_ids": "legacy_ids"})


def test_membership_reads_follow_the_integer_keys_without_scanning(big):
    sim, store, section = big["sim"], big["sim"].store, big["section"]
    student, teacher = section["students"][0], section["teacher"]
    with statements(sim) as seen:
        assert section["id"] in store.list_user_section_ids(student)
        assert section["id"] in store.list_user_section_ids(teacher, roster_order=True)
        assert section["id"] in store.section_ids_of([student, teacher])[teacher]
        store.clear_caches()
        assert store.is_linked(big["client_id"], ASSIGNMENTS[0], student)
    queries = [q for q in selects(seen) if "section_members" in q]
    assert len(queries) == 4, queries
    for sql in queries:
        assert not full_scans(sim, sql), (sql, plan(sim, sql))
        assert any("section_members_user" in step or "section_members USING PRIMARY KEY" in step
                   or "SEARCH m USING PRIMARY KEY" in step for step in plan(sim, sql)), plan(sim, sql)
