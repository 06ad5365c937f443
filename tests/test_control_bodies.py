"""Control-API bodies are checked against openapi.json's schemas: the exact problem and fix
each bad body gets, and the rule that the schema (not a second copy in code) decides."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from simulator import bodies
from simulator.control import domain
from simulator.errors import BadRequest, FieldProblem

from conftest import assert_error

FAULT_EXAMPLE = '{"path": "/v1/grade", "status": 429, "retry_after": 1, "count": 1}'


@pytest.mark.parametrize("path, body, message, field, problem, hint", [
    ("/_sim/faults", {}, "Invalid fault", "path", "is required", "e.g. /v1/grade or /v3.0/*"),
    ("/_sim/faults", {"path": "v1/grade", "status": 503}, "Invalid fault", "path",
     "must start with /", "e.g. /v1/grade or /v3.0/*"),
    ("/_sim/faults", {"path": "/x", "status": 99}, "Invalid fault", "status",
     "must be a whole number from 200 to 599", None),
    ("/_sim/faults", {"path": "/x", "status": 100}, "Invalid fault", "status",  # interim, not final
     "must be a whole number from 200 to 599", None),
    ("/_sim/faults", {"path": "/x", "status": 600}, "Invalid fault", "status",
     "must be a whole number from 200 to 599", None),
    ("/_sim/faults", {"path": "/x", "status": "503"}, "Invalid fault", "status",
     "must be a whole number, not a string", None),
    ("/_sim/faults", {"path": "/x", "status": 503.5}, "Invalid fault", "status",
     "must be a whole number, not a number", None),
    ("/_sim/faults", {"path": "/x", "status": True}, "Invalid fault", "status",
     "must be a whole number, not true/false", None),
    ("/_sim/faults", {"path": "/x"}, "Invalid fault", "status",
     "give a status, a latency_ms, drop: true, or a status with a latency_ms", None),
    ("/_sim/faults", {"path": "/x", "latency_ms": 0}, "Invalid fault", "status",
     "give a status, a latency_ms, drop: true, or a status with a latency_ms", None),
    ("/_sim/faults", {"path": "/x", "status": 503, "count": 1_000_001}, "Invalid fault", "count",
     "must be a whole number from 1 to 1000000", None),
    ("/_sim/faults", {"path": "/x", "status": 503, "retry_after": 86_401}, "Invalid fault",
     "retry_after", "must be a whole number from 0 to 86400", None),
    ("/_sim/faults", {"path": "/x", "latency_ms": 60_001}, "Invalid fault", "latency_ms",
     "must be a whole number from 0 to 60000", None),
    ("/_sim/faults", {"path": "/" + "a" * 1000, "status": 503}, "Invalid fault", "path",
     "is longer than 1000 characters", "e.g. /v1/grade or /v3.0/*"),
    ("/_sim/faults", {"path": "/x", "status": 503, "method": "G E T"}, "Invalid fault", "method",
     "must be an HTTP method such as POST", None),
    # ``$`` as JSON Schema (ECMA-262) reads it: the end of the text, not before a final
    # newline as Python's re reads it (a fault for "POST\n" was stored and never fired)
    ("/_sim/faults", {"path": "/x", "status": 503, "method": "POST\n"}, "Invalid fault", "method",
     "must be an HTTP method such as POST", None),
    ("/_sim/faults", {"path": "/x", "status": 503, "body": "oops"}, "Invalid fault", "body",
     "must be a JSON object (the error body to answer)", None),
    ("/_sim/faults", {"path": "/x", "status": 503, "surprise": 1}, "Invalid fault", "surprise",
     "unknown field", "known: body, count, drop, latency_ms, method, path, retry_after, status"),
    ("/_sim/faults", {"path": "/x", "drop": True, "retry_after": 1}, "Invalid fault", "drop",
     "a dropped connection has no status, retry_after or body",
     "give drop (with latency_ms if you like) or a status"),
    ("/_sim/faults", {"path": "/x", "drop": 1}, "Invalid fault", "drop",
     "must be true/false, not a number", "true closes the connection without answering"),
    ("/_sim/faults", [1], "Body must be a JSON object", "(body)", "is an array",
     "send a JSON object, e.g. " + FAULT_EXAMPLE),
    ("/_sim/codes", {"user_id": "y"}, "Invalid code request", "client_id", "is required",
     "register an app with POST /_sim/apps; list them with GET /_sim/apps"),
    ("/_sim/codes", {"client_id": "x", "user_id": "y", "state": "s", "assignment_id": "a"},
     "Invalid code request", "state", "give state or assignment_id, not both", None),
    ("/_sim/tokens", {"client_id": "x"}, "Invalid token request", "user_id", "is required",
     "list people with GET /_sim/personas"),
    ("/_sim/tokens", {"client_id": "", "user_id": "y"}, "Invalid token request", "client_id",
     "must not be empty", "register an app with POST /_sim/apps; list them with GET /_sim/apps"),
    ("/_sim/links", {"section_id": "s", "client_id": "c", "assignment_id": "a", "max_points": 0},
     "Invalid Schoology assignment", "max_points", "must be a number above 0 (at most 100000)",
     "Schoology's default is 100"),
    ("/_sim/links", {"section_id": "s", "client_id": "c", "assignment_id": "a",
                     "grading_type": "vibes"},
     "Invalid Schoology assignment", "grading_type",
     "must be one of points, percentage, letter, pass_fail", None),
    ("/_sim/links", {"section_id": "s", "client_id": "c", "assignment_id": "a",
                     "standards": ["ok", 7]},
     "Invalid Schoology assignment", "standards[1]", "must be a string (a standard's name)", None),
    ("/_sim/clock", {"advance_s": -5}, "Invalid clock change", "advance_s",
     "must be a number from 0 to 100000000", 'e.g. {"advance_s": 61} expires codes'),
    ("/_sim/clock", {}, "Invalid clock change", "advance_s", "is required",
     'e.g. {"advance_s": 61} expires codes'),
    ("/_sim/apps", {"redirect_uris": ["http://x/cb"], "scopes": "read:user_id"},
     "Invalid app registration", "scopes", "must be a list of scope names like 'read:user_id'", None),
    ("/_sim/apps", {"redirect_uris": ["http://x/cb"], "districts": ["abc"]},
     "Invalid app registration", "districts[0]", "must be a district id (24 hexadecimal characters)",
     "write the roster district's id alone: 24 lowercase hex digits, no space or newline around it"),
    ("/_sim/apps", {"redirect_uris": ["http://x:port/cb"]}, "Invalid app registration",
     "redirect_uris[0]", "'http://x:port/cb' is not a valid URL (Port could not be cast to integer "
     "value as 'port')", "write it as http://host:port/path"),
])
def test_control_body_problem_names_the_field_and_the_fix(client, path, body, message, field,
                                                          problem, hint):
    got = assert_error(client.post(path, json=body), 400, message, field=field)
    assert [e for e in got["errors"] if e["field"] == field] == [
        FieldProblem(field, problem, hint).as_dict()]


def test_every_problem_of_a_body_is_named_once_per_field_in_the_schemas_order(client):
    got = assert_error(client.post("/_sim/faults", json={
        "path": "", "status": 1, "count": 0, "colour": "red"}), 400, "Invalid fault")
    assert [(e["field"], e["problem"]) for e in got["errors"]] == [
        ("path", "must not be empty"), ("status", "must be a whole number from 200 to 599"),
        ("count", "must be a whole number from 1 to 1000000"), ("colour", "unknown field")]


def test_an_integral_float_is_taken_as_the_whole_number_it_is(client):
    resp = client.post("/_sim/faults", json={"path": "/v1/grade", "status": 503.0, "count": 2.0})
    assert resp.status_code == 201
    assert (resp.get_json()["status"], resp.get_json()["count"]) == (503, 2)
    assert type(resp.get_json()["status"]) is int


def test_a_drop_fault_needs_no_status(client):
    resp = client.post("/_sim/faults", json={"path": "/v1/grade", "drop": True, "latency_ms": 5})
    assert resp.status_code == 201 and resp.get_json()["drop"] is True


def test_fault_bounds_come_from_the_openapi_schema_not_from_code(monkeypatch):
    """Tighten FaultRequest's status range in the document: parse_fault follows it."""
    doc = copy.deepcopy(bodies.document())
    doc["components"]["schemas"]["FaultRequest"]["properties"]["status"]["maximum"] = 503
    monkeypatch.setattr(bodies, "document", lambda: doc)
    bodies.forget_validators()
    try:
        with pytest.raises(BadRequest) as caught:
            domain.parse_fault({"path": "/v1/grade", "status": 504})
        assert caught.value.errors == [FieldProblem("status", "must be a whole number from 200 to 503")]
    finally:
        bodies.forget_validators()


@pytest.mark.parametrize("schema, value, problem", [
    ({"type": "integer", "minimum": 1}, 0, "must be a whole number at least 1"),
    ({"type": "number", "maximum": 5}, 6, "must be a number at most 5"),
    ({"type": "number", "exclusiveMinimum": 0}, 0, "must be a number above 0"),
    ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, 1,
     "must be a number above 0 (below 1)"),
    ({"type": ["string", "null"]}, 5, "must be a string, not a number"),
    ({"type": "array"}, {}, "must be an array, not an object"),
    ({"type": "object"}, "x", "must be an object, not a string"),
    ({"minLength": 3}, "ab", "must be at least 3 characters"),
    ({"minItems": 1}, [], "must not be empty"),
    ({"maxItems": 1}, [1, 2], "must have at most 1 items"),
    ({"const": "v1"}, "v2", 'must be "v1"'),
    ({"pattern": "^a"}, "b", "must match the pattern ^a"),
    ({"type": "string", "x-messages": {"type": "must be a name"}, "x-hint": "e.g. Ada"}, 1,
     "must be a name"),
])
def test_schema_keywords_in_plain_words(schema, value, problem):
    errors = list(jsonschema.Draft202012Validator({"properties": {"f": schema}}).iter_errors(
        {"f": value}))
    assert [p.problem for p in bodies.problems_of(errors)] == [problem]
    assert bodies.problems_of(errors)[0].field == "f"

