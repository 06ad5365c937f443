"""Fake Schoology and the fake Clever portal, clicked through like a browser without
JavaScript: Flask's test client for the simulator, a real local partner for its
assignments URL."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server

from simulator.schoology.domain import link_assignment
from simulator.web import SESSION_PERSONAS
from conftest import il_token

SECTION = "af012569df64ae3e2f1eaf18"        # Grade 5 Math – Period 2 (district 1)
TEACHER = "cc326b2aff89af780abe710b"        # Rebecca Alvarez teaches SECTION
OTHER_TEACHER = "02c88f946bba0274d37e998d"  # Daniel Kim, not SECTION's teacher

GOOD = {"assignments": [
    {"name": "Fractions quiz", "id": "a100001", "type": "assignment",
     "description": "Add and subtract fractions", "standards": ["CCSS.MATH.5.NF.A.1", "CCSS.MATH.5.NF.A.2"]},
    {"name": "Decimals practice", "id": "a100002", "type": "assignment"},
]}
HOSTILE_NAMES = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
HOSTILE = {"assignments": [
    {"name": HOSTILE_NAMES[0], "id": "x1", "type": "assignment",
     "description": "<b>bold</b> & more", "standards": ["<i>std</i>"]},
    {"name": HOSTILE_NAMES[1], "id": "x2", "type": "assignment"},
]}


# --- a real partner on 127.0.0.1 -------------------------------------------------------------

class Partner:
    def __init__(self):
        self.answer: tuple[int, str, str] = (200, json.dumps(GOOD), "application/json")
        self.seen: list[dict] = []
        app = Flask("partner")

        @app.get("/clever/assignments")
        def assignments():
            self.seen.append(dict(request.headers))
            status, body, mimetype = self.answer
            return Response(body, status=status, mimetype=mimetype)

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, doc=None, *, status=200, body=None, mimetype="application/json"):
        self.answer = (status, body if body is not None else json.dumps(doc), mimetype)


@pytest.fixture(scope="module")
def partner_server():
    p = Partner()
    yield p
    p.server.shutdown()


@pytest.fixture
def partner(partner_server, sim, demo_app):
    """The demo app pointed at the local partner (assignments URL and redirect URIs)."""
    partner_server.serve(GOOD)
    partner_server.seen.clear()
    sim.clever.register_app({"assignments_url": partner_server.base + "/clever/assignments",
                      "redirect_uris": [partner_server.base + "/clever/callback",
                                        partner_server.base + "/other/callback"]}, demo_app)
    return partner_server


@pytest.fixture
def section(roster):
    return next(s for s in roster["sections"] if s["id"] == SECTION)


@pytest.fixture
def enrolled(section):
    return section["students"][0]


@pytest.fixture
def outsider(roster, section):
    """A student of the same district who is not in SECTION."""
    return next(u["id"] for u in roster["users"] if "student" in u["roles"]
                and u["district"] == section["district"] and u["id"] not in section["students"])


# --- a browser without JavaScript ------------------------------------------------------------

class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"),
                               "fields": []})
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.forms[-1]["fields"].append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select = a.get("name")
            self.forms[-1]["fields"].append((self._select, None))
        elif tag == "option" and self._select:
            fields = self.forms[-1]["fields"]
            if fields[-1][1] is None or "selected" in a:
                fields[-1] = (self._select, a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def forms(resp) -> list[dict]:
    parser = _Forms()
    parser.feed(resp.get_data(as_text=True))
    return parser.forms


def form_to(resp, action_part: str, **match) -> dict:
    """The first form whose action contains ``action_part`` and whose fields include ``match``."""
    for f in forms(resp):
        if action_part in f["action"] and all((k, v) in f["fields"] for k, v in match.items()):
            return f
    raise AssertionError(f"no form to {action_part} with {match}")


def submit(client, form: dict, **changes):
    fields = [(k, v) for k, v in form["fields"] if k not in changes]
    for key, value in changes.items():
        if value is not None:
            fields.append((key, value))
    return client.post(form["action"], data=_multi(fields))


def submit_then_get(client, form: dict, **changes):
    """Submit as a browser does: the answer is a 303 to a GET page (Post/Redirect/Get), which
    is then opened, so Back and reload never resubmit the form."""
    resp = submit(client, form, **changes)
    assert resp.status_code == 303, (resp.status_code, page_text(resp)[:500])
    return client.get(resp.headers["Location"])


def _multi(pairs):
    return MultiDict(pairs)


def login(client, user_id: str) -> str:
    """Switch persona through the home page form; the session's CSRF token."""
    home = client.get("/schoology")
    resp = submit(client, form_to(home, "/schoology/persona"), user_id=user_id)
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/schoology")
    with client.session_transaction() as s:
        assert s[SESSION_PERSONAS][0] == user_id  # this tab is slot 0
        return s["csrf"]


def page_text(resp) -> str:
    return resp.get_data(as_text=True)


def outbound(sim) -> list[dict]:
    return sim.journal.query(direction="outbound")[0]


# --- persona switcher --------------------------------------------------------------------------

def test_home_without_login_offers_every_teacher_and_student(client, roster):
    resp = client.get("/schoology")
    assert resp.status_code == 200
    text = page_text(resp)
    assert "Nobody is logged in" in text
    options = form_to(resp, "/schoology/persona")
    assert options["method"] == "post"
    for user in roster["users"]:
        assert f'value="{user["id"]}"' in text
    for district in roster["districts"]:
        assert district["name"] in text  # grouped by district — school


def test_persona_switch_with_csrf_logs_into_schoology_and_clever(client, roster):
    login(client, TEACHER)
    home = page_text(client.get("/schoology"))
    assert "Rebecca Alvarez" in home and "Sections I teach" in home
    mine = home.split("Sections I teach", 1)[1]  # (the persona picker lists every section)
    assert "Grade 5 Math – Period 2" in mine and "Grade 5 Reading Intervention" in mine
    assert "Grade 7 Science" not in mine
    whoami = page_text(client.get("/oauth/whoami"))
    assert "Rebecca Alvarez" in whoami  # the fake Clever agrees on who is logged in


def test_login_cookie_has_its_own_name_so_a_partners_session_cookie_cannot_clobber_it(client):
    """Cookies ignore ports: a partner on 127.0.0.1 keeping Flask's default "session"
    cookie must neither overwrite nor be overwritten by the simulator's login."""
    home = client.get("/schoology")
    resp = submit(client, form_to(home, "/schoology/persona"), user_id=TEACHER)
    set_cookie = resp.headers.get_all("Set-Cookie")
    assert len(set_cookie) == 1 and set_cookie[0].startswith("clever_sim_session=")
    assert "Path=/;" in set_cookie[0] and "HttpOnly" in set_cookie[0]
    assert "SameSite=Lax" in set_cookie[0]
    client.set_cookie("session", "a-partner-cookie-the-simulator-must-ignore", domain="localhost")
    page = client.get("/schoology")
    assert "Rebecca Alvarez" in page_text(page)
    assert not any(c.startswith("session=") for c in page.headers.get_all("Set-Cookie"))


def test_persona_switch_without_csrf_is_refused(client):
    client.get("/schoology")
    resp = client.post("/schoology/persona", data={"user_id": TEACHER})
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    assert "CSRF check failed" in page_text(resp)
    resp = client.post("/schoology/persona", data={"user_id": TEACHER, "csrf": "forged"})
    assert resp.status_code == 400
    with client.session_transaction() as s:
        assert SESSION_PERSONAS not in s


def test_persona_switch_to_unknown_user_is_a_400_page(client):
    home = client.get("/schoology")
    resp = submit(client, form_to(home, "/schoology/persona"), user_id="nobody")
    assert resp.status_code == 400 and "Unknown persona" in page_text(resp)


def test_student_home_lists_enrolled_sections(client, enrolled):
    login(client, enrolled)
    text = page_text(client.get("/schoology"))
    assert "My sections" in text and "Grade 5 Math – Period 2" in text


def test_section_page_needs_a_login_and_membership(client, outsider):
    assert client.get(f"/schoology/sections/{SECTION}").status_code == 401
    login(client, outsider)
    resp = client.get(f"/schoology/sections/{SECTION}")
    assert resp.status_code == 403 and "Not your section" in page_text(resp)
    assert client.get("/schoology/sections/nope").status_code == 404


def test_navigation_header(client, enrolled):
    login(client, enrolled)
    text = page_text(client.get(f"/schoology/sections/{SECTION}"))
    for href in ('href="/schoology"', 'href="/portal"', 'href="/inspector"',
                 f'href="/schoology/sections/{SECTION}/gradebook"'):
        assert href in text
    assert 'data-testid="who"' in text
    assert 'href="/schoology/gradebook"' in page_text(client.get("/schoology"))


# --- teacher: Add Materials ------------------------------------------------------------------

def test_teacher_adds_an_assignment_end_to_end(client, sim, partner, demo_app, section):
    login(client, TEACHER)
    section_page = client.get(f"/schoology/sections/{SECTION}")
    assert "Add Materials" in page_text(section_page)
    add = client.get(f"/schoology/sections/{SECTION}/add")
    assert add.status_code == 200 and demo_app.name in page_text(add)

    listing = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    assert listing.status_code == 200
    text = page_text(listing)
    assert "Fractions quiz" in text and "Decimals practice" in text and "CCSS.MATH.5.NF.A.2" in text
    assert "Add and subtract fractions" in text
    # the partner got the teacher's il token, which /me would resolve to the teacher
    headers = partner.seen[-1]
    assert headers["Accept"] == "application/json"
    token = headers["Authorization"].removeprefix("Bearer ")
    assert sim.store.get_token(token).user_id == TEACHER
    entry = outbound(sim)[0]
    assert entry["user_id"] == TEACHER and entry["client_id"] == demo_app.client_id
    assert entry["status"] == 200 and entry["findings"] == []

    settings = submit_then_get(client, form_to(listing, "/settings", assignment_id="a100001"))
    assert settings.status_code == 200
    form = form_to(settings, f"/schoology/sections/{SECTION}/add/{demo_app.client_id}",
                   assignment_id="a100001")
    assert ("max_points", "100") in form["fields"] and ("grading_enabled", "on") in form["fields"]
    schoology = sim.store.get_record("districts", section["district"])["schoology"]
    category = schoology["grading_categories"][2]["id"]
    period = schoology["grading_periods"][0]["id"]
    done = submit(client, form, grading_category=category, grading_period=period,
                  due_date="2026-10-02", due_time="23:59", grading_type="letter", max_points="50")
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/schoology/sections/{SECTION}")

    (link,) = sim.store.list_links(section_id=SECTION)
    assert link.assignment_id == "a100001" and link.data["name"] == "Fractions quiz"
    assert link.data["description"] == "Add and subtract fractions"
    assert link.data["standards"] == ["CCSS.MATH.5.NF.A.1", "CCSS.MATH.5.NF.A.2"]
    assert link.data["grading_enabled"] is True and link.data["grading_type"] == "letter"
    assert link.data["grading_category"] == category and link.data["grading_period"] == period
    assert link.data["due_date"] == "2026-10-02T23:59" and link.data["max_points"] == 50
    assert link.client_id == demo_app.client_id

    page = page_text(client.get(done.headers["Location"]))
    # the flash-style confirmation; names isolated, so bidi controls in one stay inside it
    assert "Added “<bdi>Fractions quiz</bdi>” (<bdi>Demo Partner (reference)</bdi>) with grading." in page
    assert "Fractions quiz" in page and "2026-10-02T23:59" in page and "Quizzes" in page
    assert "Open" not in page.split("Course materials", 1)[1]  # teachers get no Open button


def test_grading_off_and_defaults(client, sim, partner, demo_app):
    login(client, TEACHER)
    listing = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    settings = submit_then_get(client, form_to(listing, "/settings", assignment_id="a100002"))
    form = form_to(settings, f"/add/{demo_app.client_id}", assignment_id="a100002")
    fields = [(k, v) for k, v in form["fields"] if k != "grading_enabled"]
    assert client.post(form["action"], data=_multi(fields)).status_code == 303
    (link,) = sim.store.list_links(section_id=SECTION)
    assert link.data["grading_enabled"] is False and link.data["max_points"] == 100
    assert link.data["grading_type"] == "points" and link.data["grading_category"] is None
    assert link.data["due_date"] is None and link.data["standards"] == []


def test_adding_again_updates_the_settings(client, sim, partner, demo_app):
    login(client, TEACHER)
    for points in ("10", "20"):
        listing = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
        settings = submit_then_get(client, form_to(listing, "/settings", assignment_id="a100001"))
        resp = submit(client, form_to(settings, f"/add/{demo_app.client_id}"), max_points=points)
        assert resp.status_code == 303
    (link,) = sim.store.list_links(section_id=SECTION)
    assert link.data["max_points"] == 20
    assert "Updated “<bdi>Fractions quiz</bdi>”" in page_text(client.get(f"/schoology/sections/{SECTION}"))


@pytest.mark.parametrize("changes, field_messages", [
    ({"max_points": "lots", "due_date": "next week"},
     ["&#39;lots&#39; is not a number", "&#39;next week&#39; is not a date"]),
    ({"max_points": ""}, ["is required"]),
    ({"due_date": "", "due_time": "10:00"}, ["is needed when a due time is given"]),
    ({"max_points": "0"}, ["must be a number above 0"]),                     # link_assignment's rule
    ({"max_points": "100001"}, ["must be a number above 0 (at most 100000)"]),
    ({"max_points": "9" * 5000}, ["must be a number above 0 (at most 100000)"]),  # not a 500 in int()
    ({"grading_category": "nope"}, ["&#39;nope&#39; is not one of the district"]),  # link_assignment's rule
    ({"grading_type": "vibes"}, ["must be one of"]),
    ({"assignment_id": ""}, ["assignment_id: is required"]),
])
def test_settings_form_errors_rerender_with_messages(client, sim, partner, demo_app, changes,
                                                     field_messages):
    login(client, TEACHER)
    listing = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    settings = submit_then_get(client, form_to(listing, "/settings", assignment_id="a100001"))
    resp = submit_then_get(client, form_to(settings, f"/add/{demo_app.client_id}"), **changes)
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    text = page_text(resp)
    assert "Please fix the problems below" in text
    for message in field_messages:
        assert message in text
    assert sim.store.list_links(section_id=SECTION) == []
    # the typed values are shown again, and the form can be fixed and resubmitted
    form = form_to(resp, f"/add/{demo_app.client_id}")
    if "max_points" in changes:
        assert ("max_points", changes["max_points"]) in form["fields"]
    fixed = submit(client, form, assignment_id="a100001", max_points="10", due_date="",
                   due_time="", grading_category="", grading_type="points")
    assert fixed.status_code == 303


def test_partner_down_is_a_plain_words_error_page(client, sim, demo_app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/clever/assignments"
    sim.clever.register_app({"assignments_url": url}, demo_app)
    login(client, TEACHER)
    resp = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    assert resp.status_code == 502 and resp.mimetype == "text/html"
    text = page_text(resp)
    assert f"could not connect to {url}: connection refused — is the app running?" in text
    assert "Could not get the assignments from" in text and "Retry" in text
    assert f'href="/schoology/sections/{SECTION}/add/{demo_app.client_id}"' in text
    (entry,) = outbound(sim)
    assert entry["direction"] == "outbound" and entry["status"] is None
    assert entry["user_id"] == TEACHER and entry["url"] == url
    assert any("connection refused" in f for f in entry["findings"])


def test_partner_schema_problems_are_each_listed(client, sim, partner, demo_app):
    partner.serve({"assignments": [{"id": "a1", "type": "assignment"},
                                   {"name": "n", "id": "a2", "type": "quiz"}]})
    login(client, TEACHER)
    resp = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    assert resp.status_code == 502
    text = page_text(resp)
    assert "$.assignments[0].name: is missing (required)" in text
    assert "$.assignments[1].type: must be &#34;assignment&#34;" in text
    assert "Choose" not in text


@pytest.mark.parametrize("status, body, mimetype, words", [
    (500, "boom", "text/plain", "answered HTTP 500"),
    (200, "<html><body>Log in</body></html>", "text/html", "answered HTML, not JSON"),
])
def test_partner_http_problems(client, partner, demo_app, status, body, mimetype, words):
    partner.serve(status=status, body=body, mimetype=mimetype)
    login(client, TEACHER)
    resp = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    assert resp.status_code == 502 and words in page_text(resp)


def test_partner_warnings_still_list_assignments(client, partner, demo_app):
    partner.serve({"assignments": [{"name": "Spaced", "id": "unit 3", "type": "assignment"}]})
    login(client, TEACHER)
    resp = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    assert resp.status_code == 200
    text = page_text(resp)
    assert "Warnings" in text and "not alphanumeric" in text and "Choose" in text


def test_hostile_partner_text_is_escaped_everywhere(client, sim, partner, demo_app):
    partner.serve(HOSTILE)
    login(client, TEACHER)
    listing = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    assert listing.status_code == 200
    _assert_escaped(page_text(listing))
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page_text(listing)
    assert "&lt;i&gt;std&lt;/i&gt;" in page_text(listing)
    for assignment_id, name in (("x1", HOSTILE_NAMES[0]), ("x2", HOSTILE_NAMES[1])):
        # the hidden fields carry the exact text through the escaping
        settings = submit_then_get(client, form_to(listing, "/settings", assignment_id=assignment_id))
        assert settings.status_code == 200
        _assert_escaped(page_text(settings))
        form = form_to(settings, f"/add/{demo_app.client_id}", assignment_id=assignment_id)
        assert ("name", name) in form["fields"]
        assert submit(client, form).status_code == 303
    names = {l.assignment_id: l.name for l in sim.store.list_links(section_id=SECTION)}
    assert names == {"x1": HOSTILE_NAMES[0], "x2": HOSTILE_NAMES[1]}
    assert sim.store.list_links(assignment_id="x1")[0].data["description"] == "<b>bold</b> & more"
    section_page = client.get(f"/schoology/sections/{SECTION}")
    _assert_escaped(page_text(section_page))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page_text(section_page)
    link_id = sim.store.list_links(assignment_id="x1")[0].id
    detail = page_text(client.get(f"/schoology/sections/{SECTION}/assignments/{link_id}"))
    _assert_escaped(detail)
    assert "&lt;b&gt;bold&lt;/b&gt;" in detail


def _assert_escaped(text: str) -> None:
    assert "<script>alert(1)" not in text
    assert "<img src=x" not in text
    assert "<b>bold" not in text and "<i>std" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text or "&lt;img src=x" in text


# --- student: Open ---------------------------------------------------------------------------

def _link(sim, demo_app, assignment_id, name="Lesson"):
    return link_assignment(sim, {"section_id": SECTION, "client_id": demo_app.client_id,
                                 "assignment_id": assignment_id, "name": name})


@pytest.mark.parametrize("assignment_id", ["a100001", "unit 3/lesson 2 — ü&x=1#frag+%41"])
def test_student_open_goes_through_authorize_to_the_primary_redirect(client, sim, partner, demo_app,
                                                                     enrolled, assignment_id):
    link = _link(sim, demo_app, assignment_id)
    login(client, enrolled)
    page = client.get(f"/schoology/sections/{SECTION}")
    assert page.status_code == 200
    resp = submit(client, form_to(page, f"/assignments/{link.id}/open"))
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/u/0/oauth/authorize"  # names this tab's persona slot
    query = parse_qs(location.query)
    assert query == {"response_type": ["code"], "client_id": [demo_app.client_id],
                     "redirect_uri": [partner.base + "/clever/callback"],
                     "state": [f"assignment:{assignment_id}"]}

    authorized = client.get(resp.headers["Location"])
    assert authorized.status_code == 302
    target = urlsplit(authorized.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == partner.base + "/clever/callback"
    params = parse_qs(target.query)
    assert params["state"] == [f"assignment:{assignment_id}"]
    assert params["code"][0] and params["scopes"][0]
    app = sim.store.get_app(demo_app.client_id)
    token = client.post("/oauth/tokens", data={
        "code": params["code"][0], "grant_type": "authorization_code",
        "redirect_uri": partner.base + "/clever/callback",
        "client_id": app.client_id, "client_secret": app.client_secret})
    assert token.status_code == 200
    assert sim.store.get_token(token.get_json()["access_token"]).user_id == enrolled


def test_student_sees_open_buttons_and_assignment_page(client, sim, partner, demo_app, enrolled):
    link = _link(sim, demo_app, "a1", "Read chapter 1")
    login(client, enrolled)
    text = page_text(client.get(f"/schoology/sections/{SECTION}"))
    assert "Read chapter 1" in text and ">Open<span class=\"gb-sr\"> “Read chapter 1” in " in text and "Add Materials" not in text
    detail = client.get(f"/schoology/sections/{SECTION}/assignments/{link.id}")
    assert detail.status_code == 200 and ">Open<span class=\"gb-sr\"> “Read chapter 1” in " in page_text(detail)
    assert client.get(f"/schoology/sections/{SECTION}/assignments/nope").status_code == 404


def test_student_not_in_section_cannot_open(client, sim, partner, demo_app, outsider):
    link = _link(sim, demo_app, "a1")
    csrf = login(client, outsider)
    resp = client.post(f"/schoology/sections/{SECTION}/assignments/{link.id}/open",
                       data={"csrf": csrf})
    assert resp.status_code == 403 and "Location" not in resp.headers
    assert "Not your section" in page_text(resp)


def test_open_needs_csrf(client, sim, partner, demo_app, enrolled):
    link = _link(sim, demo_app, "a1")
    login(client, enrolled)
    resp = client.post(f"/schoology/sections/{SECTION}/assignments/{link.id}/open")
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_teacher_cannot_use_student_open(client, sim, partner, demo_app):
    link = _link(sim, demo_app, "a1")
    csrf = login(client, TEACHER)
    resp = client.post(f"/schoology/sections/{SECTION}/assignments/{link.id}/open",
                       data={"csrf": csrf})
    assert resp.status_code == 403 and "Only for students" in page_text(resp)


def test_student_cannot_use_teacher_actions(client, sim, partner, demo_app, enrolled):
    csrf = login(client, enrolled)
    base = f"/schoology/sections/{SECTION}/add"
    assert client.get(base).status_code == 403
    resp = client.get(f"{base}/{demo_app.client_id}")
    assert resp.status_code == 403 and "Only for teachers" in page_text(resp)
    assert partner.seen == [] and outbound(sim) == []  # no token minted for the partner
    for path in (f"{base}/{demo_app.client_id}/settings", f"{base}/{demo_app.client_id}"):
        resp = client.post(path, data={"csrf": csrf, "assignment_id": "a1", "max_points": "10"})
        assert resp.status_code == 403
    assert sim.store.list_links(section_id=SECTION) == []


def test_teacher_of_another_section_cannot_add_here(client, partner, demo_app):
    login(client, OTHER_TEACHER)
    assert client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}").status_code == 403


def test_add_with_unknown_app_is_404(client, partner):
    login(client, TEACHER)
    assert client.get(f"/schoology/sections/{SECTION}/add/nope").status_code == 404


# --- the fake Clever portal ------------------------------------------------------------------

def test_portal_tile_logs_in_without_state(client, sim, partner, demo_app, enrolled):
    login(client, enrolled)
    portal = client.get("/portal")
    assert portal.status_code == 200 and demo_app.name in page_text(portal)
    resp = submit(client, form_to(portal, f"/portal/apps/{demo_app.client_id}/launch"))
    assert resp.status_code == 303
    target = urlsplit(resp.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == partner.base + "/clever/callback"
    params = parse_qs(target.query)
    assert set(params) == {"code", "scopes"}  # Clever-initiated login: no state


def test_portal_without_login(client, demo_app):
    resp = client.get("/portal")
    assert resp.status_code == 200 and "Nobody is logged in" in page_text(resp)
    client.get("/schoology")
    with client.session_transaction() as s:
        csrf = s["csrf"]
    assert client.post(f"/portal/apps/{demo_app.client_id}/launch",
                       data={"csrf": csrf}).status_code == 401


def test_portal_launch_needs_csrf_and_a_connected_app(client, sim, demo_app, roster, enrolled):
    csrf = login(client, enrolled)
    assert client.post(f"/portal/apps/{demo_app.client_id}/launch").status_code == 400
    other = sim.clever.register_app({"name": "Elsewhere", "redirect_uris": ["http://127.0.0.1:9/cb"],
                              "districts": [roster["districts"][1]["id"]]})
    assert other.name not in page_text(client.get("/portal"))
    assert client.post(f"/portal/apps/{other.client_id}/launch",
                       data={"csrf": csrf}).status_code == 404


@pytest.mark.parametrize("back, local", [
    ("/schoology/sections/x/gradebook", True), ("/inspector?user=a&status=4xx", True),
    ("//evil.example/x", False), ("http://evil.example/", False), ("/\\evil.example", False),
    ("", False), ("schoology", False), ("/a\nb", False), ("/" + "a" * 2001, False),
    ("/x:y", False),
])
def test_persona_switch_comes_back_only_to_a_local_page(client, back, local):
    home = client.get("/schoology")
    resp = submit(client, form_to(home, "/schoology/persona"), user_id=TEACHER, next=back)
    assert resp.status_code == 303
    assert resp.headers["Location"] == (back if local else "/schoology")


@pytest.mark.parametrize("changes, first, others", [
    ({"max_points": "lots", "due_date": "next week"}, "due_date", ["max_points"]),
    ({"max_points": "0"}, "max_points", []),
    ({"grading_type": "vibes", "max_points": ""}, "grading_type", ["max_points"]),
])
def test_a_field_error_is_tied_to_its_field_and_the_first_takes_the_focus(client, partner,
                                                                           demo_app, changes,
                                                                           first, others):
    login(client, TEACHER)
    listing = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    settings = submit_then_get(client, form_to(listing, "/settings", assignment_id="a100001"))
    text = page_text(submit_then_get(client, form_to(settings, f"/add/{demo_app.client_id}"),
                                     **changes))
    for name in [first, *others]:
        control = re.search(r'<(?:input|select)[^>]*\bname="%s"[^>]*>' % name, text).group(0)
        assert f'aria-invalid="true" aria-describedby="{name}-error"' in control
        assert f'id="{name}-error"' in text
        assert ("autofocus" in control) == (name == first), control
    assert text.count("autofocus") == 1


def test_row_buttons_say_what_they_act_on(client, sim, partner, demo_app, enrolled):
    login(client, TEACHER)
    listing = page_text(client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}"))
    assert 'Choose<span class="gb-sr"> “Fractions quiz”</span></button>' in listing
    _link(sim, demo_app, "a100001", name="Lesson")
    login(client, enrolled)
    section = page_text(client.get(f"/schoology/sections/{SECTION}"))
    assert re.search(r'Open<span class="gb-sr"> “Lesson” in [^<]+</span></button>', section)


def test_persona_picker_lists_one_sections_people_teachers_first(client, sim, section):
    home = page_text(client.get("/schoology"))
    assert f'<option value="{SECTION}">Grade 5 Math – Period 2 (Rebecca Alvarez)</option>' in home
    picked = page_text(client.get(f"/schoology?section={SECTION}"))
    group = picked.split('<optgroup label="Grade 5 Math – Period 2 — teachers, then students">', 1)[1]
    group = group.split("</optgroup>", 1)[0]
    ids = re.findall(r'<option value="([^"]+)"', group)
    assert ids[0] == TEACHER and sorted(ids[1:]) == sorted(section["students"])
    assert f'href="/inspector/students/{section["students"][0]}"' in picked  # QA view links
    # an unknown section is ignored (everyone listed), never an error
    assert client.get("/schoology?section=nope").status_code == 200


def test_teacher_sees_the_roster_with_view_as_and_qa_view(client, section):
    login(client, TEACHER)
    text = page_text(client.get(f"/schoology/sections/{SECTION}"))
    roster = text.split('<h2 id="roster">Roster</h2>', 1)[1]
    for student_id in section["students"]:
        assert f'name="user_id" value="{student_id}"' in roster
        assert f'href="/inspector/students/{student_id}"' in roster
    assert f'name="next" value="/schoology/sections/{SECTION}"' in roster


def test_teacher_changes_an_assignment_from_its_page_starting_from_its_settings(client, sim,
                                                                               partner, demo_app):
    link = link_assignment(sim, {"section_id": SECTION, "client_id": demo_app.client_id,
                                 "assignment_id": "a100001", "name": "Fractions quiz",
                                 "max_points": 20, "grading_type": "pass_fail",
                                 "due_date": "2026-12-15T14:30"})
    login(client, TEACHER)
    page = client.get(f"/schoology/sections/{SECTION}/assignments/{link.id}")
    text = page_text(page)
    assert f'href="/schoology/sections/{SECTION}/gradebook">Gradebook</a>' in text
    settings = submit_then_get(client, form_to(page, "/settings"))
    values = dict(form_to(settings, f"/add/{demo_app.client_id}")["fields"])
    assert (values["max_points"], values["due_date"], values["due_time"]) == \
        ("20", "2026-12-15", "14:30")
    assert 'value="pass_fail" selected' in page_text(settings)
    done = submit(client, form_to(settings, f"/add/{demo_app.client_id}"), max_points="25")
    assert done.status_code == 303
    (after,) = sim.store.list_links(section_id=SECTION)
    assert (after.id, after.data["max_points"], after.data["grading_type"]) == (link.id, 25, "pass_fail")


def test_teacher_removes_an_assignment_and_its_grades_stay_not_linked(client, sim, partner,
                                                                      demo_app, enrolled):
    link = _link(sim, demo_app, "a100001", name="Fractions quiz")
    token = il_token(sim, enrolled, demo_app)
    assert client.post("/v1/grade", json={"assignmentID": "a100001", "percentage": 0.5},
                       headers={"Authorization": f"Bearer {token}"}).status_code == 200
    csrf = login(client, enrolled)
    url = f"/schoology/sections/{SECTION}/assignments/{link.id}/remove"
    assert client.post(url, data={"csrf": csrf}).status_code == 403  # students cannot
    csrf = login(client, TEACHER)
    assert client.post(url, data={}).status_code == 400               # CSRF checked
    resp = client.post(url, data={"csrf": csrf})
    assert resp.status_code == 303
    assert sim.store.list_links(section_id=SECTION) == []
    assert "show under “Not linked yet”" in page_text(client.get(resp.headers["Location"]))
    gradebook = page_text(client.get(f"/schoology/sections/{SECTION}/gradebook"))
    assert "<code>a100001</code>" in gradebook.split('id="not-linked"', 1)[1]
    assert client.post(url, data={"csrf": csrf}).status_code == 404   # already gone




# --- Back, reload and hostile names ------------------------------------------------------------

RLO = "\u202e"


def test_choose_redirects_to_a_settings_page_whose_address_reopens_it(client, partner, demo_app):
    """Post/Redirect/Get: "Choose" answers 303 to a GET page holding the picked assignment."""
    login(client, TEACHER)
    listing = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    chosen = submit(client, form_to(listing, "/settings", assignment_id="a100001"))
    assert chosen.status_code == 303
    location = urlsplit(chosen.headers["Location"])
    assert location.path == f"/schoology/sections/{SECTION}/add/{demo_app.client_id}/settings"
    assert parse_qs(location.query) == {
        "assignment_id": ["a100001"], "name": ["Fractions quiz"],
        "description": ["Add and subtract fractions"],
        "standards": ["CCSS.MATH.5.NF.A.1", "CCSS.MATH.5.NF.A.2"]}
    for _ in range(2):  # reopened (reload, Back): the same page, nothing created
        page = client.get(chosen.headers["Location"])
        assert page.status_code == 200 and "Add “<bdi>Fractions quiz</bdi>”" in page_text(page)
    assert partner.seen and len(partner.seen) == 1  # the list was fetched once, for the list


def test_a_settings_address_too_long_for_a_url_is_answered_with_the_page_itself(
        client, sim, partner, demo_app):
    """A description of several KB would make an address proxies refuse: no redirect then."""
    long = dict(GOOD["assignments"][0], description="d" * 9000)
    partner.serve({"assignments": [long]})
    login(client, TEACHER)
    listing = client.get(f"/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    settings = submit(client, form_to(listing, "/settings", assignment_id="a100001"))
    assert settings.status_code == 200 and "d" * 9000 in page_text(settings)
    bad = submit(client, form_to(settings, f"/add/{demo_app.client_id}"), max_points="lots")
    assert bad.status_code == 400 and "&#39;lots&#39; is not a number" in page_text(bad)
    done = submit(client, form_to(bad, f"/add/{demo_app.client_id}"), max_points="5")
    assert done.status_code == 303
    (link,) = sim.store.list_links(section_id=SECTION)
    assert link.data["description"] == "d" * 9000 and link.data["max_points"] == 5


def test_names_in_page_titles_and_refusals_are_isolated(client, sim, demo_app, outsider):
    """A tab title cannot hold an element: names there are wrapped in FSI … PDI."""
    link = link_assignment(sim, {"section_id": SECTION, "client_id": demo_app.client_id,
                                 "assignment_id": "r1", "name": f"Quiz{RLO}evil"})
    login(client, TEACHER)
    page = page_text(client.get(f"/schoology/sections/{SECTION}/assignments/{link.id}"))
    assert f"<title>\u2068Quiz{RLO}evil\u2069 — Schoology (simulated)</title>" in page
    section_name = sim.clever.record("sections", SECTION)["name"]
    section = page_text(client.get(f"/schoology/sections/{SECTION}"))
    assert f"<title>\u2068{section_name}\u2069 — Schoology (simulated)</title>" in section
    login(client, outsider)
    refused = page_text(client.get(f"/schoology/sections/{SECTION}"))
    assert re.search(f"\u2068[^\u2069<]+\u2069 is not a member of \u2068{section_name}\u2069.",
                     refused)


def test_the_settings_redirect_keeps_the_tabs_persona_slot(client, partner, demo_app, enrolled):
    """A teacher signed in as this browser's second persona stays in /u/1/ through Choose."""
    csrf = login(client, enrolled)
    added = client.post("/schoology/persona", data={"csrf": csrf, "user_id": TEACHER,
                                                    "slot": "new"})
    assert added.status_code == 303 and added.headers["Location"] == "/u/1/schoology"
    listing = client.get(f"/u/1/schoology/sections/{SECTION}/add/{demo_app.client_id}")
    chosen = submit(client, form_to(listing, "/settings", assignment_id="a100001"))
    assert chosen.status_code == 303
    assert chosen.headers["Location"].startswith(
        f"/u/1/schoology/sections/{SECTION}/add/{demo_app.client_id}/settings?assignment_id=a100001&")
    settings = client.get(chosen.headers["Location"])
    bad = submit(client, form_to(settings, f"/add/{demo_app.client_id}"), max_points="lots")
    assert bad.status_code == 303 and bad.headers["Location"].startswith("/u/1/")
    assert bad.headers["Location"].endswith("&check=1")


@pytest.mark.parametrize("path, lands_on", [
    ("/schoology/persona", "/schoology"),
    (f"/schoology/sections/{SECTION}/add/{{client_id}}", f"/schoology/sections/{SECTION}/add/{{client_id}}"),
    (f"/schoology/sections/{SECTION}/add/{{client_id}}/settings",
     f"/schoology/sections/{SECTION}/add/{{client_id}}"),
])
def test_an_expired_form_leads_to_a_fresh_copy_of_it(client, partner, demo_app, path, lands_on):
    login(client, TEACHER)
    path, lands_on = (p.format(client_id=demo_app.client_id) for p in (path, lands_on))
    resp = client.post(path, data={"csrf": "expired", "user_id": TEACHER, "assignment_id": "a1"})
    assert resp.status_code == 400
    text = page_text(resp)
    assert "open the page with the form again and submit it from there" in text
    assert f'<a class="btn" href="{path}">Open the form again</a>' in text
    opened = client.get(path)
    if opened.status_code == 303:
        opened = client.get(opened.headers["Location"])
    assert opened.status_code == 200 and opened.request.path == lands_on
    assert 'name="csrf"' in page_text(opened)  # a fresh form, with this session's token
