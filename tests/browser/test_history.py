"""Back, Forward and reload after a form in a real browser: every form POST answers with a
redirect to a GET page (Post/Redirect/Get), so Chromium never shows "Confirm Form
Resubmission" (ERR_CACHE_MISS) and nothing is submitted twice."""

from __future__ import annotations

import pytest

from contract_tests.demo import DEMO_APP_NAME

from . import expect

pytestmark = pytest.mark.browser

TEACHER = "Rebecca Alvarez"
SECTION_NAME = "Grade 5 Math – Period 2"
ASSIGNMENT = "frac5nf1"


def _links(demo, section_id: str) -> list:
    return demo.simulator.schoology.links(section_id=section_id, assignment_id=ASSIGNMENT)


def _no_resubmission(page) -> list[str]:
    """Records any request the tab sends with a body (a form resubmitted)."""
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    return posts


def test_back_and_reload_after_add_materials_reopen_the_settings_page(demo, new_context, ui):
    page = new_context().new_page()
    ui.switch_persona(page, demo.sim_url, TEACHER)
    page.get_by_role("link", name=SECTION_NAME).click()
    section_url = page.url
    section_id = section_url.rsplit("/", 1)[1]
    ui.add_assignment(page, DEMO_APP_NAME, ASSIGNMENT, max_points="20")
    assert page.url == section_url and len(_links(demo, section_id)) == 1

    posts = _no_resubmission(page)
    back = page.go_back()  # before the fix: net::ERR_CACHE_MISS, "Confirm Form Resubmission"
    assert back is not None and back.status == 200 and back.request.method == "GET"
    expect(page.get_by_role("heading", level=1)).to_contain_text("Add “Adding Fractions")
    expect(page.locator("#max_points")).to_have_value("20")  # "Change": the saved settings
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Add “Adding Fractions")
    forward = page.go_forward()
    assert forward is not None and forward.status == 200 and page.url == section_url
    page.go_back()
    page.go_back()  # the pick list, then the Add Materials page
    expect(page.get_by_role("heading", level=1)).to_contain_text("choose an assignment")
    assert posts == [] and len(_links(demo, section_id)) == 1


def test_back_onto_a_settings_form_with_problems_shows_them_again(demo, new_context, ui):
    page = new_context().new_page()
    ui.switch_persona(page, demo.sim_url, TEACHER)
    page.get_by_role("link", name=SECTION_NAME).click()
    section_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("link", name="Add Materials").click()
    page.locator("a.pick", has_text=DEMO_APP_NAME).click()
    page.locator("tr", has=page.locator("code", has_text=ASSIGNMENT)).get_by_role("button").click()
    page.fill("#max_points", "lots")
    page.locator("form.sg-form button[type=submit]").click()
    problem = page.locator("#max_points-error")
    expect(problem).to_have_text("'lots' is not a number (e.g. 100 or 12.5)")
    expect(page.locator("#max_points")).to_have_value("lots")
    expect(page.locator("#max_points")).to_be_focused()  # the first problem takes the focus
    page.fill("#max_points", "12")
    page.locator("form.sg-form button[type=submit]").click()
    expect(page.locator("p.sg-flash")).to_contain_text("Added “Adding Fractions")

    posts = _no_resubmission(page)
    back = page.go_back()
    assert back is not None and back.status == 400 and back.request.method == "GET"
    expect(problem).to_have_text("'lots' is not a number (e.g. 100 or 12.5)")
    page.reload()
    expect(problem).to_be_visible()
    assert posts == []
    (link,) = _links(demo, section_id)
    assert link.data["max_points"] == 12


def test_a_form_left_open_across_a_restart_explains_itself_and_leads_back(tmp_path, new_context,
                                                                          ui):
    """A restart signs the browser out (new session secret), so every open form is expired:
    submitting one shows a page, not JSON, with a link back to a fresh copy of the form
    (reloading the answer would only send the expired form again)."""
    from simulator.embedded import start_simulator

    db = str(tmp_path / "sim.db")
    server = start_simulator({"DB": db}, environ={})
    url, port = server.url, server.port
    restarted = None
    try:
        context = new_context()
        tabs = [context.new_page(), context.new_page()]  # both drawn by the first server
        ui.switch_persona(tabs[0], url, TEACHER)
        tabs[1].goto(f"{url}/schoology")
        server.stop()
        server = None
        restarted = start_simulator({"DB": db}, port=port, environ={})
        ui.pick(tabs[1], TEACHER, None)
        for page, button in ((tabs[0], "Log out"), (tabs[1], "Switch persona")):
            page.get_by_role("button", name=button).click()
            expect(page.get_by_role("heading", level=1)).to_have_text(
                "Form expired or forged (CSRF check failed)")
            expect(page.locator("main")).to_contain_text("open the page with the form again")
            page.get_by_role("link", name="Open the form again").click()
            expect(page).to_have_url(f"{url}/schoology")
            expect(page.get_by_test_id("who")).to_contain_text("Nobody is logged in")
        ui.switch_persona(tabs[1], url, TEACHER)  # the fresh form works
    finally:
        for running in (server, restarted):
            if running is not None:
                running.stop()


def test_a_refused_persona_pick_leads_back_to_the_form_without_sending_it_again(demo, new_context, ui):
    """The persona picker refuses someone no longer in the roster (a tab left open while
    the simulator restarted on another roster): a page, not JSON, whose link opens a fresh
    picker (a GET, never the refused POST again), the tab's persona unchanged."""
    url = demo.sim_url
    page = new_context().new_page()
    ui.switch_persona(page, url, TEACHER)
    ui.pick(page, TEACHER, None)
    page.eval_on_selector("#user_id option:checked", "o => { o.value = 'gone-from-the-roster'; }")
    page.get_by_role("button", name="Switch persona").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Unknown persona")
    expect(page.locator("main")).to_contain_text("'gone-from-the-roster' is not a teacher or student")
    posts = _no_resubmission(page)
    page.get_by_role("link", name="Open the form again").click()
    expect(page).to_have_url(f"{url}/schoology")
    expect(page.get_by_test_id("who")).to_contain_text(TEACHER)
    assert posts == []
    ui.switch_persona(page, url, "Daniel Kim")  # the fresh form works
