"""Clever's data API: /me, records and lists of v2.0/v2.1/v3.0/v3.1.

Shapes are pinned against Clever's recorded responses and Swagger specs (the key sets
below were taken from them); errors are pinned with ``assert_error``.
"""

from __future__ import annotations

import copy

from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import assert_error, bearer, district_token, il_token
from simulator.app import create_app
from simulator.ids import legacy_role_ids, legacy_user_id

UNKNOWN_ID = "0123456789abcdef01234567"
VERSIONS = ("v2.0", "v2.1", "v3.0", "v3.1")
V2 = ("v2.0", "v2.1")
V3 = ("v3.0", "v3.1")

# Keys of Clever's recorded responses (api_user, client_section, client_school, client_districts).
RECORDED_USER_KEYS = {"created", "district", "email", "id", "last_modified", "name", "roles"}
RECORDED_SECTION_KEYS = {"course", "created", "district", "ext", "grade", "id", "last_modified",
                         "name", "period", "school", "section_number", "sis_id", "students",
                         "subject", "teacher", "teachers", "term_id"}
RECORDED_SCHOOL_KEYS = {"created", "district", "ext", "high_grade", "id", "last_modified",
                        "location", "low_grade", "name", "phone", "principal", "school_number",
                        "sis_id", "state_id"}
RECORDED_DISTRICT_KEYS = {"district_contact", "error", "id", "last_sync", "launch_date",
                          "login_methods", "name", "portal_url", "sis_type", "state"}
TERM_KEYS = {"district", "end_date", "id", "name", "start_date"}  # Swagger Term
# Swagger v2.1 Student / Teacher properties.
SWAGGER_STUDENT_KEYS = {"created", "credentials", "district", "dob", "ell_status", "email",
                        "enrollments", "ext", "gender", "grade", "graduation_year",
                        "hispanic_ethnicity", "id", "last_modified", "location", "name", "race",
                        "school", "schools", "sis_id", "state_id", "student_number"}
SWAGGER_TEACHER_KEYS = {"created", "credentials", "district", "email", "ext", "id",
                        "last_modified", "name", "school", "schools", "sis_id", "state_id",
                        "teacher_number", "title"}
USER_TOP_KEYS = ("id", "district", "name", "email", "created", "last_modified")
V21_ONLY = {"enrollments", "ext", "login_methods", "portal_url", "district_contact"}


def v2_id(user: dict) -> str:
    """The id v2 paths name a user by: a student's v3 id, anyone else's legacy id."""
    return legacy_user_id(user) or user["id"]


def v3_user(user: dict) -> dict:
    """A roster user as v3 shows it: ``legacy_id`` in non-student roles, only v3.0's fields."""
    roles = {}
    for role, fields in user["roles"].items():
        fields = dict(fields)
        if role != "student":
            fields["legacy_id"] = legacy_role_ids(user)[role]
            fields.pop("email", None)  # not a field of v3.0's Teacher
        roles[role] = fields
    return {**user, "roles": roles}


# --- helpers and fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def app():
    """One simulator for this module (the data API only reads); keeps the file fast.

    Overrides conftest's per-test ``app``; ``_clean_slate`` forgets each test's activity
    (SSO tokens, journal, rate counters). Tests that change the roster build their own app.
    """
    app = create_app({"DB": ":memory:", "SECRET_KEY": "test-secret"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


@pytest.fixture(autouse=True)
def _clean_slate(sim):
    sim.reset()


def get(client, path, token=None, **kw):
    """GET with an optional bearer token; every answer of this API is JSON."""
    headers = bearer(token) if token is not None else {}
    resp = client.get(path, headers=headers, **kw)
    assert resp.mimetype == "application/json", (resp.status_code, resp.content_type)
    return resp


def ok(client, path, token):
    resp = get(client, path, token)
    assert resp.status_code == 200, (path, resp.status_code, resp.get_json())
    return resp.get_json()


def strip_schoology(record):
    return {k: v for k, v in record.items() if k != "schoology"}


@pytest.fixture
def foreign_district_id(roster):
    return roster["districts"][1]["id"]


@pytest.fixture
def dtok(sim, district_id):
    return district_token(sim, district_id)


@pytest.fixture
def foreign_dtok(sim, foreign_district_id):
    return district_token(sim, foreign_district_id)


@pytest.fixture
def rec(roster, district_id, foreign_district_id):
    """Look up roster records: rec("sections") is one of the district, rec("sections", True) foreign."""
    def pick(kind, foreign=False, role=None):
        want = foreign_district_id if foreign else district_id
        for r in roster[kind]:
            home = r["id"] if kind == "districts" else r["district"]
            if home == want and (role is None or role in r["roles"]):
                return r
        raise LookupError(kind)
    return pick


def district_records(roster, kind, district, role=None):
    rows = [r for r in roster[kind]
            if (r["id"] if kind == "districts" else r["district"]) == district
            and (role is None or role in r["roles"])]
    return sorted(rows, key=lambda r: r["id"])


# --- /me ---------------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["student", "teacher"])
@pytest.mark.parametrize("path, version", [("/me", "v2.1"), ("/v2.0/me", "v2.0"),
                                           ("/v2.1/me", "v2.1")])
def test_v2_me_with_il_token_names_the_role_and_links_the_role_record(client, sim, student,
                                                                      teacher, who, path, version):
    user = student if who == "student" else teacher
    body = ok(client, path, il_token(sim, user["id"]))
    assert body == {
        "type": who,
        "data": {"id": v2_id(user), "district": user["district"], "type": who,
                 "authorized_by": "district"},
        "links": [{"rel": "self", "uri": "/me"},
                  {"rel": "canonical", "uri": f"/{version}/{who}s/{v2_id(user)}"},
                  {"rel": "district", "uri": f"/{version}/districts/{user['district']}"}]}


@pytest.mark.parametrize("who", ["student", "teacher"])
@pytest.mark.parametrize("version", V3)
def test_v3_me_with_il_token_is_always_type_user(client, sim, student, teacher, who, version):
    user = student if who == "student" else teacher
    body = ok(client, f"/{version}/me", il_token(sim, user["id"]))
    assert body == {
        "type": "user",
        "data": {"id": user["id"], "district": user["district"], "type": "user",
                 "authorized_by": "district"},
        "links": [{"rel": "self", "uri": "/me"},
                  {"rel": "canonical", "uri": f"/{version}/users/{user['id']}"},
                  {"rel": "district", "uri": f"/{version}/districts/{user['district']}"}]}


@pytest.mark.parametrize("path, version", [("/me", "v2.1"), ("/v2.0/me", "v2.0"),
                                           ("/v2.1/me", "v2.1"), ("/v3.0/me", "v3.0"),
                                           ("/v3.1/me", "v3.1")])
def test_me_with_district_token_answers_the_district(client, dtok, district_id, path, version):
    assert ok(client, path, dtok) == {
        "type": "district",
        "data": {"id": district_id, "district": district_id, "type": "district",
                 "authorized_by": "district"},
        "links": [{"rel": "self", "uri": "/me"},
                  {"rel": "canonical", "uri": f"/{version}/districts/{district_id}"}]}


def test_me_of_a_token_whose_user_left_the_roster_is_401(student):
    app = create_app({"DB": ":memory:", "SECRET_KEY": "test-secret"}, environ={})
    try:
        sim = app.extensions["clever_sim"]
        token = il_token(sim, student["id"])
        doc = copy.deepcopy(sim.roster)  # a new roster without the student, loaded whole
        doc["users"] = [u for u in doc["users"] if u["id"] != student["id"]]
        for section in doc["sections"]:
            section["students"] = [s for s in section["students"] if s != student["id"]]
        sim.store.replace_roster(doc)
        assert_error(get(app.test_client(), "/v3.0/me", token), 401, "Could not authorize token",
                     field="Authorization", problem="no longer in the roster")
    finally:
        sim.close()


# --- single records ----------------------------------------------------------------------

@pytest.mark.parametrize("who", ["student", "teacher"])
@pytest.mark.parametrize("version", V3)
@pytest.mark.parametrize("token_kind", ["il", "district"])
def test_v3_user_record_is_stored_record_with_recorded_links(client, sim, dtok, student, teacher,
                                                             who, version, token_kind):
    user = student if who == "student" else teacher
    token = il_token(sim, user["id"]) if token_kind == "il" else dtok
    body = ok(client, f"/{version}/users/{user['id']}", token)
    assert set(body) == {"data", "links"}
    assert set(body["data"]) == RECORDED_USER_KEYS
    assert body["data"] == v3_user(user)
    base = f"/{version}/users/{user['id']}"
    mine = ["myContacts", "myTeachers"] if who == "student" else ["myStudents"]
    assert body["links"] == [{"rel": "self", "uri": base}] + [
        {"rel": rel, "uri": f"{base}/{rel}"} for rel in ("district", "sections", *mine, "schools")]


@pytest.mark.parametrize("version", V3)
@pytest.mark.parametrize("kind, keys, rels", [
    ("districts", RECORDED_DISTRICT_KEYS, []),
    ("schools", RECORDED_SCHOOL_KEYS, ["district", "sections", "users", "terms", "courses"]),
    ("sections", RECORDED_SECTION_KEYS, ["district", "school", "term", "course", "users"]),
    ("terms", TERM_KEYS, ["district", "schools", "sections"]),
    ("courses", {"district", "id", "name", "number"}, ["district", "schools", "sections", "resources"]),
])
def test_v3_records_drop_schoology_settings_and_link_like_clever(client, dtok, rec, version, kind,
                                                                 keys, rels):
    record = rec(kind)
    body = ok(client, f"/{version}/{kind}/{record['id']}", dtok)
    assert set(body) == {"data", "links"}
    assert "schoology" not in body["data"]
    assert keys <= set(body["data"])
    assert body["data"] == strip_schoology(record)
    base = f"/{version}/{kind}/{record['id']}"
    assert body["links"] == [{"rel": "self", "uri": base}] + [
        {"rel": rel, "uri": f"{base}/{rel}"} for rel in rels]


def test_v3_section_lists_its_students_and_teachers(client, dtok, rec):
    section = rec("sections")
    data = ok(client, f"/v3.0/sections/{section['id']}", dtok)["data"]
    assert data["students"] == section["students"]
    assert data["teachers"] == section["teachers"]
    assert data["teacher"] == section["teacher"]


@pytest.mark.parametrize("version", V2)
@pytest.mark.parametrize("collection, role, swagger_keys", [
    ("students", "student", SWAGGER_STUDENT_KEYS), ("teachers", "teacher", SWAGGER_TEACHER_KEYS)])
def test_v2_user_records_are_flattened_role_records(client, dtok, rec, version, collection, role,
                                                    swagger_keys):
    user = rec("users", role=role)
    body = ok(client, f"/{version}/{collection}/{v2_id(user)}", dtok)
    data = body["data"]
    assert set(data) <= swagger_keys and "roles" not in data
    expected_keys = set(USER_TOP_KEYS) | set(user["roles"][role])
    assert set(data) == (expected_keys - V21_ONLY if version == "v2.0" else expected_keys)
    assert data["id"] == v2_id(user)
    for key in USER_TOP_KEYS[1:]:
        assert data[key] == user[key]
    for key, value in user["roles"][role].items():
        if key in data:
            assert data[key] == value
    assert body["links"] == [{"rel": "self", "uri": f"/{version}/{collection}/{v2_id(user)}"}]


@pytest.mark.parametrize("version", V2)
@pytest.mark.parametrize("kind", ["districts", "schools", "sections", "terms"])
def test_v2_records_are_stored_records_with_a_self_link(client, roster, dtok, rec, version, kind):
    record = strip_schoology(rec(kind))
    if kind == "sections":  # v2 names teachers by their v2 ids
        by_id = {u["id"]: u for u in roster["users"]}
        record["teacher"] = v2_id(by_id[record["teacher"]])
        record["teachers"] = [v2_id(by_id[t]) for t in record["teachers"]]
    if version == "v2.0":  # v2.1 added these fields
        record = {k: v for k, v in record.items() if k not in V21_ONLY}
    body = ok(client, f"/{version}/{kind}/{record['id']}", dtok)
    assert body == {"data": record,
                    "links": [{"rel": "self", "uri": f"/{version}/{kind}/{record['id']}"}]}


@pytest.mark.parametrize("who, path", [
    ("student", "/v3.0/users/{id}"), ("student", "/v3.1/users/{id}"),
    ("student", "/v2.0/students/{id}"), ("student", "/v2.1/students/{id}"),
    ("teacher", "/v3.0/users/{id}"), ("teacher", "/v2.1/teachers/{id}"),
    ("student", "/v3.0/districts/{district}"), ("teacher", "/v2.0/districts/{district}"),
    ("teacher", "/v3.1/districts/{district}"),
])
def test_il_token_reads_its_own_user_and_its_district(client, sim, student, teacher, who, path):
    user = student if who == "student" else teacher
    shown = v2_id(user) if path.startswith("/v2") else user["id"]
    body = ok(client, path.format(id=shown, district=user["district"]),
              il_token(sim, user["id"]))
    assert body["data"]["id"] in (shown, user["district"])


def test_double_slash_path_is_routed_as_one_slash(client, dtok, student):
    # The test client would read "//v2.1" as a host, so set PATH_INFO as a server would.
    resp = get(client, "/", dtok, environ_overrides={"PATH_INFO": f"//v2.1/students/{student['id']}"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["id"] == student["id"]


# --- lists -------------------------------------------------------------------------------

@pytest.mark.parametrize("version, collection, kind, role", [
    *[(v, "users", "users", None) for v in V3],
    *[(v, c, c, None) for v in V3 for c in ("districts", "schools", "sections", "terms", "courses")],
    *[(v, "students", "users", "student") for v in V2],
    *[(v, "teachers", "users", "teacher") for v in V2],
    *[(v, c, c, None) for v in V2 for c in ("districts", "schools", "sections", "terms", "courses")],
])
def test_list_answers_the_token_districts_records_sorted_by_id(client, roster, dtok, district_id,
                                                               version, collection, kind, role):
    body = ok(client, f"/{version}/{collection}", dtok)
    expected = district_records(roster, kind, district_id, role)
    assert expected, "the default roster has records of every kind"
    shown = [v2_id(r) if version in V2 and kind == "users" else r["id"] for r in expected]
    assert [item["data"]["id"] for item in body["data"]] == sorted(shown)
    for item in body["data"]:
        assert set(item) == {"data", "uri"}
        assert item["uri"] == f"/{version}/{collection}/{item['data']['id']}"
        assert "schoology" not in item["data"]
        if version in V2 and role:
            assert "roles" not in item["data"]
        assert ok(client, item["uri"], dtok)["data"] == item["data"]  # uri reads the same record
    assert body["links"] == [{"rel": "self", "uri": f"/{version}/{collection}"}]


def test_users_list_items_have_the_recorded_user_keys(client, roster, dtok):
    body = ok(client, "/v3.0/users?limit=25", dtok)
    assert len(body["data"]) == 25
    by_id = {u["id"]: u for u in roster["users"]}
    for item in body["data"]:  # email left out only for the person whose roster has none
        has_email = "email" in by_id[item["data"]["id"]]
        assert set(item["data"]) == RECORDED_USER_KEYS - (set() if has_email else {"email"})
    assert any("email" not in item["data"] for item in body["data"])  # Kai Nakamura
    assert body["links"][0] == {"rel": "self", "uri": "/v3.0/users?limit=25"}
    last = body["data"][-1]["data"]["id"]
    assert body["links"][1] == {"rel": "next", "uri": f"/v3.0/users?limit=25&starting_after={last}"}


def test_a_district_token_lists_only_its_own_district(client, roster, foreign_dtok,
                                                      foreign_district_id):
    ids = [i["data"]["id"] for i in ok(client, "/v3.0/users", foreign_dtok)["data"]]
    assert ids == [u["id"] for u in district_records(roster, "users", foreign_district_id)]
    districts = ok(client, "/v2.1/districts", foreign_dtok)["data"]
    assert [d["data"]["id"] for d in districts] == [foreign_district_id]


@pytest.mark.parametrize("version", V3)
@pytest.mark.parametrize("role", ["student", "teacher", "contact", "staff", "district_admin"])
def test_v3_users_role_filter(client, roster, dtok, district_id, version, role):
    body = ok(client, f"/{version}/users?role={role}", dtok)
    expected = [u["id"] for u in district_records(roster, "users", district_id, role)]
    assert [i["data"]["id"] for i in body["data"]] == expected
    assert all(role in i["data"]["roles"] for i in body["data"])


def test_role_filter_is_kept_in_the_next_link(client, roster, dtok, district_id):
    body = ok(client, "/v3.0/users?role=student&limit=10", dtok)
    nxt = [link["uri"] for link in body["links"] if link["rel"] == "next"][0]
    assert parse_qs(urlsplit(nxt).query) == {
        "limit": ["10"], "role": ["student"], "starting_after": [body["data"][-1]["data"]["id"]]}
    page2 = ok(client, nxt, dtok)
    assert all("student" in i["data"]["roles"] for i in page2["data"])


def _walk(client, token, uri, rel):
    pages = []
    while uri is not None:
        body = ok(client, uri, token)
        pages.append(body)
        uri = next((link["uri"] for link in body["links"] if link["rel"] == rel), None)
        assert len(pages) < 50, "paging does not end"
    return pages


def test_walking_next_links_yields_every_district_user_once_in_id_order(client, roster, dtok,
                                                                        district_id):
    pages = _walk(client, dtok, "/v3.0/users?limit=5", "next")
    ids = [i["data"]["id"] for page in pages for i in page["data"]]
    district_ids = [u["id"] for u in district_records(roster, "users", district_id)]
    assert len(district_ids) > 5 * 2
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert ids == district_ids  # every district user exactly once, no other district's user
    assert all(len(p["data"]) <= 5 for p in pages) and all(len(p["data"]) == 5 for p in pages[:-1])
    assert "prev" not in [link["rel"] for link in pages[0]["links"]]
    assert all("prev" in [link["rel"] for link in p["links"]] for p in pages[1:])


def test_walking_prev_links_back_from_the_last_page_yields_the_same_pages(client, dtok):
    forward = _walk(client, dtok, "/v3.0/users?limit=5", "next")
    backward = _walk(client, dtok, forward[-1]["links"][0]["uri"], "prev")
    assert [[i["data"]["id"] for i in p["data"]] for p in reversed(backward)] == \
        [[i["data"]["id"] for i in p["data"]] for p in forward]


def test_ending_before_gives_the_previous_page(client, dtok):
    page1 = ok(client, "/v3.0/users?limit=5", dtok)
    page2 = ok(client, f"/v3.0/users?limit=5&starting_after={page1['data'][-1]['data']['id']}", dtok)
    first2 = page2["data"][0]["data"]["id"]
    prev = [link["uri"] for link in page2["links"] if link["rel"] == "prev"]
    assert prev == [f"/v3.0/users?limit=5&ending_before={first2}"]
    back = ok(client, prev[0], dtok)
    assert back["data"] == page1["data"]
    rels = [link["rel"] for link in back["links"]]
    assert "next" in rels and "prev" not in rels  # back at the start


def test_a_page_past_the_end_is_empty_without_next_or_prev(client, dtok):
    body = ok(client, "/v2.1/students?starting_after=ffffffffffffffffffffffff", dtok)
    assert body == {"data": [], "links": [
        {"rel": "self", "uri": "/v2.1/students?starting_after=ffffffffffffffffffffffff"}]}


def test_self_link_echoes_the_query_and_unknown_params_are_ignored(client, dtok):
    plain = ok(client, "/v3.0/sections", dtok)
    body = ok(client, "/v3.0/sections?count=true&where=%7B%7D&foo=bar", dtok)
    assert body["data"] == plain["data"]
    assert body["links"] == [{"rel": "self", "uri": "/v3.0/sections?count=true&where=%7B%7D&foo=bar"}]


def test_uppercase_cursor_pages_like_the_lowercase_one(client, dtok):
    page1 = ok(client, "/v3.0/users?limit=3", dtok)
    last = page1["data"][-1]["data"]["id"]
    lower = ok(client, f"/v3.0/users?limit=3&starting_after={last}", dtok)
    upper = ok(client, f"/v3.0/users?limit=3&starting_after={last.upper()}", dtok)
    assert upper["data"] == lower["data"]


def test_limit_bounds_are_accepted(client, roster, dtok, district_id):
    assert len(ok(client, "/v3.0/users?limit=1", dtok)["data"]) == 1
    everyone = [u for u in roster["users"] if u["district"] == district_id]
    assert len(ok(client, "/v3.0/users?limit=10000", dtok)["data"]) == len(everyone) == 38


# --- errors: 401 -------------------------------------------------------------------------

ANY_ENDPOINT = ["/me", "/v2.1/me", "/v3.0/me", f"/v3.0/users/{UNKNOWN_ID}", "/v3.1/users",
                f"/v2.0/students/{UNKNOWN_ID}", "/v2.1/teachers", "/v3.0/sections?limit=abc"]


@pytest.mark.parametrize("path", ANY_ENDPOINT)
@pytest.mark.parametrize("header, problem", [
    (None, "header is missing"), ("", "is empty"), ("   ", "is empty"),
    ("Basic YWJjOmRlZg==", "is not a Bearer token"), ("Bearer", "is not a Bearer token"),
    ("Token abc", "is not a Bearer token")])
def test_missing_or_non_bearer_authorization_is_401_no_authorization(client, path, header, problem):
    headers = {} if header is None else {"Authorization": header}
    resp = client.get(path, headers=headers)
    assert resp.mimetype == "application/json"
    assert_error(resp, 401, "No authorization provided", field="Authorization", problem=problem)


@pytest.mark.parametrize("path", ANY_ENDPOINT)
@pytest.mark.parametrize("token", ["ilc_" + "0" * 40, "f" * 40, "x" * 500])
def test_unknown_token_is_401_could_not_authorize(client, path, token):
    assert_error(get(client, path, token), 401, "Could not authorize token",
                 field="Authorization", problem="unknown")


# --- errors: 403 for il tokens -----------------------------------------------------------

IL_FORBIDDEN = [
    "/v3.0/users/{other}", "/v3.1/users/{other}", "/v2.1/students/{other}", "/v2.0/students/{other}",
    "/v2.1/teachers/{teacher}", "/v3.0/users/{teacher}", "/v3.0/users/{foreign}",
    f"/v3.0/users/{UNKNOWN_ID}", "/v3.0/users/not-an-id", "/v2.1/students/{foreign}",
    "/v3.0/districts/{foreign_district}", "/v2.1/districts/{foreign_district}",
    f"/v3.0/districts/{UNKNOWN_ID}",
    "/v3.0/sections/{section}", "/v2.1/sections/{section}", "/v3.0/schools/{school}",
    "/v2.0/schools/{school}", "/v3.0/terms/{term}", "/v2.1/terms/{term}",
    f"/v3.0/sections/{UNKNOWN_ID}",
    *[f"/{v}/{c}" for v in V3 for c in ("users", "districts", "schools", "sections", "terms")],
    *[f"/{v}/{c}" for v in V2
      for c in ("students", "teachers", "districts", "schools", "sections", "terms")],
    "/v3.0/users?limit=abc",
]


@pytest.mark.parametrize("template", IL_FORBIDDEN)
def test_il_token_may_not_read_other_records_or_lists(client, sim, student, other_student, teacher,
                                                      foreign_student, foreign_district_id, rec,
                                                      template):
    path = template.format(other=other_student["id"], teacher=teacher["id"],
                           foreign=foreign_student["id"], foreign_district=foreign_district_id,
                           section=rec("sections")["id"], school=rec("schools")["id"],
                           term=rec("terms")["id"])
    assert_error(get(client, path, il_token(sim, student["id"])), 403, "Resource not in token's scopes",
                 field="Authorization", problem="may read only /me, its own user and its district")


# --- errors: 404 for district tokens -----------------------------------------------------

DISTRICT_NOT_FOUND = [
    ("/v3.0/users/{foreign_student}", "User not found"),
    ("/v3.1/users/{foreign_teacher}", "User not found"),
    (f"/v3.0/users/{UNKNOWN_ID}", "User not found"),
    ("/v3.0/users/not-a-real-id", "User not found"),
    ("/v2.1/students/{foreign_student}", "Student not found"),
    (f"/v2.0/students/{UNKNOWN_ID}", "Student not found"),
    ("/v2.1/students/{teacher}", "Student not found"),
    ("/v2.1/teachers/{student}", "Teacher not found"),
    ("/v2.0/teachers/{foreign_teacher}", "Teacher not found"),
    ("/v3.0/districts/{foreign_district}", "District not found"),
    ("/v2.1/districts/{foreign_district}", "District not found"),
    (f"/v3.1/districts/{UNKNOWN_ID}", "District not found"),
    ("/v3.0/schools/{foreign_school}", "School not found"),
    (f"/v2.1/schools/{UNKNOWN_ID}", "School not found"),
    ("/v3.0/sections/{foreign_section}", "Section not found"),
    (f"/v2.0/sections/{UNKNOWN_ID}", "Section not found"),
    ("/v3.0/terms/{foreign_term}", "Term not found"),
    (f"/v2.1/terms/{UNKNOWN_ID}", "Term not found"),
    ("/v3.0/users/{section}", "User not found"),  # an id of another kind
]


@pytest.mark.parametrize("template, message", DISTRICT_NOT_FOUND)
def test_district_token_gets_404_for_other_districts_and_unknown_ids(client, dtok, rec, student,
                                                                     teacher, foreign_district_id,
                                                                     template, message):
    path = template.format(
        foreign_student=rec("users", True, "student")["id"],
        foreign_teacher=rec("users", True, "teacher")["id"], student=student["id"],
        teacher=teacher["id"], foreign_district=foreign_district_id,
        foreign_school=rec("schools", True)["id"], foreign_section=rec("sections", True)["id"],
        foreign_term=rec("terms", True)["id"], section=rec("sections")["id"])
    assert_error(get(client, path, dtok), 404, message, field="id")


def test_a_student_id_under_teachers_points_to_the_student_path(client, dtok, student):
    body = assert_error(get(client, f"/v2.1/teachers/{student['id']}", dtok), 404,
                        "Teacher not found", field="id", problem="is the id of a student")
    assert body["errors"][0]["hint"] == f"read it at /v2.1/students/{student['id']}"


# --- errors: 400 paging ------------------------------------------------------------------

@pytest.mark.parametrize("query, field", [
    ("limit=abc", "limit"), ("limit=0", "limit"), ("limit=-1", "limit"), ("limit=000", "limit"),
    ("limit=", "limit"), ("limit=1.5", "limit"), ("limit=%2B5", "limit"), ("limit=%205", "limit"),
    ("limit=%D9%A5", "limit"),  # Arabic-Indic 5
    ("starting_after=xyz", "starting_after"), ("starting_after=", "starting_after"),
    ("starting_after=" + "g" * 24, "starting_after"), ("starting_after=" + "a" * 25, "starting_after"),
    ("ending_before=xyz", "ending_before"), ("ending_before=" + "a" * 23, "ending_before"),
    (f"starting_after={UNKNOWN_ID}&ending_before={UNKNOWN_ID}", "ending_before"),
])
@pytest.mark.parametrize("path", ["/v3.0/users", "/v3.1/terms", "/v2.0/students", "/v2.1/sections"])
def test_malformed_paging_is_400_naming_the_field(client, dtok, path, query, field):
    assert_error(get(client, f"{path}?{query}", dtok), 400, "Invalid paging parameters",
                 field=field)


def test_limit_problem_says_the_range(client, dtok):
    body = assert_error(get(client, "/v3.0/users?limit=0", dtok), 400, "Invalid paging parameters",
                        field="limit", problem="must be a whole number from 1 to 10000")
    assert body["errors"] == [{"field": "limit", "problem": "must be a whole number from 1 to 10000",
                               "hint": "e.g. limit=100"}]


def test_both_cursors_name_the_conflict(client, dtok):
    assert_error(get(client, f"/v3.0/users?starting_after={UNKNOWN_ID}&ending_before={UNKNOWN_ID}",
                     dtok), 400, "Invalid paging parameters", field="ending_before",
                 problem="cannot be combined with starting_after")


@pytest.mark.parametrize("role", ["admin", "", "Student", "students"])
def test_unknown_role_filter_is_400(client, dtok, role):
    assert_error(get(client, f"/v3.0/users?{urlencode({'role': role})}", dtok), 400,
                 "Invalid role filter", field="role")


# --- unknown paths, headers, journal -----------------------------------------------------

@pytest.mark.parametrize("path", ["/v4.0/me", "/v3.0/students", "/v2.1/users", "/v3.0/contacts",
                                  f"/v3.0/districts/{UNKNOWN_ID}/schools", "/v2.0/resources",
                                  f"/v3.0/users/{UNKNOWN_ID}/sections/x", "/v1.2/me", "/v3.0"])
def test_unknown_data_paths_fall_through_to_the_app_404(client, dtok, path):
    assert_error(get(client, path, dtok), 404, f"Not found: no endpoint at {path}")


@pytest.mark.parametrize("token_kind", ["district", "none"])
def test_rate_limit_headers_are_on_data_api_answers(client, dtok, token_kind):
    resp = get(client, "/v3.0/me", dtok if token_kind == "district" else None)
    assert resp.status_code == (200 if token_kind == "district" else 401)
    assert resp.headers["X-RateLimit-Limit"] == "1200"
    assert 0 <= int(resp.headers["X-RateLimit-Remaining"]) < 1200
    assert int(resp.headers["X-RateLimit-Reset"]) > 0
    assert resp.headers["X-RateLimit-Bucket"] == "bearer"


def test_each_request_is_journaled_with_token_facts(client, sim, demo_app, student, dtok):
    ok(client, "/v3.0/me", il_token(sim, student["id"]))
    ok(client, "/v3.0/districts", dtok)
    (me_entry,), _ = sim.journal.query(path="/v3.0/me")
    assert (me_entry["client_id"], me_entry["user_id"], me_entry["token_kind"]) == \
        (demo_app.client_id, student["id"], "il")
    (list_entry,), _ = sim.journal.query(path="/v3.0/districts")
    assert list_entry["token_kind"] == "district" and "user_id" not in list_entry


# --- never a 5xx -------------------------------------------------------------------------

_text = st.text(max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.one_of(st.none(), _text, st.integers(-5, 20_000).map(str)),
       starting_after=st.one_of(st.none(), _text), ending_before=st.one_of(st.none(), _text),
       record_id=_text, version=st.sampled_from(VERSIONS))
def test_arbitrary_paging_and_ids_never_yield_a_5xx(client, sim, student, dtok, limit,
                                                    starting_after, ending_before, record_id,
                                                    version):
    params = {k: v for k, v in (("limit", limit), ("starting_after", starting_after),
                                ("ending_before", ending_before)) if v is not None}
    collection = "users" if version in V3 else "students"
    il = il_token(sim, student["id"])
    for token in (dtok, il):
        for path in (f"/{version}/{collection}?{urlencode(params)}",
                     f"/{version}/{collection}/{quote(record_id, safe='')}",
                     f"/{version}/sections/{quote(record_id, safe='')}"):
            resp = client.get(path, headers=bearer(token))
            assert resp.status_code < 500, (path, resp.get_data(as_text=True)[:300])
            assert resp.mimetype == "application/json"


# --- nested paths ------------------------------------------------------------------------

def ids_of(body):
    return [item["data"]["id"] for item in body["data"]]


def test_a_teachers_sections_students_and_district_are_nested_paths(client, roster, dtok, teacher):
    mine = sorted(s["id"] for s in roster["sections"] if teacher["id"] in s["teachers"])
    students = sorted({st for s in roster["sections"] if s["id"] in mine for st in s["students"]})
    base = f"/v3.0/users/{teacher['id']}"
    assert ids_of(ok(client, f"{base}/sections", dtok)) == mine
    assert ids_of(ok(client, f"{base}/myStudents", dtok)) == students
    assert ids_of(ok(client, f"{base}/mystudents", dtok)) == students  # the document's spelling
    assert ok(client, f"{base}/district", dtok)["data"]["id"] == teacher["district"]
    assert ids_of(ok(client, f"{base}/schools", dtok)) == sorted(teacher["roles"]["teacher"]["schools"])
    v2 = f"/v2.1/teachers/{v2_id(teacher)}"
    assert ids_of(ok(client, f"{v2}/sections", dtok)) == mine  # passport-clever's teacher call
    assert ids_of(ok(client, f"{v2}/students", dtok)) == students


def test_a_students_teachers_are_named_by_each_versions_ids(client, roster, dtok, student):
    by_id = {u["id"]: u for u in roster["users"]}
    teachers = {t for s in roster["sections"] if student["id"] in s["students"] for t in s["teachers"]}
    assert ids_of(ok(client, f"/v3.0/users/{student['id']}/myTeachers", dtok)) == sorted(teachers)
    assert ids_of(ok(client, f"/v2.0/students/{student['id']}/teachers", dtok)) == \
        sorted(v2_id(by_id[t]) for t in teachers)
    contacts = [u["id"] for u in roster["users"] if any(
        r["student"] == student["id"] for r in u["roles"].get("contact", {}).get("student_relationships", []))]
    assert ids_of(ok(client, f"/v3.0/users/{student['id']}/myContacts", dtok)) == contacts != []
    assert ids_of(ok(client, f"/v2.1/students/{student['id']}/contacts", dtok)) == \
        [v2_id(by_id[c]) for c in contacts]


def test_a_sections_teacher_is_one_record_and_its_users_filter_by_role(client, roster, dtok, rec):
    section = rec("sections")
    by_id = {u["id"]: u for u in roster["users"]}
    teacher = by_id[section["teacher"]]
    body = ok(client, f"/v2.1/sections/{section['id']}/teacher", dtok)
    assert body["data"]["id"] == v2_id(teacher) and "roles" not in body["data"]
    assert body["links"] == [{"rel": "self", "uri": f"/v2.1/teachers/{v2_id(teacher)}"}]
    users = ok(client, f"/v3.0/sections/{section['id']}/users?role=student&limit=3", dtok)
    assert ids_of(users) == sorted(section["students"])[:3]
    assert users["links"][1] == {"rel": "next", "uri": f"/v3.0/sections/{section['id']}/users?limit=3"
                                 f"&role=student&starting_after={ids_of(users)[-1]}"}
    assert ok(client, f"/v3.0/sections/{section['id']}/term", dtok)["data"]["id"] == section["term_id"]
    assert ok(client, f"/v3.0/sections/{section['id']}/course", dtok)["data"]["id"] == section["course"]


def test_a_schools_users_and_terms_come_from_its_people_and_sections(client, roster, dtok, rec):
    school = rec("schools")
    people = sorted(u["id"] for u in roster["users"]
                    if any(school["id"] in (r.get("schools") or []) for r in u["roles"].values()))
    assert ids_of(ok(client, f"/v3.0/schools/{school['id']}/users?limit=10000", dtok)) == people
    teachers = ok(client, f"/v3.0/schools/{school['id']}/users?role=teacher&primary=true", dtok)
    assert teachers["data"] and all("teacher" in i["data"]["roles"] for i in teachers["data"])
    terms = {s["term_id"] for s in roster["sections"] if s["school"] == school["id"]}
    assert ids_of(ok(client, f"/v3.0/schools/{school['id']}/terms", dtok)) == sorted(terms)


@pytest.mark.parametrize("path, field", [
    ("/v3.0/sections/{section}/users?role=staff", "role"),  # documented: student, teacher
    ("/v3.0/schools/{school}/users?role=contact", "role"),  # documented: staff, student, teacher
    ("/v3.0/users/{teacher}/schools?primary=yes", "primary"),
    ("/v3.0/users?count=maybe", "count"),
])
def test_a_filter_value_outside_the_documented_ones_is_400(client, dtok, rec, teacher, path, field):
    path = path.format(section=rec("sections")["id"], school=rec("schools")["id"], teacher=teacher["id"])
    assert_error(get(client, path, dtok), 400, f"Invalid {field} filter", field=field, problem="must be one of")


@pytest.mark.parametrize("path, message", [
    ("/v3.0/users/{teacher}/friends", "Not found: no endpoint at /v3.0/users/{teacher}/friends"),
    ("/v2.1/teachers/{teacher_v2}/myStudents", "Not found: no endpoint at /v2.1/teachers/{teacher_v2}/myStudents"),
    (f"/v3.0/users/{UNKNOWN_ID}/sections", "User not found"),
    (f"/v3.0/resources/{UNKNOWN_ID}", "Resource not found"),
    (f"/v2.1/contacts/{UNKNOWN_ID}/students", "Contact not found"),
])
def test_unknown_relations_and_records_under_nested_paths_are_404(client, dtok, teacher, path, message):
    fill = {"teacher": teacher["id"], "teacher_v2": v2_id(teacher)}
    assert_error(get(client, path.format(**fill), dtok), 404, message.format(**fill))


@pytest.mark.parametrize("path", ["/v3.0/users/{me}/sections", "/v3.0/users/{me}/district",
                                  "/v2.1/students/{me}/teachers", "/v3.0/courses", "/v2.1/contacts"])
def test_an_il_token_reads_no_nested_path_not_even_its_own(client, sim, student, path):
    # Clever: SSO tokens "can only access /me, /districts/{id}, /users/{id}" (OAuth docs).
    assert_error(get(client, path.format(me=student["id"]), il_token(sim, student["id"])), 403,
                 "Resource not in token's scopes", field="Authorization")


# --- ids across versions -----------------------------------------------------------------

def test_a_teachers_v3_record_carries_its_v2_id_as_legacy_id(client, dtok, teacher):
    legacy = ok(client, f"/v3.0/users/{teacher['id']}", dtok)["data"]["roles"]["teacher"]["legacy_id"]
    assert legacy == v2_id(teacher) != teacher["id"]
    assert ok(client, f"/v2.1/teachers/{legacy}", dtok)["data"]["id"] == legacy


def test_a_student_has_one_id_in_every_version(client, dtok, student):
    assert "legacy_id" not in ok(client, f"/v3.0/users/{student['id']}", dtok)["data"]["roles"]["student"]
    assert ok(client, f"/v2.0/students/{student['id']}", dtok)["data"]["id"] == student["id"]


def test_each_version_404s_the_other_versions_id_naming_its_own(client, dtok, teacher):
    body = assert_error(get(client, f"/v2.1/teachers/{teacher['id']}", dtok), 404, "Teacher not found",
                        field="id", problem="is this person's v3 id")
    assert body["errors"][0]["hint"].startswith(f"use {v2_id(teacher)}")
    body = assert_error(get(client, f"/v3.0/users/{v2_id(teacher)}", dtok), 404, "User not found",
                        field="id", problem="is this person's v2 id")
    assert body["errors"][0]["hint"].startswith(f"use {teacher['id']}")


@pytest.mark.parametrize("version", VERSIONS)
def test_me_names_a_teacher_by_that_versions_id(client, sim, teacher, version):
    body = ok(client, f"/{version}/me", il_token(sim, teacher["id"]))
    assert body["data"]["id"] == (v2_id(teacher) if version in V2 else teacher["id"])
    assert ok(client, body["links"][1]["uri"], il_token(sim, teacher["id"]))["data"]["id"] == body["data"]["id"]


def test_v2_teacher_lists_page_by_v2_id(client, roster, dtok, district_id):
    teachers = sorted(v2_id(u) for u in district_records(roster, "users", district_id, "teacher"))
    page1 = ok(client, "/v2.1/teachers?limit=2", dtok)
    assert ids_of(page1) == teachers[:2]
    page2 = ok(client, page1["links"][1]["uri"], dtok)
    assert ids_of(page2) == teachers[2:4]


# --- each version's own fields -------------------------------------------------------------

@pytest.fixture
def odd_app(roster):
    """A roster whose first student has v2.1-only values (gender X, a v2.1-only grade)."""
    doc = copy.deepcopy(roster)
    first = next(u for u in doc["users"] if "student" in u["roles"])
    first["roles"]["student"].update(gender="X", grade="TransitionalKindergarten",
                                     enrollments=[{"school": first["roles"]["student"]["school"],
                                                   "start_date": "2026-08-12", "end_date": ""}])
    del first["email"]  # Clever: email "may not be present for all users"
    first["roles"]["student"].pop("email", None)
    app = create_app({"DB": ":memory:", "SECRET_KEY": "test-secret", "ROSTER": doc}, environ={})
    yield app, first
    app.extensions["clever_sim"].close()


@pytest.mark.parametrize("version, gender, grade, enrollments", [
    ("v2.0", "", "Other", False), ("v2.1", "X", "TransitionalKindergarten", True),
    ("v3.0", "X", "TransitionalKindergarten", True)])
def test_each_version_shows_only_its_own_fields_and_values(odd_app, version, gender, grade, enrollments):
    app, first = odd_app
    sim = app.extensions["clever_sim"]
    token = district_token(sim, first["district"])
    path = f"/{version}/students/{first['id']}" if version in V2 else f"/{version}/users/{first['id']}"
    data = ok(app.test_client(), path, token)["data"]
    fields = data if version in V2 else data["roles"]["student"]
    assert (fields["gender"], fields["grade"], "enrollments" in fields) == (gender, grade, enrollments)
    assert "email" not in data and "email" not in fields  # absent stays absent


# --- errors and headers as Clever records them -------------------------------------------

@pytest.mark.parametrize("limit", ["10001", "99999", "1" + "0" * 3000, "000000010001"])
def test_limit_over_10000_is_413_as_clever_documents(client, dtok, limit):
    assert_error(get(client, f"/v3.0/users?limit={limit}", dtok), 413, "Request entity too large",
                 field="limit", problem="is over 10000")


@pytest.mark.parametrize("path, token_kind, status", [
    ("/v3.0/me", "district", 200), ("/v2.1/students", "district", 200), ("/v3.0/users/nope", "district", 404),
    ("/v3.0/users?limit=0", "district", 400), ("/v3.0/users", "il", 403), ("/v3.0/me", None, 401)])
def test_every_data_api_answer_carries_clevers_recorded_headers(client, sim, dtok, student, path,
                                                               token_kind, status):
    token = {"district": dtok, "il": il_token(sim, student["id"]), None: None}[token_kind]
    resp = get(client, path, token)
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Access-Control-Allow-Methods"] == "GET,PATCH,POST,DELETE"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert resp.headers["Cache-Control"] == "no-store"


def test_a_browser_preflight_is_answered_with_the_cors_headers(client):
    resp = client.options("/v3.0/users", headers={"Origin": "https://app.example",
                                                  "Access-Control-Request-Method": "GET",
                                                  "Access-Control-Request-Headers": "Authorization"})
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]


def test_render_keeps_the_documents_nulls_and_leaves_out_the_others():
    from simulator.clever import data_api
    section = {"id": "s", "period": None, "name": None, "course": None, "schoology": {"x": 1}}
    assert data_api.render("v3.0", "Section", section) == {"id": "s", "period": None, "course": None}
    user = {"id": "u", "email": None, "roles": {"teacher": {"title": None, "legacy_id": None}}}
    assert data_api.render("v3.0", "User", user) == {"id": "u", "email": None,
                                                     "roles": {"teacher": {"title": None}}}
