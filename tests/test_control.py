"""Control API (``/_sim/``): health, reset, apps, personas, codes, tokens, links, grades,
wait-for-grade, journal and fault injection."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import SERVERS, assert_error, bearer, il_token, post_grade

from simulator.models import App

PRIMARY = "http://127.0.0.1:5001/clever/callback"


def test_health_reports_ready(client):
    body = client.get("/_sim/health").get_json()
    assert body["status"] == "ok" and body["districts"] == 2 and body["apps"] == 1


# --- apps ----------------------------------------------------------------------------

def test_register_app_generates_clever_style_credentials(client, roster):
    resp = client.post("/_sim/apps", json={"name": "Mathly", "redirect_uris": ["http://localhost:9000/cb"]})
    assert resp.status_code == 201
    app = resp.get_json()
    assert len(app["client_id"]) == 20 and len(app["client_secret"]) == 40
    assert app["primary_redirect_uri"] == "http://localhost:9000/cb"
    assert set(app["district_tokens"]) == {d["id"] for d in roster["districts"]}
    listed = client.get("/_sim/apps").get_json()["data"]
    assert app["client_id"] in [a["client_id"] for a in listed]


def test_registered_app_can_exchange_codes(client):
    app = client.post("/_sim/apps", json={"client_id": "myapp", "client_secret": "s3cret",
                                          "redirect_uris": ["http://localhost:9000/cb"]}).get_json()
    persona = client.get("/_sim/personas?role=student").get_json()["data"][0]
    code = client.post("/_sim/codes", json={"client_id": "myapp", "user_id": persona["id"]}).get_json()
    resp = client.post("/oauth/tokens", data={"code": code["code"], "grant_type": "authorization_code",
                                              "redirect_uri": "http://localhost:9000/cb",
                                              "client_id": app["client_id"], "client_secret": "s3cret"})
    assert resp.status_code == 200


def test_update_app_changes_redirect_uris_and_keeps_secret(client, demo_app):
    resp = client.patch(f"/_sim/apps/{demo_app.client_id}",
                        json={"redirect_uris": ["http://127.0.0.1:7000/cb"]})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["redirect_uris"] == ["http://127.0.0.1:7000/cb"]
    assert body["client_secret"] == demo_app.client_secret


def test_update_app_to_fewer_districts_revokes_their_tokens(client, demo_app, district_id, sim):
    resp = client.patch(f"/_sim/apps/{demo_app.client_id}", json={"districts": [district_id]})
    assert list(resp.get_json()["district_tokens"]) == [district_id]


def test_delete_app_revokes_its_tokens(client, sim, demo_app, student):
    token = il_token(sim, student["id"])
    assert client.delete(f"/_sim/apps/{demo_app.client_id}").status_code == 200
    assert_error(client.get("/oauth/tokeninfo", headers=bearer(token)), 401, "Could not authorize token")


@pytest.mark.parametrize("body, field, problem", [
    ({}, "redirect_uris", "non-empty list"),
    ({"redirect_uris": []}, "redirect_uris", "non-empty list"),
    ({"redirect_uris": ["not a url"]}, "redirect_uris[0]", "absolute http(s) URL"),
    ({"redirect_uris": ["http://x/cb#frag"]}, "redirect_uris[0]", "fragment"),
    ({"redirect_uris": ["http://x/cb"], "name": ""}, "name", "non-empty string"),
    ({"redirect_uris": ["http://x/cb"], "districts": ["ffffffffffffffffffffffff"]}, "districts[0]", "unknown district"),
    ({"redirect_uris": ["http://x/cb"], "assignments_url": "ftp://x"}, "assignments_url", "absolute"),
    ({"redirect_uris": ["http://x/cb"], "colour": "red"}, "colour", "unknown field"),
    ({"redirect_uris": ["http://x/cb"], "scopes": "read:user_id"}, "scopes", "list"),
    ([1, 2], "(body)", "is an array"),
    # control characters, as in roster ids (docs/decisions.md): a final newline too, which
    # Python's ``$`` alone would let through
    *[({"redirect_uris": ["http://x/cb"], field: value}, field, "holds a control character")
      for field in ("client_id", "client_secret")
      for value in ("abc\n", "a\x00b", "tab\there", "del\x7f", "c1\x85", "\r\n")],
    # an id or URL and a final newline: the schema's patterns refuse it (``(?!\n)$``)
    ({"redirect_uris": ["http://x/cb"], "districts": ["ffffffffffffffffffffffff\n"]}, "districts[0]",
     "must be a district id (24 hexadecimal characters)"),
    ({"redirect_uris": ["http://x/cb\n"]}, "redirect_uris[0]", "absolute http(s) URL"),
    ({"redirect_uris": ["http://x/cb"], "assignments_url": "http://x/a\n"}, "assignments_url",
     "absolute http(s) URL"),
])
def test_register_app_rejects_bad_registrations(client, body, field, problem):
    assert_error(client.post("/_sim/apps", json=body), 400, field=field, problem=problem)


@pytest.mark.parametrize("method", ["post", "patch"])
def test_an_app_district_with_a_final_newline_is_refused_as_not_a_district_id(
        client, demo_app, district_id, method):
    """A roster district's id and a newline: refused by the field's pattern, as roster ids
    are, not looked up as an unknown district (Python's ``$`` matches before a final newline)."""
    body = {"districts": [district_id, district_id + "\n"]}
    resp = (client.post("/_sim/apps", json={"redirect_uris": ["http://x/cb"], **body})
            if method == "post" else client.patch(f"/_sim/apps/{demo_app.client_id}", json=body))
    assert resp.status_code == 400
    assert resp.get_json() == {"message": "Invalid app registration", "errors": [{
        "field": "districts[1]", "problem": "must be a district id (24 hexadecimal characters)",
        "hint": "write the roster district's id alone: 24 lowercase hex digits, no space or "
                "newline around it"}]}


@pytest.mark.parametrize("value, problem", [
    ("s" * 201, "is longer than 200 characters"),
    ("line\n", "holds a control character (a newline, tab, NUL, ...)"),
])
def test_a_client_secret_problem_says_what_a_secret_may_hold(client, value, problem):
    """Its fix names what is allowed (a too-long secret was told to "remove it")."""
    resp = client.post("/_sim/apps", json={"redirect_uris": ["http://x/cb"], "client_secret": value})
    assert resp.status_code == 400
    assert resp.get_json()["errors"] == [{
        "field": "client_secret", "problem": problem,
        "hint": "use up to 200 printable characters: the secret travels in Basic auth headers; "
                "or leave client_secret out and one is generated"}]


def test_register_app_takes_printable_client_credentials(client):
    resp = client.post("/_sim/apps", json={"client_id": "mathly-dev:ü ok", "client_secret": "s3cr#t é",
                                           "redirect_uris": ["http://x/cb"]})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["client_id"] == "mathly-dev:ü ok"


def test_register_app_refuses_taken_client_id(client, demo_app):
    resp = client.post("/_sim/apps", json={"client_id": demo_app.client_id, "redirect_uris": ["http://x/cb"]})
    assert_error(resp, 400, "App already registered", field="client_id")


def test_unknown_app_is_404(client):
    assert_error(client.get("/_sim/apps/nope"), 404, "App 'nope' not found", field="client_id")


# --- codes, launches, tokens ---------------------------------------------------------

def test_mint_code_for_a_launch_carries_assignment_state(client, demo_app, student):
    resp = client.post("/_sim/codes", json={"client_id": demo_app.client_id, "user_id": student["id"],
                                            "assignment_id": "unit 3/quiz"})
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["state"] == "assignment:unit 3/quiz"
    url = urlsplit(body["redirect_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == PRIMARY
    assert "state=assignment:unit%203%2Fquiz" in url.query  # prefix literal, id encoded
    assert parse_qs(url.query)["code"] == [body["code"]]


@pytest.mark.parametrize("body, status, field", [
    ({"user_id": "x"}, 400, "client_id"),
    ({"client_id": "CID"}, 400, "user_id"),
    ({"client_id": "CID", "user_id": "ffffffffffffffffffffffff"}, 404, "user_id"),
    ({"client_id": "nope", "user_id": "STUDENT"}, 404, "client_id"),
    ({"client_id": "CID", "user_id": "STUDENT", "redirect_uri": "http://x/"}, 400, "redirect_uri"),
    ({"client_id": "CID", "user_id": "STUDENT", "state": "s", "assignment_id": "a"}, 400, "state"),
    ({"client_id": "CID", "user_id": "STUDENT", "state": 5}, 400, "state"),
])
def test_mint_code_errors(client, demo_app, student, body, status, field):
    body = {k: (demo_app.client_id if v == "CID" else student["id"] if v == "STUDENT" else v)
            for k, v in body.items()}
    assert_error(client.post("/_sim/codes", json=body), status, field=field)


def test_mint_token_reads_me(client, demo_app, teacher):
    resp = client.post("/_sim/tokens", json={"client_id": demo_app.client_id, "user_id": teacher["id"]})
    assert resp.status_code == 201
    info = client.get("/oauth/tokeninfo", headers=bearer(resp.get_json()["access_token"]))
    assert info.get_json()["client_id"] == demo_app.client_id


# --- revoking one token -----------------------------------------------------------------

def district_listing(client, app: App, district: str) -> list[str]:
    resp = client.get(f"/oauth/tokens?owner_type=district&district={district}",
                      auth=(app.client_id, app.client_secret))
    return [t["access_token"] for t in resp.get_json()["data"]]


def test_revoking_an_il_token_makes_it_401_and_leaves_other_tokens_working(client, sim, demo_app,
                                                                           student, district_id):
    token, other = il_token(sim, student["id"]), il_token(sim, student["id"])
    resp = client.delete(f"/_sim/tokens/{token}")
    assert resp.status_code == 200
    assert resp.get_json() == {"revoked": f"il token of user {student['id']}", "kind": "il",
                               "client_id": demo_app.client_id, "district_id": district_id,
                               "user_id": student["id"], "reissued": False}
    assert_error(post_grade(client, token, assignmentID="a1", percentage=0.5), 401,
                 "Could not authorize token")
    assert client.get("/v3.0/me", headers=bearer(other)).status_code == 200


def test_revoking_a_district_token_lists_a_fresh_one_for_the_district(client, sim, demo_app,
                                                                     student, district_id):
    old = district_listing(client, demo_app, district_id)
    assert len(old) == 1
    body = client.delete(f"/_sim/tokens/{old[0]}").get_json()
    assert body["kind"] == "district" and body["reissued"] is True and body["user_id"] is None
    assert body["revoked"] == f"district-app token of district {district_id}"
    fresh = district_listing(client, demo_app, district_id)
    assert len(fresh) == 1 and fresh != old and len(fresh[0]) == 40
    assert_error(post_grade(client, old[0], assignmentID="a1", userID=student["id"],
                            percentage=0.5), 401, "Could not authorize token")
    assert post_grade(client, fresh[0], assignmentID="a1", userID=student["id"],
                      percentage=0.5).status_code == 200
    assert client.get(f"/_sim/apps/{demo_app.client_id}").get_json()["district_tokens"][
        district_id] == fresh[0]


@pytest.mark.parametrize("token", ["nope", "a" * 40, "ilc_" + "x" * 300, "%00", "<script>"])
def test_revoking_an_unknown_token_is_404_naming_the_token(client, token):
    assert_error(client.delete(f"/_sim/tokens/{token}"), 404, "Token not found", field="token",
                 problem="not a token of this simulator")


def test_revoking_a_token_twice_is_404_the_second_time(client, sim, student):
    token = il_token(sim, student["id"])
    assert client.delete(f"/_sim/tokens/{token}").status_code == 200
    assert_error(client.delete(f"/_sim/tokens/{token}"), 404, "Token not found", field="token")


def test_personas_filter_by_role_and_list_sections(client, roster):
    students = client.get("/_sim/personas?role=student").get_json()["data"]
    assert students and all(p["role"] == "student" for p in students)
    assert any(p["sections"] for p in students)
    assert_error(client.get("/_sim/personas?role=admin"), 400, field="role")


# --- Schoology links -----------------------------------------------------------------

def _section_of(roster, student):
    return next(s for s in roster["sections"] if student["id"] in s["students"])


def test_link_assignment_then_grade_is_linked(client, sim, demo_app, roster, student):
    section = _section_of(roster, student)
    resp = client.post("/_sim/links", json={"section_id": section["id"], "client_id": demo_app.client_id,
                                            "assignment_id": "a100001", "name": "Fractions", "max_points": 20})
    assert resp.status_code == 201
    link = resp.get_json()
    assert link["max_points"] == 20 and link["grading_enabled"] is True
    assert client.get(f"/_sim/links?section_id={section['id']}").get_json()["data"][0]["id"] == link["id"]
    resp = post_grade(client, il_token(sim, student["id"]), assignmentID="a100001", percentage=0.5)
    if resp.status_code == 200:  # grades endpoint present
        assert resp.get_json()["data"]["linked"] is True


def test_a_grade_is_linked_once_its_section_links_the_assignment_and_not_after_unlinking(
        client, sim, demo_app, roster, student):
    """The answer is remembered per student: every link change forgets it."""
    token = il_token(sim, student["id"])
    linked = lambda: post_grade(client, token, assignmentID="a-cache", percentage=0.5  # noqa: E731
                                ).get_json()["data"]["linked"]
    other = next(s for s in roster["sections"] if student["id"] not in s["students"])
    body = {"client_id": demo_app.client_id, "assignment_id": "a-cache"}
    assert linked() is False
    client.post("/_sim/links", json={**body, "section_id": other["id"]})
    assert linked() is False  # linked, but in a section the student is not in
    mine = client.post("/_sim/links", json={**body, "section_id": _section_of(roster, student)["id"]})
    assert linked() is True
    assert sim.schoology.unlink(mine.get_json()["id"]) is not None  # the teacher removes it
    assert linked() is False


def test_an_assignment_linked_for_many_students_is_not_read_again_on_every_grade(
        client, sim, demo_app, roster, student, monkeypatch):
    """Two assignments linked in sections whose students outgrow the cache, graded in turn:
    each grade POST read every linked student again (an assignment linked across hundreds
    of sections, e.g. a district-wide benchmark, cost a big query per POST). Now one point
    query per (assignment, student), remembered."""
    from simulator.store import ByteCache

    store = sim.store
    monkeypatch.setattr(store, "_linked", ByteCache(1000))  # a section's students outgrow it
    sections = [s["id"] for s in roster["sections"] if len(s["students"]) >= 6]
    assert student["id"] in {m for s in roster["sections"] if s["id"] in sections for m in s["students"]}
    for assignment in ("bench-a", "bench-b"):
        for section in sections:
            client.post("/_sim/links", json={"client_id": demo_app.client_id, "section_id": section,
                                             "assignment_id": assignment})
    token = il_token(sim, student["id"])
    reads = []
    with store.read() as db:  # :memory:: the one shared connection every request uses
        db.set_trace_callback(lambda sql: reads.append(sql) if "section_members" in sql else None)
    try:
        for i in range(10):
            resp = post_grade(client, token, assignmentID=("bench-a", "bench-b")[i % 2], percentage=0.5)
            assert resp.get_json()["data"]["linked"] is True
    finally:
        with store.read() as db:
            db.set_trace_callback(None)
    assert len(reads) == 2  # one per assignment, then remembered


def test_link_twice_updates_settings(client, demo_app, roster, student):
    section = _section_of(roster, student)
    body = {"section_id": section["id"], "client_id": demo_app.client_id, "assignment_id": "a1"}
    first = client.post("/_sim/links", json=body).get_json()
    second = client.post("/_sim/links", json={**body, "max_points": 50}).get_json()
    assert first["id"] == second["id"] and second["max_points"] == 50


@pytest.mark.parametrize("over, field", [
    ({"section_id": "ffffffffffffffffffffffff"}, "section_id"),
    ({"assignment_id": ""}, "assignment_id"),
    ({"assignment_id": 7}, "assignment_id"),
    ({"max_points": 0}, "max_points"),
    ({"max_points": "10"}, "max_points"),
    ({"grading_type": "vibes"}, "grading_type"),
    ({"grading_category": "nope"}, "grading_category"),
    ({"grading_period": "nope"}, "grading_period"),
    ({"grading_enabled": "yes"}, "grading_enabled"),
    ({"standards": "CCSS"}, "standards"),
])
def test_link_assignment_errors(client, demo_app, roster, student, over, field):
    body = {"section_id": _section_of(roster, student)["id"], "client_id": demo_app.client_id,
            "assignment_id": "a1", **over}
    assert_error(client.post("/_sim/links", json=body), 400, field=field)


# --- grades and waiting --------------------------------------------------------------

def test_wait_for_grade_returns_when_grade_arrives(app, sim, demo_app, student):
    token = il_token(sim, student["id"])
    answers = []
    waiter = threading.Thread(daemon=True, target=lambda: answers.append(app.test_client().get(
        f"/_sim/grades/wait?user_id={student['id']}&assignment_id=w1&timeout=60")))
    waiter.start()
    time.sleep(0.3)  # the wait is open before the grade exists
    app.test_client().post("/v1/grade", json={"assignmentID": "w1", "percentage": 0.7},
                           headers=bearer(token))
    waiter.join(30)  # half the wait's own timeout: it answers on the grade, not at its end
    assert not waiter.is_alive(), "the wait did not answer when the grade arrived"
    body = answers[0].get_json()
    assert body["timed_out"] is False and body["data"]["lti_score"] == "0.7"


def test_wait_for_grade_times_out_with_null(client, student):
    body = client.get(f"/_sim/grades/wait?user_id={student['id']}&timeout=0.2").get_json()
    assert body == {"data": None, "timed_out": True}


@pytest.mark.parametrize("query, field", [("timeout=abc", "timeout"), ("timeout=-1", "timeout"),
                                          ("timeout=999", "timeout"), ("timeout=nan", "timeout"),
                                          ("after_seq=x", "after_seq"), ("user_id=", "user_id")])
def test_wait_for_grade_rejects_bad_params(client, query, field):
    assert_error(client.get(f"/_sim/grades/wait?{query}"), 400, field=field)


def test_grades_list_and_history(client, sim, student):
    token = il_token(sim, student["id"])
    post_grade(client, token, assignmentID="h1", percentage=0.2)
    post_grade(client, token, assignmentID="h1", percentage=0.9)
    grades = client.get(f"/_sim/grades?user_id={student['id']}").get_json()["data"]
    assert len(grades) == 1 and grades[0]["lti_score"] == "0.9"
    history = client.get(f"/_sim/grades/{grades[0]['id']}/history").get_json()["data"]
    assert [h["lti_score"] for h in history] == ["0.2", "0.9"]
    assert_error(client.get("/_sim/grades/nope/history"), 404, "Grade not found")


def test_reset_forgets_grades_and_journal_but_keeps_apps(client, sim, demo_app, student):
    post_grade(client, il_token(sim, student["id"]), assignmentID="r1", percentage=0.2)
    assert client.post("/_sim/reset", json={}).status_code == 200
    assert client.get("/_sim/grades").get_json()["data"] == []
    assert client.get("/_sim/journal").get_json()["total"] == 0
    assert client.get(f"/_sim/apps/{demo_app.client_id}").status_code == 200


# --- journal, faults, clock ----------------------------------------------------------

def test_journal_records_partner_requests_not_control_calls(client, sim, student):
    client.get("/v3.0/me", headers=bearer(il_token(sim, student["id"])))
    client.get("/_sim/health")
    body = client.get("/_sim/journal").get_json()
    assert [e["path"] for e in body["data"]] == ["/v3.0/me"]
    assert body["cap"] == 10_000
    entry = client.get(f"/_sim/journal/{body['data'][0]['id']}").get_json()
    assert entry["method"] == "GET"


def test_journal_is_capped_oldest_dropped():
    from simulator.app import create_app

    app = create_app({"DB": ":memory:", "JOURNAL_CAP": 3}, environ={})
    c = app.test_client()
    for i in range(5):
        c.get(f"/nowhere/{i}")
    body = c.get("/_sim/journal").get_json()
    assert [e["path"] for e in body["data"]] == ["/nowhere/4", "/nowhere/3", "/nowhere/2"]
    assert body["dropped"] == 2


@pytest.mark.parametrize("query, paths", [
    ("", ["/nowhere/4", "/nowhere/3"]),
    ("order=newest", ["/nowhere/4", "/nowhere/3"]),
    ("order=oldest", ["/nowhere/0", "/nowhere/1"]),
    ("order=oldest&after_id=2", ["/nowhere/2", "/nowhere/3"]),           # ids start at 1
    ("order=oldest&after_id=2&path=/nowhere/", ["/nowhere/2", "/nowhere/3"]),
    ("order=newest&after_id=2", ["/nowhere/4", "/nowhere/3"]),
])
def test_journal_pages_oldest_first_from_after_id(query, paths):
    from simulator.app import create_app

    app = create_app({"DB": ":memory:"}, environ={})
    try:
        c = app.test_client()
        for i in range(5):
            c.get(f"/nowhere/{i}")
        body = c.get(f"/_sim/journal?limit=2&{query}").get_json()
        assert [e["path"] for e in body["data"]] == paths
    finally:
        app.extensions["clever_sim"].close()


@pytest.mark.parametrize("query, field", [("limit=0", "limit"), ("limit=x", "limit"),
                                          ("status=abc", "status"), ("after_id=-1", "after_id"),
                                          ("order=asc", "order"), ("order=", "order")])
def test_journal_rejects_bad_filters(client, query, field):
    assert_error(client.get(f"/_sim/journal?{query}"), 400, field=field)


def test_fault_injects_status_and_retry_after_for_next_n_requests(client, sim, student):
    token = il_token(sim, student["id"])
    resp = client.post("/_sim/faults", json={"path": "/v1/grade", "status": 503, "retry_after": 2, "count": 2})
    assert resp.status_code == 201
    for _ in range(2):
        r = post_grade(client, token, assignmentID="f1", percentage=0.5)
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    r = post_grade(client, token, assignmentID="f1", percentage=0.5)
    assert r.status_code != 503
    assert client.get("/_sim/faults").get_json()["data"] == []
    entries = client.get("/_sim/journal?path=/v1/grade").get_json()["data"]
    assert [e["status"] for e in entries][-2:] == [503, 503]
    assert entries[-1]["fault"]["status"] == 503


def test_fault_glob_and_method_and_latency(client, sim, student):
    token = il_token(sim, student["id"])
    client.post("/_sim/faults", json={"path": "/v3.0/*", "method": "GET", "status": 429, "body": {"x": 1}})
    r = client.get("/v3.0/me", headers=bearer(token))
    assert r.status_code == 429 and r.get_json() == {"x": 1}
    client.post("/_sim/faults", json={"path": "/v3.0/me", "latency_ms": 150})
    assert client.get("/v3.0/me", headers=bearer(token)).status_code == 200  # delayed, not refused
    entry = client.get("/_sim/journal?path=/v3.0/me").get_json()["data"][0]
    assert entry["fault"]["latency_ms"] == 150 and entry["fault"]["hits"] == 1
    assert entry["duration_ms"] >= 150  # the journal shows the request held for the latency


@pytest.mark.parametrize("fault_path, posted_to", [
    ("/v1/grade", "/v1/grade/"), ("/v1/grade/", "/v1/grade"), ("/v1/gr*", "/v1/grade/")])
def test_a_fault_applies_with_or_without_the_final_slash_the_endpoint_takes(client, sim, student,
                                                                           fault_path, posted_to):
    token = il_token(sim, student["id"])
    client.post("/_sim/faults", json={"path": fault_path, "status": 503, "retry_after": 1})
    r = client.post(posted_to, json={"assignmentID": "f1", "percentage": 0.5}, headers=bearer(token))
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert client.get("/_sim/faults").get_json()["data"] == []
    assert post_grade(client, token, assignmentID="f1", percentage=0.5).status_code == 200


def test_faults_never_apply_to_control_api(client):
    client.post("/_sim/faults", json={"path": "/_sim/*", "status": 500, "count": 5})
    assert client.get("/_sim/health").status_code == 200


@pytest.mark.parametrize("body, field", [
    ({}, "path"), ({"path": "v1/grade", "status": 503}, "path"),
    ({"path": "/v1/grade", "status": 99}, "status"), ({"path": "/v1/grade", "status": "503"}, "status"),
    ({"path": "/v1/grade"}, "status"), ({"path": "/v1/grade", "status": 503, "count": 0}, "count"),
    ({"path": "/v1/grade", "status": 503, "retry_after": -1}, "retry_after"),
    ({"path": "/v1/grade", "status": 503, "body": "oops"}, "body"),
    ({"path": "/v1/grade", "status": 503, "method": "G E T"}, "method"),
    ({"path": "/v1/grade", "status": 503, "surprise": 1}, "surprise"),
])
def test_fault_rejects_bad_specs(client, body, field):
    assert_error(client.post("/_sim/faults", json=body), 400, field=field)


def test_clock_advance_expires_codes_over_http(client, demo_app, student):
    code = client.post("/_sim/codes", json={"client_id": demo_app.client_id, "user_id": student["id"]}).get_json()
    assert client.post("/_sim/clock", json={"advance_s": 61}).status_code == 200
    resp = client.post("/oauth/tokens", data={"code": code["code"], "grant_type": "authorization_code",
                                              "redirect_uri": PRIMARY, "client_id": demo_app.client_id,
                                              "client_secret": demo_app.client_secret})
    assert resp.get_json()["error"] == "invalid_grant"
    assert_error(client.post("/_sim/clock", json={"advance_s": -5}), 400, field="advance_s")


@pytest.mark.parametrize("raw", [b"{", b"[]", b"null", b"\xff", b"1e999999", b"[" * 5000])
def test_control_endpoints_reject_bad_json_with_400(client, raw):
    for path in ("/_sim/apps", "/_sim/codes", "/_sim/tokens", "/_sim/links", "/_sim/faults", "/_sim/clock"):
        resp = client.post(path, data=raw, content_type="application/json")
        assert resp.status_code == 400, (path, raw, resp.get_data(as_text=True))


def test_lone_surrogate_in_a_control_body_is_400_naming_the_field(client):
    raw = b'{"name": "\\ud800", "redirect_uris": ["http://x/cb"]}'
    assert_error(client.post("/_sim/apps", data=raw, content_type="application/json"), 400,
                 "Body is not valid Unicode", field="name", problem="lone UTF-16 surrogate")


def test_surrogate_pairs_are_fine(client):
    raw = b'{"name": "\\ud83d\\ude00 Math", "redirect_uris": ["http://x/cb"]}'
    resp = client.post("/_sim/apps", data=raw, content_type="application/json")
    assert resp.status_code == 201 and resp.get_json()["name"] == "\U0001F600 Math"


def test_huge_exponent_is_400_not_500(client, sim, student):
    raw = b'{"assignmentID": "a1", "percentage": 1e99999999999999999999}'
    resp = client.post("/v1/grade", data=raw, content_type="application/json",
                       headers=bearer(il_token(sim, student["id"])))
    assert_error(resp, 400, "Body is not valid JSON")


@pytest.mark.parametrize("query, field", [
    ("offset=x", "offset"), ("offset=-1", "offset"), ("offset=1234567890", "offset"),
    ("offset=%EF%BC%91", "offset"), ("limit=0", "limit"), ("limit=10001", "limit"),
])
def test_links_paging_rejects_bad_positions_naming_the_parameter(client, query, field):
    assert_error(client.get(f"/_sim/links?{query}"), 400, "Invalid filter", field=field,
                 problem="must be a whole number")


def test_links_page_with_limit_and_offset_in_creation_order(client, demo_app, roster, student):
    section = _section_of(roster, student)
    made = [client.post("/_sim/links", json={"section_id": section["id"],
                                              "client_id": demo_app.client_id,
                                              "assignment_id": f"page{i}"}).get_json()["id"]
            for i in range(3)]
    first = client.get("/_sim/links?limit=2").get_json()["data"]
    rest = client.get("/_sim/links?limit=2&offset=2").get_json()["data"]
    assert [link["id"] for link in first + rest] == made


@pytest.mark.parametrize("body", [
    {"path": "/v1/grade", "drop": True, "status": 503},
    {"path": "/v1/grade", "drop": True, "retry_after": 1},
    {"path": "/v1/grade", "drop": True, "body": {"message": "x"}},
    {"path": "/v1/grade", "drop": "yes"},
    {"path": "/v1/grade", "drop": 1},
])
def test_fault_rejects_drop_with_an_answer_or_not_a_boolean(client, body):
    assert_error(client.post("/_sim/faults", json=body), 400, field="drop")


@pytest.mark.parametrize("server_kind", SERVERS)
@pytest.mark.parametrize("method, path", [("POST", "/v1/grade"), ("GET", "/v3.0/me")])
def test_a_drop_fault_closes_the_connection_without_an_answer_and_journals_444(method, path,
                                                                              server_kind):
    """Served by each server (as partners meet it): on waitress the client sees no HTTP answer
    at all; on granian (which writes a head before any body) a 502 head, then the
    connection closes before the promised body, or, when the close overtakes the head
    (seen under load), no answer at all: reading the answer fails alike."""
    import httpx

    from simulator.app import create_app
    from simulator.serving import start_in_thread

    server = start_in_thread(create_app({"DB": ":memory:"}, environ={}), server=server_kind)
    try:
        with httpx.Client(trust_env=False, timeout=5) as http:
            planned = http.post(server.url + "/_sim/faults",
                                json={"path": path, "drop": True, "latency_ms": 10})
            assert planned.status_code == 201 and planned.json()["drop"] is True
            broken = ("without sending a response" if server_kind == "waitress"
                      else "without sending (complete message body|a response)")
            with pytest.raises(httpx.RemoteProtocolError, match=broken):
                http.request(method, server.url + path, json={})
            assert http.request(method, server.url + path, json={}).status_code == 401  # used up
            entries = http.get(server.url + "/_sim/journal", params={"limit": 2}).json()["data"]
    finally:
        server.stop()
    assert [(e["status"], bool(e["fault"])) for e in entries] == [(401, False), (444, True)]
    assert entries[1]["fault"]["drop"] is True
