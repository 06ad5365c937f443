"""Several personas in one browser (one cookie jar): each tab is the persona its address
names (``/u/{n}/…``, Google-style), so a teacher tab and a student tab work side by side.

Flask's test client is the browser: one client, one cookie jar."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask.sessions import SecureCookieSessionInterface

from conftest import bearer
from simulator.schoology.domain import link_assignment
from simulator.web import MAX_SLOTS, SESSION_PERSONAS, SESSION_USER
from test_schoology import (SECTION, TEACHER, enrolled, form_to, login, outsider, page_text,  # noqa: F401
                            partner, partner_server, section, submit)


def add_persona(client, user_id: str, *, on: str = "/schoology") -> str:
    """"Sign in as another persona" from the page ``on``; where it sends the browser."""
    resp = submit(client, form_to(client.get(on), "/schoology/persona"), user_id=user_id,
                  slot="new")
    assert resp.status_code == 303, page_text(resp)
    return urlsplit(resp.headers["Location"]).path


def personas(client) -> list:
    with client.session_transaction() as s:
        return s.get(SESSION_PERSONAS)


def who(resp) -> str:
    text = page_text(resp)
    return text.split('data-testid="who"', 1)[1].split("</span>", 1)[0]


def name_of(roster, user_id: str) -> str:
    u = next(u for u in roster["users"] if u["id"] == user_id)
    return f"{u['name']['first']} {u['name']['last']}"


@pytest.fixture
def two(client, enrolled):
    """This browser: the teacher in slot 0 (/schoology), a student of theirs in slot 1 (/u/1/)."""
    login(client, TEACHER)
    assert add_persona(client, enrolled) == "/u/1/schoology"
    return client


def test_another_persona_gets_its_own_slot_and_the_first_tab_keeps_its_own(two, roster, enrolled):
    assert personas(two) == [TEACHER, enrolled]
    assert name_of(roster, TEACHER) in who(two.get("/schoology"))
    student_home = two.get("/u/1/schoology")
    assert name_of(roster, enrolled) in who(student_home)
    text = page_text(student_home)
    assert "My sections" in text and "(persona 1 of this browser)" in text
    # every link and form of the slot's page keeps the slot
    assert f'href="/u/1/schoology/sections/{SECTION}"' in text
    assert 'action="/u/1/schoology/persona"' in text and 'href="/u/1/static/sim.css"' in text
    assert 'href="/_sim/docs"' in text  # the API docs need no persona: no slot
    # the header offers this page as the browser's other persona
    assert 'href="/schoology" data-slot="0"' in text
    assert "Sections I teach" in page_text(two.get("/schoology"))


def test_switching_persona_in_one_slot_leaves_the_other_slots(two, roster, enrolled, outsider):
    resp = submit(two, form_to(two.get("/u/1/schoology"), "/u/1/schoology/persona"),
                  user_id=outsider)
    assert resp.status_code == 303 and resp.headers["Location"] == "/u/1/schoology"
    assert personas(two) == [TEACHER, outsider]
    assert name_of(roster, TEACHER) in who(two.get("/schoology"))
    assert name_of(roster, outsider) in who(two.get("/u/1/schoology"))


def test_signing_in_someone_already_signed_in_reuses_their_slot(two, enrolled):
    assert add_persona(two, enrolled) == "/u/1/schoology"
    assert add_persona(two, TEACHER, on="/u/1/schoology") == "/schoology"
    assert personas(two) == [TEACHER, enrolled]


def test_view_as_from_a_teachers_gradebook_opens_the_student_in_a_slot_of_their_own(client,
                                                                                  enrolled):
    login(client, TEACHER)
    gradebook = client.get(f"/schoology/sections/{SECTION}/gradebook")
    resp = submit(client, form_to(gradebook, "/schoology/persona", user_id=enrolled))
    assert resp.status_code == 303
    assert resp.headers["Location"] == f"/u/1/schoology/sections/{SECTION}"
    assert personas(client) == [TEACHER, enrolled]  # the teacher's tabs stay the teacher's


@pytest.mark.parametrize("path", ["/u/10/schoology", "/u/01/schoology", "/u/x/schoology",
                                  "/u/-1/schoology", "/u/1", "/u/1/", "/u/1/nowhere",
                                  "/u/1/v3.0/me", "/u/1/_sim/health", "/u/1/oauth/tokens"])
def test_a_bad_slot_or_a_slot_before_an_api_path_is_an_html_404(two, path):
    resp = two.get(path, headers={"Accept": "text/html"})
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    text = page_text(resp)
    assert "Page not found" in text
    assert "A persona slot (<code>/u/0/</code> to <code>/u/9/</code>) goes before a" in text


def test_a_slot_prefix_cannot_reach_the_control_api_past_its_guard(sim, demo_app, two):
    _link(sim, demo_app)
    resp = two.post("/u/1/_sim/reset", json={})
    assert resp.status_code == 404
    assert len(sim.store.list_links(section_id=SECTION)) == 1  # nothing was reset


def test_an_empty_slot_is_nobody_and_a_members_page_there_asks_for_a_login(client, two):
    """A /u/3/ address copied from another browser: here slot 3 holds nobody."""
    assert "Nobody is logged in" in who(client.get("/u/3/schoology"))
    resp = client.get(f"/u/3/schoology/sections/{SECTION}")
    assert resp.status_code == 401 and resp.mimetype == "text/html"
    assert "Nobody is logged in in persona slot 3 of this browser" in page_text(resp)


def test_another_browsers_slot_is_empty_in_a_fresh_browser(app, two):
    other = app.test_client()
    assert other.get(f"/u/1/schoology/sections/{SECTION}").status_code == 401
    assert "Nobody is logged in" in who(other.get("/u/1/schoology"))


@pytest.mark.parametrize("csrf", [None, "", "forged"])
def test_a_slots_forms_need_this_browsers_csrf_token(two, enrolled, outsider, csrf):
    form = {"user_id": outsider, **({} if csrf is None else {"csrf": csrf})}
    resp = two.post("/u/1/schoology/persona", data=form)
    assert resp.status_code == 400 and "CSRF check failed" in page_text(resp)
    assert personas(two) == [TEACHER, enrolled]


def test_another_browsers_csrf_token_is_refused_in_a_slot(app, two, enrolled, outsider):
    other = app.test_client()
    their_csrf = login(other, outsider)
    resp = two.post("/u/1/schoology/persona", data={"user_id": outsider, "csrf": their_csrf})
    assert resp.status_code == 400 and "CSRF check failed" in page_text(resp)
    assert personas(two) == [TEACHER, enrolled]


def test_every_slot_taken_is_a_clear_400(client, roster):
    people = [u["id"] for u in roster["users"]][:MAX_SLOTS + 1]
    login(client, people[0])
    for n, user_id in enumerate(people[1:MAX_SLOTS], start=1):
        assert add_persona(client, user_id) == f"/u/{n}/schoology"
    resp = submit(client, form_to(client.get("/schoology"), "/schoology/persona"),
                  user_id=people[MAX_SLOTS], slot="new")
    assert resp.status_code == 400
    assert "Every persona slot of this browser is taken" in page_text(resp)
    assert personas(client) == people[:MAX_SLOTS]


def test_logging_out_one_slot_keeps_the_others_at_their_addresses(two, enrolled):
    home = two.get("/schoology")
    resp = submit(two, form_to(home, "/oauth/logout"))
    assert resp.status_code == 303
    assert personas(two) == [None, enrolled]
    assert "Nobody is logged in" in who(two.get("/schoology"))
    assert "My sections" in page_text(two.get("/u/1/schoology"))


def test_a_cookie_from_before_slots_is_slot_0(app, client, roster):
    value = SecureCookieSessionInterface().get_signing_serializer(app).dumps(
        {SESSION_USER: TEACHER})
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], value)
    assert name_of(roster, TEACHER) in who(client.get("/schoology"))


# --- Clever logs in the tab's persona -------------------------------------------------------

def _link(sim, demo_app, assignment_id="a100001"):
    return link_assignment(sim, {"section_id": SECTION, "client_id": demo_app.client_id,
                                 "assignment_id": assignment_id, "name": "Lesson"})


def _me_of(client, demo_app, location: str) -> str:
    """Follow an authorize redirect to the partner; whom the code it carries logs in."""
    resp = client.get(location)
    assert resp.status_code == 302, page_text(resp)
    target = urlsplit(resp.headers["Location"])
    code = parse_qs(target.query)["code"][0]
    token = client.post("/oauth/tokens", auth=(demo_app.client_id, demo_app.client_secret),
                        data={"code": code, "grant_type": "authorization_code",
                              "redirect_uri": f"{target.scheme}://{target.netloc}{target.path}"})
    assert token.status_code == 200, token.get_data(as_text=True)
    return client.get("/v3.0/me", headers=bearer(token.get_json()["access_token"])
                      ).get_json()["data"]["id"]


def test_open_in_the_students_tab_logs_the_student_into_the_partner_though_the_teacher_signed_in_last(
        client, sim, partner, demo_app, enrolled):
    link = _link(sim, demo_app)
    assert add_persona(client, enrolled) == "/schoology"   # the student first, in slot 0 ...
    assert add_persona(client, TEACHER) == "/u/1/schoology"  # ... the teacher signs in last
    page = client.get(f"/schoology/sections/{SECTION}")
    resp = submit(client, form_to(page, f"/assignments/{link.id}/open"))
    assert urlsplit(resp.headers["Location"]).path == "/u/0/oauth/authorize"
    assert _me_of(client, demo_app, resp.headers["Location"]) == enrolled


def test_a_partner_login_with_several_personas_asks_whom_to_continue_as(two, partner, demo_app,
                                                                        enrolled, roster):
    query = {"response_type": "code", "client_id": demo_app.client_id,
             "redirect_uri": partner.base + "/clever/callback", "state": "s1"}
    chooser = two.get("/oauth/authorize", query_string=query)
    assert chooser.status_code == 200
    text = page_text(chooser)
    assert "Signed in in this browser" in text
    assert f"Continue as <bdi>{name_of(roster, TEACHER)}</bdi>" in text
    assert f"Continue as <bdi>{name_of(roster, enrolled)}</bdi>" in text
    resp = submit(two, form_to(chooser, "/oauth/login"), user_id=enrolled)
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.path == "/u/1/oauth/authorize"  # the student's slot, not a chooser again
    assert parse_qs(location.query)["state"] == ["s1"]
    assert _me_of(two, demo_app, resp.headers["Location"]) == enrolled
    assert personas(two) == [TEACHER, enrolled]


def test_a_partner_login_with_one_persona_goes_straight_on(client, partner, demo_app, enrolled):
    login(client, enrolled)
    query = {"response_type": "code", "client_id": demo_app.client_id,
             "redirect_uri": partner.base + "/clever/callback", "state": "s1"}
    resp = client.get("/oauth/authorize", query_string=query)
    assert resp.status_code == 302


# --- roles hold per slot ---------------------------------------------------------------------

def test_the_students_slot_sees_only_their_own_grades_while_the_teachers_sees_the_class(two):
    base = f"/schoology/sections/{SECTION}/gradebook"
    assert two.get(base + ".csv").status_code == 200
    assert two.get(base + ".json").status_code == 200
    for path in (".csv", ".json", "/events"):
        resp = two.get("/u/1" + base + path)
        assert resp.status_code == 403, path
        assert "Students see their own grades only" in page_text(resp)
    mine = page_text(two.get("/u/1" + base))
    assert "— my grades" in mine



def _fill_every_slot(client, roster) -> str:
    """Sign this browser in as personas until every slot is taken; one more who is not."""
    others = [u["id"] for u in roster["users"] if u["id"] not in personas(client)]
    while len(personas(client)) < MAX_SLOTS:
        add_persona(client, others.pop(0))
    return others[0]


# (the form's fields, the page's <h1>): every refusal of the persona picker
PICKER_REFUSALS = {
    "unknown-persona": ({"user_id": "nobody"}, "Unknown persona"),
    "no-persona-picked": ({"user_id": ""}, "Unknown persona"),
    "expired-form": ({"user_id": TEACHER, "csrf": "expired"}, "Form expired or forged (CSRF check failed)"),
    "no-form-token": ({"user_id": TEACHER, "csrf": None}, "Form expired or forged (CSRF check failed)"),
    "browser-full": ({"slot": "new"}, "Every persona slot of this browser is taken"),
}


@pytest.mark.parametrize("slot_prefix", ["", "/u/1"], ids=["first-tab", "slot-1"])
@pytest.mark.parametrize("name", list(PICKER_REFUSALS))
def test_a_refused_persona_pick_leads_back_to_a_fresh_form_never_a_resubmission(client, roster, enrolled,
                                                                                 name, slot_prefix):
    fields, title = PICKER_REFUSALS[name]
    login(client, TEACHER)
    if slot_prefix:
        assert add_persona(client, enrolled) == "/u/1/schoology"
    if name == "browser-full":
        fields = {**fields, "user_id": _fill_every_slot(client, roster)}
    before = personas(client)
    form = form_to(client.get(f"{slot_prefix}/schoology"), f"{slot_prefix}/schoology/persona")
    resp = submit(client, form, **fields)
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    text = page_text(resp)
    assert f"<h1>{title}</h1>" in text
    again = f"{slot_prefix}/schoology/persona"
    assert f'<a class="btn" href="{again}">Open the form again</a>' in text
    assert personas(client) == before
    opened = client.get(again)  # a GET: the page holding the form, in the same slot
    assert opened.status_code == 303
    assert urlsplit(opened.headers["Location"]).path == f"{slot_prefix}/schoology"
    page = client.get(opened.headers["Location"])
    assert page.status_code == 200
    fresh = dict(form_to(page, f"{slot_prefix}/schoology/persona")["fields"])
    with client.session_transaction() as s:
        assert fresh["csrf"] == s["csrf"]  # a fresh form, with this session's token
    assert personas(client) == before
