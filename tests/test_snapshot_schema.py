"""Checking a snapshot against ``schemas/snapshot.schema.json`` and the reference rules: every
bad document is refused with the exact JSON path and message, and no document, however
strange, makes the check raise anything but ``SnapshotError``."""

from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import grade_ok, il_token, link
from simulator import bodies, snapshot, snapshot_schema
from simulator.app import create_app
from simulator.clock import MAX_OFFSET_S

MAX = MAX_OFFSET_S


@pytest.fixture(scope="module")
def valid() -> dict:
    """A real export: the packaged roster, an il token with a grade in two versions, the
    district-app tokens, and a Schoology link of the graded assignment."""
    app = create_app({"DB": ":memory:"}, environ={})
    sim = app.extensions["clever_sim"]
    try:
        client = app.test_client()
        student = next(u for u in sim.roster["users"] if "student" in u["roles"])
        token = il_token(sim, student["id"])
        grade_ok(client, token, {"assignmentID": "a1", "percentage": 0.5})
        grade_ok(client, token, {"assignmentID": "a1", "percentage": 0.75})
        section = next(s for s in sim.roster["sections"] if student["id"] in s["students"])
        link(client, section["id"], "a1")
        doc = snapshot.export_state(sim)
    finally:
        sim.close()
    assert snapshot.validate_snapshot(doc) == []
    return doc


def problems(doc) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in snapshot.validate_snapshot(doc)]


def set_in(*path, value):
    """A tampering: ``doc[path…] = value``."""
    def tamper(doc):
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return tamper


def delete(*path):
    def tamper(doc):
        node = doc
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    return tamper


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


GRADE_KEYS = "assignment_id, client_id, created, district_id, id, record, seq, updated, user_id, version"
TOP_KEYS = ("apps, clock_offset_s, created, format, grade_history, grades, roster, "
            "schoology_assignments, tokens, version")

BAD = [  # (case, tampering, path, exact message)
    # wrong types
    ("version as a string", set_in("grades", 0, "version", value="2"),
     "$.grades[0].version", 'must be a whole number ≥ 1, not the string "2"'),
    ("seq as 1.5", set_in("grades", 0, "seq", value=1.5),
     "$.grades[0].seq", "must be a whole number ≥ 1, not the number 1.5"),
    ("seq as a boolean", set_in("grade_history", 0, "seq", value=True),
     "$.grade_history[0].seq", "must be a whole number ≥ 1, not the boolean true"),
    ("record as an array", set_in("grades", 0, "record", value=[]),
     "$.grades[0].record", "must be a JSON object, not an array"),
    ("link data as null", set_in("schoology_assignments", 0, "data", value=None),
     "$.schoology_assignments[0].data", "must be a JSON object, not null"),
    ("grade as a string", set_in("grades", 0, value="g"),
     "$.grades[0]", 'must be a JSON object, not the string "g"'),
    ("apps as a string", set_in("apps", value="nope"),
     "$.apps", 'must be an array, not the string "nope"'),
    ("roster as an array", set_in("roster", value=[]),
     "$.roster", "must be a JSON object (a roster document), not an array"),
    ("created as a number", set_in("created", value=5),
     "$.created", "must be a string (an ISO time), not the number 5"),
    ("scopes as a string", lambda d: d["tokens"][0].update(scopes="read:user_id"),
     "$.tokens[0].scopes", 'must be an array, not the string "read:user_id"'),
    ("an empty scope", lambda d: d["tokens"][0].update(scopes=["read:user_id", ""]),
     "$.tokens[0].scopes[1]", "must be a non-empty string, not an empty string"),
    ("empty grade id", set_in("grades", 0, "user_id", value=""),
     "$.grades[0].user_id", "must be a non-empty string, not an empty string"),
    ("token kind", lambda d: d["tokens"][0].update(kind="admin"),
     "$.tokens[0].kind", 'must be "il" or "district", not the string "admin"'),
    ("district token of a user", lambda d: d["tokens"][0].update(kind="district", user_id="someone"),
     "$.tokens[0].user_id", "must be null for a district-app token"),
    ("il token of nobody", lambda d: d["tokens"][0].update(kind="il", user_id=None),
     "$.tokens[0].user_id", "is required for an il token (whose token it is)"),
    ("app scopes", set_in("apps", 0, "scopes", value="read:user_id"),
     "$.apps[0].scopes", "must be a list of scope names like 'read:user_id'"),
    ("app redirect", set_in("apps", 0, "redirect_uris", value=["not a url"]),
     "$.apps[0].redirect_uris[0]",
     "is not an absolute http(s) URL without a #fragment (RFC 6749 §3.1.2)"),
    # missing and unknown keys
    ("missing top-level key", delete("tokens"), "$.tokens", "is missing"),
    ("missing grade field", delete("grades", 0, "user_id"), "$.grades[0].user_id", "is missing"),
    ("missing app secret", delete("apps", 0, "client_secret"), "$.apps[0].client_secret", "is missing"),
    ("unknown top-level key", set_in("journal", value=[]),
     "$.journal", f"unknown key (known: {TOP_KEYS})"),
    ("unknown grade field", set_in("grades", 0, "extra", value=1),
     "$.grades[0].extra", f"unknown key (known: {GRADE_KEYS})"),
    # out of range
    ("version 0", set_in("grades", 0, "version", value=0),
     "$.grades[0].version", "must be a whole number ≥ 1, not the number 0"),
    ("seq past 2^62", set_in("grades", 0, "seq", value=2 ** 62 + 1),
     "$.grades[0].seq", f"must be a whole number ≥ 1, not the number {2 ** 62 + 1}"),
    ("clock behind", set_in("clock_offset_s", value=-5),
     "$.clock_offset_s", f"must be a number of seconds from 0 to {MAX}, not the number -5"),
    ("clock past ten years", set_in("clock_offset_s", value=MAX + 1),
     "$.clock_offset_s", f"must be a number of seconds from 0 to {MAX}, not the number {MAX + 1}"),
    ("clock as a string", set_in("clock_offset_s", value="30"),
     "$.clock_offset_s", f'must be a number of seconds from 0 to {MAX}, not the string "30"'),
    ("clock NaN from Python", set_in("clock_offset_s", value=math.nan),
     "$.clock_offset_s", f"must be a number of seconds from 0 to {MAX}, not NaN"),
    # hostile strings
    ("odd key", set_in("grades", 0, 'bad "key"\n', value=1),
     '$.grades[0]["bad \\"key\\"\\n"]', f"unknown key (known: {GRADE_KEYS})"),
    ("long token", lambda d: d["tokens"][0].update(access_token="t" * 201),
     "$.tokens[0].access_token", "is longer than 200 characters"),
    ("long assignment", set_in("schoology_assignments", 0, "assignment_id", value="a" * 257),
     "$.schoology_assignments[0].assignment_id", "is longer than 256 characters"),
    ("long value in a message", set_in("grades", 0, "version", value="9" * 500),
     "$.grades[0].version", 'must be a whole number ≥ 1, not the string "' + "9" * 58 + "…"),
    ("markup as a student", lambda d: d["grades"][0].update(user_id="<script>\x00"),
     "$.grades[0].user_id", "no user '<script>\\x00' in $.roster.users"),
    # deep nesting
    ("nested version", set_in("grades", 0, "version", value=nested(100)),
     "$.grades[0].version", "must be a whole number ≥ 1, not an array"),
    ("nested grade", set_in("grades", 0, value=nested(100)),
     "$.grades[0]", "must be a JSON object, not an array"),
    # references and agreements between records
    ("history past the grade", set_in("grade_history", 0, "version", value=9),
     "$.grade_history[0].version", "is 9 but the grade's current version is 2"),
    ("token of no app", lambda d: d["tokens"][0].update(client_id="nobody"),
     "$.tokens[0].client_id", "no app 'nobody' in $.apps"),
    ("link of no section", lambda d: (d["schoology_assignments"][0].update(section_id="e" * 24),
                                      d["schoology_assignments"][0]["data"].update(section_id="e" * 24)),
     "$.schoology_assignments[0].section_id", f"no section '{'e' * 24}' in $.roster.sections"),
]


@pytest.mark.parametrize("tamper, path, message", [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_a_bad_snapshot_is_refused_with_the_exact_path_and_message(valid, tamper, path, message):
    doc = copy.deepcopy(valid)
    tamper(doc)
    assert (path, message) in problems(doc)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.check_snapshot(doc)


def test_the_same_record_in_two_places_names_what_disagrees(valid):
    doc = copy.deepcopy(valid)
    grade = doc["grades"][0]
    grade["record"]["id"] = "0" * 24
    assert ("$.grades[0].record.id", f'is "{"0" * 24}" but the grade\'s id is "{grade["id"]}"') \
        in problems(doc)


def test_a_second_copy_of_an_app_names_its_client_id(valid):
    doc = copy.deepcopy(valid)
    doc["apps"].append(copy.deepcopy(doc["apps"][0]))
    last = len(doc["apps"]) - 1
    assert problems(doc) == [(f"$.apps[{last}].client_id",
                              f"{doc['apps'][0]['client_id']!r} appears twice")]


@pytest.mark.parametrize("doc, message", [
    ([], "a snapshot must be a JSON object, not an array"),
    ("snapshot", 'a snapshot must be a JSON object, not the string "snapshot"'),
    (None, "a snapshot must be a JSON object, not null"),
])
def test_a_snapshot_that_is_not_an_object_is_one_problem_at_the_root(doc, message):
    assert problems(doc) == [("$", message)]


@pytest.mark.parametrize("header, path, message", [
    ({}, "$.format", "must be 'clever-sim-snapshot', not null (is this a clever-sim snapshot?)"),
    ({"format": "roster"}, "$.format",
     "must be 'clever-sim-snapshot', not the string \"roster\" (is this a clever-sim snapshot?)"),
    ({"format": "clever-sim-snapshot", "version": "1"}, "$.version",
     'must be a whole number, not the string "1"'),
    ({"format": "clever-sim-snapshot", "version": 2}, "$.version",
     "is 2; this clever-sim reads version 1 (written by a newer clever-sim: upgrade this one)"),
    ({"format": "clever-sim-snapshot", "version": 0}, "$.version",
     "is 0; this clever-sim reads version 1"),
])
def test_another_format_or_version_is_the_only_problem_reported(header, path, message):
    """Nothing else of a document of another format or version is worth reading."""
    assert problems({**header, "grades": "not even a list"}) == [(path, message)]


def test_every_missing_top_level_key_is_named_once():
    found = problems({"format": "clever-sim-snapshot", "version": 1})
    assert found == [(f"$.{key}", "is missing") for key in
                     ("roster", "apps", "tokens", "grades", "grade_history", "schoology_assignments")]


def test_a_huge_array_of_bad_records_lists_200_problems_and_counts_the_rest(valid):
    doc = copy.deepcopy(valid)
    doc["grades"] = ["x"] * 1000
    kept, more = snapshot_schema.validate(doc)
    assert len(kept) == snapshot.MAX_PROBLEMS == 200
    assert kept[0] == ("$.grades[0]", 'must be a JSON object, not the string "x"')
    assert kept[-1].path == "$.grades[199]"
    # the 1,000 grades plus the history entries whose grade is no longer there
    assert more == 800 + len(doc["grade_history"])
    with pytest.raises(snapshot.SnapshotError) as caught:
        snapshot.check_snapshot(doc)
    assert caught.value.more == more
    assert str(caught.value).endswith(f"… and {more} more problem(s)")


def test_a_record_the_schema_refuses_is_reported_once(valid):
    """A grade whose version is not a number is one problem: its history entries are not
    also told that their grade is missing."""
    doc = copy.deepcopy(valid)
    doc["grades"][0]["version"] = "2"
    assert problems(doc) == [("$.grades[0].version", 'must be a whole number ≥ 1, not the string "2"')]


def test_a_whole_number_written_as_1_0_loads_as_1(valid):
    """JSON Schema counts 1.0 as a whole number, so every tool reading the schema file agrees
    with the simulator; the database stores it as 1."""
    doc = copy.deepcopy(valid)
    for grade in doc["grades"]:
        grade["version"], grade["seq"] = float(grade["version"]), float(grade["seq"])
        grade["record"]["version"] = float(grade["record"]["version"])
    assert problems(doc) == []
    app = create_app({"DB": ":memory:"}, environ={})
    sim = app.extensions["clever_sim"]
    try:
        snapshot.import_state(sim, doc)
        exported = snapshot.export_state(sim)["grades"]
    finally:
        sim.close()
    assert [(type(g["version"]), type(g["seq"])) for g in exported] == [(int, int)] * len(exported)
    assert [g["version"] for g in exported] == [g["version"] for g in valid["grades"]]


# --- never anything but SnapshotError ---------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25)


def assert_checked(doc) -> None:
    """``check_snapshot`` answers with the document or a SnapshotError naming paths."""
    try:
        assert snapshot.check_snapshot(doc) is doc
    except snapshot.SnapshotError as exc:
        assert exc.problems and all(p.path.startswith("$") and p.message for p in exc.problems)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=JSON)
def test_check_snapshot_never_raises_on_arbitrary_json(doc):
    assert_checked(doc)


PARTS = st.sampled_from(["apps", "tokens", "grades", "grade_history", "schoology_assignments",
                         "roster", "clock_offset_s", "created"])
KEYS = st.text(max_size=12) | st.sampled_from(
    ["id", "user_id", "client_id", "version", "seq", "record", "kind", "districts", "scopes",
     "redirect_uris", "data", "section_id", "grade_id", "district_id", "access_token"])


def with_value(valid: dict, part: str, index: int, key: str, value) -> dict:
    """A copy of a real export with ``value`` put into one record (or in place of it)."""
    doc = copy.deepcopy(valid)
    target = doc[part]
    if isinstance(target, list) and target:
        record = target[index % len(target)]
        if isinstance(record, dict):
            record[key] = value
        else:
            target[index % len(target)] = value
    elif isinstance(target, dict):
        target[key] = value
    else:
        doc[part] = value
    return doc


ANYWHERE = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@ANYWHERE
@given(part=PARTS, index=st.integers(0, 3), key=KEYS, value=JSON)
def test_check_snapshot_never_raises_on_a_real_snapshot_with_any_value_anywhere(
        valid, part, index, key, value):
    """Arbitrary JSON put into a real export, where the reference checks read it."""
    assert_checked(with_value(valid, part, index, key, value))


def schema_file_errors(doc) -> list:
    """What jsonschema finds in ``doc`` against the schema file as written ($refs and all)."""
    import jsonschema

    return list(jsonschema.Draft202012Validator(schema()).iter_errors(doc))


@ANYWHERE
@given(part=PARTS, index=st.integers(0, 3), key=KEYS, value=JSON | st.sampled_from(
    [1.0, 2.5, True, 0, -1, 2 ** 62, 2 ** 62 + 1, "", "x" * 201, "il", "district", None]))
def test_the_fast_check_and_jsonschema_agree_on_every_snapshot(valid, part, index, key, value):
    """The compiled pre-check only proves a snapshot valid (then jsonschema never walks it): it
    must never pass one that the schema file, read by jsonschema, refuses, nor leave a valid
    one unproven (each would be walked: 30x slower)."""
    doc = with_value(valid, part, index, key, value)
    assert snapshot_schema.proven_valid(doc) == (not schema_file_errors(doc))


@settings(max_examples=100, deadline=None)
@given(doc=JSON)
def test_the_fast_check_and_jsonschema_agree_on_any_json(doc):
    assert snapshot_schema.proven_valid(doc) == (not schema_file_errors(doc))


# --- the schema file ----------------------------------------------------------------------

def schema() -> dict:
    return json.loads(snapshot_schema.schema_text())


def test_the_schema_file_is_packaged_and_a_valid_draft_2020_12_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema())


def test_the_schema_holds_the_clock_bound_the_simulator_enforces():
    offset = schema()["properties"]["clock_offset_s"]
    assert (offset["minimum"], offset["maximum"]) == (0, MAX_OFFSET_S)


@pytest.mark.parametrize("component, definition", [
    ("Snapshot", None), ("SnapshotApp", "app"), ("SnapshotToken", "token"),
    ("SnapshotGrade", "grade"), ("SnapshotGradeVersion", "gradeVersion"), ("SnapshotLink", "link")])
def test_openapi_describes_the_snapshot_as_the_schema_file_defines_it(component, definition):
    """openapi.json documents the body of POST /_sim/snapshot: the same keys, required the same."""
    ours = schema() if definition is None else schema()["$defs"][definition]
    theirs = bodies.document()["components"]["schemas"][component]
    assert set(theirs["properties"]) == set(ours["properties"])
    assert set(theirs["required"]) == set(ours["required"])
    if definition is None:
        assert theirs["properties"]["clock_offset_s"]["maximum"] == MAX_OFFSET_S


def test_openapi_shows_the_answer_a_foreign_document_really_gets(client):
    """The 400 example of POST /_sim/snapshot is the simulator's own answer, not a paraphrase."""
    operation = bodies.document()["paths"]["/_sim/snapshot"]["post"]
    example = operation["responses"]["400"]["content"]["application/json"]["example"]
    answer = client.post("/_sim/snapshot", json={"format": "roster"})
    assert answer.status_code == 400 and answer.get_json() == example
