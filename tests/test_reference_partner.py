"""The reference partner against a live in-process simulator, over real HTTP.

Both servers run on waitress threads on 127.0.0.1 (port 0); the partner is registered
with the simulator for its actual port through the control API, exactly as a partner
would register its own app, and only ever talks to the simulator's Clever endpoints.
"""

from __future__ import annotations

import html
import json
import re
import socket
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote

import httpx
import pytest

from contract_tests.reference_partner import DEFAULT_ASSIGNMENTS, bind_partner, create_partner_app
from contract_tests.reference_partner.content import Question, load_assignments
from contract_tests.reference_partner.transport import CleverError, retry_delay
from simulator.app import create_app
from simulator.serving import start_in_thread

CLIENT_ID = "ref0partner0test0001"
CLIENT_SECRET = "reference-partner-test-secret-0001"
BY_ID = {a.id: a for a in DEFAULT_ASSIGNMENTS}
POINTS = next(a for a in DEFAULT_ASSIGNMENTS if a.score_format == "points")
PERCENT = next(a for a in DEFAULT_ASSIGNMENTS if a.score_format == "percentage")
# An id a partner might really use, that needs percent-encoding in a URL path and query.
AWKWARD_ID = "unit 3/quiz #2?v=1&x=50%"


# --- servers -------------------------------------------------------------------------------

@pytest.fixture
def sim_server():
    running = start_in_thread(create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={}))
    yield running
    running.stop()


@pytest.fixture
def make_partner(sim_server):
    """Start a reference partner registered with the simulator for its real port."""
    started = []

    def make(client_id: str = CLIENT_ID, **overrides):
        base = sim_server.url
        app = create_partner_app({"CLEVER_URL": base, "API_URL": base, "GRADES_URL": base,
                                  "CLIENT_ID": client_id, "CLIENT_SECRET": CLIENT_SECRET,
                                  "SECRET_KEY": "partner-test", **overrides})
        server = bind_partner(app, "127.0.0.1", 0)
        started.append(server)
        resp = httpx.post(base + "/_sim/apps", json={
            "name": "Reference partner under test", "client_id": client_id,
            "client_secret": CLIENT_SECRET, "redirect_uris": [app.config["REDIRECT_URI"]],
            "assignments_url": server.url + "/clever/assignments"})
        assert resp.status_code == 201, resp.text
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def partner(make_partner):
    return make_partner()


@pytest.fixture
def roster(sim_server):
    return sim_server.app.extensions["clever_sim"].roster


def _people(roster, role, district_index=0):
    district = roster["districts"][district_index]["id"]
    return [u for u in roster["users"] if role in u["roles"] and u["district"] == district]


@pytest.fixture
def student(roster):
    return _people(roster, "student")[0]


@pytest.fixture
def teacher(roster):
    return _people(roster, "teacher")[0]


# --- helpers -------------------------------------------------------------------------------

def sim_get(sim_server, endpoint, **params):
    resp = httpx.get(sim_server.url + endpoint, params=params, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def grade_journal(sim_server) -> list[int]:
    """Statuses of every POST /v1/grade the simulator saw, oldest first."""
    entries = sim_get(sim_server, "/_sim/journal", path="/v1/grade", limit=1000)["data"]
    return [e["status"] for e in reversed(entries)]


@pytest.fixture
def browser():
    with httpx.Client(follow_redirects=True, timeout=30) as client:
        yield client


def launch(sim_server, browser, user_id, assignment_id=None, client_id=CLIENT_ID):
    """What a click in Schoology does: Clever's redirect to the partner, followed."""
    body = {"client_id": client_id, "user_id": user_id}
    if assignment_id is not None:
        body["assignment_id"] = assignment_id
    code = httpx.post(sim_server.url + "/_sim/codes", json=body).json()
    return browser.get(code["redirect_url"]), code


def answers(page: httpx.Response, assignment, right: int) -> dict:
    """The activity form filled in with the first ``right`` answers correct."""
    nonce = re.search(r'name="attempt" value="([^"]*)"', page.text).group(1)
    data = {"attempt": nonce}
    for i, q in enumerate(assignment.questions):
        if i < right:
            data[f"q{i}"] = q.answer
        else:
            data[f"q{i}"] = next(c for c in q.choices if c != q.answer) if q.choices else "-1"
    return data


def submit(browser, page, assignment, right):
    action = html.unescape(re.search(r'<form id="activity" method="post" action="([^"]+)"', page.text).group(1))
    return browser.post(str(page.url.join(action)), data=answers(page, assignment, right))


def teacher_token(sim_server, teacher_id, client_id=CLIENT_ID) -> str:
    resp = httpx.post(sim_server.url + "/_sim/tokens", json={"client_id": client_id,
                                                             "user_id": teacher_id})
    return resp.json()["access_token"]


def hook(partner, **body):
    return httpx.post(partner.url + "/test-hooks/complete", json=body, timeout=60)


def fault(sim_server, **spec):
    resp = httpx.post(sim_server.url + "/_sim/faults", json={"path": "/v1/grade", **spec})
    assert resp.status_code == 201, resp.text


# --- basics --------------------------------------------------------------------------------

def test_health_and_home_page_links_to_clever_login(partner, sim_server):
    assert httpx.get(partner.url + "/healthz").status_code == 200
    home = httpx.get(partner.url + "/")
    assert home.status_code == 200
    link = html.unescape(re.search(r'id="login" href="([^"]+)"', home.text).group(1))
    assert link.startswith(sim_server.url + "/oauth/authorize?")
    assert f"client_id={CLIENT_ID}" in link and "response_type=code" in link
    assert "redirect_uri=" + quote(partner.url + "/clever/callback", safe="") in link


def test_config_is_checked():
    with pytest.raises(ValueError, match="CLIENT_SECRET"):
        create_partner_app({"CLEVER_URL": "http://x", "API_URL": "http://x",
                            "GRADES_URL": "http://x", "CLIENT_ID": "a"})
    with pytest.raises(ValueError, match="duplicate id"):
        load_assignments([{"id": "a", "name": "A"}, {"id": "a", "name": "B"}])
    with pytest.raises(ValueError, match=r"questions\[0\].answer must be one of its choices"):
        load_assignments([{"id": "a", "name": "A",
                           "questions": [{"prompt": "?", "answer": "x", "choices": ["y"]}]}])
    with pytest.raises(ValueError, match="format"):
        load_assignments([{"id": "a", "name": "A", "format": "letters"}])
    custom = load_assignments([{"id": "a", "name": "A", "format": "points", "points_each": 2,
                                "questions": [{"prompt": "1+1", "answer": 2}]}])["a"]
    assert custom.max_points == 2 and custom.score_fields(Decimal("0.5")) == {
        "scoreGiven": 1, "scoreMaximum": 2}


# --- Step 1: assignments API ---------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "", "Bearer", "Token abc", "Basic Zm9vOmJhcg=="])
def test_assignments_api_requires_a_bearer_token(partner, header):
    headers = {} if header is None else {"Authorization": header}
    resp = httpx.get(partner.url + "/clever/assignments", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_assignments_api_refuses_a_token_clever_does_not_know(partner, sim_server):
    resp = httpx.get(partner.url + "/clever/assignments",
                     headers={"Authorization": "Bearer not-a-real-token"})
    assert resp.status_code == 401 and "error" in resp.json()
    # It asked Clever (/v3.0/me), which said 401.
    assert [e["status"] for e in sim_get(sim_server, "/_sim/journal", path="/v3.0/me")["data"]] == [401]


def test_assignments_api_answers_the_seeds_shape_after_calling_me(partner, sim_server, roster, teacher):
    token = teacher_token(sim_server, teacher["id"])
    resp = httpx.get(partner.url + "/clever/assignments", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert list(body) == ["assignments"]
    items = body["assignments"]
    assert 5 <= len(items) <= 6
    assert len({a["id"] for a in items}) == len(items)
    for a in items:
        assert set(a) <= {"name", "id", "type", "description", "standards"}
        assert a["type"] == "assignment" and a["name"].strip()
        assert re.fullmatch(r"[A-Za-z0-9]{1,63}", a["id"])
        assert isinstance(a.get("standards", []), list)
    assert any("description" in a for a in items) and any("standards" in a for a in items)
    assert any(a["name"] == "Adding Fractions with Unlike Denominators" for a in items)
    assert any("CCSS.MATH.CONTENT.5.NF.A.1" in a.get("standards", []) for a in items)
    # The seed's optional step: the partner called /v3.0/me with the teacher's token.
    me_calls = sim_get(sim_server, "/_sim/journal", path="/v3.0/me", user_id=teacher["id"])["data"]
    assert [e["status"] for e in me_calls] == [200]
    assert me_calls[0]["request_headers"]["Authorization"] == f"Bearer {token}"
    # Stable: same list on every call, and for every teacher of the district.
    other = _people(roster, "teacher")[1]
    again = httpx.get(partner.url + "/clever/assignments",
                      headers={"Authorization": f"Bearer {teacher_token(sim_server, other['id'])}"})
    assert again.json() == body


# --- Step 2: login with assignment state ---------------------------------------------------

def test_launch_lands_on_the_assignment(partner, sim_server, student, browser):
    assignment = DEFAULT_ASSIGNMENTS[0]
    page, code = launch(sim_server, browser, student["id"], assignment.id)
    assert code["state"] == f"assignment:{assignment.id}"
    assert page.status_code == 200, page.text
    assert page.url.path == f"/assignments/{assignment.id}"
    assert f'data-assignment-id="{assignment.id}"' in page.text
    assert f'data-user-id="{student["id"]}"' in page.text
    assert html.escape(student["name"]["first"]) in page.text
    assert html.escape(assignment.name) in page.text
    # One redirect: callback → assignment.
    assert [r.status_code for r in page.history] == [302]
    assert page.history[0].url.path == "/clever/callback"


def test_launch_with_an_id_that_needs_percent_encoding(make_partner, sim_server, student, browser):
    make_partner(ASSIGNMENTS=[{"id": AWKWARD_ID, "name": "Quiz <2> & review"},
                                        {"id": "plain1", "name": "Plain"}])
    page, code = launch(sim_server, browser, student["id"], AWKWARD_ID)
    assert code["state"] == f"assignment:{AWKWARD_ID}"
    assert page.status_code == 200, page.text
    redirect_to = page.history[-1].headers["Location"]
    assert redirect_to == "/assignments/" + quote(AWKWARD_ID, safe="")
    assert f'data-assignment-id="{html.escape(AWKWARD_ID)}"' in page.text
    assert "Quiz &lt;2&gt; &amp; review" in page.text and "<2>" not in page.text
    # The activity posts back to the right (encoded) place and reports the exact id.
    result = submit(browser, page, load_assignments([{"id": AWKWARD_ID, "name": "x"}])[AWKWARD_ID], 5)
    assert result.status_code == 200 and "sent to Schoology" in result.text
    grades = sim_get(sim_server, "/_sim/grades", user_id=student["id"])["data"]
    assert [(g["assignmentID"], Decimal(g["lti_score"])) for g in grades] == [(AWKWARD_ID, 1)]


def test_unknown_assignment_in_state_shows_a_friendly_404(partner, sim_server, student, browser):
    page, _ = launch(sim_server, browser, student["id"], "doesNotExist42")
    assert page.status_code == 404
    assert "Assignment not found" in page.text and "doesNotExist42" in page.text
    # Still logged in: the dashboard works.
    assert browser.get(partner.url + "/dashboard").status_code == 200


def test_plain_login_goes_to_the_dashboard(partner, sim_server, student, browser):
    page, code = launch(sim_server, browser, student["id"])
    assert "state=" not in code["redirect_url"]
    assert page.status_code == 200 and page.url.path == "/dashboard"
    assert "data-dashboard" in page.text and f'data-user-id="{student["id"]}"' in page.text
    for a in DEFAULT_ASSIGNMENTS:
        assert f'href="/assignments/{a.id}"' in page.text


def test_reused_code_logs_nobody_in(partner, sim_server, student, browser):
    page, code = launch(sim_server, browser, student["id"], PERCENT.id)
    assert page.status_code == 200
    with httpx.Client(follow_redirects=True) as attacker:
        again = attacker.get(code["redirect_url"])
        assert 400 <= again.status_code < 500
        assert "Login failed" in again.text
        assert not again.history  # no redirect into the app
        dash = attacker.get(partner.url + "/dashboard")
        assert dash.url.path == "/login" and "Please log in" in dash.text


def test_login_errors_are_friendly_4xx_pages(partner):
    with httpx.Client() as browser:
        denied = browser.get(partner.url + "/clever/callback",
                             params={"error": "access_denied", "error_description": "<b>nope</b>"})
        assert denied.status_code == 400 and "Login was cancelled" in denied.text
        assert "&lt;b&gt;nope&lt;/b&gt;" in denied.text
        bogus = browser.get(partner.url + "/clever/callback", params={"code": "bogus"})
        assert bogus.status_code in (400, 401) and "Login failed" in bogus.text
        missing = browser.get(partner.url + "/clever/callback")
        assert missing.status_code == 400


def test_pages_need_a_login(partner):
    with httpx.Client() as browser:
        resp = browser.get(partner.url + f"/assignments/{PERCENT.id}")
        assert resp.status_code == 302
        assert resp.headers["Location"] == f"/login?assignment={PERCENT.id}"
        login = browser.get(partner.url + resp.headers["Location"])
        assert login.status_code == 200
        # The login link carries the assignment, so Clever brings the student back to it.
        assert "state=assignment%3A" + PERCENT.id in html.unescape(login.text)
        assert browser.get(partner.url + "/dashboard").headers["Location"] == "/login"
        assert browser.get(partner.url + "/results/c1abc").headers["Location"] == "/login"
        post = browser.post(partner.url + f"/assignments/{PERCENT.id}/submit", data={})
        assert post.status_code == 303


# --- Step 3: grade passback from the activity ----------------------------------------------

@pytest.mark.parametrize("assignment,right,expected", [
    (POINTS, 4, {"scoreGiven": 4 * POINTS.points_each, "scoreMaximum": POINTS.max_points}),
    (PERCENT, 3, {"percentage": 0.6}),
], ids=["scoreGiven", "percentage"])
def test_finishing_the_activity_sends_the_grade(partner, sim_server, student, assignment, right,
                                                expected, browser):
    page, _ = launch(sim_server, browser, student["id"], assignment.id)
    result = submit(browser, page, assignment, right)
    assert result.status_code == 200 and result.url.path.startswith("/results/")
    assert "sent to Schoology" in result.text and f"{right} of 5" in result.text
    grades = sim_get(sim_server, "/_sim/grades", user_id=student["id"])["data"]
    assert len(grades) == 1
    g = grades[0]
    assert g["assignmentID"] == assignment.id and g["userID"] == student["id"]
    assert Decimal(g["lti_score"]) == Decimal(right) / 5
    assert g["token_kind"] == "il" and g["client_id"] == CLIENT_ID
    for key, value in expected.items():
        assert g[key] == value
    assert g["context"]["attempt"] == 1 and isinstance(g["context"]["timeSpentSeconds"], int)
    post = sim_get(sim_server, "/_sim/journal", path="/v1/grade")["data"][0]
    assert post["request_headers"]["Content-Type"] == "application/json"
    assert post["request_headers"]["Authorization"].startswith("Bearer ilc_")


def test_both_score_formats_are_used():
    assert {a.score_format for a in DEFAULT_ASSIGNMENTS} == {"points", "percentage"}


def test_submitting_the_same_form_twice_sends_one_grade(partner, sim_server, student, browser):
    page, _ = launch(sim_server, browser, student["id"], POINTS.id)
    data = answers(page, POINTS, 5)
    url = str(page.url) + "/submit"
    first = browser.post(url, data=data)
    second = browser.post(url, data=data)
    assert first.url == second.url and "sent to Schoology" in second.text
    # A new attempt (page opened again) is a second completion: attempt 2 overwrites.
    page2 = browser.get(str(page.url))
    third = browser.post(url, data=answers(page2, POINTS, 2))
    assert "attempt 2" in third.text
    assert grade_journal(sim_server) == [200, 200]
    g = sim_get(sim_server, "/_sim/grades", user_id=student["id"])["data"][0]
    assert g["lti_score"] == "0.4" and g["context"]["attempt"] == 2 and g["version"] == 2


def test_activity_survives_an_injected_503(partner, sim_server, student, browser):
    fault(sim_server, status=503, count=1)
    page, _ = launch(sim_server, browser, student["id"], PERCENT.id)
    result = submit(browser, page, PERCENT, 5)
    assert "sent to Schoology" in result.text
    assert grade_journal(sim_server) == [503, 200]


def test_teachers_get_a_preview_and_send_no_grade(partner, sim_server, teacher, browser):
    page, _ = launch(sim_server, browser, teacher["id"], POINTS.id)
    assert page.status_code == 200 and "Teacher preview" in page.text
    resp = browser.post(str(page.url) + "/submit", data={"attempt": ""})
    assert resp.status_code == 403
    assert grade_journal(sim_server) == []


# --- completion hook (provider state) ------------------------------------------------------

@pytest.mark.parametrize("assignment,score,lti,fields", [
    (PERCENT, 0.8, "0.8", {"percentage": 0.8}),
    (POINTS, 0.8, "0.8", {"scoreGiven": 0.8 * POINTS.max_points, "scoreMaximum": POINTS.max_points}),
    (BY_ID["matter5ps1"], 0.35, "0.35", {"scoreGiven": 7, "scoreMaximum": 20}),
    (BY_ID["vol5md5"], 0.1, "0.1", {"scoreGiven": 1, "scoreMaximum": 10}),
    (PERCENT, 1, "1", {"percentage": 1}),
    (POINTS, 0, "0", {"scoreGiven": 0}),
])
def test_completion_hook_sends_the_grade_with_a_district_token(partner, sim_server, student,
                                                               assignment, score, lti, fields):
    resp = hook(partner, user_id=student["id"], assignment_id=assignment.id,
                district_id=student["district"], score=score)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "sent" and resp.json()["grade_status"] == 200
    g = sim_get(sim_server, "/_sim/grades", user_id=student["id"], assignment_id=assignment.id)["data"]
    assert len(g) == 1
    assert g[0]["token_kind"] == "district" and Decimal(g[0]["lti_score"]) == Decimal(lti)
    for key, value in fields.items():
        assert g[0][key] == value
    assert '"userID":"%s"' % student["id"] in g[0]["payload"]


def test_completion_hook_caches_the_district_token(partner, sim_server, student, roster):
    other = _people(roster, "student")[1]
    for who in (student, other):
        assert hook(partner, user_id=who["id"], assignment_id=PERCENT.id,
                    district_id=who["district"], score=0.5).status_code == 200
    fetches = sim_get(sim_server, "/_sim/journal", path="/oauth/tokens", method="GET")["data"]
    assert len(fetches) == 1
    assert "owner_type=district" in fetches[0]["query"] and student["district"] in fetches[0]["query"]
    assert fetches[0]["request_headers"]["Authorization"].startswith("Basic ")
    # The other district gets its own token.
    foreign = _people(roster, "student", 1)[0]
    assert hook(partner, user_id=foreign["id"], assignment_id=PERCENT.id,
                district_id=foreign["district"], score=0.5).status_code == 200
    assert sim_get(sim_server, "/_sim/journal", path="/oauth/tokens", method="GET")["total"] == 2


@pytest.mark.parametrize("body,field", [
    ({"assignment_id": "frac5nf1", "district_id": "d", "score": 0.5}, "user_id"),
    ({"user_id": "", "assignment_id": "frac5nf1", "district_id": "d", "score": 0.5}, "user_id"),
    ({"user_id": "u", "district_id": "d", "score": 0.5}, "assignment_id"),
    ({"user_id": "u", "assignment_id": "frac5nf1", "score": 0.5}, "district_id"),
    ({"user_id": "u", "assignment_id": "frac5nf1", "district_id": 7, "score": 0.5}, "district_id"),
    ({"user_id": "u", "assignment_id": "frac5nf1", "district_id": "d"}, "score"),
    ({"user_id": "u", "assignment_id": "frac5nf1", "district_id": "d", "score": 80}, "score"),
    ({"user_id": "u", "assignment_id": "frac5nf1", "district_id": "d", "score": -0.1}, "score"),
    ({"user_id": "u", "assignment_id": "frac5nf1", "district_id": "d", "score": "0.5"}, "score"),
    ({"user_id": "u", "assignment_id": "frac5nf1", "district_id": "d", "score": True}, "score"),
    ([1, 2], "(body)"),
])
def test_completion_hook_names_the_bad_field(partner, sim_server, body, field):
    resp = httpx.post(partner.url + "/test-hooks/complete", json=body)
    assert resp.status_code == 400 and resp.json()["field"] == field, resp.text
    assert grade_journal(sim_server) == []


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"score": NaN}', b"\xff\xfe"])
def test_completion_hook_refuses_unreadable_bodies(partner, raw):
    resp = httpx.post(partner.url + "/test-hooks/complete", content=raw,
                      headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["field"] == "(body)"


def test_completion_hook_unknown_assignment_is_404(partner, student):
    resp = hook(partner, user_id=student["id"], assignment_id="nope", district_id=student["district"],
                score=0.5)
    assert resp.status_code == 404 and resp.json()["field"] == "assignment_id"


def test_completion_hook_reports_clevers_refusal_as_502(partner, sim_server, student, teacher):
    resp = hook(partner, user_id=teacher["id"], assignment_id=PERCENT.id,
                district_id=teacher["district"], score=0.5)
    assert resp.status_code == 502
    body = resp.json()
    assert body["status"] == "failed" and body["grade_status"] == 400
    assert "userID" in body["error"]
    assert grade_journal(sim_server) == [400]  # a 4xx is never retried


def test_completion_hook_for_a_district_the_app_is_not_connected_to(partner, student):
    resp = hook(partner, user_id=student["id"], assignment_id=PERCENT.id,
                district_id="ffffffffffffffffffffffff", score=0.5)
    assert resp.status_code == 502 and "district-app token" in resp.json()["error"]


# --- retries -------------------------------------------------------------------------------

def _one_grade_history(sim_server, student) -> list[dict]:
    grades = sim_get(sim_server, "/_sim/grades", user_id=student["id"])["data"]
    assert len(grades) == 1
    return sim_get(sim_server, f"/_sim/grades/{grades[0]['id']}/history")["data"]


def test_retries_after_an_injected_503(partner, sim_server, student):
    fault(sim_server, status=503, count=1)
    resp = hook(partner, user_id=student["id"], assignment_id=PERCENT.id,
                district_id=student["district"], score=0.9)
    assert resp.status_code == 200 and resp.json()["tries"] == [503, 200]
    assert grade_journal(sim_server) == [503, 200]
    assert len(_one_grade_history(sim_server, student)) == 1


def test_retries_after_429_honouring_retry_after(partner, sim_server, student):
    fault(sim_server, status=429, count=1, retry_after=1)
    resp = hook(partner, user_id=student["id"], assignment_id=POINTS.id,
                district_id=student["district"], score=0.6)
    assert resp.status_code == 200, resp.text
    entries = sim_get(sim_server, "/_sim/journal", path="/v1/grade", limit=1000)["data"][::-1]
    assert [e["status"] for e in entries] == [429, 200]
    # the retry came at least Retry-After (1 s) after the refused try, as the journal dates them
    refused, retried = (datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in entries)
    assert (retried - refused).total_seconds() >= 1.0 - 0.001  # the journal keeps milliseconds
    assert len(_one_grade_history(sim_server, student)) == 1


def test_one_history_entry_per_completion_under_faults(partner, sim_server, student):
    for score in (0.2, 0.4, 0.6):
        fault(sim_server, status=503, count=2, retry_after=0)
        assert hook(partner, user_id=student["id"], assignment_id=PERCENT.id,
                    district_id=student["district"], score=score).status_code == 200
    history = _one_grade_history(sim_server, student)
    assert len(history) == 3
    assert grade_journal(sim_server) == [503, 503, 200] * 3


def test_gives_up_after_three_retries(partner, sim_server, student):
    fault(sim_server, status=503, count=10, retry_after=0)
    resp = hook(partner, user_id=student["id"], assignment_id=PERCENT.id,
                district_id=student["district"], score=0.5)
    assert resp.status_code == 502 and resp.json()["tries"] == [503] * 4
    assert grade_journal(sim_server) == [503] * 4


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 415, 422])
def test_never_retries_other_4xx(partner, sim_server, student, status):
    fault(sim_server, status=status, count=1)
    resp = hook(partner, user_id=student["id"], assignment_id=PERCENT.id,
                district_id=student["district"], score=0.5)
    if status == 401:  # a district token Clever refuses: fetch the current one, post once more
        assert resp.status_code == 200 and resp.json()["tries"] == [401, 200]
        assert grade_journal(sim_server) == [401, 200]
    else:
        assert resp.status_code == 502 and resp.json()["grade_status"] == status
        assert grade_journal(sim_server) == [status]


# --- token lifecycle: a revoked token does not lose the grade -------------------------------

def grade_posts(sim_server) -> list[tuple[int, str | None]]:
    """(status, token kind) of every POST /v1/grade the simulator saw, oldest first."""
    entries = sim_get(sim_server, "/_sim/journal", path="/v1/grade", limit=1000)["data"]
    return [(e["status"], e.get("token_kind")) for e in reversed(entries)]


def revoke(sim_server, token: str) -> dict:
    resp = httpx.delete(f"{sim_server.url}/_sim/tokens/{token}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def il_token_of_launch(sim_server, code: dict) -> str:
    entries = sim_get(sim_server, "/_sim/journal", path="/oauth/tokens", limit=100)["data"]
    exchange = next(e for e in entries if e["method"] == "POST" and code["code"] in e["request_body"])
    return json.loads(exchange["response_body"])["access_token"]


def test_hook_sends_with_the_students_il_token_while_they_are_logged_in(partner, sim_server,
                                                                        student, browser):
    launch(sim_server, browser, student["id"], PERCENT.id)
    resp = hook(partner, user_id=student["id"], assignment_id=PERCENT.id,
                district_id=student["district"], score=0.5)
    assert resp.status_code == 200 and resp.json()["tries"] == [200]
    assert grade_posts(sim_server) == [(200, "il")]


def test_revoked_il_token_falls_back_to_the_district_app_token_once(partner, sim_server,
                                                                    student, browser):
    _, code = launch(sim_server, browser, student["id"], PERCENT.id)
    assert revoke(sim_server, il_token_of_launch(sim_server, code))["kind"] == "il"
    resp = hook(partner, user_id=student["id"], assignment_id=PERCENT.id,
                district_id=student["district"], score=0.5)
    assert resp.status_code == 200 and resp.json()["tries"] == [401, 200]
    assert grade_posts(sim_server) == [(401, None), (200, "district")]


def test_revoked_district_token_is_listed_again_and_the_grade_sent_once_more(partner, sim_server,
                                                                             student):
    body = {"user_id": student["id"], "assignment_id": PERCENT.id,
            "district_id": student["district"], "score": 0.5}
    assert hook(partner, **body).json()["tries"] == [200]
    token = sim_get(sim_server, "/_sim/journal", path="/v1/grade", limit=1)["data"][0]
    assert revoke(sim_server, token["request_headers"]["Authorization"].split()[1])["reissued"]
    resp = hook(partner, **{**body, "score": 0.7})
    assert resp.status_code == 200 and resp.json()["tries"] == [401, 200]
    assert grade_posts(sim_server) == [(200, "district"), (401, None), (200, "district")]
    listings = sim_get(sim_server, "/_sim/journal", path="/oauth/tokens", method="GET")["data"]
    assert len(listings) == 2  # the first grade's, and once more after the 401


def test_a_second_401_after_the_fresh_token_is_final(partner, sim_server, student):
    fault(sim_server, status=401, count=2)
    resp = hook(partner, user_id=student["id"], assignment_id=PERCENT.id,
                district_id=student["district"], score=0.5)
    assert resp.status_code == 502 and resp.json()["tries"] == [401, 401]
    assert grade_posts(sim_server) == [(401, None), (401, None)]


def test_retries_connection_errors_then_gives_up():
    """No server at all: connection refused, 1 + 3 tries with the short backoff."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    app = create_partner_app({"CLEVER_URL": dead, "API_URL": dead, "GRADES_URL": dead,
                              "CLIENT_ID": "a", "CLIENT_SECRET": "b", "REDIRECT_URI": "http://x/cb"})
    partner = app.extensions["reference_partner"]
    waits = []
    partner.transport.sleep = waits.append
    try:
        with pytest.raises(CleverError) as err:
            partner.grades.post_grade("tok", {"assignmentID": "a", "percentage": 0.5})
        assert err.value.tries == ["ConnectError"] * 4
        assert waits == [0.15, 0.3, 0.6]
    finally:
        app.extensions["reference_partner"].close()


def test_retry_delay_rules():
    def resp(value):
        return httpx.Response(503, headers={} if value is None else {"Retry-After": value})
    assert retry_delay(resp("2"), 0) == 2.0
    assert retry_delay(resp("3600"), 0) == 10.0
    assert retry_delay(resp(None), 0) == 0.15 and retry_delay(resp(None), 1) == 0.3
    assert retry_delay(resp(None), 2) == 0.6 and retry_delay(resp(None), 5) == 0.6
    assert retry_delay(resp("soon"), 1) == 0.3
    assert retry_delay(resp("Wed, 21 Oct 2015 07:28:00 GMT"), 0) == 0.0  # in the past
    assert retry_delay(None, 0) == 0.15


def test_questions_accept_equivalent_numbers():
    q = Question("0.4 × 3 = ?", "1.2")
    assert q.is_correct("1.20") and q.is_correct(" 1.2 ") and not q.is_correct("12")
    assert not q.is_correct(None) and not q.is_correct("abc")


# --- python -m contract_tests.reference_partner ---------------------------------------------

def test_module_serves_on_a_free_port_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "contract_tests.reference_partner",
                             "--sim-url", "http://127.0.0.1:9", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        match = re.match(r"Reference partner on (http://127\.0\.0\.1:(\d+))$", line.strip())
        assert match, line
        url = match.group(1)
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        home = httpx.get(url + "/", timeout=5).text
        assert "client_id=b4fd885bda79813831c3" in home
        assert quote(f"{url}/clever/callback", safe="") in home
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Stopped." in out and "Traceback" not in out


def test_results_belong_to_their_student(partner, sim_server, roster, browser):
    first, second = _people(roster, "student")[:2]
    page, _ = launch(sim_server, browser, first["id"], PERCENT.id)
    result = submit(browser, page, PERCENT, 5)
    assert result.status_code == 200
    with httpx.Client(follow_redirects=True) as other:
        launch(sim_server, other, second["id"])
        assert other.get(str(result.url)).status_code == 404
    # Logged in already: the login page sends the student on instead of asking again.
    login = browser.get(partner.url + f"/login?assignment={PERCENT.id}")
    assert login.url.path == f"/assignments/{PERCENT.id}"
    # Logging out needs the page's CSRF token, and then really logs out.
    assert browser.post(partner.url + "/logout", data={"csrf": "forged"}).status_code == 400
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
    browser.post(partner.url + "/logout", data={"csrf": csrf})
    assert browser.get(partner.url + "/dashboard").url.path == "/login"
