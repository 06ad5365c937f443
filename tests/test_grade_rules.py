"""The grade rules at their exact edges: every boundary and every message a partner reads.

Each table row pins one rule that mutation testing (`mutmut run`, see docs/internals.md) showed no
other test held: move a boundary or reword a message and a row here fails.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from simulator.app import create_app
from simulator.clever import grades
from conftest import district_token, il_token, post_grade

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
    ("percentage", '"½"', 'is a string ("½"): must be a number', "send a JSON number, e.g. 0.8"),
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


# --- every refusal's exact body: the message, the field, the problem and the hint -------------

EXAMPLE = '{"assignmentID": "heRte321", "percentage": 0.8}'
ID_HINT = "send the assignment id your app gave Schoology, e.g. " + EXAMPLE
USER_HINT = "district-app tokens need the student's Clever id in userID"
BOTH_HINT = 'send both, e.g. {"scoreGiven": 8, "scoreMaximum": 10}'
STRICT_HINT = "fix this, or run the simulator without strict mode"
UNKNOWN_ID = "0123456789abcdef01234567"


def person_ids(sim, student, other_student, teacher, foreign_student, district_id) -> dict[str, str]:
    """What a ``<name>`` placeholder in a table row stands for."""
    contact = next(u for u in sim.roster["users"] if "contact" in u["roles"])
    teacher_v2 = next(v2 for v2, v3 in sim.store.legacy_ids()[1].items() if v3 == teacher["id"] and v2 != v3)
    return {"<student>": student["id"], "<other>": other_student["id"], "<teacher>": teacher["id"],
            "<teacher_v2>": teacher_v2, "<contact>": contact["id"], "<foreign>": foreign_student["id"],
            "<district>": district_id, "<unknown>": UNKNOWN_ID}


def fill(value, people: dict[str, str]):
    """``value`` with every ``<name>`` placeholder in its strings replaced by that person's id."""
    if isinstance(value, str):
        for name, real in people.items():
            value = value.replace(name, real)
        return value
    if isinstance(value, list):
        return [fill(v, people) for v in value]
    if isinstance(value, dict):
        return {fill(k, people): fill(v, people) for k, v in value.items()}
    return value


def err(field: str, problem: str, hint: str) -> dict:
    return {"field": field, "problem": problem, "hint": hint}


REFUSALS = [
    # (id, token: il | district | teacher-il, body (object or raw text), status, message, errors)
    ("teacher-il-token", "teacher-il", {"assignmentID": "a1", "percentage": 0.5}, 403,
     "Could not authorize token",
     [err("Authorization", "this il token belongs to a teacher; grades are posted for students",
          "use the student's il token, or a district-app token with the student's userID")]),
    ("il-token-with-another-students-userID", "il",
     {"assignmentID": "a1", "userID": "<other>", "percentage": 0.5}, 403, "Could not authorize token",
     [err("userID", "does not match the il token's user (<student>); got \"<other>\"",
          "leave userID out with an il token, or send the id of the student who logged in")]),
    ("district-token-unknown-userID", "district",
     {"assignmentID": "a1", "userID": "<unknown>", "percentage": 0.5}, 404, "User not found",
     [err("userID", 'no user "<unknown>" in district <district>',
          "send the Clever id of a student in the district-app token's district")]),
    ("district-token-student-of-another-district", "district",
     {"assignmentID": "a1", "userID": "<foreign>", "percentage": 0.5}, 404, "User not found",
     [err("userID", "belongs to another district, not the district-app token's (<district>)",
          "use the district-app token of the student's district")]),
    ("district-token-teachers-userID", "district",
     {"assignmentID": "a1", "userID": "<teacher>", "percentage": 0.5}, 400, "Invalid grade",
     [err("userID", "is a teacher; grades are for students",
          "send the Clever id of the student who did the assignment")]),
    ("district-token-teachers-v2-userID", "district",
     {"assignmentID": "a1", "userID": "<teacher_v2>", "percentage": 0.5}, 400, "Invalid grade",
     [err("userID", "is a teacher; grades are for students",
          "send the Clever id of the student who did the assignment")]),
    ("district-token-contacts-userID", "district",
     {"assignmentID": "a1", "userID": "<contact>", "percentage": 0.5}, 400, "Invalid grade",
     [err("userID", "is a contact (a student's parent or guardian); grades are for students",
          "send the Clever id of the student who did the assignment")]),
    ("body-array", "il", "[]", 400, "Grade body must be a JSON object",
     [err("(body)", "is an array", "send a JSON object, e.g. " + EXAMPLE)]),
    ("body-string", "il", '"a1"', 400, "Grade body must be a JSON object",
     [err("(body)", "is a string", "send a JSON object, e.g. " + EXAMPLE)]),
    ("assignmentID-missing", "il", {"percentage": 0.5}, 400, "Invalid grade",
     [err("assignmentID", "is missing", ID_HINT)]),
    ("assignmentID-missing-near-miss", "il", {"assignment_id": "a1", "percentage": 0.5}, 400,
     "Invalid grade",
     [err("assignmentID", "is missing",
          "you sent assignment_id; field names are case-sensitive: use assignmentID; " + ID_HINT)]),
    ("assignmentID-null", "il", {"assignmentID": None, "percentage": 0.5}, 400, "Invalid grade",
     [err("assignmentID", "is null, read as absent: is missing", ID_HINT)]),
    ("assignmentID-empty", "il", {"assignmentID": "", "percentage": 0.5}, 400, "Invalid grade",
     [err("assignmentID", "is empty", 'send the assignment id your app gave Schoology, e.g. "heRte321"')]),
    ("assignmentID-object", "il", {"assignmentID": {"id": "a1"}, "percentage": 0.5}, 400, "Invalid grade",
     [err("assignmentID", "is an object (an object): must be a string",
          'send a non-empty string, e.g. "heRte321"')]),
    ("userID-missing-district-token", "district", {"assignmentID": "a1", "percentage": 0.5}, 400,
     "Invalid grade", [err("userID", "is missing", USER_HINT)]),
    ("userID-missing-near-miss", "district", {"assignmentID": "a1", "userId": "<student>", "percentage": 0.5},
     400, "Invalid grade",
     [err("userID", "is missing", "you sent userId; field names are case-sensitive: use userID; " + USER_HINT)]),
    ("userID-null-district-token", "district", {"assignmentID": "a1", "userID": None, "percentage": 0.5},
     400, "Invalid grade", [err("userID", "is null, read as absent: is missing", USER_HINT)]),
    ("userID-number", "il", {"assignmentID": "a1", "userID": 123, "percentage": 0.5}, 400, "Invalid grade",
     [err("userID", "is a number (123): must be a string", "send the student's Clever id as a string")]),
    ("userID-empty-il-token", "il", {"assignmentID": "a1", "userID": "", "percentage": 0.5}, 400,
     "Invalid grade",
     [err("userID", "is empty", "send the student's Clever id, or leave userID out with an il token")]),
    ("userID-empty-district-token", "district", {"assignmentID": "a1", "userID": "", "percentage": 0.5},
     400, "Invalid grade", [err("userID", "is empty", "send the student's Clever id")]),
    ("scoreGiven-numeric-string", "il", {"assignmentID": "a1", "scoreGiven": "8", "scoreMaximum": 10},
     400, "Invalid grade",
     [err("scoreGiven", 'is a string ("8"): must be a number', "send a JSON number, not a string: 8")]),
    ("scoreMaximum-word", "il", {"assignmentID": "a1", "scoreGiven": 8, "scoreMaximum": "ten"}, 400,
     "Invalid grade",
     [err("scoreMaximum", 'is a string ("ten"): must be a number', "send a JSON number, e.g. 10")]),
    ("scoreGiven-boolean", "il", {"assignmentID": "a1", "scoreGiven": True, "scoreMaximum": 10}, 400,
     "Invalid grade", [err("scoreGiven", "must be a number, not true/false", "send a JSON number, e.g. 8")]),
    ("scoreMaximum-array", "il", {"assignmentID": "a1", "scoreGiven": 8, "scoreMaximum": [10]}, 400,
     "Invalid grade", [err("scoreMaximum", "is an array: must be a number", "send a JSON number, e.g. 10")]),
    ("scoreGiven-null-beside-scoreMaximum", "il", {"assignmentID": "a1", "scoreGiven": None, "scoreMaximum": 10},
     400, "Invalid grade",
     [err("scoreGiven", "is null, read as absent: is missing: scoreMaximum needs scoreGiven", BOTH_HINT)]),
    ("percentage-null-beside-scoreGiven-alone", "il",
     {"assignmentID": "a1", "percentage": None, "scoreGiven": 8}, 400, "Invalid grade",
     [err("scoreMaximum", "is missing: scoreGiven needs scoreMaximum", BOTH_HINT)]),
    ("scoreMaximum-missing-near-miss", "il", {"assignmentID": "a1", "scoreGiven": 8, "maxScore": 10}, 400,
     "Invalid grade",
     [err("scoreMaximum", "is missing: scoreGiven needs scoreMaximum",
          "you sent maxScore; field names are case-sensitive: use scoreMaximum; " + BOTH_HINT)]),
    ("scoreGiven-missing-near-miss", "il", {"assignmentID": "a1", "score_given": 8, "scoreMaximum": 10}, 400,
     "Invalid grade",
     [err("scoreGiven", "is missing: scoreMaximum needs scoreGiven",
          "you sent score_given; field names are case-sensitive: use scoreGiven; " + BOTH_HINT)]),
    ("no-score-near-misses-of-both-points-fields", "il",
     {"assignmentID": "a1", "ScoreGiven": 8, "scoreMax": 10}, 400, "Invalid grade",
     [err("percentage", "is missing, and so are scoreGiven/scoreMaximum: the grade has no score",
          "you sent ScoreGiven; field names are case-sensitive: use scoreGiven; "
          "you sent scoreMax; field names are case-sensitive: use scoreMaximum; "
          "send percentage (0–1.0), or scoreGiven with scoreMaximum")]),
    ("no-score-two-near-misses-name-the-first", "il",
     {"assignmentID": "a1", "Percent": 0.5, "PERCENTAGE": 0.5}, 400, "Invalid grade",
     [err("percentage", "is missing, and so are scoreGiven/scoreMaximum: the grade has no score",
          "you sent Percent; field names are case-sensitive: use percentage; "
          "send percentage (0–1.0), or scoreGiven with scoreMaximum")]),
    ("percentage-with-scoreGiven", "il", {"assignmentID": "a1", "percentage": 0.5, "scoreGiven": 1}, 400,
     "Invalid grade",
     [err("percentage", "was sent together with scoreGiven: send exactly one score format",
          "send percentage (0–1.0), or scoreGiven with scoreMaximum, not both")]),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_each_refusal_names_field_problem_and_hint_exactly(client, sim, student, other_student, teacher,
                                                          foreign_student, district_id, case):
    _, token_kind, body, status, message, errors = case
    people = person_ids(sim, student, other_student, teacher, foreign_student, district_id)
    token = {"il": lambda: il_token(sim, student["id"]), "teacher-il": lambda: il_token(sim, teacher["id"]),
             "district": lambda: district_token(sim, district_id)}[token_kind]()
    raw = body if isinstance(body, str) else json.dumps(fill(body, people))
    resp = post_grade(client, token, raw=raw)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json() == {"message": message, "errors": fill(errors, people)}
    assert sim.store.count("grades") == 0


# --- long values are shortened in messages at fixed lengths -----------------------------------

@pytest.mark.parametrize("text, shown", [
    ("x" * 78, '"' + "x" * 78 + '"'),          # 80 characters with its quotes: shown whole
    ("x" * 79, '"' + "x" * 79 + "…"),          # 81: cut to 80 and marked
])
def test_a_long_string_score_is_shown_cut_at_80_characters(client, sim, student, text, shown):
    errors = errors_of(post_raw(client, sim, student, json.dumps({"assignmentID": "a1", "percentage": text})))
    assert errors == [err("percentage", f"is a string ({shown}): must be a number",
                          "send a JSON number, e.g. 0.8")]


@pytest.mark.parametrize("number, shown", [
    ("-0." + "1" * 37, "-0." + "1" * 37),       # 40 characters: shown whole
    ("-0." + "1" * 38, "-0." + "1" * 37 + "…"),  # 41: cut to 40 and marked
])
def test_a_long_number_is_shown_cut_at_40_characters(client, sim, student, number, shown):
    errors = errors_of(post_raw(client, sim, student, f'{{"assignmentID": "a1", "percentage": {number}}}'))
    assert errors == [err("percentage", f"is {shown}: must be between 0 and 1.0",
                          "send the score as a fraction of 1.0, e.g. 0.8 for 80%")]


@pytest.mark.parametrize("text, hint", [
    ("0." + "1" * 62, "send a JSON number, not a string: 0." + "1" * 62),  # 64 characters
    ("0." + "1" * 63, "send a JSON number, e.g. 0.8"),                     # 65: not offered back
])
def test_a_number_in_a_string_is_offered_back_up_to_64_characters(client, sim, student, text, hint):
    errors = errors_of(post_raw(client, sim, student, json.dumps({"assignmentID": "a1", "percentage": text})))
    assert errors == [err("percentage", f'is a string ("{text}"): must be a number', hint)]


def test_a_long_near_miss_key_is_shown_cut_at_40_characters(client, sim, student, district_id):
    key = "user_id" + "_" * 34  # 41 characters, still read as userID
    resp = post_grade(client, district_token(sim, district_id), raw=json.dumps(
        {"assignmentID": "a1", "percentage": 0.5, key: student["id"]}))
    shown = key[:40] + "…"
    assert errors_of(resp) == [err("userID", "is missing", f"you sent {shown}; field names are "
                                   f"case-sensitive: use userID; {USER_HINT}")]
    resp = post_raw(client, sim, student, json.dumps({"assignmentID": "a1", "percentage": 0.5, key: 1}))
    assert f"{shown} is not a grade field (did you mean userID?): it is kept as context only" in \
        resp.get_json()["warnings"]


@pytest.mark.parametrize("length, shown", [(80, "a" * 80), (81, "a" * 80 + "…")])
def test_a_long_assignment_id_is_shown_cut_at_80_characters(client, sim, student, length, shown):
    resp = post_raw(client, sim, student, json.dumps({"assignmentID": "a" * length, "percentage": 0.5}))
    assert resp.get_json()["warnings"] == [
        f"assignmentID {shown} is {length} characters: Clever recommends alphanumeric ids under 64 characters",
        f"assignmentID {shown} is not linked to a Schoology assignment yet: the grade is kept and appears "
        "in the gradebook once a teacher links it"]


# --- warnings: each one's text, in the order they are given -----------------------------------

@pytest.mark.parametrize("key, field", [
    ("assignment_id", "assignmentID"), ("user_id", "userID"), ("Percentage", "percentage"),
    ("percent", "percentage"), ("score_given", "scoreGiven"), ("Score-Maximum", "scoreMaximum"),
    ("scoreMax", "scoreMaximum"), ("max_score", "scoreMaximum"),
])
def test_each_common_misspelling_of_a_grade_field_is_warned(client, sim, student, key, field):
    resp = post_raw(client, sim, student, json.dumps({"assignmentID": "a1", "percentage": 0.5, key: 1}))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["warnings"][0] == \
        f"{key} is not a grade field (did you mean {field}?): it is kept as context only"


ALL_WARNINGS_ID = "unit-3 quiz " + "q" * 59  # 71 characters, not alphanumeric
ALL_WARNINGS_BODY = {"assignmentID": ALL_WARNINGS_ID, "percentage": None, "scoreGiven": 12,
                     "scoreMaximum": 10, "Percent": 1, "user_id": "x"}
ALL_WARNINGS = [
    ("percentage", "percentage is null: read as absent (leave fields without a value out)"),
    ("scoreGiven", "scoreGiven 12 exceeds scoreMaximum 10: LTI 1.1 accepts 0–1.0, so the score sent to "
                   "Schoology is clamped to 1.0"),
    ("assignmentID", f"assignmentID {ALL_WARNINGS_ID} is 71 characters: Clever recommends alphanumeric ids "
                     "under 64 characters"),
    ("assignmentID", f"assignmentID {ALL_WARNINGS_ID} has characters other than letters and digits: "
                     "Clever recommends alphanumeric ids"),
    ("Percent", "Percent is not a grade field (did you mean percentage?): it is kept as context only"),
    ("user_id", "user_id is not a grade field (did you mean userID?): it is kept as context only"),
    ("assignmentID", f"assignmentID {ALL_WARNINGS_ID} is not linked to a Schoology assignment yet: the grade "
                     "is kept and appears in the gradebook once a teacher links it"),
]


def test_every_warning_is_given_in_order_and_the_grade_kept(client, sim, student):
    resp = post_raw(client, sim, student, json.dumps(ALL_WARNINGS_BODY))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["warnings"] == [text for _, text in ALL_WARNINGS] == body["data"]["warnings"]
    assert body["data"]["context"] == {"Percent": 1, "user_id": "x"}
    assert body["data"]["clamped"] is True and body["data"]["lti_score"] == "1.0"


@pytest.fixture
def strict_client():
    """A simulator in strict mode (every warning a 400) and its test client."""
    strict = create_app({"DB": ":memory:", "STRICT": True}, environ={})
    yield strict.test_client()
    strict.extensions["clever_sim"].close()


def test_strict_mode_refuses_with_every_warning_as_a_problem(strict_client):
    strict_sim = strict_client.application.extensions["clever_sim"]
    student = next(u for u in strict_sim.roster["users"] if "student" in u["roles"])
    resp = post_grade(strict_client, il_token(strict_sim, student["id"]), raw=json.dumps(ALL_WARNINGS_BODY))
    assert resp.status_code == 400
    assert resp.get_json() == {"message": "Strict mode: the grade has warnings",
                               "errors": [err(field, text, STRICT_HINT) for field, text in ALL_WARNINGS]}
    assert strict_sim.store.count("grades") == 0
