"""``/v1/grade`` is an ordinary route of the one pipeline (``traffic.EmulatedTraffic``).

It must answer exactly as the other partner endpoints do: the same status lines, headers,
error bodies, rate limit, faults and journal entries, on every path routed to it —
compared here against ``/v3.0/me`` answering the same kind of request.
"""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

from conftest import assert_error, bearer, il_token
from simulator.app import create_app
from simulator.clever import data_api, grades
from simulator.clever.data_routes import CLEVER_HEADERS
from simulator.tenants import close_app

GRADE = {"assignmentID": "ep1", "percentage": 0.5}


def shape(resp) -> tuple:
    """What must match between two answers: status line, header names in order, body
    (less the headers of Clever's recorded data-API answers, which only the data API adds)."""
    names = [k for k, _ in resp.headers if k != "Retry-After" and k not in CLEVER_HEADERS]
    return resp.status, names, resp.get_data()


@pytest.fixture
def limited():
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", "RATE_LIMIT": True,
                      "RATE_LIMIT_PER_MIN": 2}, environ={})
    yield app
    close_app(app)


def test_a_grade_answer_has_the_partner_headers(client, sim, student):
    token = il_token(sim, student["id"])
    first = client.post("/v1/grade", json=GRADE, headers=bearer(token))
    second = client.post("/v1/grade", json=GRADE, headers=bearer(token))
    assert first.status == "200 OK"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Content-Length"] == str(len(first.get_data()))
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    assert first.headers["X-RateLimit-Limit"] == "1200" and first.headers["X-RateLimit-Bucket"] == "bearer"
    assert int(second.headers["X-RateLimit-Remaining"]) == int(first.headers["X-RateLimit-Remaining"]) - 1
    assert int(first.headers["X-RateLimit-Reset"]) % 60 == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic abc"}, bearer("no-such-token")],
                         ids=["missing", "not-bearer", "unknown"])
def test_a_refused_token_is_answered_as_the_data_api_answers_it(client, headers):
    grade = client.post("/v1/grade", json=GRADE, headers=headers)
    me = client.get("/v3.0/me", headers=headers)
    assert grade.status_code == 401
    assert shape(grade) == shape(me)


def test_the_rate_limit_counts_grades_and_answers_429_as_the_data_api_does(limited):
    client = limited.test_client()
    token = _student_token(client, "")
    answers = [client.post("/v1/grade", json=GRADE, headers=bearer(token)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    over = answers[2]
    assert over.get_data() == b"" and int(over.headers["Retry-After"]) >= 1
    assert over.headers["X-RateLimit-Remaining"] == "0"
    me = client.get("/v3.0/me", headers=bearer(token))  # the same token, also over
    assert shape(over) == shape(me)


def test_an_injected_fault_on_the_grade_path_is_answered_and_journaled(client, sim, student):
    client.post("/_sim/faults", json={"path": "/v1/grade", "status": 503, "retry_after": 7,
                                      "body": {"oops": "<b>"}})
    resp = client.post("/v1/grade", json=GRADE, headers=bearer(il_token(sim, student["id"])))
    assert resp.status == "503 SERVICE UNAVAILABLE" and resp.get_json() == {"oops": "<b>"}
    assert resp.headers["Retry-After"] == "7"
    entry = sim.journal.query(path="/v1/grade")[0][0]
    assert entry["fault"]["status"] == 503 and list(entry["findings"]) == []
    assert sim.store.list_grades() == []


@pytest.mark.parametrize("path", ["/v1/grade/", "//v1/grade", "//v1//grade"])
def test_the_paths_flask_would_route_to_the_endpoint_reach_it(app, sim, student, path):
    environ = EnvironBuilder(method="POST", json=GRADE,
                             headers=bearer(il_token(sim, student["id"]))).get_environ()
    environ["PATH_INFO"] = path  # as the server passes it (a test URL "//v1" names a host)
    body, status, _ = run_wsgi_app(app, environ)
    assert status == "200 OK", b"".join(body)
    assert [g.assignment_id for g in sim.store.list_grades()] == ["ep1"]


def test_a_near_path_is_not_the_endpoint(client, sim, student):
    resp = client.post("/v1/grades", json=GRADE, headers=bearer(il_token(sim, student["id"])))
    assert_error(resp, 404, "Not found: no endpoint at /v1/grades")


def test_head_is_405_without_a_body(client):
    resp = client.head("/v1/grade")
    assert resp.status == "405 METHOD NOT ALLOWED" and resp.headers["Allow"] == "POST"
    assert resp.get_data() == b"" and int(resp.headers["Content-Length"]) > 0


def test_a_tenants_grade_is_stored_in_the_tenant_only():
    root = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    try:
        client = root.test_client()
        assert client.post("/_sim/tenants", json={"name": "ci-1"}).status_code == 201
        resp = client.post("/t/ci-1/v1/grade", json=GRADE,
                           headers=bearer(_student_token(client, "/t/ci-1")))
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert [g["assignmentID"] for g in client.get("/t/ci-1/_sim/grades").get_json()["data"]] == ["ep1"]
        assert client.get("/_sim/grades").get_json()["data"] == []
    finally:
        close_app(root)


def test_the_journal_entry_of_a_grade_has_what_flask_served_entries_have(client, sim, student):
    token = il_token(sim, student["id"])
    raw = json.dumps(GRADE)
    resp = client.post("/v1/grade?trace=1", data=raw, headers={**bearer(token),
                                                               "Content-Type": "application/json"})
    entry = sim.journal.query(path="/v1/grade")[0][0]
    assert entry["method"] == "POST" and entry["path"] == "/v1/grade" and entry["query"] == "trace=1"
    assert entry["status"] == 200 and entry["direction"] == "inbound"
    assert entry["request_body"] == raw and entry["response_body"] == resp.get_data(as_text=True)
    assert entry["request_headers"]["Authorization"] == f"Bearer {token}"
    assert entry["response_headers"]["X-RateLimit-Bucket"] == "bearer"
    assert list(entry["findings"]) == resp.get_json()["warnings"] != []
    assert entry["user_id"] == student["id"] and entry["assignment_id"] == "ep1"
    assert entry["token_kind"] == "il" and isinstance(entry["duration_ms"], float)
    me = client.get("/v3.0/me", headers=bearer(token))
    assert me.status_code == 200
    me_entry = sim.journal.query(path="/v3.0/me")[0][0]
    assert set(me_entry) == set(entry) - {"assignment_id"}


def test_a_body_that_fails_to_parse_is_still_journaled(client, sim, student):
    resp = client.post("/v1/grade", data=b'{"assignmentID": ', headers={
        **bearer(il_token(sim, student["id"])), "Content-Type": "application/json"})
    assert_error(resp, 400, "Body is not valid JSON")
    entry = sim.journal.query(path="/v1/grade")[0][0]
    assert entry["request_body"] == '{"assignmentID": ' and entry["status"] == 400
    assert any("(body)" in f for f in entry["findings"])


@pytest.mark.parametrize("method, path, module, name", [
    ("POST", "/v1/grade", grades, "submit_grade"),
    ("GET", "/v3.0/me", data_api, "me"),
], ids=["grade", "data-api"])
def test_a_bug_in_a_json_api_view_is_a_json_500_logged_and_journaled(client, sim, student,
                                                                       monkeypatch, caplog,
                                                                       method, path, module, name):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(module, name, broken)
    with caplog.at_level(logging.ERROR, logger="clever_sim"):
        resp = client.open(path, method=method, json=GRADE if method == "POST" else None,
                           headers=bearer(il_token(sim, student["id"])))
    assert resp.status_code == 500
    assert resp.get_json() == {"message": "Internal simulator error (RuntimeError); please report "
                                          "it with the request that caused it"}
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert f"unexpected error on {method} {path}" in caplog.text
    entry = sim.journal.query(path=path)[0][0]
    assert list(entry["findings"]) == ["simulator bug: RuntimeError: boom"]
    assert entry["status"] == 500 and entry["response_body"] == resp.get_data(as_text=True)


# --- the one pipeline: every emulated route, whoever answers it -------------------------------

def test_a_data_api_error_keeps_clevers_headers_as_its_answers_do(client):
    resp = client.get("/v3.0/me")
    assert_error(resp, 401, "No authorization provided", field="Authorization")
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Cache-Control"] == "no-store"


def test_head_on_the_data_api_sends_no_body_but_journals_the_answer(client, sim, student):
    token = il_token(sim, student["id"])
    full = client.get("/v3.0/me", headers=bearer(token))
    head = client.head("/v3.0/me", headers=bearer(token))
    assert head.status == "200 OK" and head.get_data() == b""
    assert head.headers["Content-Length"] == full.headers["Content-Length"]
    entry = sim.journal.query(path="/v3.0/me")[0][0]
    assert entry["method"] == "HEAD" and entry["response_body"] == full.get_data(as_text=True)


def test_a_flask_served_partner_request_is_journaled_by_the_same_pipeline(client, sim):
    client.post("/_sim/faults", json={"path": "/oauth/tokens", "status": 502, "count": 1})
    faulted = client.post("/oauth/tokens", data={"grant_type": "authorization_code"})
    refused = client.post("/oauth/tokens", data={"grant_type": "password"})
    assert faulted.status_code == 502 and faulted.headers["X-Content-Type-Options"] == "nosniff"
    assert refused.status_code in (400, 401) and "error" in refused.get_json()
    second, first = sim.journal.query(path="/oauth/tokens")[0][:2]
    assert first["fault"]["status"] == 502 and first["status"] == 502
    assert second["fault"] is None and second["status"] == refused.status_code
    assert second["response_body"] == refused.get_data(as_text=True) and second["findings"]


@pytest.mark.parametrize("path", ["//_sim//grades", "//t//nobody//_sim/grades"])
def test_the_control_guard_sees_the_path_with_slashes_merged(path):
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", "CONTROL_TOKEN": "s3cret"}, environ={})
    try:
        environ = EnvironBuilder(method="GET").get_environ()
        environ["PATH_INFO"] = path
        body, status, _ = run_wsgi_app(app, environ)
        assert status == "401 UNAUTHORIZED", b"".join(body)
    finally:
        close_app(app)


# --- whatever a server hands over: never a 5xx, always journaled ------------------------------

LATIN1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40)


def mostly(good: str, *odd: str):
    """``good`` about three times in four, else an odd value or any Latin-1 text (what a
    server can decode a header to), so most examples get past each check to the next."""
    return st.one_of(st.just(good), st.just(good), st.just(good),
                     st.sampled_from(odd) | LATIN1)


ENVIRONS = st.fixed_dictionaries({
    "REQUEST_METHOD": mostly("POST", "post", "GET", "HEAD", "PUT", ""),
    "PATH_INFO": st.sampled_from(["/v1/grade", "/v1/grade/"]),
    "QUERY_STRING": st.just("") | LATIN1,
    "CONTENT_TYPE": mostly("application/json", "application/json; charset=utf-8",
                           "APPLICATION/JSON", "text/plain", ""),
    "HTTP_AUTHORIZATION": mostly("Bearer $token", "Bearer", "bearer  $token  ", "Basic x", ""),
}, optional={
    "CONTENT_LENGTH": st.sampled_from(["", "0", "5", "20", "65537", "99999999999999999999",
                                       "-1", "+7", "１２", " 3"]) | LATIN1,
    "HTTP_TRANSFER_ENCODING": st.sampled_from(["chunked", "gzip"]),
    "wsgi.input_terminated": st.just(True),
})
BODIES = st.sampled_from([b'{"assignmentID": "p1", "percentage": 0.5}', b"", b"{", b"[]",
                          b'{"assignmentID": "p2", "scoreGiven": 12, "scoreMaximum": 10}',
                          b'{"assignmentID": "<b>", "scoreGiven": 1e999, "scoreMaximum": 2}',
                          b"\xff\xfe", b'{"assignmentID": "\\ud800", "percentage": 1}']) \
    | st.binary(max_size=300)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=ENVIRONS, body=BODIES)
def test_any_environ_gets_a_4xx_or_200_and_a_journal_entry(app, sim, student, fields, body):
    token = il_token(sim, student["id"])
    environ = EnvironBuilder(method="POST", data=body).get_environ()
    environ.pop("CONTENT_TYPE", None)
    environ.update({k: v.replace("$token", token) if isinstance(v, str) else v
                    for k, v in fields.items()})
    before = len(sim.journal)
    body_iter, status, headers = run_wsgi_app(app, environ)
    answer = b"".join(body_iter)
    code = int(status.split()[0])
    assert code == 200 or 400 <= code < 500, (status, answer[:300])
    assert headers["X-Content-Type-Options"] == "nosniff"
    if answer:
        assert isinstance(json.loads(answer), dict)
    assert len(sim.journal) == before + 1


@pytest.mark.parametrize("extra", [{"CONTENT_LENGTH": " 5"},
                                   {"CONTENT_LENGTH": "5", "HTTP_TRANSFER_ENCODING": "gzip"}])
def test_a_body_ending_before_its_content_length_is_a_400_naming_the_header(app, sim, student,
                                                                           extra):
    """werkzeug raises ClientDisconnected there; found by the property above as a 500."""
    environ = EnvironBuilder(path="/v1/grade", method="POST", data=b"", content_type="application/json",
                             headers=bearer(il_token(sim, student["id"]))).get_environ()
    environ.update(extra)
    body_iter, status, _ = run_wsgi_app(app, environ)
    answer = json.loads(b"".join(body_iter))
    assert status == "400 BAD REQUEST"
    assert answer["message"] == "Request body shorter than its Content-Length"
    assert answer["errors"][0]["field"] == "Content-Length"
    assert answer["errors"][0]["problem"] == "declares 5 bytes, but the body ended before them"


# --- helpers -------------------------------------------------------------------------------

def _student_token(client, prefix: str) -> str:
    student = client.get(f"{prefix}/_sim/personas?role=student&limit=1").get_json()["data"][0]["id"]
    resp = client.post(f"{prefix}/_sim/tokens", json={"client_id": "b4fd885bda79813831c3",
                                                      "user_id": student})
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    return resp.get_json()["access_token"]
