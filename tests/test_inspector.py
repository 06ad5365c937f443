"""The request inspector: journal list with filters and paging, entry detail, findings in
plain words (derived and recorded), secrets hidden, bad filter values never a 500."""

from __future__ import annotations

import base64
import html
import re
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import bearer, district_token, il_token
from simulator import partner_client
from simulator.inspector import routes as inspector_routes
from simulator.inspector.findings import findings_for, redact_body, redact_headers

PRIMARY = "http://127.0.0.1:5001/clever/callback"
SECONDARY = "http://localhost:5001/clever/callback"


def basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def listed_ids(client, query: str = "", status: int = 200) -> list[int]:
    resp = client.get("/inspector" + query)
    assert resp.status_code == status, resp.get_data(as_text=True)[:1000]
    assert resp.mimetype == "text/html"
    body = resp.get_data(as_text=True)
    rows = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in body else ""
    return [int(i) for i in re.findall(r'<td><a href="/inspector/(\d+)">', rows)]


def entry_page(client, entry_id: int) -> str:
    resp = client.get(f"/inspector/{entry_id}")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:1000]
    return resp.get_data(as_text=True)


def last_entry(sim) -> dict:
    entries, _ = sim.journal.query(limit=1)
    return entries[0]


def texts(entry: dict) -> list[str]:
    return [f.text for f in findings_for(entry)]


@pytest.fixture
def traffic(client, sim, student, district_id, demo_app):
    """A little of everything: a good grade, a 415, a 401, a 404 and a data API call."""
    dt = district_token(sim, district_id)
    ok = client.post("/v1/grade", json={"assignmentID": "a1", "userID": student["id"],
                                        "percentage": 0.8}, headers=bearer(dt))
    assert ok.status_code == 200
    client.post("/v1/grade", data="assignmentID=a1", headers={
        **bearer(dt), "Content-Type": "application/x-www-form-urlencoded"})
    client.post("/v1/grade", json={"assignmentID": "a2"}, headers=bearer("not-a-sim-token"))
    client.get("/v9/nothing")
    client.get("/v3.0/me", headers=bearer(il_token(sim, student["id"])))
    return {e["path"] + " " + str(e["status"]): e["id"] for e in sim.journal}


# --- the list --------------------------------------------------------------------------

def test_journal_lists_newest_first_with_the_columns(client, sim, traffic, student):
    ids = listed_ids(client)
    assert ids == sorted(ids, reverse=True) and len(ids) == len(traffic)
    body = client.get("/inspector").get_data(as_text=True)
    assert '<span class="in-status st2">200</span>' in body
    assert '<span class="in-status st4">415</span>' in body
    # people named, their id on hover and selectable under the name; findings inline
    assert f'title="{student["id"]}">José Núñez</a>' in body
    assert f'<code class="muted in-id">{student["id"]}</code>' in body and "<code>a1</code>" in body
    assert "grade POST without Content-Type: application/json (sent application/x-www-form-urlencoded) — <em>send the header" in body
    assert "<th scope=\"col\">Findings</th>" in body


@pytest.mark.parametrize("query, keys", [
    ("?path=/v1/grade", ["/v1/grade 200", "/v1/grade 415", "/v1/grade 401"]),
    ("?endpoint=grade", ["/v1/grade 200", "/v1/grade 415", "/v1/grade 401"]),
    ("?path=/V3.0", ["/v3.0/me 200"]),
    ("?status=415", ["/v1/grade 415"]),
    ("?status=4xx", ["/v1/grade 415", "/v1/grade 401", "/v9/nothing 404"]),
    ("?status=2XX&path=/v1", ["/v1/grade 200"]),
    ("?assignment=a1", ["/v1/grade 200"]),  # the 415 was refused before its body was read
    ("?direction=inbound&method=get", ["/v3.0/me 200", "/v9/nothing 404"]),
    ("?direction=outbound", []),
])
def test_each_filter(client, traffic, query, keys):
    assert sorted(listed_ids(client, query)) == sorted(traffic[k] for k in keys)


def test_user_and_client_filters(client, sim, traffic, student, demo_app):
    by_user = listed_ids(client, f"?user={student['id']}")
    assert sorted(by_user) == sorted([traffic["/v1/grade 200"], traffic["/v3.0/me 200"]])
    by_client = listed_ids(client, f"?client={demo_app.client_id}")
    assert sorted(by_client) == sorted([traffic["/v1/grade 200"], traffic["/v1/grade 415"],
                                        traffic["/v3.0/me 200"]])
    assert listed_ids(client, "?client=someone-else") == []


def test_outbound_entries_are_filtered_and_explained(client, sim, traffic):
    entry = sim.journal.add({"time": sim.clock.iso(), "direction": "outbound", "method": "GET",
                             "path": "/clever/assignments", "url": "http://127.0.0.1:5001/clever/assignments",
                             "query": "", "status": None, "duration_ms": 5000.0,
                             "request_headers": {"Authorization": "Bearer x"}, "request_body": None,
                             "response_headers": {}, "response_body": None,
                             "findings": ["timed out after 5 s"], "fault": None})
    assert listed_ids(client, "?direction=outbound") == [entry["id"]]
    assert "partner assignments URL failed: timed out after 5 s" in texts(entry)
    page = entry_page(client, entry["id"])
    assert "partner assignments URL failed" in page and "outbound (simulator → partner)" in page


@pytest.mark.parametrize("respond, expected", [
    (lambda r: httpx.Response(500, text="boom"), "partner assignments URL failed: "),
    (lambda r: httpx.Response(200, text="<html>hi</html>", headers={"Content-Type": "text/html"}),
     "partner assignments URL failed: "),
    (lambda r: httpx.Response(200, json={"assignments": []}), None),
])
def test_real_partner_calls_are_explained(client, sim, student, respond, expected):
    """Entries written by the simulator's own partner client (Add Materials)."""
    result = partner_client.fetch_assignments(
        "http://partner.test/clever/assignments", "tok", journal=sim.journal, clock=sim.clock,
        transport=httpx.MockTransport(respond))
    e = sim.journal.get(result.journal_id)
    found = [t for t in texts(e) if t.startswith("partner assignments URL failed")]
    if expected is None:
        assert found == [] and not result.problems
    else:
        assert len(found) == 1 and result.problems[0][:60] in found[0]
        assert sum(result.problems[0] == t for t in texts(e)) == 0  # explained, not repeated
    assert listed_ids(client, "?direction=outbound") == [e["id"]]
    assert "http://partner.test/clever/assignments" in entry_page(client, e["id"])


def test_paging_by_page_and_after_id(client, sim):
    for _ in range(60):
        client.get("/v3.0/me")
    first = listed_ids(client)
    assert len(first) == 50 and first[0] == 60
    second = listed_ids(client, "?page=2")
    assert second == list(range(10, 0, -1))
    body = client.get("/inspector?page=2&status=401").get_data(as_text=True)
    assert "page 2 of 2" in body and 'href="/inspector?status=401&amp;page=1"' in body
    assert listed_ids(client, "?after_id=55") == [60, 59, 58, 57, 56]
    assert len(listed_ids(client, "?page=99")) == 10  # past the end: the last page


@pytest.mark.parametrize("query, message", [
    ("?status=abc", "status: &#39;abc&#39; is not an HTTP status"),
    ("?status=700", "is not an HTTP status"),
    ("?status=6xx", "is not an HTTP status"),
    ("?direction=sideways", "must be inbound"),
    ("?page=0", "page: &#39;0&#39; must be a whole number"),
    ("?page=abc", "page: &#39;abc&#39; must be a whole number"),
    ("?page=99999999999999999999999", "must be a whole number"),
    ("?after_id=-1", "after_id: &#39;-1&#39; must be a whole number"),
    ("?page=%C2%B2", "page: &#39;²&#39; must be a whole number"),  # "²".isdigit() is True
    ("?status=%C2%B2%C2%B2%C2%B2", "is not an HTTP status"),
    ("?method=G%20T", "is not an HTTP method"),
    ("?status=%3Cscript%3E", "&#39;&lt;script&gt;&#39; is not an HTTP status"),
])
def test_bad_filter_values_are_named_not_a_500(client, traffic, query, message):
    resp = client.get("/inspector" + query)
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    body = resp.get_data(as_text=True)
    assert message in body and "<script>" not in body
    assert len(listed_ids(client, query, status=400)) == len(traffic)  # the bad filter is ignored


def test_bad_filter_keeps_the_good_ones(client, traffic):
    assert listed_ids(client, "?status=abc&path=/v9", status=400) == [traffic["/v9/nothing 404"]]


def test_pager_links_never_carry_foreign_parameters(client, sim):
    for _ in range(55):
        client.get("/v3.0/me")
    body = client.get("/inspector?_external=1&_scheme=javascript&status=401").get_data(as_text=True)
    assert 'href="/inspector?status=401&amp;page=2"' in body and "javascript" not in body


def test_hostile_paths_are_escaped(client, sim):
    client.get("/%3Cscript%3Ealert(1)%3C/script%3E")
    body = client.get("/inspector").get_data(as_text=True)
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    page = entry_page(client, last_entry(sim)["id"])
    assert "<script>alert(1)" not in page


# --- the detail page -------------------------------------------------------------------

def test_entry_detail_shows_request_response_and_duration(client, sim, student, district_id):
    dt = district_token(sim, district_id)
    client.post("/v1/grade", data='{"assignmentID": "a1", "userID": "%s", "scoreGiven": 8.50, '
                '"scoreMaximum": 10, "note": "<b>hi</b>"}' % student["id"],
                headers={**bearer(dt), "Content-Type": "application/json"})
    e = last_entry(sim)
    page = entry_page(client, e["id"])
    assert f"{e['duration_ms']} ms" in page
    body = html.unescape(page.split('id="in-request-body">', 1)[1].split("</pre>", 1)[0])
    assert body.startswith("{\n  \"assignmentID\": \"a1\",") and '"scoreGiven": 8.50' in body
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page
    assert '"lti_score": "0.85"' in html.unescape(page)
    assert "X-RateLimit-Limit" in page and f"Bearer {dt}" in page  # simulator tokens are fake: shown
    assert "district-app token" in page
    assert "script-src 'self'" in client.get(f"/inspector/{e['id']}").headers["Content-Security-Policy"]


@pytest.mark.parametrize("entry_id", ["999999", "abc", "0", "1" * 40, "%C2%B2", "1%0A"])
def test_unknown_entry_is_a_friendly_404(client, entry_id):
    resp = client.get(f"/inspector/{entry_id}")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert "Journal entry not found" in resp.get_data(as_text=True)


def test_unknown_bearer_token_is_hidden_on_the_page(client, sim):
    secret = "realCleverToken0123456789abcdef"
    client.post("/v1/grade", json={"assignmentID": "a1", "percentage": 0.5}, headers=bearer(secret))
    e = last_entry(sim)
    assert "token unknown to the simulator (revoked, or a real Clever token?)" in texts(e)
    page = entry_page(client, e["id"])
    assert secret not in page and "not a simulator token" in page
    assert "token unknown to the simulator (revoked, or a real Clever token?)" in page


def test_client_secret_is_hidden(client, sim, demo_app, student):
    code = client.post("/_sim/codes", json={"client_id": demo_app.client_id,
                                            "user_id": student["id"]}).get_json()["code"]
    client.post("/oauth/tokens", data={"code": code, "grant_type": "authorization_code",
                                       "redirect_uri": PRIMARY, "client_id": demo_app.client_id,
                                       "client_secret": "wrong-but-maybe-real"})
    client.post("/oauth/tokens", json={"code": code}, headers=basic(demo_app.client_id, "s3cr3t-x"))
    for e in list(sim.journal)[-2:]:
        page = entry_page(client, e["id"])
        assert "wrong-but-maybe-real" not in page and "s3cr3t-x" not in page
    assert demo_app.client_id in page and "secret hidden" in page


# --- derived findings -------------------------------------------------------------------

def test_finding_district_token_without_user_id(client, sim, district_id):
    client.post("/v1/grade", json={"assignmentID": "a1", "percentage": 0.5},
                headers=bearer(district_token(sim, district_id)))
    e = last_entry(sim)
    found = findings_for(e)
    assert found[0].text == "userID missing with a district-app token"
    assert found[0].recorded.startswith("userID: is missing")
    assert sum("userID" in t for t in texts(e)) == 1  # the recorded one is explained, not repeated
    page = entry_page(client, e["id"])
    assert "userID missing with a district-app token" in page and "Recorded: userID: is missing" in page
    body = client.get("/inspector").get_data(as_text=True)
    assert '<span class="in-count">1</span>' in body


def test_finding_redirect_uri_mismatch_on_the_authorize_page(client, sim, demo_app):
    resp = client.get("/oauth/authorize", query_string={
        "response_type": "code", "client_id": demo_app.client_id,
        "redirect_uri": "http://127.0.0.1:5001/clever/callback/"})
    assert resp.status_code == 400
    e = last_entry(sim)
    assert e["path"] == "/oauth/authorize"
    assert "redirect_uri does not match a registered one (sent http://127.0.0.1:5001/clever/callback/)" \
        in texts(e)
    assert "trailing slash" in entry_page(client, e["id"])


def test_finding_redirect_uri_mismatch_on_token_exchange(client, sim, demo_app, student):
    code = client.post("/_sim/codes", json={"client_id": demo_app.client_id,
                                            "user_id": student["id"]}).get_json()["code"]
    client.post("/oauth/tokens", data={"code": code, "grant_type": "authorization_code",
                                       "redirect_uri": SECONDARY},
                headers=basic(demo_app.client_id, demo_app.client_secret))
    assert "redirect_uri does not match the one the code was issued for" in texts(last_entry(sim))


def test_finding_reused_code(client, sim, demo_app, student):
    code = client.post("/_sim/codes", json={"client_id": demo_app.client_id,
                                            "user_id": student["id"]}).get_json()["code"]
    form = {"code": code, "grant_type": "authorization_code", "redirect_uri": PRIMARY}
    auth = basic(demo_app.client_id, demo_app.client_secret)
    assert client.post("/oauth/tokens", data=form, headers=auth).status_code == 200
    assert texts(last_entry(sim)) == []
    assert client.post("/oauth/tokens", data=form, headers=auth).status_code == 400
    e = last_entry(sim)
    assert texts(e) == ["code already used"]
    assert "invalid_grant: Authorization code already used" in findings_for(e)[0].recorded
    assert listed_ids(client, "?path=/oauth/tokens&status=400") == [e["id"]]


def test_finding_grade_without_json_content_type(client, sim, student):
    token = il_token(sim, student["id"])
    client.post("/v1/grade", data='{"assignmentID": "a1", "percentage": 0.5}',
                headers={**bearer(token), "Content-Type": "text/plain"})
    e = last_entry(sim)
    assert e["status"] == 415
    assert texts(e) == ["grade POST without Content-Type: application/json (sent text/plain)"]
    client.post("/v1/grade", data='{"assignmentID": "a1", "percentage": 0.5}', headers=bearer(token))
    assert "grade POST without Content-Type: application/json (no Content-Type)" in texts(last_entry(sim))


def test_finding_unknown_token(client, sim):
    client.get("/v3.0/me", headers=bearer("abc123"))
    assert texts(last_entry(sim)) == ["token unknown to the simulator (revoked, or a real Clever token?)"]


def test_a_token_revoked_through_the_control_api_is_explained_as_possibly_revoked(client, sim,
                                                                                   student):
    token = il_token(sim, student["id"])
    assert client.delete(f"/_sim/tokens/{token}").status_code == 200
    client.post("/v1/grade", json={"assignmentID": "a1", "percentage": 0.5}, headers=bearer(token))
    e = last_entry(sim)
    assert e["status"] == 401
    assert texts(e) == ["token unknown to the simulator (revoked, or a real Clever token?)"]


def test_finding_no_token(client, sim):
    client.post("/v1/grade", json={"assignmentID": "a1", "percentage": 0.5})
    assert texts(last_entry(sim))[0] == "no bearer token sent"


def test_finding_injected_fault(client, sim, student):
    assert client.post("/_sim/faults", json={"path": "/v1/grade", "status": 503,
                                             "retry_after": 2}).status_code == 201
    resp = client.post("/v1/grade", json={"assignmentID": "a1", "percentage": 0.5},
                       headers=bearer(il_token(sim, student["id"])))
    assert resp.status_code == 503
    e = last_entry(sim)
    assert texts(e)[0] == "injected fault answered: HTTP 503, Retry-After 2 s"
    page = html.unescape(entry_page(client, e["id"]))
    assert "<h2>Injected fault</h2>" in page and '"retry_after": 2' in page


def test_warnings_of_accepted_grades_are_listed(client, sim, student, district_id):
    client.post("/v1/grade", json={"assignmentID": "nolink", "userID": student["id"], "scoreGiven": 11,
                                   "scoreMaximum": 10}, headers=bearer(district_token(sim, district_id)))
    found = findings_for(last_entry(sim))
    assert {f.level for f in found} == {"warning"}
    assert any("clamped to 1.0" in f.text for f in found)
    assert any("not linked to a Schoology assignment" in f.text for f in found)


def test_findings_never_break_on_odd_entries():
    assert findings_for({}) == []
    odd = {"path": "/v1/grade", "method": "POST", "token_kind": "district", "request_body": "[",
           "request_headers": None, "findings": ["x", "x"], "status": "weird", "fault": "no"}
    assert [f.text for f in findings_for(odd)] == [
        "grade POST without Content-Type: application/json (no Content-Type)", "x"]


# --- redaction units ------------------------------------------------------------------

def test_redact_headers():
    basic_value = "Basic " + base64.b64encode(b"cid:topsecret").decode()
    out = redact_headers({"Authorization": "Bearer known", "Cookie": "session=abc"},
                         lambda t: t == "known")
    assert out == {"Authorization": "Bearer known", "Cookie": "… (11 chars, hidden)"}
    out = redact_headers({"authorization": basic_value}, lambda t: True)
    assert "topsecret" not in out["authorization"] and "cid" in out["authorization"]
    out = redact_headers({"Authorization": "Bearer unknownvalue"}, lambda t: False)
    assert "unknownvalue" not in out["Authorization"]


def test_redact_body():
    assert "s3" not in redact_body('{"client_secret": "s3", "code": "c"}', "application/json")
    assert redact_body("code=c&client_secret=s3", "application/x-www-form-urlencoded") == \
        "code=c&client_secret=%28hidden%29"
    assert redact_body("no secrets", None) == "no secrets"


def test_status_class():
    assert [inspector_routes.status_class(s) for s in (200, 302, 404, 503, None, "x")] == \
        ["st2", "st3", "st4", "st5", "st0", "st0"]


# --- never a 500 ------------------------------------------------------------------------

_FILTERS = ["path", "endpoint", "status", "user", "assignment", "client", "direction", "method",
            "page", "after_id", "_external", "_scheme"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(_FILTERS), st.text(max_size=30), max_size=5))
def test_any_filter_values_answer_200_or_400(client, params):
    resp = client.get("/inspector", query_string=params)
    assert resp.status_code in (200, 400), resp.get_data(as_text=True)[:500]
    assert "<script" not in resp.get_data(as_text=True)  # the list page has no script at all


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry_id=st.text(min_size=1, max_size=30).filter(lambda t: "/" not in t and t not in (".", "..")))
def test_any_entry_id_answers_200_or_404(client, entry_id):
    resp = client.get("/inspector/" + quote(entry_id, safe=""))
    assert resp.status_code in (200, 404, 308)


def test_rejected_district_token_grade_is_found_by_the_bodys_student_with_the_fix_inline(
        client, sim, student, district_id, demo_app):
    dt = district_token(sim, district_id)
    resp = client.post("/v1/grade", json={"assignmentID": "q7", "userID": student["id"],
                                          "percentage": 5}, headers=bearer(dt))
    assert resp.status_code == 400
    entry = last_entry(sim)
    assert (entry["user_id"], entry["assignment_id"], entry["client_id"]) == \
        (student["id"], "q7", demo_app.client_id)
    query = f"?user={student['id']}&assignment=q7&client={demo_app.client_id}&status=4xx"
    assert listed_ids(client, query) == [entry["id"]]
    (finding,) = findings_for(entry)
    assert (finding.level, finding.text, finding.hint) == \
        ("error", "percentage: is 5: must be between 0 and 1.0", "looks like 0–100; send 0.05 for 5%")
    assert "send 0.05 for 5%" in html.unescape(entry_page(client, entry["id"]).split("<h2>Findings", 1)[1]
                                               .split("</ul>", 1)[0])


def test_a_userid_in_the_body_does_not_rename_an_il_tokens_student(client, sim, student, demo_app):
    token = il_token(sim, student["id"])
    client.post("/v1/grade", json={"assignmentID": "q7", "userID": "someone-else",
                                   "percentage": 0.5}, headers=bearer(token))
    assert last_entry(sim)["user_id"] == student["id"]


def test_qa_view_tells_a_students_whole_story(client, sim, student, district_id, demo_app):
    section = next(s for s in sim.roster["sections"] if student["id"] in s["students"])
    assert client.post("/_sim/links", json={
        "section_id": section["id"], "client_id": demo_app.client_id, "assignment_id": "q1",
        "name": "Quiz one", "max_points": 20, "grading_type": "letter"}).status_code == 201
    dt = district_token(sim, district_id)
    for body in ({"assignmentID": "q1", "userID": student["id"], "percentage": 80},
                 {"assignmentID": "q1", "userID": student["id"], "percentage": 0.8},
                 {"assignmentID": "zz9", "userID": student["id"], "percentage": 0.3}):
        client.post("/v1/grade", json=body, headers=bearer(dt))
    resp = client.get(f"/inspector/students/{student['id']}")
    assert resp.status_code == 200
    page = re.sub(r"</?bdi>", "", resp.get_data(as_text=True))  # inline: no word break
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert "José Núñez student" in text and "Grades (2)" in text
    assert f"{section['name']} · Quiz one B q1 80% 0.8 percentage 0.8 1" in text
    assert "zz9 Demo Partner (reference) not linked yet in any of their sections" in text
    assert ("q1 (Demo Partner (reference)): 1 rejected — last: percentage: is 80: must be between "
            "0 and 1.0 Fix: looks like 0–100; send 0.8 for 80%") in text
    assert "3 requests named José Núñez." in text
    kinds = re.findall(r"UTC (grade accepted|grade rejected) POST /v1/grade · (\w+)", text)
    assert kinds == [("grade accepted", "zz9"), ("grade accepted", "q1"), ("grade rejected", "q1")]


def test_qa_view_of_someone_with_no_traffic_says_what_to_check(client, student):
    text = client.get(f"/inspector/students/{student['id']}").get_data(as_text=True)
    assert "No grade was stored for <bdi>José Núñez</bdi>. No grade POST named them either" in text
    assert "No request named <bdi>José Núñez</bdi> yet." in text


@pytest.mark.parametrize("user_id", ["nope", "x" * 300, "<script>"])
def test_qa_view_of_an_unknown_person_is_an_html_404(client, user_id):
    resp = client.get(f"/inspector/students/{quote(user_id, safe='')}")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert "Page not found" in resp.get_data(as_text=True)
