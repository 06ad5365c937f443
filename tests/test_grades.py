"""POST /v1/grade: the seed's Step 3 contract, every bad input, and properties."""

from __future__ import annotations

import gzip
import io
import json
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from simulator.app import create_app
from simulator.ids import legacy_user_id
from simulator.models import Link, Token
from conftest import assert_error, bearer, district_token, il_token, post_grade

URL = "/v1/grade"
JSON_CT = {"Content-Type": "application/json"}
UNKNOWN_ID = "0123456789abcdef01234567"
LIMIT = 64 * 1024

RECORD_KEYS = ["id", "assignmentID", "userID", "district", "client_id", "format", "percentage",
               "scoreGiven", "scoreMaximum", "lti_score", "clamped", "context", "payload",
               "linked", "token_kind", "warnings", "version", "created", "last_modified"]


def unlinked_warning(assignment_id: str) -> str:
    return (f"assignmentID {assignment_id} is not linked to a Schoology assignment yet: the grade "
            "is kept and appears in the gradebook once a teacher links it")


def link(sim, user: dict, assignment_id: str) -> None:
    """A teacher linked ``assignment_id`` in a section ``user`` is in."""
    section_id = sim.store.list_user_section_ids(user["id"])[0]
    link_id, client_id, created = UNKNOWN_ID[:-4] + "beef", sim.roster["apps"][0]["client_id"], sim.clock.iso()
    sim.store.link_assignment(Link(link_id, section_id, client_id, assignment_id, created, {
        "id": link_id, "section_id": section_id, "client_id": client_id,
        "assignment_id": assignment_id, "created": created}))


def nothing_stored(sim) -> None:
    assert sim.store.count("grades") == 0
    assert sim.store.count("grade_history") == 0


def exact_lti(fraction: Fraction) -> str:
    micro = (min(fraction, Fraction(1)) * 2_000_000 + 1) // 2
    whole, frac = divmod(int(micro), 1_000_000)
    return f"{whole}.{f'{frac:06d}'.rstrip('0') or '0'}"


# --- success ---------------------------------------------------------------------------

@pytest.mark.parametrize("token_kind, send_user", [("il", False), ("il", True), ("district", True)])
@pytest.mark.parametrize("raw_score, fmt, lti, numbers", [
    ('"percentage": 0.8', "percentage", "0.8", {"percentage": 0.8}),
    ('"percentage": 0', "percentage", "0.0", {"percentage": 0}),
    ('"percentage": 1', "percentage", "1.0", {"percentage": 1}),
    ('"percentage": 1.0', "percentage", "1.0", {"percentage": 1}),
    ('"percentage": 0.30', "percentage", "0.3", {"percentage": 0.3}),
    ('"percentage": 0.1234567', "percentage", "0.123457", {"percentage": 0.1234567}),
    ('"percentage": -0.0', "percentage", "0.0", {"percentage": 0}),
    ('"percentage": 8e-1', "percentage", "0.8", {"percentage": 0.8}),
    ('"scoreGiven": 8, "scoreMaximum": 10', "scoreGiven/scoreMaximum", "0.8",
     {"scoreGiven": 8, "scoreMaximum": 10}),
    ('"scoreGiven": 0.3, "scoreMaximum": 1', "scoreGiven/scoreMaximum", "0.3",
     {"scoreGiven": 0.3, "scoreMaximum": 1}),
    ('"scoreGiven": 1, "scoreMaximum": 3', "scoreGiven/scoreMaximum", "0.333333",
     {"scoreGiven": 1, "scoreMaximum": 3}),
    ('"scoreGiven": 2, "scoreMaximum": 3', "scoreGiven/scoreMaximum", "0.666667",
     {"scoreGiven": 2, "scoreMaximum": 3}),
    ('"scoreGiven": 0, "scoreMaximum": 5', "scoreGiven/scoreMaximum", "0.0",
     {"scoreGiven": 0, "scoreMaximum": 5}),
    ('"scoreGiven": 7.5, "scoreMaximum": 10.0', "scoreGiven/scoreMaximum", "0.75",
     {"scoreGiven": 7.5, "scoreMaximum": 10}),
    ('"scoreGiven": 10, "scoreMaximum": 10', "scoreGiven/scoreMaximum", "1.0",
     {"scoreGiven": 10, "scoreMaximum": 10}),
    ('"scoreGiven": 5.551115123125783e-17, "scoreMaximum": 0.000001', "scoreGiven/scoreMaximum", "0.0",
     {"scoreGiven": 5.551115123125783e-17, "scoreMaximum": 0.000001}),
    ('"scoreGiven": 1000000000000000, "scoreMaximum": 1000000000000000', "scoreGiven/scoreMaximum",
     "1.0", {"scoreGiven": 10**15, "scoreMaximum": 10**15}),
])
def test_grade_is_stored(client, sim, student, district_id, token_kind, send_user, raw_score,
                         fmt, lti, numbers):
    token = il_token(sim, student["id"]) if token_kind == "il" else district_token(sim, district_id)
    user = f'"userID": "{student["id"]}", ' if send_user else ""
    raw = '{"assignmentID": "heRte321", ' + user + raw_score + "}"
    resp = post_grade(client, token, raw=raw)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"data", "warnings"}
    record = body["data"]
    assert list(record) == RECORD_KEYS
    expected_numbers = {"percentage": None, "scoreGiven": None, "scoreMaximum": None, **numbers}
    assert {k: record[k] for k in expected_numbers} == expected_numbers
    for key, value in numbers.items():
        assert type(record[key]) is type(value)
    assert record["format"] == fmt
    assert record["lti_score"] == lti
    assert record["assignmentID"] == "heRte321"
    assert record["userID"] == student["id"]
    assert record["district"] == student["district"]
    assert record["client_id"] == sim.roster["apps"][0]["client_id"]
    assert record["token_kind"] == token_kind
    assert record["clamped"] is False and record["linked"] is False
    assert record["context"] == {}
    assert record["version"] == 1 and record["created"] == record["last_modified"]
    # the payload keeps every number's digits as sent
    assert json.loads(record["payload"], parse_float=Decimal) == json.loads(raw, parse_float=Decimal)
    assert [str(v) for v in json.loads(record["payload"], parse_float=Decimal).values()] == \
           [str(v) for v in json.loads(raw, parse_float=Decimal).values()]
    assert body["warnings"] == [unlinked_warning("heRte321")] == record["warnings"]
    stored = sim.store.list_grades()
    assert len(stored) == 1 and stored[0].record == record


def test_seed_samples_work_as_written(client, sim, student, district_id):
    """The two sample POSTs of the seed, with a district-app token (userID required)."""
    token = district_token(sim, district_id)
    resp = post_grade(client, token, {"assignmentID": "heRte321", "userID": student["id"], "percentage": 0.8})
    assert resp.status_code == 200 and resp.get_json()["data"]["lti_score"] == "0.8"
    resp = post_grade(client, token, {"assignmentID": "heRte322", "userID": student["id"],
                                "scoreGiven": 8, "scoreMaximum": 10})
    assert resp.status_code == 200 and resp.get_json()["data"]["lti_score"] == "0.8"
    assert sim.store.count("grades") == 2


def test_content_type_with_charset_is_json(client, sim, student):
    resp = post_grade(client, il_token(sim, student["id"]), {"assignmentID": "a1", "percentage": 0.5},
                headers={"Content-Type": "application/json; charset=utf-8"})
    assert resp.status_code == 200


def test_context_is_kept_verbatim(client, sim, student):
    context = {
        "title": "<script>alert(1)</script>",
        "feedback": "Great work & \"well done\" <b>bold</b>",
        "attempts": 3,
        "timeSpent": 12.5,
        "standards": ["CCSS.MATH.1", "CCSS.MATH.2"],
        "meta": {"rubric": {"clarity": 4, "notes": None, "flags": [True, False]}, "unicode": "é🙂"},
        "": "empty key",
    }
    resp = post_grade(client, il_token(sim, student["id"]),
                {"assignmentID": "a1", "percentage": 0.9, **context})
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    record = resp.get_json()["data"]
    assert record["context"] == context
    assert list(record["context"]) == list(context)
    assert sim.store.list_grades()[0].record["context"] == context
    assert "<script>alert(1)</script>" in json.loads(record["payload"])["title"]


def test_context_numbers_keep_their_digits_in_payload(client, sim, student):
    raw = ('{"assignmentID": "a1", "percentage": 0.50, "precise": 0.1000000000000000000000001, '
           '"big": 1E+400, "whole": 2.0}')
    resp = post_grade(client, il_token(sim, student["id"]), raw=raw)
    assert resp.status_code == 200
    record = resp.get_json()["data"]
    assert record["context"] == {"precise": 0.1, "big": "1E+400", "whole": 2}
    assert record["percentage"] == 0.5
    assert record["payload"] == ('{"assignmentID":"a1","percentage":0.50,'
                                 '"precise":0.1000000000000000000000001,"big":1E+400,"whole":2.0}')


def test_overwrite_keeps_one_grade_and_full_history(client, sim, student, other_student, district_id):
    token = il_token(sim, student["id"])
    first = post_grade(client, token, {"assignmentID": "a1", "percentage": 0.5}).get_json()["data"]
    sim.clock.advance(5)
    resp = post_grade(client, district_token(sim, district_id),
                {"assignmentID": "a1", "userID": student["id"], "scoreGiven": 9, "scoreMaximum": 10})
    assert resp.status_code == 200
    second = resp.get_json()["data"]
    assert second["id"] == first["id"]
    assert second["version"] == 2
    assert second["created"] == first["created"]
    assert second["last_modified"] > first["last_modified"]
    assert second["format"] == "scoreGiven/scoreMaximum" and second["percentage"] is None
    assert second["token_kind"] == "district"
    current = sim.store.list_grades()
    assert len(current) == 1 and current[0].record["lti_score"] == "0.9" and current[0].version == 2
    history = sim.store.grade_history(first["id"])
    assert [(h["version"], h["lti_score"]) for h in history] == [(1, "0.5"), (2, "0.9")]
    # another student and another assignment are separate grades
    post_grade(client, il_token(sim, other_student["id"]), {"assignmentID": "a1", "percentage": 0.1})
    post_grade(client, token, {"assignmentID": "a2", "percentage": 0.2})
    assert sim.store.count("grades") == 3
    assert sim.store.count("grade_history") == 4


def test_grade_wakes_waiters_and_is_journaled(client, sim, student):
    seen = sim.store.max_grade_seq()
    resp = post_grade(client, il_token(sim, student["id"]), {"assignmentID": "a1", "percentage": 0.5})
    assert resp.status_code == 200
    assert sim.wait_for(lambda: sim.store.list_grades(after_seq=seen), timeout=0.1)
    entries, total = sim.journal.query(path=URL)
    assert total == 1
    entry = entries[0]
    assert entry["status"] == 200 and entry["user_id"] == student["id"]
    assert entry["assignment_id"] == "a1" and entry["token_kind"] == "il"
    assert entry["client_id"] == sim.roster["apps"][0]["client_id"]
    assert unlinked_warning("a1") in entry["findings"]


@pytest.mark.parametrize("given_, maximum, shown", [(12, 10, "12"), ("10.5", "10", "10.5")])
def test_extra_credit_is_clamped_with_a_warning(client, sim, student, given_, maximum, shown):
    link(sim, student, "a1")
    raw = f'{{"assignmentID": "a1", "scoreGiven": {given_}, "scoreMaximum": {maximum}}}'
    resp = post_grade(client, il_token(sim, student["id"]), raw=raw)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["data"]["lti_score"] == "1.0" and body["data"]["clamped"] is True
    assert body["warnings"] == [
        f"scoreGiven {shown} exceeds scoreMaximum {maximum}: LTI 1.1 accepts 0–1.0, so the score "
        "sent to Schoology is clamped to 1.0"]


def test_linked_assignment_has_no_warning(client, sim, student, other_student):
    link(sim, student, "heRte321")
    resp = post_grade(client, il_token(sim, student["id"]), {"assignmentID": "heRte321", "percentage": 0.8})
    assert resp.status_code == 200
    assert resp.get_json()["warnings"] == []
    assert resp.get_json()["data"]["linked"] is True


@pytest.mark.parametrize("assignment_id, expected", [
    ("a" * 64, []),
    ("a" * 65, ["is 65 characters: Clever recommends alphanumeric ids under 64 characters"]),
    ("math-101", ["has characters other than letters and digits"]),
    ("unit 3 quiz", ["has characters other than letters and digits"]),
    ("é" * 65, ["is 65 characters", "has characters other than letters and digits"]),
    ("a" * 256, ["is 256 characters"]),
])
def test_assignment_id_recommendations_are_warnings(client, sim, student, assignment_id, expected):
    link(sim, student, assignment_id)
    resp = post_grade(client, il_token(sim, student["id"]), {"assignmentID": assignment_id, "percentage": 0.5})
    assert resp.status_code == 200
    warnings = resp.get_json()["warnings"]
    assert len(warnings) == len(expected)
    for warning, fragment in zip(warnings, expected):
        assert warning.startswith("assignmentID ") and fragment in warning


def test_near_miss_field_name_is_a_warning(client, sim, student):
    link(sim, student, "a1")
    resp = post_grade(client, il_token(sim, student["id"]),
                {"assignmentID": "a1", "percentage": 0.5, "userId": student["id"]})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["warnings"] == ["userId is not a grade field (did you mean userID?): "
                                "it is kept as context only"]
    assert body["data"]["context"] == {"userId": student["id"]}


# --- strict mode -----------------------------------------------------------------------

@pytest.fixture
def strict_app():
    app = create_app({"DB": ":memory:", "STRICT": True}, environ={})
    yield app
    app.extensions["clever_sim"].close()


def test_strict_mode_turns_warnings_into_400(strict_app):
    sim = strict_app.extensions["clever_sim"]
    client = strict_app.test_client()
    student = next(u for u in sim.roster["users"] if "student" in u["roles"])
    token = il_token(sim, student["id"])

    resp = post_grade(client, token, {"assignmentID": "a1", "percentage": 0.8})
    assert_error(resp, 400, "Strict mode: the grade has warnings", field="assignmentID",
                 problem="is not linked to a Schoology assignment yet")
    nothing_stored(sim)

    link(sim, student, "a1")
    resp = post_grade(client, token, {"assignmentID": "a1", "scoreGiven": 12, "scoreMaximum": 10})
    body = assert_error(resp, 400, "Strict mode: the grade has warnings", field="scoreGiven",
                        problem="exceeds scoreMaximum 10")
    assert len(body["errors"]) == 1
    nothing_stored(sim)

    resp = post_grade(client, token, {"assignmentID": "a1", "percentage": 0.8})
    assert resp.status_code == 200 and resp.get_json()["warnings"] == []
    assert sim.store.count("grades") == 1


# --- every bad input ---------------------------------------------------------------------

def deep(n: int, kind: str) -> str:
    return "[" * n + "]" * n if kind == "list" else '{"a":' * n + "1" + "}" * n


OK = {"assignmentID": "a1", "percentage": 0.8}
BAD = [
    # (id, token, body or raw, headers, status, message, field, problem/hint fragment)
    ("no-auth", None, OK, {}, 401, "No authorization provided", "Authorization", "missing"),
    ("empty-auth", "header:", OK, {}, 401, "No authorization provided", "Authorization", None),
    ("garbage-auth", "header:garbage", OK, {}, 401, "No authorization provided", "Authorization",
     "not a Bearer token"),
    ("bearer-no-token", "header:Bearer", OK, {}, 401, "No authorization provided", "Authorization", None),
    ("basic-auth", "header:Basic YWJjOmRlZg==", OK, {}, 401, "No authorization provided",
     "Authorization", "not a Bearer token"),
    ("unknown-token", "header:Bearer deadbeefdeadbeefdeadbeefdeadbeefdeadbeef", OK, {}, 401,
     "Could not authorize token", "Authorization", "unknown"),
    ("huge-token", "header:Bearer " + "x" * 5000, OK, {}, 401, "Could not authorize token",
     "Authorization", None),
    ("auth-before-body", None, b"not json", {"Content-Type": "text/plain"}, 401,
     "No authorization provided", "Authorization", None),
    ("unknown-token-before-body", "header:Bearer nope", b"[", {}, 401, "Could not authorize token",
     "Authorization", None),
    ("teacher-il-token", "teacher", OK, {}, 403, "Could not authorize token", "Authorization",
     "this il token belongs to a teacher; grades are posted for students"),
    ("district-without-userID", "district", OK, {}, 400, "Invalid grade", "userID",
     "hint:district-app tokens need the student's Clever id in userID"),
    ("district-userID-other-district", "district", {**OK, "userID": "$foreign"}, {}, 404,
     "User not found", "userID", "another district"),
    ("district-userID-unknown", "district", {**OK, "userID": UNKNOWN_ID}, {}, 404, "User not found",
     "userID", "no user"),
    ("district-userID-teacher", "district", {**OK, "userID": "$teacher"}, {}, 400, "Invalid grade",
     "userID", "is a teacher; grades are for students"),
    ("district-userID-teachers-v2-id", "district", {**OK, "userID": "$teacher_v2"}, {}, 400,
     "Invalid grade", "userID", "is a teacher; grades are for students"),
    ("district-userID-empty", "district", {**OK, "userID": ""}, {}, 400, "Invalid grade", "userID",
     "is empty"),
    ("il-someone-elses-userID", "il", {**OK, "userID": "$other"}, {}, 403, "Could not authorize token",
     "userID", "does not match the il token's user"),
    ("il-unknown-userID", "il", {**OK, "userID": UNKNOWN_ID}, {}, 403, "Could not authorize token",
     "userID", "does not match the il token's user"),
    ("userID-number", "il", {**OK, "userID": 123}, {}, 400, "Invalid grade", "userID", "must be a string"),
    ("userID-null", "district", {**OK, "userID": None}, {}, 400, "Invalid grade", "userID",
     "is null, read as absent: is missing"),
    ("userID-list", "il", {**OK, "userID": ["x"]}, {}, 400, "Invalid grade", "userID", "must be a string"),
    ("not-json", "il", b"{assignmentID: a1}", {}, 400, "Body is not valid JSON", "(body)", None),
    ("truncated-json", "il", b'{"assignmentID": "a1", "percentage": 0.8', {}, 400,
     "Body is not valid JSON", "(body)", None),
    ("empty-body", "il", b"", {}, 400, "Body is empty", "(body)", None),
    ("whitespace-body", "il", b"  \n ", {}, 400, "Body is empty", "(body)", None),
    ("json-array", "il", b"[]", {}, 400, "Grade body must be a JSON object", "(body)", "array"),
    ("json-array-of-grade", "il", json.dumps([OK]).encode(), {}, 400, "Grade body must be a JSON object",
     "(body)", "array"),
    ("json-null", "il", b"null", {}, 400, "Grade body must be a JSON object", "(body)", "null"),
    ("json-string", "il", b'"grade"', {}, 400, "Grade body must be a JSON object", "(body)", "string"),
    ("json-number", "il", b"0.8", {}, 400, "Grade body must be a JSON object", "(body)", "number"),
    ("json-true", "il", b"true", {}, 400, "Grade body must be a JSON object", "(body)", None),
    ("nan", "il", b'{"assignmentID": "a1", "percentage": NaN}', {}, 400, "Body is not valid JSON",
     "(body)", "NaN"),
    ("infinity", "il", b'{"assignmentID": "a1", "percentage": Infinity}', {}, 400,
     "Body is not valid JSON", "(body)", "Infinity"),
    ("minus-infinity", "il", b'{"assignmentID": "a1", "percentage": -Infinity}', {}, 400,
     "Body is not valid JSON", "(body)", "Infinity"),
    ("nan-in-context", "il", b'{"assignmentID": "a1", "percentage": 0.5, "x": NaN}', {}, 400,
     "Body is not valid JSON", "(body)", None),
    ("percentage-string", "il", {"assignmentID": "a1", "percentage": "0.8"}, {}, 400, "Invalid grade",
     "percentage", "hint:send a JSON number, not a string: 0.8"),
    ("percentage-string-text", "il", {"assignmentID": "a1", "percentage": "80%"}, {}, 400,
     "Invalid grade", "percentage", "is a string"),
    ("scoreGiven-string", "il", {"assignmentID": "a1", "scoreGiven": "8", "scoreMaximum": 10}, {}, 400,
     "Invalid grade", "scoreGiven", "hint:send a JSON number, not a string: 8"),
    ("scoreMaximum-string", "il", {"assignmentID": "a1", "scoreGiven": 8, "scoreMaximum": "10"}, {},
     400, "Invalid grade", "scoreMaximum", "hint:send a JSON number, not a string: 10"),
    ("percentage-true", "il", {"assignmentID": "a1", "percentage": True}, {}, 400, "Invalid grade",
     "percentage", "must be a number, not true/false"),
    ("scoreGiven-false", "il", {"assignmentID": "a1", "scoreGiven": False, "scoreMaximum": 10}, {},
     400, "Invalid grade", "scoreGiven", "must be a number, not true/false"),
    ("percentage-null", "il", {"assignmentID": "a1", "percentage": None}, {}, 400, "Invalid grade",
     "percentage", "is null, read as absent: is missing, and so are scoreGiven/scoreMaximum"),
    ("percentage-list", "il", {"assignmentID": "a1", "percentage": [0.8]}, {}, 400, "Invalid grade",
     "percentage", "is an array"),
    ("percentage-object", "il", {"assignmentID": "a1", "percentage": {"value": 0.8}}, {}, 400,
     "Invalid grade", "percentage", "is an object"),
    ("percentage-80", "il", {"assignmentID": "a1", "percentage": 80}, {}, 400, "Invalid grade",
     "percentage", "hint:looks like 0–100; send 0.8 for 80%"),
    ("percentage-55.5", "il", {"assignmentID": "a1", "percentage": 55.5}, {}, 400, "Invalid grade",
     "percentage", "hint:looks like 0–100; send 0.555 for 55.5%"),
    ("percentage-100", "il", {"assignmentID": "a1", "percentage": 100}, {}, 400, "Invalid grade",
     "percentage", "hint:looks like 0–100; send 1.0 for 100%"),
    ("percentage-negative", "il", {"assignmentID": "a1", "percentage": -0.1}, {}, 400, "Invalid grade",
     "percentage", "must be between 0 and 1.0"),
    ("percentage-101", "il", {"assignmentID": "a1", "percentage": 101}, {}, 400, "Invalid grade",
     "percentage", "must be between 0 and 1.0"),
    ("percentage-huge-exponent", "il", b'{"assignmentID": "a1", "percentage": 1e999999}', {}, 400,
     "Invalid grade", "percentage", "must be between 0 and 1.0"),
    ("scoreMaximum-0", "il", {"assignmentID": "a1", "scoreGiven": 0, "scoreMaximum": 0}, {}, 400,
     "Invalid grade", "scoreMaximum", "must be greater than 0"),
    ("scoreMaximum-negative", "il", {"assignmentID": "a1", "scoreGiven": 3, "scoreMaximum": -5}, {},
     400, "Invalid grade", "scoreMaximum", "must be greater than 0"),
    ("scoreMaximum-tiny", "il", b'{"assignmentID": "a1", "scoreGiven": 0, "scoreMaximum": 1e-7}', {},
     400, "Invalid grade", "scoreMaximum", "must be at least 0.000001"),
    ("scoreGiven-negative", "il", {"assignmentID": "a1", "scoreGiven": -1, "scoreMaximum": 10}, {},
     400, "Invalid grade", "scoreGiven", "must be 0 or more"),
    ("scoreGiven-too-large", "il", b'{"assignmentID": "a1", "scoreGiven": 1e16, "scoreMaximum": 10}',
     {}, 400, "Invalid grade", "scoreGiven", "at most 10^15"),
    ("scoreMaximum-too-large", "il", {"assignmentID": "a1", "scoreGiven": 1, "scoreMaximum": 10**16},
     {}, 400, "Invalid grade", "scoreMaximum", "at most 10^15"),
    ("scoreGiven-alone", "il", {"assignmentID": "a1", "scoreGiven": 8}, {}, 400, "Invalid grade",
     "scoreMaximum", "scoreGiven needs scoreMaximum"),
    ("scoreMaximum-alone", "il", {"assignmentID": "a1", "scoreMaximum": 10}, {}, 400, "Invalid grade",
     "scoreGiven", "scoreMaximum needs scoreGiven"),
    ("both-formats", "il", {"assignmentID": "a1", "percentage": 0.8, "scoreGiven": 8, "scoreMaximum": 10},
     {}, 400, "Invalid grade", "percentage", "scoreGiven/scoreMaximum"),
    ("percentage-and-scoreGiven", "il", {"assignmentID": "a1", "percentage": 0.8, "scoreGiven": 8}, {},
     400, "Invalid grade", "percentage", "exactly one score format"),
    ("no-score", "il", {"assignmentID": "a1"}, {}, 400, "Invalid grade", "percentage", "no score"),
    ("no-score-near-miss", "il", {"assignmentID": "a1", "Percentage": 0.8}, {}, 400, "Invalid grade",
     "percentage", "hint:you sent Percentage"),
    ("empty-object", "il", {}, {}, 400, "Invalid grade", "assignmentID", "is missing"),
    ("assignmentID-missing-near-miss", "il", {"assignment_id": "a1", "percentage": 0.8}, {}, 400,
     "Invalid grade", "assignmentID", "hint:you sent assignment_id"),
    ("assignmentID-empty", "il", {"assignmentID": "", "percentage": 0.8}, {}, 400, "Invalid grade",
     "assignmentID", "is empty"),
    ("assignmentID-blank", "il", {"assignmentID": "  \t", "percentage": 0.8}, {}, 400, "Invalid grade",
     "assignmentID", "is blank"),
    ("assignmentID-257", "il", {"assignmentID": "a" * 257, "percentage": 0.8}, {}, 400, "Invalid grade",
     "assignmentID", "is 257 characters; the limit is 256"),
    ("assignmentID-number", "il", {"assignmentID": 123, "percentage": 0.8}, {}, 400, "Invalid grade",
     "assignmentID", 'hint:send it as a string: "123"'),
    ("assignmentID-null", "il", {"assignmentID": None, "percentage": 0.8}, {}, 400, "Invalid grade",
     "assignmentID", "is null, read as absent: is missing"),
    ("assignmentID-object", "il", {"assignmentID": {"id": "a1"}, "percentage": 0.8}, {}, 400,
     "Invalid grade", "assignmentID", "must be a string"),
    ("assignmentID-lone-surrogate", "il", b'{"assignmentID": "a\\ud800", "percentage": 0.8}', {}, 400,
     "Body is not valid Unicode", "assignmentID", "surrogate"),
    ("context-lone-surrogate", "il", b'{"assignmentID": "a1", "percentage": 0.8, "n": ["\\udfff"]}', {},
     400, "Body is not valid Unicode", "n[0]", "surrogate"),
    ("key-lone-surrogate", "il", b'{"assignmentID": "a1", "percentage": 0.8, "\\ud83d": 1}', {}, 400,
     "Body is not valid Unicode", "(body)", "surrogate"),
    ("context-too-deep", "il",
     ('{"assignmentID": "a1", "percentage": 0.8, "ctx": ' + deep(100, "list") + "}").encode(), {}, 400,
     "Invalid grade", "ctx", "nested more than 64 levels"),
    ("body-over-64KiB", "il", {**OK, "pad": "x" * LIMIT}, {}, 413, "Request body too large…", "(body)",
     None),
    ("content-type-text-plain", "il", OK, {"Content-Type": "text/plain"}, 415,
     "Content-Type must be application/json…", "Content-Type", None),
    ("content-type-form", "il", OK, {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "Content-Type must be application/json…", "Content-Type", None),
    ("content-type-missing", "il", OK, {"Content-Type": None}, 415,
     "Content-Type must be application/json…", "Content-Type", "none"),
    ("nested-10000-lists", "il", deep(10_000, "list").encode(), {}, 400, "Body is nested too deeply",
     "(body)", None),
    ("nested-10000-objects", "il", deep(10_000, "object").encode(), {}, 400, "Body is nested too deeply",
     "(body)", None),
    ("invalid-utf8", "il", b'{"assignmentID": "a\xff\xfe1", "percentage": 0.8}', {}, 400,
     "Body is not valid UTF-8", "(body)", None),
    ("latin1-body", "il", '{"assignmentID": "café", "percentage": 0.8}'.encode("latin-1"), {}, 400,
     "Body is not valid UTF-8", "(body)", None),
    ("5000-digit-integer", "il", ('{"assignmentID": "a1", "scoreGiven": ' + "9" * 5000 +
                                  ', "scoreMaximum": 10}').encode(), {}, 400, "Body is not valid JSON",
     "(body)", None),
    ("exponent-beyond-decimal", "il", b'{"assignmentID": "a1", "percentage": 1e99999999999999999999}',
     {}, 400, "Body is not valid JSON", "(body)", "exponent"),
]


def _token_for(case_token, sim, student, teacher, district_id):
    if case_token is None:
        return None, {}
    if case_token.startswith("header:"):
        return None, {"Authorization": case_token[len("header:"):]}
    if case_token == "il":
        return il_token(sim, student["id"]), {}
    if case_token == "teacher":
        return il_token(sim, teacher["id"]), {}
    return district_token(sim, district_id), {}


def _substitute(value, people):
    if isinstance(value, str) and value.startswith("$") and value[1:] in people:
        return people[value[1:]]
    if isinstance(value, dict):
        return {k: _substitute(v, people) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_refused_and_nothing_stored(client, sim, student, other_student, teacher,
                                                 foreign_student, district_id, case):
    _, case_token, payload, headers, status, message, field, fragment = case
    token, auth = _token_for(case_token, sim, student, teacher, district_id)
    people = {"foreign": foreign_student["id"], "teacher": teacher["id"], "other": other_student["id"],
              "teacher_v2": legacy_user_id(teacher)}
    h = dict(JSON_CT)
    h.update(auth)
    if token is not None:
        h.update(bearer(token))
    for key, value in headers.items():
        if value is None:
            h.pop(key, None)
        else:
            h[key] = value
    raw = payload if isinstance(payload, bytes) else json.dumps(_substitute(payload, people))
    resp = client.post(URL, data=raw, headers=h)
    problem = fragment if fragment and not fragment.startswith("hint:") else None
    body = assert_error(resp, status, message, field=field, problem=problem)
    if fragment and fragment.startswith("hint:"):
        hints = [e.get("hint", "") for e in body["errors"] if e["field"] == field]
        assert any(fragment[5:] in h for h in hints), body
    nothing_stored(sim)
    entries, total = sim.journal.query(path=URL)
    assert total == 1 and entries[0]["status"] == status and entries[0]["findings"]


@pytest.mark.parametrize("payload, fields", [
    ({"assignmentID": 123, "userID": 5, "percentage": 80, "scoreGiven": "8"},
     ["assignmentID", "userID", "percentage", "scoreGiven", "percentage"]),
    ({"assignmentID": "", "userID": "", "scoreGiven": True},
     ["assignmentID", "userID", "scoreGiven", "scoreMaximum"]),
    ({"scoreMaximum": 0, "scoreGiven": -1, "x": json.loads(deep(70, "list"))},
     ["x", "assignmentID", "scoreMaximum", "scoreGiven"]),
])
def test_every_problem_is_reported_at_once(client, sim, student, payload, fields):
    resp = post_grade(client, il_token(sim, student["id"]), payload)
    body = assert_error(resp, 400, "Invalid grade")
    assert [e["field"] for e in body["errors"]] == fields
    nothing_stored(sim)


def test_chunked_body_over_limit_is_413(client, sim, student):
    data = json.dumps({**OK, "pad": "x" * (LIMIT + 10)}).encode()
    resp = client.post(URL, input_stream=io.BytesIO(data),
                       headers={**bearer(il_token(sim, student["id"])), **JSON_CT,
                                "Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})
    assert_error(resp, 413, "Request body too large…", field="(body)")
    nothing_stored(sim)


def test_chunked_body_under_limit_is_read(client, sim, student):
    data = json.dumps(OK).encode()
    resp = client.post(URL, input_stream=io.BytesIO(data),
                       headers={**bearer(il_token(sim, student["id"])), **JSON_CT,
                                "Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})
    assert resp.status_code == 200


def test_body_at_exactly_the_limit_is_accepted(client, sim, student):
    base = json.dumps({**OK, "pad": ""})
    raw = json.dumps({**OK, "pad": "x" * (LIMIT - len(base))})
    assert len(raw) == LIMIT
    assert post_grade(client, il_token(sim, student["id"]), raw=raw).status_code == 200


def test_il_token_of_a_user_gone_from_the_roster(client, sim):
    sim.store.insert_token(Token(access_token="ilc_gone", kind="il", id=UNKNOWN_ID,
                                 client_id=sim.roster["apps"][0]["client_id"],
                                 district_id=sim.roster["districts"][0]["id"], user_id=UNKNOWN_ID,
                                 scopes=[], created=sim.clock.iso()))
    resp = post_grade(client, "ilc_gone", OK)
    assert assert_error(resp, 401, "Could not authorize token")["errors"] == [{
        "field": "Authorization", "problem": f"this il token's user {UNKNOWN_ID} is no longer in the roster",
        "hint": "log the student in again to get a new il token"}]
    nothing_stored(sim)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_405_json(client, method):
    resp = client.open(URL, method=method)
    assert_error(resp, 405, f"Method {method} not allowed for /v1/grade; use POST")
    assert resp.headers["Allow"] == "POST"


# --- properties --------------------------------------------------------------------------

KEYS = st.sampled_from(["assignmentID", "userID", "percentage", "scoreGiven", "scoreMaximum",
                        "userId", "Percentage", "context", ""]) | st.text(max_size=8)
SPECIAL_TEXT = st.sampled_from(["\ud800", "0.8", "80", "", " ", "<script>", "NaN", "1e999"])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-10**20, max_value=10**20)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20) | SPECIAL_TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(KEYS, inner, max_size=5), max_leaves=20)
FIELD_VALUES = {
    "assignmentID": st.sampled_from(["a1", "heRte321", "math-101", "", " ", "x" * 65, "x" * 257]),
    "userID": st.sampled_from(["$student", "$teacher", "$foreign", UNKNOWN_ID, ""]),
    "percentage": st.decimals(min_value=-2, max_value=200, places=3) | st.sampled_from([0, 1, 80]),
    "scoreGiven": st.integers(min_value=-5, max_value=30) | st.decimals(min_value=-1, max_value=40, places=2),
    "scoreMaximum": st.integers(min_value=-5, max_value=30) | st.decimals(min_value=-1, max_value=40, places=2),
    "extra": JSON_VALUES,
}
VALID_BASES = st.sampled_from([
    {"assignmentID": "a1", "percentage": Decimal("0.8")},
    {"assignmentID": "a1", "userID": "$student", "percentage": Decimal("0.25")},
    {"assignmentID": "a1", "userID": "$student", "scoreGiven": 8, "scoreMaximum": 10},
    {"assignmentID": "b2", "scoreGiven": Decimal("12.5"), "scoreMaximum": 10},
])
ONE_NEAR = st.sampled_from(sorted(FIELD_VALUES)).flatmap(
    lambda key: FIELD_VALUES[key].map(lambda value: {key: value}))
# A valid grade, then a few fields replaced (by near-valid or arbitrary values) or removed.
GRADE_LIKE = st.builds(
    lambda base, near, wild, removed: {**{k: v for k, v in base.items() if k not in removed},
                                       **near, **wild},
    VALID_BASES,
    st.just({}) | ONE_NEAR | st.tuples(ONE_NEAR, ONE_NEAR).map(lambda t: {**t[0], **t[1]}),
    st.just({}) | st.just({}) | st.dictionaries(st.sampled_from(list(FIELD_VALUES)), JSON_VALUES,
                                                min_size=1, max_size=1),
    st.just(set()) | st.sets(st.sampled_from(["assignmentID", "userID", "percentage", "scoreGiven",
                                              "scoreMaximum"]), max_size=2),
)


def _dumps(value) -> str:
    """JSON with Decimals written digit for digit and NaN/Infinity left in (the server must refuse them)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + _dumps(v) for k, v in value.items()) + "}"
    return json.dumps(value, allow_nan=True)


def test_dumps_helper_is_exact():
    assert _dumps({"p": Decimal("0.1000000000000000000000001"), "x": [float("nan"), None]}) == \
        '{"p":0.1000000000000000000000001,"x":[NaN,null]}'


@pytest.fixture(scope="module")
def shared():
    app = create_app({"DB": ":memory:"}, environ={})
    sim = app.extensions["clever_sim"]
    students = [u for u in sim.roster["users"] if "student" in u["roles"]]
    teacher = next(u for u in sim.roster["users"] if "student" not in u["roles"])
    district = sim.roster["districts"][0]["id"]
    people = {"student": students[0]["id"], "teacher": teacher["id"],
              "foreign": next(u["id"] for u in students if u["district"] != district)}
    tokens = {"il": il_token(sim, students[0]["id"]), "district": district_token(sim, district)}
    yield app, sim, people, tokens
    sim.close()


def _check_answer(resp) -> None:
    assert resp.status_code < 500, resp.get_data(as_text=True)[:1000]
    if resp.status_code != 200:
        assert_error(resp, resp.status_code)
    else:
        body = resp.get_json()
        assert set(body) == {"data", "warnings"} and isinstance(body["warnings"], list)


def _post_any(shared, body, kind) -> None:
    app, _, people, tokens = shared
    body = _substitute(body, people) if isinstance(body, dict) else body
    resp = post_grade(app.test_client(), tokens[kind], raw=_dumps(body))
    _check_answer(resp)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=JSON_VALUES, kind=st.sampled_from(["il", "district"]))
def test_any_json_body_never_gives_5xx(shared, body, kind):
    _post_any(shared, body, kind)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=GRADE_LIKE, kind=st.sampled_from(["il", "district"]))
def test_any_grade_like_body_never_gives_5xx(shared, body, kind):
    _post_any(shared, body, kind)


LATIN1_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                 exclude_characters="\x7f" + "".join(map(chr, range(0x80, 0xA0))))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(auth=st.none() | st.text(LATIN1_PRINTABLE, max_size=60)
       | st.sampled_from(["Bearer ", "bearer x", "Basic abc", "Bearer $il", "Bearer $district",
                          "BEARER $il", "Bearer  $il  ", "Bearer $il extra"]),
       content_type=st.none() | st.text(LATIN1_PRINTABLE, max_size=60)
       | st.sampled_from(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                          "application/json;", "application/jsonx", "text/json", "multipart/form-data"]),
       raw=st.sampled_from([b"", b"{}", json.dumps(OK).encode(), b"\xff", b"[[[", b"null"]))
def test_any_headers_never_give_5xx(shared, auth, content_type, raw):
    app, _, _, tokens = shared
    headers = {}
    if auth is not None:
        headers["Authorization"] = auth.replace("$il", tokens["il"]).replace("$district", tokens["district"])
    if content_type is not None:
        headers["Content-Type"] = content_type
    resp = app.test_client().post(URL, data=raw, headers=headers)
    _check_answer(resp)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(score=st.one_of(
    st.decimals(min_value=0, max_value=1, allow_nan=False, allow_infinity=False).map(
        lambda p: {"percentage": p}),
    st.tuples(st.decimals(min_value=0, max_value=10**6, allow_nan=False, allow_infinity=False),
              st.decimals(min_value=Decimal("0.000001"), max_value=10**6, allow_nan=False,
                          allow_infinity=False)).map(
        lambda t: {"scoreGiven": t[0], "scoreMaximum": t[1]}),
    st.tuples(st.integers(min_value=0, max_value=10**15), st.integers(min_value=1, max_value=10**15)).map(
        lambda t: {"scoreGiven": t[0], "scoreMaximum": t[1]})),
    kind=st.sampled_from(["il", "district"]),
    assignment=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1,
                       max_size=20).filter(str.strip))
def test_valid_grade_always_stored_with_exact_lti(shared, score, kind, assignment):
    app, sim, people, tokens = shared
    body = {"assignmentID": assignment, **score}
    if kind == "district":
        body["userID"] = people["student"]
    resp = post_grade(app.test_client(), tokens[kind], raw=_dumps(body))
    assert resp.status_code == 200, resp.get_json()
    record = resp.get_json()["data"]
    if "percentage" in score:
        exact = Fraction(score["percentage"])
    else:
        exact = Fraction(score["scoreGiven"]) / Fraction(score["scoreMaximum"])
    assert record["lti_score"] == exact_lti(exact)
    assert record["clamped"] == (exact > 1)
    assert record["assignmentID"] == assignment and record["userID"] == people["student"]
    stored = sim.store.list_grades(client_id=record["client_id"], user_id=people["student"],
                                   assignment_id=assignment)
    assert len(stored) == 1 and stored[0].record["lti_score"] == record["lti_score"]


# --- bodies real clients send: nulls and gzip ----------------------------------------------

@pytest.mark.parametrize("payload, fmt, nulls", [
    ({"assignmentID": "a1", "percentage": 0.8, "scoreGiven": None, "scoreMaximum": None},
     "percentage", ["scoreGiven", "scoreMaximum"]),  # Jackson / pydantic write unset fields
    ({"assignmentID": "a1", "percentage": None, "scoreGiven": 8, "scoreMaximum": 10},
     "scoreGiven/scoreMaximum", ["percentage"]),
    ({"assignmentID": "a1", "userID": None, "percentage": 0.8}, "percentage", ["userID"]),
])
def test_a_null_grade_field_is_read_as_absent_with_a_warning(client, sim, student, payload, fmt, nulls):
    resp = post_grade(client, il_token(sim, student["id"]), payload)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["data"]["format"] == fmt
    for field in nulls:
        assert f"{field} is null: read as absent (leave fields without a value out)" in body["warnings"]
    assert json.loads(body["data"]["payload"]) == payload  # what was sent, nulls included
    assert not set(nulls) & set(body["data"]["context"])


def test_a_null_grade_field_is_a_400_in_strict_mode(strict_app):
    sim = strict_app.extensions["clever_sim"]
    student = next(u for u in sim.roster["users"] if "student" in u["roles"])
    resp = post_grade(strict_app.test_client(), il_token(sim, student["id"]),
                      {"assignmentID": "a1", "percentage": 0.8, "scoreGiven": None})
    assert_error(resp, 400, "Strict mode: the grade has warnings", field="scoreGiven",
                 problem="is null: read as absent")
    nothing_stored(sim)


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "x-gzip", "identity, gzip"])
def test_a_gzip_body_is_inflated_and_stored(client, sim, student, encoding):
    resp = post_grade(client, il_token(sim, student["id"]), raw=gz(json.dumps(OK).encode()),
                headers={"Content-Encoding": encoding})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["percentage"] == 0.8


def test_an_identity_encoding_is_the_plain_body(client, sim, student):
    resp = post_grade(client, il_token(sim, student["id"]), OK, headers={"Content-Encoding": "identity"})
    assert resp.status_code == 200


@pytest.mark.parametrize("encoding, raw, status, message, problem", [
    ("br", b"{}", 415, "Unsupported Content-Encoding", "is 'br'"),
    ("deflate", b"{}", 415, "Unsupported Content-Encoding", "reads gzip or an unencoded body"),
    ("gzip, gzip", b"{}", 415, "Unsupported Content-Encoding", "is 'gzip, gzip'"),
    ("gzip", json.dumps(OK).encode(), 400, "Body is not valid gzip", "does not inflate"),
    ("gzip", gz(json.dumps(OK).encode())[:-12], 400, "Body is not valid gzip", "cut short"),
])
def test_a_body_encoding_the_endpoint_cannot_read_names_the_header(client, sim, student, encoding,
                                                                     raw, status, message, problem):
    resp = post_grade(client, il_token(sim, student["id"]), raw=raw, headers={"Content-Encoding": encoding})
    assert_error(resp, status, message, field="Content-Encoding", problem=problem)
    nothing_stored(sim)


def test_a_gzip_body_that_inflates_past_the_limit_is_413(client, sim, student):
    bomb = gz(json.dumps({**OK, "pad": "x" * (LIMIT * 50)}).encode())
    assert len(bomb) < LIMIT
    resp = post_grade(client, il_token(sim, student["id"]), raw=bomb, headers={"Content-Encoding": "gzip"})
    assert_error(resp, 413, f"Request body too large once inflated (limit {LIMIT} bytes)",
                 field="(body)", problem="inflates past")
    nothing_stored(sim)
