"""People who are not one-role students or teachers, as the default roster has them: a
teacher who is also staff, a teacher in two schools, a principal, a district admin, contacts,
a student in no section and people without email -- in the roster format, the data API of
every version, /me, grades, the persona list and the fake Schoology."""

from __future__ import annotations

import copy
import sqlite3

import pytest

from conftest import assert_error, bearer, district_token, il_token, log_in
from simulator.app import create_app
from simulator.clever.data_api import render
from simulator.ids import legacy_role_ids
from simulator.roster import validate_roster


@pytest.fixture(scope="module")
def app():
    """One simulator for the module (these tests only read); overrides conftest's."""
    app = create_app({"DB": ":memory:", "SECRET_KEY": "test-secret"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


@pytest.fixture(scope="module")
def people(app) -> dict:
    """The default roster's people by "First Last"."""
    return {f'{u["name"]["first"]} {u["name"]["last"]}': u
            for u in app.extensions["clever_sim"].roster["users"]}


@pytest.fixture
def dtok(sim, district_id):
    return district_token(sim, district_id)


def get(client, path, token):
    return client.get(path, headers=bearer(token))


def ok(client, path, token):
    resp = get(client, path, token)
    assert resp.status_code == 200, (path, resp.status_code, resp.get_json())
    return resp.get_json()


def ids_of(body):
    return [item["data"]["id"] for item in body["data"]]


def v2(user, role):
    return legacy_role_ids(user)[role]


# --- one person, several roles: one v3 user, one v2 record per role ---------------------

def test_teacher_who_is_also_staff_is_one_v3_user_with_a_legacy_id_per_role(client, people, dtok):
    olivia = people["Olivia Bennett"]
    roles = ok(client, f"/v3.0/users/{olivia['id']}", dtok)["data"]["roles"]
    assert set(roles) == {"teacher", "staff"}
    assert roles["teacher"]["legacy_id"] == v2(olivia, "teacher")
    assert roles["staff"]["legacy_id"] == v2(olivia, "staff")
    assert len({olivia["id"], v2(olivia, "teacher"), v2(olivia, "staff")}) == 3
    teacher = ok(client, f"/v2.1/teachers/{v2(olivia, 'teacher')}", dtok)["data"]
    staff = ok(client, f"/v2.1/school_admins/{v2(olivia, 'staff')}", dtok)["data"]
    assert (teacher["title"], staff["title"]) == ("ELA Co-Teacher", "Instructional Coach")
    assert staff["name"] == {"first": "Olivia", "last": "Bennett"}  # v2 AdminName: no middle


@pytest.mark.parametrize("path, role, message, problem, hint", [
    ("/v2.1/teachers/{staff}", "staff", "Teacher not found",
     "is the id of a school admin (staff), not of a teacher",
     "read it at /v2.1/school_admins/{staff}, or this person's teacher record at "
     "/v2.1/teachers/{teacher}"),
    ("/v2.0/school_admins/{teacher}", "teacher", "School admin not found",
     "is the id of a teacher, not of a school admin (staff)",
     "read it at /v2.0/teachers/{teacher}, or this person's staff record at "
     "/v2.0/school_admins/{staff}"),
    ("/v3.0/users/{staff}", "staff", "User not found",
     "is this person's v2 id; v3.0 names people by their v3 id", "use {v3} (the v3 id)"),
])
def test_a_v2_role_id_read_as_another_role_or_version_is_404_naming_the_right_path(
        client, people, dtok, path, role, message, problem, hint):
    olivia = people["Olivia Bennett"]
    names = {"staff": v2(olivia, "staff"), "teacher": v2(olivia, "teacher"), "v3": olivia["id"]}
    resp = get(client, path.format(**names), dtok)
    body = assert_error(resp, 404, message)
    assert body["errors"] == [{"field": "id", "problem": problem, "hint": hint.format(**names)}]


def test_lists_by_role_include_everyone_holding_it_with_that_roles_ids(client, people, dtok):
    olivia, leticia = people["Olivia Bennett"], people["Leticia Fuentes"]
    staff = sorted([v2(olivia, "staff"), v2(leticia, "staff")])
    assert ids_of(ok(client, "/v2.1/school_admins", dtok)) == staff
    assert ids_of(ok(client, "/v3.0/users?role=staff", dtok)) == sorted([olivia["id"], leticia["id"]])
    teachers = ids_of(ok(client, "/v2.1/teachers", dtok))
    assert v2(olivia, "teacher") in teachers and v2(olivia, "staff") not in teachers
    assert ids_of(ok(client, "/v3.0/users?role=district_admin", dtok)) == [people["Marisol Delgado"]["id"]]
    paged = ok(client, "/v2.1/school_admins?limit=1", dtok)
    assert ids_of(paged) == staff[:1]
    assert paged["links"][1] == {"rel": "next",
                                 "uri": f"/v2.1/school_admins?limit=1&starting_after={staff[0]}"}
    assert ids_of(ok(client, paged["links"][1]["uri"], dtok)) == staff[1:]


def test_district_admin_v2_id_is_the_districts_contact_id(client, people, dtok, district_id):
    marisol = people["Marisol Delgado"]
    contact = ok(client, f"/v2.1/districts/{district_id}", dtok)["data"]["district_contact"]
    admin = ok(client, f"/v2.1/district_admins/{contact['id']}", dtok)["data"]
    assert admin == {"id": contact["id"], "district": district_id,
                     "name": {"first": "Marisol", "last": "Delgado"},
                     "email": marisol["email"], "title": "Director of Educational Technology"}


def test_contacts_in_each_version_with_their_students_and_a_null_email(client, people, dtok):
    kenji, kai = people["Kenji Nakamura"], people["Kai Nakamura"]
    v21 = ok(client, f"/v2.1/contacts/{v2(kenji, 'contact')}", dtok)["data"]
    assert v21 == {"id": v2(kenji, "contact"), "district": kenji["district"], "name": "Kenji Nakamura",
                   "email": None, "phone": "(916) 555-0190", "phone_type": "Home", "sis_id": None,
                   "students": [kai["id"]], "relationship": "Parent", "type": "Primary"}
    v3 = ok(client, f"/v3.0/users/{kenji['id']}", dtok)["data"]
    assert v3["email"] is None and v3["roles"]["contact"]["student_relationships"] == [
        {"student": kai["id"], "relationship": "Parent", "type": "Primary"}]
    assert ids_of(ok(client, f"/v2.1/contacts/{v2(kenji, 'contact')}/students", dtok)) == [kai["id"]]
    assert ids_of(ok(client, f"/v3.0/users/{kai['id']}/myContacts", dtok)) == [kenji["id"]]


@pytest.mark.parametrize("version", ["v2.0", "v2.1", "v3.0", "v3.1"])
def test_student_without_email_has_no_email_field_in_any_version(client, people, dtok, version):
    kai = people["Kai Nakamura"]
    path = f"/{version}/users/{kai['id']}" if version.startswith("v3") else f"/{version}/students/{kai['id']}"
    data = ok(client, path, dtok)["data"]
    assert "email" not in data
    if version.startswith("v3"):
        assert set(data["roles"]["student"]).isdisjoint({"email", "credentials"})


@pytest.mark.parametrize("version, definition, shown", [
    ("v3.0", "User", {"email": None}),             # nullable: null stays null
    ("v2.1", "Teacher", {"email": None}),
    ("v2.1", "Contact", {"email": None}),
    ("v2.1", "SchoolAdmin", {}),                   # email: string, not nullable: left out
    ("v2.0", "DistrictAdmin", {}),
])
def test_a_null_email_is_null_where_the_versions_document_allows_it_else_absent(
        version, definition, shown):
    assert render(version, definition, {"email": None}) == shown


def test_student_in_no_section_has_an_empty_sections_list(client, people, dtok):
    lucia = people["Lucía Flores"]
    assert ok(client, f"/v3.0/users/{lucia['id']}/sections", dtok)["data"] == []
    data = ok(client, f"/v3.0/users/{lucia['id']}", dtok)["data"]
    assert data["name"] == {"first": "Lucía", "middle": None, "last": "Flores"}  # null middle name


def test_teacher_in_two_schools_has_both_and_a_section_in_each(client, people, dtok, sim):
    samuel = people["Samuel Osei"]
    schools = samuel["roles"]["teacher"]["schools"]
    assert ids_of(ok(client, f"/v3.0/users/{samuel['id']}/schools", dtok)) == sorted(schools)
    sections = ok(client, f"/v2.1/teachers/{v2(samuel, 'teacher')}/sections", dtok)["data"]
    assert sorted(s["data"]["school"] for s in sections) == sorted(schools)
    assert all(s["data"]["teacher"] == v2(samuel, "teacher") for s in sections)
    for school in schools:
        assert v2(samuel, "teacher") in ids_of(ok(client, f"/v2.1/schools/{school}/teachers", dtok))


def test_co_taught_section_names_both_teachers_by_each_versions_ids(client, people, dtok, roster):
    kim, olivia = people["Daniel Kim"], people["Olivia Bennett"]
    section = next(s for s in roster["sections"] if s["section_number"] == "ELA7-03")
    v3 = ok(client, f"/v3.0/sections/{section['id']}", dtok)["data"]
    assert (v3["teacher"], v3["teachers"]) == (kim["id"], [kim["id"], olivia["id"]])
    v21 = ok(client, f"/v2.1/sections/{section['id']}", dtok)["data"]
    assert (v21["teacher"], v21["teachers"]) == (v2(kim, "teacher"), [v2(kim, "teacher"), v2(olivia, "teacher")])
    assert ids_of(ok(client, f"/v2.1/sections/{section['id']}/teachers", dtok)) == sorted(v21["teachers"])


# --- /me and grades for each kind of person -----------------------------------------------

@pytest.mark.parametrize("name, v2_type, segment, role", [
    ("Olivia Bennett", "teacher", "teachers", "teacher"),       # primary role: teacher
    ("Leticia Fuentes", "school_admin", "school_admins", "staff"),
    ("Marisol Delgado", "district_admin", "district_admins", "district_admin"),
    ("María Núñez", "contact", "contacts", "contact"),
])
def test_me_of_each_kind_of_person_names_its_record_in_each_version(client, sim, people, name,
                                                                    v2_type, segment, role):
    person = people[name]
    token = il_token(sim, person["id"])
    me2 = ok(client, "/v2.1/me", token)
    assert (me2["type"], me2["data"]["id"]) == (v2_type, v2(person, role))
    assert me2["links"][1] == {"rel": "canonical", "uri": f"/v2.1/{segment}/{v2(person, role)}"}
    assert ok(client, me2["links"][1]["uri"], token)["data"]["id"] == v2(person, role)
    me3 = ok(client, "/v3.0/me", token)
    assert (me3["type"], me3["data"]["id"]) == ("user", person["id"])
    assert ok(client, f"/v3.0/users/{person['id']}", token)["data"]["id"] == person["id"]


@pytest.mark.parametrize("name, words", [
    ("Leticia Fuentes", "a staff member"),
    ("Marisol Delgado", "a district admin"),
    ("María Núñez", "a contact (a student's parent or guardian)"),
])
def test_grades_are_refused_for_a_person_who_is_not_a_student(client, sim, people, dtok, name, words):
    person = people[name]
    for user_id in (person["id"], *legacy_role_ids(person).values()):
        resp = client.post("/v1/grade", headers=bearer(dtok),
                           json={"assignmentID": "a-1", "userID": user_id, "percentage": 0.5})
        assert_error(resp, 400, field="userID", problem=f"is {words}; grades are for students")
    resp = client.post("/v1/grade", headers=bearer(il_token(sim, person["id"])),
                       json={"assignmentID": "a-1", "percentage": 0.5})
    assert_error(resp, 403, field="Authorization",
                 problem=f"this il token belongs to {words}; grades are posted for students")


def test_grade_for_the_student_without_email_is_accepted(client, people, dtok):
    resp = client.post("/v1/grade", headers=bearer(dtok), json={
        "assignmentID": "a-1", "userID": people["Kai Nakamura"]["id"], "percentage": 0.5})
    assert resp.status_code == 200, resp.get_json()


# --- persona list and the fake Schoology ----------------------------------------------------

def test_personas_filter_by_any_role_and_list_every_role_held(client, people):
    body = client.get("/_sim/personas?role=staff").get_json()
    assert [(p["name"], p["role"], p["roles"]) for p in body["data"]] == [
        ("Olivia Bennett", "teacher", ["teacher", "staff"]), ("Leticia Fuentes", "staff", ["staff"])]
    contacts = client.get("/_sim/personas?role=contact").get_json()["data"]
    assert {p["name"] for p in contacts} == {"María Núñez", "Kenji Nakamura"}
    assert all(p["sections"] == [] for p in contacts)


def test_personas_refuse_an_unknown_role_naming_the_roles(client):
    body = assert_error(client.get("/_sim/personas?role=school_admin"), 400, "Invalid filter")
    assert body["errors"] == [{"field": "role", "problem": "must be one of student, teacher, staff, "
                                                           "district_admin, contact",
                               "hint": "e.g. role=teacher (people who hold several roles are listed "
                                       "under each)"}]


def test_schoology_shows_a_staff_member_no_sections_and_says_why(client, people):
    log_in(client, people["Leticia Fuentes"]["id"])
    text = client.get("/schoology").get_data(as_text=True)
    assert "<bdi>Leticia Fuentes</bdi> has no sections." in text
    assert "Only teachers and students are members of Schoology sections: a staff" in text


def test_schoology_lists_a_two_school_teachers_sections_from_both_schools(client, people, roster):
    samuel = people["Samuel Osei"]
    log_in(client, samuel["id"])
    mine = client.get("/schoology").get_data(as_text=True).split("Sections I teach", 1)[1]
    for s in roster["sections"]:
        assert (s["name"] in mine) == (samuel["id"] in s["teachers"]), s["name"]


def test_schoology_co_teacher_who_is_also_staff_teaches_the_shared_section(client, people, roster):
    section = next(s for s in roster["sections"] if s["section_number"] == "ELA7-03")
    log_in(client, people["Olivia Bennett"]["id"])
    page = client.get(f"/schoology/sections/{section['id']}")
    assert page.status_code == 200
    assert 'you are a <span class="sg-role">teacher</span> here' in page.get_data(as_text=True)


def test_schoology_refuses_a_contact_a_section_page(client, people, roster):
    log_in(client, people["María Núñez"]["id"])
    section = roster["sections"][0]
    assert client.get(f"/schoology/sections/{section['id']}").status_code == 403


# --- the roster format: new shapes accepted, bad ones refused with their path ---------------

def _index(doc, first, last):
    return next(i for i, u in enumerate(doc["users"]) if u["name"]["first"] == first
                and u["name"]["last"] == last)


def contact_of_unknown_student(d):
    i = _index(d, "María", "Núñez")
    d["users"][i]["roles"]["contact"]["student_relationships"][0]["student"] = "0123456789abcdef01234567"
    return (f"$.users[{i}].roles.contact.student_relationships[0].student",
            "unknown student '0123456789abcdef01234567': no user has this id")


def contact_of_a_teacher(d):
    i = _index(d, "María", "Núñez")
    kim = d["users"][_index(d, "Daniel", "Kim")]["id"]
    d["users"][i]["roles"]["contact"]["student_relationships"][0]["student"] = kim
    return (f"$.users[{i}].roles.contact.student_relationships[0].student",
            f"user '{kim}' (Daniel Kim) is a teacher, not a student")


def contact_of_a_student_in_another_district(d):
    i = _index(d, "María", "Núñez")
    tala = d["users"][_index(d, "Tala", "Begay")]["id"]
    d["users"][i]["roles"]["contact"]["student_relationships"][0]["student"] = tala
    return (f"$.users[{i}].roles.contact.student_relationships[0].student",
            f"student '{tala}' (Tala Begay) is in district 'fc3b2bf9c1b7a35ae4fb2bd0', but the "
            f"contact is in district '4e7112c9111e8c530d98db16'")


def contact_without_students(d):
    i = _index(d, "Kenji", "Nakamura")
    d["users"][i]["roles"]["contact"]["student_relationships"] = []
    return (f"$.users[{i}].roles.contact.student_relationships",
            'a contact relates to at least one student: add {"student": <a student\'s id>, '
            '"relationship": "Parent", "type": "Parent/Guardian"}')


def contact_relationship_not_in_clevers_list(d):
    i = _index(d, "Kenji", "Nakamura")
    d["users"][i]["roles"]["contact"]["student_relationships"][0]["relationship"] = "Dad"
    return (f"$.users[{i}].roles.contact.student_relationships[0].relationship",
            "'Dad' is not one of ['Parent', 'Grandparent', 'Self', 'Aunt/Uncle', 'Sibling', "
            "'Other', '', None]")


def section_co_teacher_is_staff_only(d):
    s = next(i for i, x in enumerate(d["sections"]) if x["section_number"] == "ELA7-03")
    leticia = d["users"][_index(d, "Leticia", "Fuentes")]["id"]
    d["sections"][s]["teachers"][1] = leticia
    return (f"$.sections[{s}].teachers[1]",
            f"user '{leticia}' (Leticia Fuentes) is a staff member, not a teacher")


def staff_school_unknown(d):
    i = _index(d, "Olivia", "Bennett")
    d["users"][i]["roles"]["staff"]["schools"] = ["0123456789abcdef01234567"]
    return (f"$.users[{i}].roles.staff.schools[0]",
            "unknown school '0123456789abcdef01234567': no school has this id")


def legacy_id_used_twice(d):
    i, j = _index(d, "Olivia", "Bennett"), _index(d, "Leticia", "Fuentes")
    d["users"][i]["roles"]["staff"]["legacy_id"] = "abc"
    d["users"][j]["roles"]["staff"]["legacy_id"] = "abc"
    return (f"$.users[{j}].roles.staff.legacy_id",
            f"v2 id 'abc' is used twice: $.users[{j}].roles.staff.legacy_id and "
            f"$.users[{i}].roles.staff.legacy_id")


def legacy_id_is_a_record_id(d):
    i = _index(d, "Marisol", "Delgado")
    d["users"][i]["roles"]["district_admin"]["legacy_id"] = d["schools"][0]["id"]
    return (f"$.users[{i}].roles.district_admin.legacy_id",
            f"v2 id '{d['schools'][0]['id']}' is also the id at $.schools[0].id: a v2 id names one record")


def student_who_is_also_staff(d):
    i = _index(d, "Lucía", "Flores")
    d["users"][i]["roles"]["staff"] = {}
    return (f"$.users[{i}].roles",
            "a student holds no other role (this user is also staff): make the staff role a "
            "separate user")


def email_is_a_number(d):
    i = _index(d, "Kenji", "Nakamura")
    d["users"][i]["email"] = 7
    return f"$.users[{i}].email", "7 is not of type 'string' or 'null'"


ROLE_CASES = [contact_of_unknown_student, contact_of_a_teacher, contact_of_a_student_in_another_district,
              contact_without_students, contact_relationship_not_in_clevers_list,
              section_co_teacher_is_staff_only, staff_school_unknown, legacy_id_used_twice,
              legacy_id_is_a_record_id, student_who_is_also_staff, email_is_a_number]


@pytest.mark.parametrize("mutate", ROLE_CASES, ids=lambda f: f.__name__)
def test_roster_refuses_a_bad_role_shape_with_its_path_and_exact_message(roster, mutate):
    doc = copy.deepcopy(roster)
    path, message = mutate(doc)
    assert [tuple(p) for p in validate_roster(doc)] == [(path, message)]


def test_roster_accepts_every_role_with_null_or_absent_optional_fields(roster):
    doc = copy.deepcopy(roster)
    i = _index(doc, "Leticia", "Fuentes")
    doc["users"][i]["email"] = None
    doc["users"][i]["roles"]["staff"] = {}  # no schools, title or ids: all optional
    doc["users"][i]["roles"]["contact"] = {"student_relationships": [
        {"student": doc["users"][_index(doc, "José", "Núñez")]["id"], "relationship": None, "type": None}]}
    assert validate_roster(doc) == []


# --- a database written before people held several roles ----------------------------------

def test_a_database_of_the_previous_layout_is_rebuilt_and_reloaded(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('roster_loaded', '1'), ('roster_digest', 'old');
        CREATE TABLE users (id TEXT PRIMARY KEY, district_id TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('student', 'teacher')), data TEXT NOT NULL);
        CREATE TABLE legacy_ids (legacy_id TEXT PRIMARY KEY, user_id TEXT NOT NULL UNIQUE);
    """)
    conn.close()
    app = create_app({"DB": str(db), "SECRET_KEY": "t"}, environ={})
    try:
        sim = app.extensions["clever_sim"]
        assert sim.store.get_user(next(u["id"] for u in sim.roster["users"]
                                       if "staff" in u["roles"]))[0] in ("teacher", "staff")
        olivia = next(u for u in sim.roster["users"] if u["name"]["first"] == "Olivia")
        assert sim.store.legacy_role_ids()[0][(olivia["id"], "staff")] == legacy_role_ids(olivia)["staff"]
    finally:
        app.extensions["clever_sim"].close()
