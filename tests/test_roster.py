"""The roster fixture: the default file, the schema, and the validator's problem reports."""

from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

from simulator.roster import (
    RosterError,
    RosterProblem,
    default_roster_path,
    load_roster,
    load_roster_file,
    load_schema,
    new_object_id,
    validate_roster,
)

HEX24 = re.compile(r"^[0-9a-f]{24}$")
UNKNOWN_ID = "0123456789abcdef01234567"


@pytest.fixture(scope="module")
def default_doc() -> dict:
    return json.loads(default_roster_path().read_text(encoding="utf-8"))


@pytest.fixture()
def doc(default_doc: dict) -> dict:
    return copy.deepcopy(default_doc)


# --- helpers to find records by content, so tests survive fixture re-ordering --------

def district_index(d: dict, name: str) -> int:
    return next(i for i, x in enumerate(d["districts"]) if x["name"] == name)


def user_index(d: dict, first: str, last: str) -> int:
    return next(i for i, u in enumerate(d["users"]) if u["name"]["first"] == first and u["name"]["last"] == last)


def section_index(d: dict, prefix: str) -> int:
    return next(i for i, s in enumerate(d["sections"]) if s["name"].startswith(prefix))


def role(user: dict) -> str:
    return next(iter(user["roles"]))


def holds(user: dict, r: str) -> bool:
    return r in user["roles"]


SUNSET = "Sunset Valley Unified School District"
HARBOR = "Harbor Point School District"


# --- the default fixture ---------------------------------------------------------------

def test_default_fixture_path_exists():
    path = default_roster_path()
    assert isinstance(path, Path)
    assert path.is_file()
    assert path.name == "default.json"


def test_default_fixture_is_valid(default_doc):
    assert validate_roster(default_doc) == []
    loaded = load_roster(default_roster_path())
    assert loaded == default_doc


def test_default_fixture_is_pretty_printed_utf8():
    text = default_roster_path().read_text(encoding="utf-8")
    assert text.startswith('{\n  "districts": [\n')
    assert "José" in text and "\\u00e9" not in text  # ensure_ascii=False


def test_default_fixture_counts(default_doc):
    d = default_doc
    assert [x["name"] for x in d["districts"]] == [SUNSET, HARBOR]
    sunset, harbor = d["districts"][0]["id"], d["districts"][1]["id"]

    def of(kind, did):
        return [x for x in d[kind] if x["district"] == did]

    def users(did, r):
        return [u for u in of("users", did) if holds(u, r)]

    assert len(of("schools", sunset)) == 2
    assert len(of("terms", sunset)) == 1
    assert of("terms", sunset)[0]["name"] == "2026–27 School Year"
    assert len(of("users", sunset)) == 38
    assert len(users(sunset, "teacher")) == 5
    assert len(users(sunset, "student")) == 29
    assert len(users(sunset, "staff")) == 2
    assert len(users(sunset, "district_admin")) == 1
    assert len(users(sunset, "contact")) == 2
    sections = of("sections", sunset)
    assert len(sections) == 6
    for s in sections:
        assert 5 <= len(s["students"]) <= 14, s["name"]
        assert s["teacher"] in s["teachers"]
    # some students sit in several sections; every student but one new enrolment is in one
    memberships = [sid for s in sections for sid in s["students"]]
    assert any(memberships.count(sid) > 1 for sid in memberships)
    unplaced = {u["id"] for u in users(sunset, "student")} - set(memberships)
    assert [u["name"]["first"] for u in users(sunset, "student") if u["id"] in unplaced] == ["Lucía"]

    assert len(of("schools", harbor)) == 1
    assert len(of("terms", harbor)) == 1
    assert len(users(harbor, "teacher")) == 1
    assert len(users(harbor, "student")) == 4
    assert len(of("sections", harbor)) == 1

    assert len(d["apps"]) == 1
    app = d["apps"][0]
    assert app["name"] == "Demo Partner (reference)"
    assert re.fullmatch(r"[0-9a-f]{20}", app["client_id"])
    assert re.fullmatch(r"[0-9a-f]{40}", app["client_secret"])
    assert app["redirect_uris"][0] == "http://127.0.0.1:5001/clever/callback"
    assert app["assignments_url"] == "http://127.0.0.1:5001/clever/assignments"
    assert set(app["districts"]) == {sunset, harbor}


def test_default_fixture_schoology_config(default_doc):
    schoology = default_doc["districts"][0]["schoology"]
    titles = [p["title"].split()[0] for p in schoology["grading_periods"]]
    assert titles == ["Q1", "Q2", "Q3", "Q4", "S1", "S2"]
    assert [c["title"] for c in schoology["grading_categories"]] == [
        "Homework", "Classwork", "Quizzes", "Tests", "Projects"]
    scales = {s["title"]: s for s in schoology["grading_scales"]}
    assert set(scales) == {"Standard A–F", "Plus/Minus"}
    assert [(lv["letter"], lv["min_percent"]) for lv in scales["Standard A–F"]["levels"]] == [
        ("A", 90), ("B", 80), ("C", 70), ("D", 60), ("F", 0)]
    plus_minus = [(lv["letter"], lv["min_percent"]) for lv in scales["Plus/Minus"]["levels"]]
    assert plus_minus[:4] == [("A+", 97), ("A", 93), ("A-", 90), ("B+", 87)]
    assert plus_minus[-1] == ("F", 0)
    used = {s["schoology"]["grading_scale"] for s in default_doc["sections"]
            if s["district"] == default_doc["districts"][0]["id"]}
    assert used == {s["id"] for s in scales.values()}


def test_default_fixture_ids_are_24_hex_and_unique(default_doc):
    ids = [r["id"] for kind in ("districts", "schools", "terms", "users", "sections") for r in default_doc[kind]]
    assert all(HEX24.match(i) for i in ids)
    assert len(ids) == len(set(ids))


def test_default_fixture_has_varied_non_ascii_names(default_doc):
    full = {" ".join(filter(None, (u["name"]["first"], u["name"]["last"]))) for u in default_doc["users"]}
    for name in ("José Núñez", "Zoë Ng", "Minh Nguyễn", "Øyvind Åberg", "Chiamaka Okafor", "Siobhán O'Brien"):
        assert name in full
    jose = default_doc["users"][user_index(default_doc, "José", "Núñez")]
    assert jose["email"] == "jose.nunez@students.sunsetvalley.example.org"
    assert jose["roles"]["student"]["credentials"]["district_username"] == "jose.nunez"
    assert all(u["email"].isascii() for u in default_doc["users"] if u.get("email"))


def test_default_fixture_exercises_every_optional_and_nullable_person_field(default_doc):
    """Who is who in the packaged roster's edge cases (README "The default roster")."""
    d = default_doc
    people = {f'{u["name"]["first"]} {u["name"]["last"]}': u for u in d["users"]}
    sections = {s["section_number"]: s for s in d["sections"]}
    kai, lucia = people["Kai Nakamura"], people["Lucía Flores"]
    assert "email" not in kai and "email" not in kai["roles"]["student"]  # absent ...
    assert "credentials" not in kai["roles"]["student"]
    assert people["Kenji Nakamura"]["email"] is None                    # ... and null
    assert "middle" not in people["Daniel Kim"]["name"] and lucia["name"]["middle"] is None
    assert all(lucia["id"] not in s["students"] for s in d["sections"])
    olivia = people["Olivia Bennett"]
    assert set(olivia["roles"]) == {"teacher", "staff"}
    assert sections["ELA7-03"]["teachers"] == [people["Daniel Kim"]["id"], olivia["id"]]
    samuel = people["Samuel Osei"]
    assert len(samuel["roles"]["teacher"]["schools"]) == 2
    assert {s["school"] for s in d["sections"] if samuel["id"] in s["teachers"]} == set(
        samuel["roles"]["teacher"]["schools"])
    assert set(people["Leticia Fuentes"]["roles"]) == {"staff"}
    marisol = people["Marisol Delgado"]
    assert marisol["roles"]["district_admin"]["legacy_id"] == d["districts"][0]["district_contact"]["id"]
    assert {p: u["roles"]["contact"]["student_relationships"][0]["student"]
            for p, u in people.items() if "contact" in u["roles"]} == {
        "María Núñez": people["José Núñez"]["id"], "Kenji Nakamura": kai["id"]}


# --- the schema and small helpers ----------------------------------------------------------

def test_schema_is_a_valid_draft_2020_12_schema():
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


def test_load_schema_returns_a_fresh_dict():
    first = load_schema()
    first["title"] = "mutated"
    assert load_schema()["title"] != "mutated"


def test_new_object_id():
    assert HEX24.match(new_object_id())
    assert new_object_id() != new_object_id()
    assert new_object_id(random.Random(7)) == new_object_id(random.Random(7))
    assert all(HEX24.match(new_object_id(random.Random(seed))) for seed in range(50))


def test_roster_module_does_not_import_flask():
    code = "import sys, simulator.roster; print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=True)
    assert out.stdout.strip() == "False"


# --- negative cases: one mutation, one problem, exact path -----------------------------------
# Each case mutates a copy of the default fixture and returns (expected path, message substring).

def missing_school_name(d):
    del d["schools"][0]["name"]
    return "$.schools[0]", "'name' is a required property"


def missing_user_first_name(d):
    i = user_index(d, "Zoë", "Ng")
    del d["users"][i]["name"]["first"]
    return f"$.users[{i}].name", "'first' is a required property"


def missing_section_students(d):
    del d["sections"][1]["students"]
    return "$.sections[1]", "'students' is a required property"


def bad_id_not_hex(d):
    d["users"][5]["id"] = "not-an-object-id"
    return "$.users[5].id", "24 lowercase hexadecimal"


def bad_id_uppercase(d):
    d["terms"][0]["id"] = "ABCDEF0123456789ABCDEF01"
    return "$.terms[0].id", "is not a valid id"


def bad_id_too_short(d):
    d["sections"][0]["students"][4] = "abc123"
    return "$.sections[0].students[4]", "is not a valid id"


def id_with_a_trailing_newline(d):
    d["terms"][0]["id"] += "\n"  # Python's `$` also matches before a final newline
    return "$.terms[0].id", "is not a valid id"


def section_term_id_with_a_nul(d):
    d["sections"][0]["term_id"] = d["sections"][0]["term_id"][:12] + "\u0000" + d["sections"][0]["term_id"][13:]
    return "$.sections[0].term_id", "is not a valid id"


def section_course_with_a_trailing_nul(d):
    d["sections"][0]["course"] += "\u0000"  # SQLite 3.40's json_extract stops at it
    return "$.sections[0].course", "is not a valid id"


def legacy_id_with_a_nul(d):
    i = user_index(d, "Marisol", "Delgado")
    d["users"][i]["roles"]["district_admin"]["legacy_id"] = "admin\u00001"
    return (f"$.users[{i}].roles.district_admin.legacy_id",
            f"v2 id \"admin\\u00001\" of user {d['users'][i]['id']!r} (Marisol Delgado) holds a "
            f"control character (U+0000 at index 5), which no id may hold (it cannot be typed or "
            f"seen in a URL or a page, and SQLite's JSON functions cut a text at a NUL): remove it")


def grading_period_id_with_a_tab(d):
    d["districts"][0]["schoology"]["grading_periods"][1]["id"] = "Q2\t"
    return ("$.districts[0].schoology.grading_periods[1].id",
            "grading period id \"Q2\\u0009\" of district '4e7112c9111e8c530d98db16' holds a control "
            "character (U+0009 at index 2)")


def grading_category_id_with_a_delete(d):
    d["districts"][0]["schoology"]["grading_categories"][0]["id"] = "\u007fhomework"
    return ("$.districts[0].schoology.grading_categories[0].id",
            "holds a control character (U+007F at index 0)")


def district_contact_id_with_a_newline(d):
    d["districts"][0]["district_contact"]["id"] += "\n"
    return "$.districts[0].district_contact.id", "holds a control character (U+000A at index 24)"


def app_client_id_with_a_c1_control(d):
    d["apps"][0]["client_id"] = "demo\u0085app"
    return "$.apps[0].client_id", "client_id \"demo\\u0085app\" of app 'Demo Partner (reference)' holds a control character (U+0085 at index 4)"


def duplicate_id_across_kinds(d):
    d["sections"][1]["id"] = d["schools"][0]["id"]
    return "$.sections[1].id", "already used at $.schools[0].id"


def user_in_unknown_district(d):
    i = user_index(d, "Kwame", "Mensah")
    d["users"][i]["district"] = UNKNOWN_ID
    return f"$.users[{i}].district", "unknown district"


def section_student_is_a_teacher(d):
    s = section_index(d, "Grade 5 Math")
    d["sections"][s]["students"][3] = d["users"][user_index(d, "Daniel", "Kim")]["id"]
    return f"$.sections[{s}].students[3]", "is a teacher, not a student"


def section_student_in_other_district(d):
    s = section_index(d, "Grade 7 Science")
    d["sections"][s]["students"][2] = d["users"][user_index(d, "Tala", "Begay")]["id"]
    return f"$.sections[{s}].students[2]", f"but the section is in district {d['districts'][0]['id']!r}"


def section_teacher_unknown(d):
    s = section_index(d, "Grade 7 English")
    d["sections"][s]["teacher"] = UNKNOWN_ID
    d["sections"][s]["teachers"] = [UNKNOWN_ID]
    return f"$.sections[{s}].teachers[0]", "unknown teacher"


def section_teacher_is_a_student(d):
    s = section_index(d, "Grade 7 English")
    kid = d["users"][user_index(d, "Yusuf", "Abdi")]["id"]
    d["sections"][s]["teacher"] = kid
    d["sections"][s]["teachers"] = [kid]
    return f"$.sections[{s}].teachers[0]", "is a student, not a teacher"


def section_teacher_not_in_teachers(d):
    s = section_index(d, "Grade 7 Science")
    d["sections"][s]["teacher"] = d["users"][user_index(d, "Daniel", "Kim")]["id"]
    return f"$.sections[{s}].teacher", "is not listed in teachers"


def section_teacher_in_other_district(d):
    s = section_index(d, "Grade 8 Math")
    other = d["users"][user_index(d, "Aisha", "Rahman")]["id"]
    d["sections"][s]["teacher"] = other
    d["sections"][s]["teachers"] = [other]
    return f"$.sections[{s}].teachers[0]", "but the section is in district"


def student_with_no_roles(d):
    i = user_index(d, "Chiamaka", "Okafor")
    d["users"][i]["roles"] = {}
    return f"$.users[{i}].roles", "the user has no role"


def user_with_student_and_teacher_roles(d):
    i = user_index(d, "Priya", "Raghunathan")
    d["users"][i]["roles"]["teacher"] = {"school": d["schools"][1]["id"]}
    return f"$.users[{i}].roles", ("a student holds no other role (this user is also teacher): "
                                   "make the teacher role a separate user")


def user_with_unsupported_role(d):
    i = user_index(d, "Rebecca", "Alvarez")
    d["users"][i]["roles"] = {"principal": {}}
    return f"$.users[{i}].roles", "unknown role \"principal\": Clever's roles are student, teacher"


def role_school_in_other_district(d):
    i = user_index(d, "Zoë", "Ng")
    d["users"][i]["roles"]["student"]["school"] = d["schools"][2]["id"]
    return f"$.users[{i}].roles.student.school", "but the user is in district"


def role_school_unknown(d):
    i = user_index(d, "Daniel", "Kim")
    d["users"][i]["roles"]["teacher"]["schools"][0] = UNKNOWN_ID
    return f"$.users[{i}].roles.teacher.schools[0]", "unknown school"


def school_in_unknown_district(d):
    d["schools"][1]["district"] = UNKNOWN_ID
    return "$.schools[1].district", "unknown district"


def term_in_unknown_district(d):
    d["terms"][1]["district"] = UNKNOWN_ID
    return "$.terms[1].district", "unknown district"


def section_school_in_other_district(d):
    s = section_index(d, "Grade 8 Math")
    d["sections"][s]["school"] = d["schools"][0]["id"]
    return f"$.sections[{s}].school", "but the section is in district"


def section_term_in_other_district(d):
    s = section_index(d, "Grade 5 Reading")
    d["sections"][s]["term_id"] = d["terms"][1]["id"]
    return f"$.sections[{s}].term_id", "but the section is in district"


def section_student_listed_twice(d):
    s = section_index(d, "Grade 5 Math")
    d["sections"][s]["students"].append(d["sections"][s]["students"][0])
    n = len(d["sections"][s]["students"]) - 1
    return f"$.sections[{s}].students[{n}]", "listed twice"


def section_grading_scale_of_other_district(d):
    s = section_index(d, "Grade 8 Math")
    d["sections"][s]["schoology"]["grading_scale"] = d["districts"][0]["schoology"]["grading_scales"][1]["id"]
    return f"$.sections[{s}].schoology.grading_scale", "unknown grading scale"


def app_with_empty_redirect_uris(d):
    d["apps"][0]["redirect_uris"] = []
    return "$.apps[0].redirect_uris", "at least one redirect URI"


def app_in_unknown_district(d):
    d["apps"][0]["districts"][1] = UNKNOWN_ID
    return "$.apps[0].districts[1]", "unknown district"


def app_client_id_duplicated(d):
    twin = copy.deepcopy(d["apps"][0])
    twin["name"] = "Twin"
    d["apps"].append(twin)
    return "$.apps[1].client_id", "already used at $.apps[0].client_id"


def school_name_is_a_number(d):
    d["schools"][0]["name"] = 42
    return "$.schools[0].name", "42 is not of type 'string'"


def user_first_name_is_a_number(d):
    i = user_index(d, "Noah", "Goldberg")
    d["users"][i]["name"]["first"] = 7
    return f"$.users[{i}].name.first", "is not of type 'string'"


def users_is_an_object(d):
    d["users"] = {"a": 1}
    return "$.users", "is not of type 'array'"


def unknown_top_level_key(d):
    d["students"] = []
    return "$", "'students' was unexpected"


def no_districts(d):
    d["districts"] = []
    d["schools"] = d["terms"] = d["users"] = d["sections"] = []
    for app in d["apps"]:
        app.pop("districts")
    return "$.districts", "at least one district"


def missing_top_level_array(d):
    del d["terms"]
    return "$", "'terms' is a required property"


NEGATIVE_CASES = [
    missing_school_name, missing_user_first_name, missing_section_students,
    bad_id_not_hex, bad_id_uppercase, bad_id_too_short,
    id_with_a_trailing_newline, section_term_id_with_a_nul, section_course_with_a_trailing_nul,
    legacy_id_with_a_nul, grading_period_id_with_a_tab, grading_category_id_with_a_delete,
    district_contact_id_with_a_newline, app_client_id_with_a_c1_control,
    duplicate_id_across_kinds,
    user_in_unknown_district,
    section_student_is_a_teacher, section_student_in_other_district,
    section_teacher_unknown, section_teacher_is_a_student, section_teacher_not_in_teachers,
    section_teacher_in_other_district,
    student_with_no_roles, user_with_student_and_teacher_roles, user_with_unsupported_role,
    role_school_in_other_district, role_school_unknown,
    school_in_unknown_district, term_in_unknown_district,
    section_school_in_other_district, section_term_in_other_district, section_student_listed_twice,
    section_grading_scale_of_other_district,
    app_with_empty_redirect_uris, app_in_unknown_district, app_client_id_duplicated,
    school_name_is_a_number, user_first_name_is_a_number, users_is_an_object,
    unknown_top_level_key, no_districts, missing_top_level_array,
]


@pytest.mark.parametrize("mutate", NEGATIVE_CASES, ids=lambda f: f.__name__)
def test_one_mutation_gives_exactly_one_problem(doc, mutate):
    path, fragment = mutate(doc)
    problems = validate_roster(doc)
    assert len(problems) == 1, problems
    assert problems[0].path == path
    assert fragment in problems[0].message
    with pytest.raises(RosterError) as info:
        load_roster(doc)
    assert info.value.problems == problems


@pytest.mark.parametrize("top", [[], [1, 2], "roster", 42, None, True], ids=repr)
def test_non_object_top_level(top):
    problems = validate_roster(top)
    assert len(problems) == 1
    assert problems[0].path == "$"
    assert "must be a JSON object" in problems[0].message


def test_user_with_student_and_other_roles_message_names_them(doc):
    i = user_index(doc, "Zoë", "Ng")
    doc["users"][i]["roles"]["teacher"] = {}
    doc["users"][i]["roles"]["contact"] = {"student_relationships": [
        {"student": doc["users"][user_index(doc, "Kai", "Nakamura")]["id"]}]}
    [problem] = validate_roster(doc)
    assert problem == (f"$.users[{i}].roles", "a student holds no other role (this user is also "
                                              "teacher, contact): make the teacher, contact role a "
                                              "separate user")


def test_unsupported_role_message_names_the_role(doc):
    doc["users"][0]["roles"] = {"school_admin": {}}
    [problem] = validate_roster(doc)
    assert '"school_admin"' in problem.message


def test_long_values_are_shortened_in_messages(doc):
    doc["sections"] = {"x": "y" * 5000}
    [problem] = validate_roster(doc)
    assert problem.path == "$.sections"
    assert len(problem.message) < 200


# --- several problems at once ------------------------------------------------------------

def test_every_schema_problem_is_reported_at_once_sorted_by_path(doc):
    doc["users"][12]["id"] = "nope"
    doc["users"][2]["name"]["last"] = None
    del doc["schools"][1]["district"]
    doc["apps"][0]["redirect_uris"] = []
    doc["sections"][0]["teachers"] = "not a list"
    problems = validate_roster(doc)
    assert [p.path for p in problems] == [
        "$.apps[0].redirect_uris",
        "$.schools[1]",
        "$.sections[0].teachers",
        "$.users[2].name.last",
        "$.users[12].id",  # numeric order, not string order
    ]
    assert len(problems) == 5
    # schema errors hide the referential pass: no reference problems are mixed in
    assert not any("unknown" in p.message for p in problems)


def test_schema_problems_are_sorted_by_path_with_numeric_indexes(doc):
    for i in (12, 2, 30, 9):
        doc["users"][i]["email"] = 1
    problems = validate_roster(doc)
    assert [p.path for p in problems] == [f"$.users[{i}].email" for i in (2, 9, 12, 30)]


def test_every_referential_problem_is_reported_at_once(doc):
    d = doc
    kim = d["users"][user_index(d, "Daniel", "Kim")]["id"]
    begay = d["users"][user_index(d, "Tala", "Begay")]["id"]
    math = section_index(d, "Grade 5 Math")
    d["sections"][math]["students"][0] = kim
    d["sections"][math]["students"][1] = begay
    d["sections"][math]["students"][2] = UNKNOWN_ID
    d["terms"][0]["district"] = UNKNOWN_ID
    d["apps"][0]["districts"].append(UNKNOWN_ID)
    d["users"][4]["id"] = d["districts"][1]["id"]
    problems = validate_roster(d)
    by_path = {p.path: p.message for p in problems}
    assert len(problems) == 6, problems
    assert "already used at $.districts[1].id" in by_path["$.users[4].id"]
    assert "unknown district" in by_path["$.terms[0].district"]
    assert "not a student" in by_path[f"$.sections[{math}].students[0]"]
    assert "is in district" in by_path[f"$.sections[{math}].students[1]"]
    assert "unknown student" in by_path[f"$.sections[{math}].students[2]"]
    assert "unknown district" in by_path[f"$.apps[0].districts[{len(d['apps'][0]['districts']) - 1}]"]

    with pytest.raises(RosterError) as info:
        load_roster(d)
    lines = str(info.value).splitlines()
    assert lines == [f"{p.path}: {p.message}" for p in problems]


def test_roster_error_str_lists_one_problem_per_line():
    err = RosterError([RosterProblem("$.a", "first"), RosterProblem("$.b[0]", "second")])
    assert str(err) == "$.a: first\n$.b[0]: second"
    assert err.problems == [("$.a", "first"), ("$.b[0]", "second")]
    assert isinstance(err, Exception)


# --- reading files -------------------------------------------------------------------------

def test_invalid_json_file_reports_line_and_column(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{\n  "districts": [\n    {"id": }\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(RosterError) as info:
        load_roster(bad)
    [problem] = info.value.problems
    assert problem.path == "$"
    assert "line 3" in problem.message
    assert "column 12" in problem.message
    assert "not valid JSON" in problem.message


def test_truncated_json_file(tmp_path, default_doc):
    bad = tmp_path / "truncated.json"
    text = json.dumps(default_doc, indent=2, ensure_ascii=False)
    bad.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(RosterError) as info:
        load_roster(str(bad))
    [problem] = info.value.problems
    assert problem.path == "$" and "line" in problem.message and "column" in problem.message


def test_nan_is_not_json(tmp_path):
    bad = tmp_path / "nan.json"
    bad.write_text('{"districts": NaN}', encoding="utf-8")
    with pytest.raises(RosterError) as info:
        load_roster(bad)
    assert info.value.problems[0].path == "$"
    assert "NaN" in info.value.problems[0].message


def test_duplicate_keys_in_file_are_a_problem(tmp_path, default_doc):
    text = json.dumps(default_doc, ensure_ascii=False)
    dup = tmp_path / "dup.json"
    dup.write_text(text[:-1] + ', "users": []}', encoding="utf-8")
    with pytest.raises(RosterError) as info:
        load_roster(dup)
    [problem] = info.value.problems
    assert problem.path == "$" and "'users'" in problem.message


def test_missing_file_is_a_problem(tmp_path):
    with pytest.raises(RosterError) as info:
        load_roster(tmp_path / "nowhere.json")
    [problem] = info.value.problems
    assert problem.path == "$"
    assert "nowhere.json" in problem.message


def test_directory_is_unreadable(tmp_path):
    with pytest.raises(RosterError) as info:
        load_roster(tmp_path)
    assert info.value.problems[0].path == "$"


def test_non_utf8_file_is_a_problem(tmp_path):
    bad = tmp_path / "latin1.json"
    bad.write_bytes('{"districts": [{"name": "Zoë"}]}'.encode("latin-1"))
    with pytest.raises(RosterError) as info:
        load_roster(bad)
    assert "UTF-8" in info.value.problems[0].message


def test_load_roster_file_reads_like_load_roster_and_skips_an_unchanged_file(tmp_path, default_doc):
    f = tmp_path / "crlf.json"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(default_doc, indent=1).replace("\n", "\r\n").encode())
    doc, digest = load_roster_file(f, salt=b"s")
    assert doc == default_doc == load_roster(f)
    assert load_roster_file(f, salt=b"s", unless_digest=digest) == (None, digest)
    assert load_roster_file(f, unless_digest=digest)[0] == default_doc  # another salt

    f.write_bytes(b'{"districts": [],\r\n "schools": [],,}')
    with pytest.raises(RosterError) as lines:
        load_roster_file(f)
    assert "line 2, column 16" in lines.value.problems[0].message  # \r\n is one line break

    f.write_bytes('{"districts": [{"name": "Zoë"}]}'.encode("latin-1"))
    with pytest.raises(RosterError) as latin:
        load_roster_file(f)
    assert latin.value.problems == [RosterProblem(
        "$", f"roster file {str(f)!r} is not UTF-8 text (byte offset 27)")]


def test_valid_json_with_schema_problems_from_file(tmp_path):
    f = tmp_path / "list.json"
    f.write_text("[]", encoding="utf-8")
    with pytest.raises(RosterError) as info:
        load_roster(f)
    assert [p.path for p in info.value.problems] == ["$"]


def test_load_roster_rejects_other_types():
    with pytest.raises(TypeError):
        load_roster(42)  # type: ignore[arg-type]


def test_load_roster_dict_returns_an_independent_copy(doc):
    loaded = load_roster(doc)
    assert loaded == doc
    loaded["users"].clear()
    assert doc["users"]


# --- non-ASCII survives ------------------------------------------------------------------

@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_non_ascii_names_survive_round_trip(tmp_path, default_doc, ensure_ascii):
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(default_doc, indent=2, ensure_ascii=ensure_ascii), encoding="utf-8")
    loaded = load_roster(path)
    assert loaded == default_doc
    names = {(u["name"]["first"], u["name"]["last"]) for u in loaded["users"]}
    for pair in [("José", "Núñez"), ("Zoë", "Ng"), ("Minh", "Nguyễn"), ("Øyvind", "Åberg"),
                 ("Siobhán", "O'Brien")]:
        assert pair in names
    vn = loaded["users"][user_index(loaded, "Minh", "Nguyễn")]
    assert vn["name"]["middle"] == "Thị"
    assert loaded["districts"][0]["schoology"]["grading_scales"][0]["title"] == "Standard A–F"


def test_utf8_bom_is_accepted(tmp_path, default_doc):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(default_doc, ensure_ascii=False).encode("utf-8"))
    assert load_roster(path) == default_doc


def test_non_identifier_keys_are_quoted_in_paths(doc):
    doc["districts"][0]["schoology"]["grading_scales"][0]["levels"][0]["min_percent"] = "ninety"
    doc["schools"][0]["ext"] = []
    problems = validate_roster(doc)
    assert [p.path for p in problems] == [
        "$.districts[0].schoology.grading_scales[0].levels[0].min_percent",
        "$.schools[0].ext",
    ]


# --- robustness ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_validate_never_raises_on_arbitrary_json(value):
    problems = validate_roster(value)
    assert problems, "arbitrary JSON is never a valid roster"
    assert all(isinstance(p, RosterProblem) and p.path.startswith("$") for p in problems)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["districts", "schools", "terms", "users", "sections"]), st.data())
def test_dropping_any_record_never_crashes_and_is_reported_or_valid(default_doc, kind, data):
    d = copy.deepcopy(default_doc)
    if not d[kind]:
        return
    i = data.draw(st.integers(0, len(d[kind]) - 1))
    removed = d[kind].pop(i)
    problems = validate_roster(d)
    if kind == "districts" and not d["districts"]:
        assert problems
    # anything that pointed at the removed record is now reported by path
    referenced = json.dumps(d).count(json.dumps(removed["id"]))
    assert (referenced == 0) == (problems == [])
