"""The grade rules at their exact edges: every boundary and every message a partner reads.

Each table row pins one rule that mutation testing (`mutmut run`, see docs/internals.md) showed no
other test held: move a boundary or reword a message and a row here fails.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from simulator.clever import grades
from conftest import il_token, post_grade

D = Decimal


def post_raw(client, sim, student, raw: str):
    """A grade written as raw JSON text (so numbers keep their digits), posted with an il token."""
    return post_grade(client, il_token(sim, student["id"]), raw=raw)


def errors_of(resp) -> list[dict]:
    assert resp.status_code == 400, resp.get_data(as_text=True)
    return resp.get_json()["errors"]


# --- percentage: 0..1, with the 0-100 and points hints at their edges -------------------------

@pytest.mark.parametrize("value, lti", [
    ("0", "0.0"), ("-0", "0.0"), ("-0.0", "0.0"), ("0.000001", "0.000001"), ("1", "1.0"),
    ("1.0", "1.0"), ("0.9999995", "1.0"),
])
def test_percentage_accepts_zero_to_one_inclusive(client, sim, student, value, lti):
    resp = post_raw(client, sim, student, f'{{"assignmentID": "a1", "percentage": {value}}}')
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["lti_score"] == lti


@pytest.mark.parametrize("value, hint", [
    ("-0.000001", "send the score as a fraction of 1.0, e.g. 0.8 for 80%"),
    ("-80", "send the score as a fraction of 1.0, e.g. 0.8 for 80%"),
    ("1.000001", "looks like 0–100; send 0.01 for 1.000001%"),
    ("1.5", "looks like 0–100; send 0.015 for 1.5%"),
    ("2", "looks like 0–100; send 0.02 for 2%"),
    ("99.99995", "looks like 0–100; send 1.0 for 99.99995%"),
    ("100", "looks like 0–100; send 1.0 for 100%"),
    ("100.000001", "for points, send scoreGiven and scoreMaximum instead"),
    ("250", "for points, send scoreGiven and scoreMaximum instead"),
])
def test_percentage_outside_zero_to_one_is_refused_with_the_right_hint(client, sim, student, value, hint):
    resp = post_raw(client, sim, student, f'{{"assignmentID": "a1", "percentage": {value}}}')
    assert errors_of(resp) == [{"field": "percentage",
                                "problem": f"is {value}: must be between 0 and 1.0", "hint": hint}]


# --- scoreGiven / scoreMaximum: their bounds, exactly ----------------------------------------

@pytest.mark.parametrize("given_, maximum, lti", [
    ("0", "0.000001", "0.0"),
    ("0.000001", "0.000001", "1.0"),
    ("1000000000000000", "1000000000000000", "1.0"),
    ("1", "1000000000000000", "0.0"),
    ("1E+15", "1E+15", "1.0"),
])
def test_score_bounds_are_inclusive(client, sim, student, given_, maximum, lti):
    resp = post_raw(client, sim, student,
                    f'{{"assignmentID": "a1", "scoreGiven": {given_}, "scoreMaximum": {maximum}}}')
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["lti_score"] == lti


@pytest.mark.parametrize("given_, maximum, field, problem, hint", [
    ("1", "0", "scoreMaximum", "is 0: must be greater than 0", "send the points possible, e.g. 10"),
    ("1", "-1", "scoreMaximum", "is -1: must be greater than 0", "send the points possible, e.g. 10"),
    ("0", "0.0000009", "scoreMaximum", "is 9E-7: must be at least 0.000001",
     "send the points possible, e.g. 10"),
    ("1", "1000000000000001", "scoreMaximum", "is 1000000000000001: must be at most 10^15",
     "send the points possible, e.g. 10"),
    ("-0.000001", "10", "scoreGiven", "is -0.000001: must be 0 or more", "send the points earned, e.g. 8"),
    ("1000000000000001", "10", "scoreGiven", "is 1000000000000001: must be at most 10^15",
     "send the points earned, e.g. 8"),
])
def test_score_out_of_bounds_names_the_bound(client, sim, student, given_, maximum, field, problem, hint):
    resp = post_raw(client, sim, student,
                    f'{{"assignmentID": "a1", "scoreGiven": {given_}, "scoreMaximum": {maximum}}}')
    assert errors_of(resp) == [{"field": field, "problem": problem, "hint": hint}]


@pytest.mark.parametrize("body, errors", [
    ({"assignmentID": "a1", "scoreGiven": 8},
     [{"field": "scoreMaximum", "problem": "is missing: scoreGiven needs scoreMaximum",
       "hint": 'send both, e.g. {"scoreGiven": 8, "scoreMaximum": 10}'}]),
    ({"assignmentID": "a1", "scoreMaximum": 10},
     [{"field": "scoreGiven", "problem": "is missing: scoreMaximum needs scoreGiven",
       "hint": 'send both, e.g. {"scoreGiven": 8, "scoreMaximum": 10}'}]),
    ({"assignmentID": "a1", "percentage": 0.5, "scoreMaximum": 10},
     [{"field": "percentage", "problem": "was sent together with scoreMaximum: send exactly one score format",
       "hint": "send percentage (0–1.0), or scoreGiven with scoreMaximum, not both"}]),
    ({"assignmentID": "a1", "percentage": 0.5, "scoreGiven": 1, "scoreMaximum": 10},
     [{"field": "percentage",
       "problem": "was sent together with scoreGiven/scoreMaximum: send exactly one score format",
       "hint": "send percentage (0–1.0), or scoreGiven with scoreMaximum, not both"}]),
    ({"assignmentID": "a1"},
     [{"field": "percentage",
       "problem": "is missing, and so are scoreGiven/scoreMaximum: the grade has no score",
       "hint": "send percentage (0–1.0), or scoreGiven with scoreMaximum"}]),
    ({"assignmentID": "a1", "Percent": 0.5},
     [{"field": "percentage",
       "problem": "is missing, and so are scoreGiven/scoreMaximum: the grade has no score",
       "hint": "you sent Percent; field names are case-sensitive: use percentage; "
               "send percentage (0–1.0), or scoreGiven with scoreMaximum"}]),
])
def test_score_format_mistakes_are_named_exactly(client, sim, student, body, errors):
    assert errors_of(post_raw(client, sim, student, json.dumps(body))) == errors


@pytest.mark.parametrize("field, raw, problem, hint", [
    ("percentage", "true", "must be a number, not true/false", "send a JSON number, e.g. 0.8"),
    ("percentage", "false", "must be a number, not true/false", "send a JSON number, e.g. 0.8"),
    ("percentage", "[0.8]", "is an array: must be a number", "send a JSON number, e.g. 0.8"),
    ("percentage", '{"v": 0.8}', "is an object: must be a number", "send a JSON number, e.g. 0.8"),
    ("percentage", '" 0.8 "', 'is a string (" 0.8 "): must be a number',
     "send a JSON number, not a string: 0.8"),
    ("percentage", '"80%"', 'is a string ("80%"): must be a number', "send a JSON number, e.g. 0.8"),
])
def test_score_of_the_wrong_json_type_is_named(client, sim, student, field, raw, problem, hint):
    resp = post_raw(client, sim, student, f'{{"assignmentID": "a1", "{field}": {raw}}}')
    assert errors_of(resp) == [{"field": field, "problem": problem, "hint": hint}]


@pytest.mark.parametrize("raw, problem, hint", [
    ("true", "is true/false (true): must be a string", 'send a non-empty string, e.g. "heRte321"'),
    ("false", "is true/false (false): must be a string", 'send a non-empty string, e.g. "heRte321"'),
    ("[1]", "is an array (an array): must be a string", 'send a non-empty string, e.g. "heRte321"'),
    ("12.50", "is a number (12.50): must be a string", 'send it as a string: "12.50"'),
    ('"   "', "is blank (only whitespace)", 'send the assignment id your app gave Schoology, e.g. "heRte321"'),
])
def test_assignment_id_of_the_wrong_kind_is_named(client, sim, student, raw, problem, hint):
    resp = post_raw(client, sim, student, f'{{"assignmentID": {raw}, "percentage": 0.5}}')
    assert errors_of(resp) == [{"field": "assignmentID", "problem": problem, "hint": hint}]


@pytest.mark.parametrize("length, ok", [(256, True), (257, False)])
def test_assignment_id_limit_is_256_characters(client, sim, student, length, ok):
    resp = post_raw(client, sim, student, json.dumps({"assignmentID": "a" * length, "percentage": 0.5}))
    if ok:
        assert resp.status_code == 200, resp.get_json()
    else:
        assert errors_of(resp) == [{
            "field": "assignmentID", "problem": "is 257 characters; the limit is 256",
            "hint": "Clever recommends alphanumeric ids under 64 characters"}]


@pytest.mark.parametrize("length, warned", [(64, False), (65, True)])
def test_assignment_ids_over_64_characters_are_warned(client, sim, student, length, warned):
    resp = post_raw(client, sim, student, json.dumps({"assignmentID": "a" * length, "percentage": 0.5}))
    long_warning = (f"assignmentID {'a' * length} is {length} characters: Clever recommends "
                    "alphanumeric ids under 64 characters")
    assert (long_warning in resp.get_json()["warnings"]) is warned


# --- nesting: 64 levels are kept, 65 are refused ----------------------------------------------

def nested(levels: int) -> str:
    """A body nested ``levels`` deep in all (the body object itself is level 1)."""
    inner = levels - 1
    return ('{"assignmentID": "a1", "percentage": 0.5, "ctx": ' + "[" * inner + "]" * inner + "}")


def test_body_nested_64_levels_is_kept(client, sim, student):
    resp = post_raw(client, sim, student, nested(64))
    assert resp.status_code == 200, resp.get_json()
    value = resp.get_json()["data"]["context"]["ctx"]
    depth = 1
    while value:
        value, depth = value[0], depth + 1
    assert depth == 63  # ctx's own lists: 63 of the 64 levels


@pytest.mark.parametrize("levels", [65, 66, 100])
def test_body_nested_65_levels_is_refused(client, sim, student, levels):
    assert errors_of(post_raw(client, sim, student, nested(levels))) == [{
        "field": "ctx", "problem": "is nested more than 64 levels deep", "hint": "send flatter context"}]


def test_deep_context_under_an_empty_key_is_named(client, sim, student):
    raw = '{"assignmentID": "a1", "percentage": 0.5, "": ' + "{" * 1 + '"a": ' + "[" * 70 + "]" * 70 + "}}"
    assert errors_of(post_raw(client, sim, student, raw)) == [{
        "field": "(empty key)", "problem": "is nested more than 64 levels deep",
        "hint": "send flatter context"}]


def test_each_too_deep_field_is_reported_once(client, sim, student):
    deep = "[" * 70 + "]" * 70
    raw = f'{{"assignmentID": "a1", "percentage": 0.5, "x": [{deep}, {deep}], "y": {deep}}}'
    assert [e["field"] for e in errors_of(post_raw(client, sim, student, raw))] == ["x", "y"]


# --- context: written back exactly, with JSON's own spellings ---------------------------------

@pytest.mark.parametrize("value, text", [
    (None, "null"), (True, "true"), (False, "false"), (0, "0"), (D("0.10"), "0.10"), (D("1E+2"), "1E+2"),
    ("é\"\\\n", '"é\\"\\\\\\n"'), ([], "[]"), ({}, "{}"),
    ([True, False, None, [1, [D("2.0")]]], "[true,false,null,[1,[2.0]]]"),
    ({"a": {"b": [True]}, "": False}, '{"a":{"b":[true]},"":false}'),
])
def test_payload_is_written_as_exact_json(value, text):
    assert grades.exact_json(value) == text


@pytest.mark.parametrize("value, plain", [
    (D("2.0"), 2), (D("0.5"), 0.5), (True, True), (None, None), ("s", "s"),
    ([D("2.0"), [D("0.5"), True], {"k": D("1E+400")}], [2, [0.5, True], {"k": "1E+400"}]),
    ({"a": [False, None]}, {"a": [False, None]}),
])
def test_context_numbers_become_plain_json(value, plain):
    out = grades.plain_json(value)
    assert out == plain and json.dumps(out) == json.dumps(plain)


def test_context_booleans_nulls_and_arrays_round_trip_through_the_endpoint(client, sim, student):
    raw = ('{"assignmentID": "a1", "percentage": 0.5, "flags": [true, false, null], '
           '"nested": {"on": true, "list": [[1.50], {"off": false}]}}')
    resp = post_raw(client, sim, student, raw)
    record = resp.get_json()["data"]
    assert record["context"] == {"flags": [True, False, None],
                                 "nested": {"on": True, "list": [[1.5], {"off": False}]}}
    assert record["payload"] == ('{"assignmentID":"a1","percentage":0.5,"flags":[true,false,null],'
                                 '"nested":{"on":true,"list":[[1.50],{"off":false}]}}')
