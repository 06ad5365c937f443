"""Issue 12, rows 5-8: hostile text stays data, redirects stay on the simulator, every saved
snapshot loads again, and a bounded fuzz run over every endpoint answers no 5xx.

(Rows 1-4 are in test_abuse_resources.py and test_abuse_control.py.)
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.app import create_app
from simulator.roster import RosterError, default_roster_path, parse_roster_bytes

from conftest import assert_error, bearer, il_token
from test_schoology import SECTION, TEACHER, login, partner, partner_server  # noqa: F401 (fixtures)

JSON = {"Content-Type": "application/json"}
LONG = "9" * 5000  # past Python's 4,300-digit int() limit
MAX_OFFSET_S = 10 * 365 * 86_400  # the clock's documented bound: ten years ahead


def deep(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


# --- row 5: a lone surrogate from a partner (or any source) is never a 500, then or later ---

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
    page = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
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
    login(client, TEACHER)  # SECTION's gradebook is its teacher's
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


def test_overlong_limit_on_the_data_api_is_clevers_413(client, sim, district_id):
    # Clever's error table: 413 when "your limit parameter may be over 10000".
    from conftest import district_token
    token = district_token(sim, district_id)
    assert_error(client.get("/v3.0/users?limit=" + LONG, headers=bearer(token)), 413,
                 "Request entity too large", field="limit", problem="is over 10000")


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
    ("client_id=x&state=s", "/u/0/oauth/authorize?client_id=x&state=s"),  # the slot logged in
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
    st.tuples(st.just("gone app"), HOSTILE_TEXT),  # deleted: its grade and link stay
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
    elif kind == "gone app":
        made = client.post("/_sim/apps", json={"name": "Gone",
                                               "redirect_uris": ["http://127.0.0.1:9/cb"]})
        assert made.status_code == 201, made.get_data(as_text=True)[:500]
        gone = made.get_json()
        client.post("/v1/grade", json={"assignmentID": action[1] or "a1", "userID": student["id"],
                                       "percentage": 0.5},
                    headers=bearer(gone["district_tokens"][student["district"]]))
        client.post("/_sim/links", json={"section_id": section["id"], "client_id": gone["client_id"],
                                         "assignment_id": action[1] or "a1"})
        resp = client.delete(f"/_sim/apps/{gone['client_id']}")
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


# --- the fuzz run: >= 10,000 hostile requests over every endpoint, zero 5xx ---------------

FUZZ_REQUESTS = 10_500
FUZZ_SEED = 12

# Text an attacker, a broken client or a sliced emoji produces (URL-encoded where it goes
# into a URL by the fuzzer).
HOSTILE_VALUES = [
    "", " ", "0", "-1", "1", "00000000001", "1e3", "1.5", "NaN", "Infinity", "-0", LONG, "9" * 19,
    "²", "٣", "true", "null", "[]", "{}", "\x00", "a\x00b", "\r\n", "%", "%00", "%ZZ", "\\",
    "../../etc/passwd", "//elsewhere.example", "https://elsewhere.example/", "javascript:alert(1)",
    "<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>", "'; DROP TABLE grades; --",
    "😀", "\ud83d", "\udc00", "\u202e", "\ufeff", "é" * 500, "x" * 5000, "Bearer", "*", "?", "#",
    "4xx", "5xx", "POST", "student", "teacher", "inbound", "assignment:a1",
]
HOSTILE_JSON = [
    b"", b"{", b"[]", b"null", b"1", b'"x"', b"\xff\xfe", b"\xed\xa0\x80", b"{}", b'{"a": NaN}',
    b'{"a": 1e999}', b'{"a": -1e999}', ("[" * 5000).encode(), deep(970).encode(),
    deep(129).encode(), ('{"limit": ' + LONG + "}").encode(), b'{"a": "\\ud800"}',
    b'{"\\udfff": 1}', b'{"a": "\\u0000"}', b"\xef\xbb\xbf{}", b"{" + b" " * 70_000 + b"}",
]
QUERY_NAMES = ["limit", "offset", "after_seq", "after_id", "after_version", "page", "status",
               "timeout", "role", "district_id", "starting_after", "ending_before", "path",
               "method", "direction", "user", "user_id", "client_id", "assignment_id", "section_id",
               "response_type", "redirect_uri", "state", "scope", "sim_page", "sim_school",
               "sim_district", "school", "q", "after", "format", "count", "x"]
CONTENT_TYPES = ["application/json", "application/json; charset=latin-1", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/JSON", "", "*/*", "application/json; boundary=\x00"]


# A variable in a rule's public text: ``<name>``, ``<int:name>``, ``<any(a, b):name>``.
_RULE_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")


class _Fuzzer:
    """A seeded generator of hostile requests over the app's whole url_map and /v1/grade."""

    def __init__(self, app, sim, rnd, ids: dict[str, list[str]], tokens: list[str]):
        self.app, self.sim, self.rnd = app, sim, rnd
        self.ids, self.tokens = ids, tokens
        rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
        self.targets = [(r, m) for r in rules for m in sorted(r.methods - {"HEAD", "OPTIONS"})]
        self.targets.append((None, "GET"))  # /v1/grade with a method it does not take (405)

    def text(self) -> str:
        return self.rnd.choice(HOSTILE_VALUES)

    def quoted(self, value: str) -> str:
        from urllib.parse import quote
        return quote(value.encode("utf-8", "surrogatepass"), safe="")

    def segment(self, name: str) -> str:
        known = self.ids.get(name) or self.ids["any"]
        value = self.rnd.choice(known) if self.rnd.random() < 0.6 else self.text()
        return self.quoted(value) or "x"

    def auth(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.rnd.choice(self.tokens)}

    def path(self, rule, real: bool = False) -> str:
        """A URL path for ``rule``: its variables filled with real ids or hostile text
        (``real``: real ids only, so the request reaches the code behind the route)."""
        if rule is None:
            return "/v1/grade"

        def fill(var: re.Match) -> str:
            name = var["name"]
            choices = ([c.strip().strip("'\"") for c in var["args"].split(",")]
                       if var["converter"] == "any" and var["args"] else None)
            if choices and (real or self.rnd.random() < 0.85):
                return self.rnd.choice(sorted(choices))
            if real:
                return self.quoted(self.rnd.choice(self.ids.get(name) or self.ids["any"]))
            return self.segment(name)

        return _RULE_VARIABLE.sub(fill, rule.rule)

    def query(self, path: str) -> str:
        pairs = []
        for _ in range(self.rnd.randint(0, 4)):
            name = self.rnd.choice(QUERY_NAMES) if self.rnd.random() < 0.9 else self.text()
            value = self.text()
            if name == "timeout" or path.endswith("/wait"):
                name, value = "timeout", self.rnd.choice(["0", "0.0", "-1", LONG, "NaN", "x"])
            pairs.append(f"{self.quoted(name)}={self.quoted(value)}")
        if path.endswith("/wait") and not any(p.startswith("timeout=") for p in pairs):
            pairs.append("timeout=0")  # a wait is a long poll: never hold the run for seconds
        return "&".join(pairs)

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        roll = self.rnd.random()
        if roll < 0.45 and self.tokens:
            h["Authorization"] = "Bearer " + self.rnd.choice(self.tokens)
        elif roll < 0.6:
            h["Authorization"] = self.rnd.choice(["Bearer", "Bearer  ", "Basic !!!", "Basic " + "A" * 5000,
                                                  "Bearer " + "x" * 5000, "bearer a b", "Digest x",
                                                  "Basic Og==", "Basic " + "é".encode().decode("latin-1")])
        if self.rnd.random() < 0.7:
            h["Content-Type"] = self.rnd.choice(CONTENT_TYPES)
        if self.rnd.random() < 0.15:
            h["Last-Event-ID"] = self.rnd.choice(["0", LONG, "-1", "x", "²"])
        if self.rnd.random() < 0.1:
            h["Accept"] = self.rnd.choice(["text/html", "application/json", "*/*", "x" * 3000])
        if self.rnd.random() < 0.05:
            h["X-Forwarded-For"] = "\x7f" * 50
        return h

    def body(self, rule, method: str, csrf: str) -> bytes | dict | None:
        if method in ("GET", "DELETE") and self.rnd.random() < 0.9:
            return None
        roll = self.rnd.random()
        if roll < 0.35:
            return self.rnd.choice(HOSTILE_JSON)
        if roll < 0.6:  # a plausible JSON object with hostile values
            keys = ["assignmentID", "percentage", "scoreGiven", "scoreMaximum", "name", "path",
                    "status", "count", "latency_ms", "retry_after", "client_id", "user_id",
                    "section_id", "assignment_id", "redirect_uris", "advance_s", "code",
                    "grant_type", "redirect_uri", "client_secret", "body", "format", "version"]
            doc = {}
            for _ in range(self.rnd.randint(0, 6)):
                value = self.rnd.choice([self.text(), self.rnd.random(), self.rnd.randint(-5, 10 ** 6),
                                         None, True, [self.text()], {"a": self.text()}])
                doc[self.rnd.choice(keys)] = value
            return json.dumps(doc).encode()
        if roll < 0.9:  # a form, as a browser posts one (sometimes with the right csrf)
            fields = {"csrf": csrf if self.rnd.random() < 0.7 else self.text()}
            for name in self.rnd.sample(["user_id", "next", "back", "assignment_id", "name",
                                         "max_points", "grading_type", "due_date", "due_time",
                                         "grading_category", "grading_period", "grading_enabled",
                                         "description", "standards", "code", "grant_type"],
                                        self.rnd.randint(0, 5)):
                fields[name] = self.rnd.choice(self.ids["any"] + HOSTILE_VALUES)
            from urllib.parse import urlencode
            return urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in fields.items()}).encode()
        return bytes(self.rnd.getrandbits(8) for _ in range(self.rnd.randint(0, 300)))


WORST_NUMBERS = [LONG, "²", "-1", "9" * 19]
WORST_TEXT = ["\r\nX: y", "\ud83d", "a\x00b", "x" * 5000, "//elsewhere.example/",
              "https://elsewhere.example/", "javascript:alert(1)", "<script>alert(1)</script>"]
# Pages that render the whole API document or export the whole state (~0.2 s each, whatever
# the request says): sampled one time in ten, so the run stays well under a minute.
SLOW_PAGES = {"/_sim/docs", "/_sim/snapshot"}
NUMBER_NAMES = {"limit", "offset", "after_seq", "after_id", "after_version", "page", "status",
                "timeout", "sim_page", "count", "after"}
FORM_FIELDS = ["user_id", "next", "back", "assignment_id", "name", "max_points", "grading_type",
               "due_date", "due_time", "grading_category", "grading_period", "grading_enabled",
               "description", "standards", "code", "grant_type"]
JSON_KEYS = ["assignmentID", "percentage", "scoreGiven", "scoreMaximum", "name", "path", "status",
             "count", "retry_after", "client_id", "user_id", "section_id", "assignment_id",
             "redirect_uris", "advance_s", "code", "grant_type", "redirect_uri", "body", "version"]


def _systematic(fuzzer: "_Fuzzer"):
    """Every route × every parameter name × the worst values, every body route × every
    hostile body, form field and JSON member: (rule, method, path, query, body, headers)."""
    from urllib.parse import urlencode
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for rule, method in fuzzer.targets:
        path = fuzzer.path(rule, real=True)
        for i, name in enumerate(QUERY_NAMES):
            for value in (WORST_NUMBERS if name in NUMBER_NAMES else [WORST_TEXT[i % 3]]):
                query = f"{name}={fuzzer.quoted(value)}"
                if path.endswith("/wait") and name != "timeout":
                    query += "&timeout=0"
                yield rule, method, path, query, None, fuzzer.auth()
        if method == "GET":
            continue
        for raw in HOSTILE_JSON:
            yield rule, method, path, "", raw, {**JSON, **fuzzer.auth()}
        for key in JSON_KEYS:
            for value in (LONG, "\\ud800", deep(200)):
                raw = '{"' + key + '": ' + (value if value[0] in "9[" else f'"{value}"') + "}"
                yield rule, method, path, "", raw.encode(), {**JSON, **fuzzer.auth()}
        for name in FORM_FIELDS:
            for value in WORST_TEXT[:4] + [LONG]:
                body = urlencode({"csrf": "fuzz-csrf", "user_id": TEACHER, name:
                                  value.encode("utf-8", "surrogatepass")}).encode()
                yield rule, method, path, "", body, form


def sim_tenants(app) -> list[str]:
    """Names of the tenants a fuzzed POST /_sim/tenants made."""
    listed = app.test_client().get("/_sim/tenants").get_json() or {}
    return [t["name"] for t in listed.get("data", []) if isinstance(t, dict) and t.get("name")]


def _fuzz_setup(app, server):
    """Real ids to fill URLs with (so requests get past the 404s), tokens and a session."""
    sim = app.extensions["clever_sim"]
    roster = sim.roster
    first = sim.roster_apps()[0]  # back if a fuzzed DELETE /_sim/apps/{id} removed it
    sim.clever.register_app(first, sim.store.get_app(first["client_id"]))
    demo = sim.store.get_app(first["client_id"])
    sim.clever.register_app({"assignments_url": server.base + "/clever/assignments"}, demo)
    section = next(s for s in roster["sections"] if s["id"] == SECTION)
    student = section["students"][0]
    link = app.test_client().post("/_sim/links", json={
        "section_id": SECTION, "client_id": demo.client_id, "assignment_id": "a100001"}).get_json()
    token = il_token(sim, student)
    assert app.test_client().post("/v1/grade", json={"assignmentID": "a100001", "percentage": 0.5},
                                  headers=bearer(token)).status_code == 200
    grade = sim.store.list_grades(assignment_id="a100001", limit=1)[0]
    district = roster["districts"][0]["id"]
    district_tok = sim.store.district_tokens(demo.client_id, district)[0].access_token
    ids = {
        "section_id": [SECTION], "client_id": [demo.client_id], "link_id": [link["id"]],
        "grade_id": [grade.record["id"]], "record_id": [student, SECTION, district, TEACHER],
        "entry_id": ["1", "2", "3"], "name": ["fuzz"],
    }
    ids["any"] = sorted({v for vs in ids.values() for v in vs})
    return sim, ids, [token, il_token(sim, TEACHER), district_tok]


@pytest.fixture(scope="module")
def fuzz_app(partner_server):
    app = create_app({"DB": ":memory:", "SECRET_KEY": "fuzz"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


def test_fuzz_every_endpoint_with_hostile_requests_answers_no_5xx(fuzz_app, partner_server):
    import itertools
    import random
    from collections import Counter

    partner_server.serve(json.loads(json.dumps({"assignments": [
        {"name": "Fractions quiz", "id": "a100001", "type": "assignment"}]})))
    sim, ids, tokens = _fuzz_setup(fuzz_app, partner_server)
    rnd = random.Random(FUZZ_SEED)
    fuzzer = _Fuzzer(fuzz_app, sim, rnd, ids, tokens)
    clients = {}
    for who in (None, TEACHER, ids["record_id"][0]):  # logged out, a teacher, a student
        client = fuzz_app.test_client()
        client.get("/oauth/whoami")
        with client.session_transaction() as s:
            s["csrf"] = "fuzz-csrf"
            if who:
                s["clever_user_id"] = who
        clients[who] = client
    statuses: Counter = Counter()
    by_status_class: Counter = Counter()
    failures = []
    sent = 0

    def randomly():
        while True:
            rule, method = rnd.choice(fuzzer.targets)
            if rule is not None and rule.rule in SLOW_PAGES and rnd.random() < 0.9:
                continue
            path = fuzzer.path(rule)
            yield (rule, method, path, fuzzer.query(path), fuzzer.body(rule, method, "fuzz-csrf"),
                   fuzzer.headers())

    systematic = [r for r in _systematic(fuzzer)
                  if r[0] is None or r[0].rule not in SLOW_PAGES or rnd.random() < 0.1]
    for rule, method, path, query, body, headers in itertools.chain(systematic, randomly()):
        if sent >= max(FUZZ_REQUESTS, len(systematic)):
            break
        client = clients[rnd.choice(list(clients))]
        url = path + ("?" + query if query else "")
        resp = client.open(url, method=method, data=body, headers=headers, buffered=False)
        try:
            status = resp.status_code
            if not path.endswith("/events"):
                resp.get_data()  # render the page or stream to the end (lazy bodies included)
        finally:
            resp.close()
        sent += 1
        statuses[status] += 1
        by_status_class[f"{status // 100}xx"] += 1
        if status >= 500:
            failures.append((method, url[:300], body[:200] if isinstance(body, bytes) else body,
                             status))
        if status < 300 and method != "GET" and (path.startswith("/_sim/") or method == "DELETE"):
            # A control action worked: undo what would blunt the rest of the run (an injected
            # fault answers 5xx on purpose; a reset, a deleted app or a moved clock ends tokens).
            sim.faults.clear()
            for tenant in sim_tenants(fuzz_app):
                clients[None].delete(f"/_sim/tenants/{tenant}", headers=JSON)
            _, fresh_ids, fresh_tokens = _fuzz_setup(fuzz_app, partner_server)
            fuzzer.ids.update(fresh_ids)
            fuzzer.tokens[:] = fresh_tokens
    summary = (f"fuzz: {sent} requests ({len(systematic)} systematic) over "
               f"{len(fuzzer.targets)} method×route targets; {dict(sorted(by_status_class.items()))}; by status {dict(sorted(statuses.items()))}")
    print(summary)
    assert sent >= 10_000
    assert not failures, f"{len(failures)} answers were 5xx, e.g. {failures[:5]}\n{summary}"
    assert by_status_class["2xx"] > 500 and by_status_class["4xx"] > 5000, summary
