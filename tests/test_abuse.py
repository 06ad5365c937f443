"""Issue 12, rows 5-8: hostile text stays data, redirects stay on the simulator, every saved
snapshot loads again, and a bounded fuzz run over every endpoint answers no 5xx.

(Rows 1-4 are in test_abuse_resources.py and test_abuse_control.py.)
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.app import create_app
from simulator.roster import RosterError, default_roster_path, parse_roster_bytes

from conftest import assert_error, bearer, il_token
from test_schoology import SECTION, TEACHER, Partner, login

JSON = {"Content-Type": "application/json"}
LONG = "9" * 5000  # past Python's 4,300-digit int() limit
MAX_OFFSET_S = 10 * 365 * 86_400  # the clock's documented bound: ten years ahead


def deep(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


# --- row 5: a lone surrogate from a partner (or any source) is never a 500, then or later ---

@pytest.fixture(scope="module")
def partner_server():
    p = Partner()
    yield p
    p.server.shutdown()


@pytest.fixture
def partner(partner_server, sim, demo_app):
    sim.register_app({"assignments_url": partner_server.base + "/clever/assignments"}, demo_app)
    return partner_server


def _assignments(**item) -> str:
    """An assignments answer whose one item has these raw JSON members (escapes as written)."""
    members = {"name": '"Fractions"', "id": '"a1"', "type": '"assignment"', **item}
    return '{"assignments": [{' + ", ".join(f'"{k}": {v}' for k, v in members.items()) + "}]}"


# (case, raw answer body, the JSON path the teacher is told about)
LONE_SURROGATE_ANSWERS = [
    ("name-cut-emoji", _assignments(name='"Fractions \\ud83d"'), "$.assignments[0].name"),
    ("id-low-half", _assignments(id='"a\\udc00"'), "$.assignments[0].id"),
    ("description", _assignments(description='"x\\ud800y"'), "$.assignments[0].description"),
    ("standard", _assignments(standards='["ok", "\\udfff"]'), "$.assignments[0].standards[1]"),
    ("key", '{"assignments": [], "\\ud800": 1}', "$"),
]


@pytest.mark.parametrize("case,answer,where", LONE_SURROGATE_ANSWERS,
                         ids=[c[0] for c in LONE_SURROGATE_ANSWERS])
def test_lone_surrogate_in_partner_assignments_is_a_plain_words_page_not_a_500(
        client, sim, partner, demo_app, case, answer, where):
    partner.serve(body=answer)
    login(client, TEACHER)
    page = client.get(f"/schoology/sections/{SECTION}/add/{demo_app['client_id']}")
    assert page.status_code == 502, page.status_code  # the partner's fault, named on the page
    text = page.get_data(as_text=True)
    assert f"{where} contains a lone UTF-16 surrogate" in text
    (entry,) = sim.journal.query(direction="outbound")[0]
    assert entry["error"].endswith("send text as valid UTF-8 or as \\u escapes of whole pairs")
    # ... and later: the journal, the entry and the inspector still answer
    listed = client.get("/_sim/journal")
    assert listed.status_code == 200 and listed.get_json()["total"] >= 1
    assert client.get(f"/_sim/journal/{entry['id']}").status_code == 200
    inspector = client.get(f"/inspector/{entry['id']}")
    assert inspector.status_code == 200
    assert "\\ud8" in inspector.get_data(as_text=True) or "\\udc" in inspector.get_data(as_text=True)
    assert client.get("/inspector").status_code == 200


# (case, request that journals a hostile body, expected status)
def _hostile_requests(sim, student):
    token = il_token(sim, student["id"])
    return [
        ("grade-lone-surrogate", "/v1/grade", b'{"assignmentID": "a1", "percentage": 0.5, "c": "\\ud800"}',
         {**JSON, **bearer(token)}, 400),
        ("grade-nul-in-context", "/v1/grade", b'{"assignmentID": "a1", "percentage": 0.5, "c": "a\\u0000b"}',
         {**JSON, **bearer(token)}, 200),
        ("token-secret-and-surrogate", "/oauth/tokens",
         b'{"grant_type": "authorization_code", "code": "\\udc00", "client_secret": "s"}', JSON, 400),
        ("control-surrogate", "/_sim/apps", b'{"name": "\\ud800"}', JSON, 400),
        ("control-deep", "/_sim/faults", ('{"path": "/v1/grade", "status": 503, "body": {"a": '
                                          + deep(970) + "}}").encode(), JSON, 400),
    ]


@pytest.mark.parametrize("index", range(5), ids=["grade-lone-surrogate", "grade-nul-in-context",
                                                 "token-secret-and-surrogate", "control-surrogate",
                                                 "control-deep"])
def test_a_hostile_body_is_journaled_and_shown_without_a_500(client, sim, student, index):
    _case, path, body, headers, status = _hostile_requests(sim, student)[index]
    assert client.post(path, data=body, headers=headers).status_code == status
    journaled = sim.journal.query(path=path)[0]  # the emulated APIs are journaled, /_sim/ is not
    entry = [f"/_sim/journal/{journaled[0]['id']}", f"/inspector/{journaled[0]['id']}"] if journaled else []
    for url in ("/_sim/journal", *entry, "/inspector", "/_sim/faults", "/schoology/gradebook",
                f"/schoology/sections/{SECTION}/gradebook", f"/schoology/sections/{SECTION}/gradebook.json"):
        assert client.get(url).status_code == 200, url


def test_lone_surrogate_in_a_snapshot_is_refused_with_its_path(client):
    doc = client.get("/_sim/snapshot").get_json()
    doc["apps"][0]["name"] = "Demo \ud83d"  # json.dumps writes it as the escape \\ud83d
    assert_error(client.post("/_sim/snapshot", data=json.dumps(doc), headers=JSON), 400,
                 "Body is not valid Unicode", field="apps[0].name", problem="lone UTF-16 surrogate")
    assert client.get("/_sim/snapshot").status_code == 200


@pytest.mark.parametrize("text,where,problem", [
    ('{"districts": [{"id": "\\ud800"}]}', "$.districts[0].id", "lone UTF-16 surrogate"),
    ('{"districts": ' + deep(200) + "}", "$.districts[0][0][0][0][0][0][0]…(128 levels)",
     "deeper than 128 levels"),
    ('{"districts": [' + LONG + "]}", "$", "a number has 5000 characters"),
], ids=["lone-surrogate", "nested-200", "5000-digits"])
def test_a_hostile_roster_file_is_a_roster_error_naming_the_place(text, where, problem):
    with pytest.raises(RosterError) as info:
        parse_roster_bytes(text.encode(), "hostile.json")
    (found,) = info.value.problems
    assert found.path == where and problem in found.message


def test_the_packaged_roster_still_loads_through_the_hostile_text_checks():
    doc = parse_roster_bytes(default_roster_path().read_bytes(), default_roster_path())
    assert doc["districts"] and doc["users"]


# --- row 6: overlong digits, deep nesting, CR/LF are 4xx (or a safe default), never 500 ---

LONG_NUMBER_QUERIES = [
    ("grades-limit", "/_sim/grades?limit=" + LONG, "Invalid filter", "limit"),
    ("links-limit", "/_sim/links?limit=" + LONG, "Invalid filter", "limit"),
    ("links-offset", "/_sim/links?offset=" + LONG, "Invalid filter", "offset"),
    ("personas-limit", "/_sim/personas?limit=" + LONG, "Invalid filter", "limit"),
    ("history-limit", "/_sim/grades/g1/history?limit=" + LONG, "Invalid filter", "limit"),
    ("history-after-version", "/_sim/grades/g1/history?after_version=" + LONG, "Invalid filter",
     "after_version"),
    ("grades-after-seq", "/_sim/grades?after_seq=" + LONG, "Invalid filter", "after_seq"),
    ("journal-status", "/_sim/journal?status=" + LONG, "Invalid journal filter", "status"),
    ("journal-after-id", "/_sim/journal?after_id=" + LONG, "Invalid journal filter", "after_id"),
    ("limit-superscript-two", "/_sim/grades?limit=%C2%B2", "Invalid filter", "limit"),
]


@pytest.mark.parametrize("case,url,message,field", LONG_NUMBER_QUERIES,
                         ids=[c[0] for c in LONG_NUMBER_QUERIES])
def test_overlong_numbers_in_query_strings_are_400_naming_the_parameter(client, case, url,
                                                                         message, field):
    assert_error(client.get(url), 400, message, field=field, problem="must be a whole number")


def test_overlong_limit_on_the_data_api_is_400(client, sim, district_id):
    from conftest import district_token
    token = district_token(sim, district_id)
    assert_error(client.get("/v3.0/users?limit=" + LONG, headers=bearer(token)), 400,
                 field="limit", problem="must be a whole number")


@pytest.mark.parametrize("url", ["/inspector?page=" + LONG, "/inspector?after_id=" + LONG,
                                 "/inspector/" + LONG, "/schoology?page=" + LONG,
                                 f"/schoology/sections/{SECTION}/gradebook/events?after_seq=" + LONG])
def test_overlong_numbers_on_pages_are_not_a_500(client, url):
    resp = client.get(url, buffered=False)
    try:
        assert resp.status_code in (200, 400, 401, 403, 404), url
    finally:
        resp.close()


def test_a_5000_digit_content_length_is_413(client):
    resp = client.post("/_sim/faults", data=b"{}", headers=JSON,
                       environ_overrides={"CONTENT_LENGTH": LONG})
    assert_error(resp, 413, "Request body too large: a 5000-digit number of bytes…", field="(body)")


@pytest.mark.parametrize("levels", [129, 500, 970, 990, 5000])
def test_a_deeply_nested_fault_is_400_and_leaves_faults_and_journal_readable(client, levels):
    body = '{"path": "/v1/grade", "status": 503, "body": {"a": ' + deep(levels) + "}}"
    resp = client.post("/_sim/faults", data=body, headers=JSON)
    assert_error(resp, 400, "Body is nested too deeply", problem="nesting is deeper than 128")
    assert client.get("/_sim/faults").get_json() == {"data": []}
    assert client.get("/_sim/journal").status_code == 200


def test_a_fault_nested_just_inside_the_bound_is_kept_and_served(client):
    body = {"path": "/v1/grade", "status": 503, "body": {"a": json.loads(deep(120))}}
    assert client.post("/_sim/faults", json=body).status_code == 201
    assert client.get("/_sim/faults").status_code == 200
    assert client.get("/_sim/journal").status_code == 200


def _csrf(client) -> str:
    client.get("/oauth/whoami")
    with client.session_transaction() as s:
        s["csrf"] = "csrf-token"
    return "csrf-token"


# (case, form field, value, expected Location)
REDIRECTS = [
    ("back-crlf-header-split", "back", "/schoology\r\nSet-Cookie: a=b", "/oauth/whoami"),
    ("back-lf", "back", "/schoology\nX: y", "/oauth/whoami"),
    ("back-https-elsewhere", "back", "https://elsewhere.example/phish", "/oauth/whoami"),
    ("back-scheme-relative", "back", "//elsewhere.example/phish", "/oauth/whoami"),
    ("back-backslash", "back", "/\\elsewhere.example", "/oauth/whoami"),
    ("back-javascript", "back", "javascript:alert(1)", "/oauth/whoami"),
    ("back-data", "back", "data:text/html,<script>alert(1)</script>", "/oauth/whoami"),
    ("back-tab-in-scheme-relative", "back", "/\t/elsewhere.example", "/oauth/whoami"),
    ("back-empty", "back", "", "/oauth/whoami"),
    ("back-local-path-kept", "back", "/schoology?x=1", "/schoology?x=1"),
]


@pytest.mark.parametrize("case,field,value,location", REDIRECTS, ids=[c[0] for c in REDIRECTS])
def test_logout_redirects_only_to_a_path_on_the_simulator(client, case, field, value, location):
    resp = client.post("/oauth/logout", data={"csrf": _csrf(client), field: value})
    assert resp.status_code == 303 and resp.headers["Location"] == location


@pytest.mark.parametrize("next_query,location", [
    ("client_id=x\r\nSet-Cookie: a=b", "/oauth/whoami"),
    ("client_id=x\nX: y", "/oauth/whoami"),
    ("client_id=x#frag", "/oauth/whoami"),
    ("client_id=x&state=s", "/oauth/authorize?client_id=x&state=s"),
], ids=["crlf", "lf", "fragment", "plain-query-kept"])
def test_login_next_is_a_query_for_authorize_or_the_default(client, student, next_query,
                                                            location):
    resp = client.post("/oauth/login", data={"csrf": _csrf(client), "user_id": student["id"],
                                             "next": next_query})
    assert resp.status_code == 303 and resp.headers["Location"] == location


# --- row 8: the clock is bounded, and every snapshot GET returns, POST loads -------------

def test_clock_offset_is_bounded_and_a_snapshot_after_many_advances_loads(client, app):
    step = 10 ** 8
    for _ in range(MAX_OFFSET_S // step):
        assert client.post("/_sim/clock", json={"advance_s": step}).status_code == 200
    over = client.post("/_sim/clock", json={"advance_s": step})
    assert_error(over, 400, "Invalid clock change", field="advance_s",
                 problem=f"more than {MAX_OFFSET_S} s (10 years) ahead")
    room = MAX_OFFSET_S - (MAX_OFFSET_S // step) * step
    assert client.post("/_sim/clock", json={"advance_s": room}).get_json()["offset_s"] == MAX_OFFSET_S
    doc = client.get("/_sim/snapshot").get_json()
    assert doc["clock_offset_s"] == MAX_OFFSET_S
    assert client.post("/_sim/snapshot", json=doc).status_code == 200
    assert app.extensions["clever_sim"].clock.offset == MAX_OFFSET_S
    assert client.post("/_sim/reset", json={}).status_code == 200
    assert client.post("/_sim/clock", json={"advance_s": step}).status_code == 200


def test_a_snapshot_past_the_clock_bound_is_refused_naming_it(client):
    doc = client.get("/_sim/snapshot").get_json()
    assert_error(client.post("/_sim/snapshot", json={**doc, "clock_offset_s": MAX_OFFSET_S + 1}),
                 400, "Invalid snapshot: nothing was loaded", field="$.clock_offset_s",
                 problem=f"from 0 to {MAX_OFFSET_S}")


HOSTILE_TEXT = st.sampled_from(["<script>alert(1)</script>", "a\x00b", "\r\nX: y", "é" * 300,
                                "😀", "\u202e", "9" * 5000, "", " ", "\\ud800", "%00", "'; --"])
ACTIONS = st.lists(st.one_of(
    # (clock, seconds, how many times): a long-running CI job advances a lot
    st.tuples(st.just("clock"), st.one_of(st.integers(0, 10 ** 8), st.floats(0, 10 ** 8)),
              st.integers(1, 120)),
    st.tuples(st.just("fault"), HOSTILE_TEXT, st.integers(100, 599)),
    st.tuples(st.just("app"), HOSTILE_TEXT, HOSTILE_TEXT),
    st.tuples(st.just("grade"), HOSTILE_TEXT, st.floats(-1, 2) | st.integers(-10, 10 ** 30)),
    st.tuples(st.just("link"), HOSTILE_TEXT, HOSTILE_TEXT),
    st.tuples(st.just("reset")),
), max_size=12)


@pytest.fixture(scope="module")
def shared_app():
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


def _act(client, sim, action) -> None:
    """One control or partner action; whatever it answers (a 4xx is fine), never a 5xx."""
    kind = action[0]
    roster = sim.roster
    demo = roster["apps"][0]["client_id"]
    student = next(u for u in roster["users"] if "student" in u["roles"])
    section = next(s for s in roster["sections"] if student["id"] in s["students"])
    if kind == "clock":
        for _ in range(action[2]):
            resp = client.post("/_sim/clock", json={"advance_s": action[1]})
            assert resp.status_code < 500, resp.get_data(as_text=True)[:500]
    elif kind == "fault":
        resp = client.post("/_sim/faults", json={"path": "/v1/" + action[1], "status": action[2],
                                                 "body": {"message": action[1]}})
    elif kind == "app":
        resp = client.post("/_sim/apps", json={"name": action[1],
                                               "redirect_uris": ["http://127.0.0.1:9/" + action[2]]})
    elif kind == "grade":
        token = il_token(sim, student["id"])
        resp = client.post("/v1/grade", json={"assignmentID": action[1] or "a1",
                                              "percentage": action[2], "note": action[1]},
                           headers=bearer(token))
    elif kind == "link":
        resp = client.post("/_sim/links", json={"section_id": section["id"], "client_id": demo,
                                                "assignment_id": action[1] or "a1",
                                                "name": action[2] or None, "description": action[2]})
    else:
        resp = client.post("/_sim/reset", json={})
    assert resp.status_code < 500, (action, resp.get_data(as_text=True)[:500])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(actions=ACTIONS)
def test_whatever_get_snapshot_returns_post_snapshot_loads(shared_app, actions):
    client = shared_app.test_client()
    sim = shared_app.extensions["clever_sim"]
    client.post("/_sim/reset", json={})
    for action in actions:
        _act(client, sim, action)
    saved = client.get("/_sim/snapshot")
    assert saved.status_code == 200
    loaded = client.post("/_sim/snapshot", data=saved.get_data(), headers=JSON)
    assert loaded.status_code == 200, loaded.get_data(as_text=True)[:2000]
    again = client.get("/_sim/snapshot").get_json()
    first = saved.get_json()
    for key in ("apps", "tokens", "grades", "grade_history", "schoology_assignments",
                "clock_offset_s"):
        assert again[key] == first[key], key
