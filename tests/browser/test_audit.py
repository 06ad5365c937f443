"""What a real-browser audit found (several tabs, hostile sizes, a restarting server): the
gradebook says plainly when live updates cannot work, long assignment names never widen a
page, and pages log no console errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from contract_tests.demo import DEMO_CLIENT_ID
from simulator.embedded import start_simulator

from . import expect

pytestmark = pytest.mark.browser

TEACHER = "Rebecca Alvarez"
SECTION_NAME = "Grade 5 Math – Period 2"
NOT_ANSWERING = "Live updates paused: the simulator is not answering (stopped?); retrying."
SIGNED_OUT = ("Live updates stopped: this tab is no longer signed in as a teacher of this "
              "section (logged out, or the simulator restarted). Reload the page.")


def section_id(sim) -> str:
    return next(s["id"] for s in sim.roster["sections"] if s["name"] == SECTION_NAME)


def _serve(db: str, port: int = 0):
    server = start_simulator({"DB": db}, port=port, environ={})
    server.app.config["GRADEBOOK_SSE_HEARTBEAT_S"] = 0.3  # a closed stream ends at once
    return server


def test_gradebook_says_the_server_is_gone_then_that_a_restart_signed_the_tab_out(
        tmp_path, new_context, ui):
    db = str(tmp_path / "sim.db")
    server = _serve(db)
    url, port = server.url, server.port
    restarted = None
    try:
        page = new_context().new_page()
        ui.switch_persona(page, url, TEACHER)
        page.goto(f"{url}/schoology/sections/{section_id(server.app.extensions['clever_sim'])}"
                  "/gradebook")
        status = page.locator("#gb-live-status")
        expect(status).to_have_text("Live updates: on.")
        server.stop()
        server = None
        # the browser retries; after a second failed try it says why nothing arrives
        expect(status).to_have_text(NOT_ANSWERING)
        # same database, new process secret: the session cookie no longer signs anyone in,
        # so the stream is refused; the page says so instead of "checking every 5 s" forever
        restarted = _serve(db, port)
        expect(status).to_have_text(SIGNED_OUT)
        page.reload()
        expect(page.locator("main")).to_contain_text("Log in to see this gradebook")
    finally:
        for running in (server, restarted):
            if running is not None:
                running.stop()


def test_gradebook_polling_says_a_signed_out_tab_must_reload(demo, new_context, ui):
    """Too many streams → polling; logging out in another tab then stops it with the reason."""
    context = new_context()
    page = context.new_page()
    ui.switch_persona(page, demo.sim_url, TEACHER)
    page.route("**/gradebook/events*", lambda route: route.fulfill(status=503, body="busy"))
    page.goto(f"{demo.sim_url}/schoology/sections/{section_id(demo.simulator)}/gradebook")
    status = page.locator("#gb-live-status")
    expect(status).to_have_text("Live updates: checking every 5 s.")
    other = context.new_page()  # a second tab of the same persona logs out
    other.goto(f"{demo.sim_url}/schoology")
    other.get_by_role("button", name="Log out").click()
    expect(status).to_have_text(SIGNED_OUT)


LONG_NAME = "L" * 200  # no space to break at


@pytest.mark.parametrize("width", [375, 640, 1280])  # phone, 200 % zoom of 1280, desktop
def test_long_assignment_names_never_widen_the_section_page_or_gradebook(demo, new_context, ui,
                                                                         width):
    sec = section_id(demo.simulator)
    for j in range(3):
        resp = httpx.post(f"{demo.sim_url}/_sim/links", json={
            "section_id": sec, "client_id": DEMO_CLIENT_ID, "assignment_id": f"long{j}",
            "name": f"{LONG_NAME} {j}", "max_points": 10})
        assert resp.status_code == 201, resp.text
    page = new_context(viewport={"width": width, "height": 800}).new_page()
    ui.switch_persona(page, demo.sim_url, TEACHER)
    for path in (f"/schoology/sections/{sec}", f"/schoology/sections/{sec}/gradebook"):
        page.goto(demo.sim_url + path)
        expect(page.locator("main")).to_contain_text(LONG_NAME)
        wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert wide[0] <= wide[1], f"{path} is {wide[0]} px wide in a {wide[1]} px window"


def test_pages_log_no_console_errors(demo, new_context, ui):
    """Not even the browser's own /favicon.ico: every page names an inline icon."""
    page = new_context().new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    ui.switch_persona(page, demo.sim_url, TEACHER)
    sec = section_id(demo.simulator)
    # Chromium asks for /favicon.ico once per browser, so a console check alone passes
    # whenever an earlier test already paid that 404: each page must name its icon itself.
    no_icon = []
    for url in [demo.sim_url + path for path in (
            "/", "/schoology", f"/schoology/sections/{sec}", f"/schoology/sections/{sec}/gradebook",
            "/inspector", "/portal", "/u/7/schoology")] + [demo.partner_url]:
        page.goto(url)
        page.wait_for_load_state("load")
        if page.locator('head link[rel="icon"][href^="data:"]').count() != 1:
            no_icon.append(url)
    assert no_icon == [], "these pages make the browser request /favicon.ico (a 404)"
    assert errors == []


def test_a_form_address_opened_as_a_page_leads_to_its_form_not_a_405(demo, new_context, ui):
    """A reopened tab, Back onto a POST or a copied address GETs a form's target."""
    sim = demo.sim_url
    sec = section_id(demo.simulator)
    browser = new_context()
    teacher = browser.new_page()
    ui.switch_persona(teacher, sim, TEACHER)
    teacher.goto(f"{sim}/schoology/sections/{sec}")
    ui.add_assignment(teacher, "Demo Partner (reference)", "frac5nf1")
    link_id = teacher.locator("tr[data-link-id]").first.get_attribute("data-link-id")
    # the settings page was a POST's answer: reopened, it is the app's pick list again
    resp = teacher.goto(f"{sim}/schoology/sections/{sec}/add/{DEMO_CLIENT_ID}/settings")
    assert resp.status == 200
    assert teacher.url == f"{sim}/schoology/sections/{sec}/add/{DEMO_CLIENT_ID}"
    expect(teacher.locator("tr", has=teacher.locator("code", has_text="frac5nf1"))
           .get_by_role("button", name="Change")).to_be_visible()
    teacher.goto(f"{sim}/schoology/sections/{sec}/assignments/{link_id}/remove")
    assert teacher.url == f"{sim}/schoology/sections/{sec}/assignments/{link_id}"
    assert demo.simulator.schoology.links(section_id=sec, assignment_id="frac5nf1")
    # a student's tab (slot 1) keeps its slot: the address of "Open" shows the assignment
    kid = browser.new_page()
    student = next(s for s in demo.simulator.roster["users"] if s["id"] in
                   next(x for x in demo.simulator.roster["sections"] if x["id"] == sec)["students"])
    slot = ui.add_persona(kid, sim, user_id=student["id"])
    kid.goto(f"{sim}{slot}/schoology/sections/{sec}/assignments/{link_id}/open")
    assert kid.url == f"{sim}{slot}/schoology/sections/{sec}/assignments/{link_id}"
    expect(kid.get_by_role("button", name="Open")).to_be_visible()
    for path, page in (("/schoology/persona", "/schoology"), ("/portal/apps/x/launch", "/portal")):
        kid.goto(f"{sim}{slot}{path}")
        assert kid.url == f"{sim}{slot}{page}"
        expect(kid.get_by_test_id("who")).to_contain_text("(persona 1 of this browser)")


RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: reverses everything after it in its paragraph


def _rlo_teacher_roster(tmp_path) -> tuple[Path, dict, dict]:
    """The default roster with an RLO in the teacher's last name: (its file, the teacher,
    a section they do not teach)."""
    import json

    from simulator.roster import default_roster_path

    roster = json.loads(default_roster_path().read_text(encoding="utf-8"))
    sec = next(s for s in roster["sections"] if s["name"] == SECTION_NAME)
    teacher = next(u for u in roster["users"] if u["id"] == sec["teacher"])
    teacher["name"]["last"] = f"Alvarez{RLO}evil"
    other = next(s for s in roster["sections"] if teacher["id"] not in
                 [s.get("teacher"), *s.get("teachers", []), *s.get("students", [])])
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(roster), encoding="utf-8")
    return path, teacher, other


def test_a_right_to_left_override_in_a_name_stays_inside_the_name(tmp_path, new_context, ui):
    """Roster and partner text is shown, never allowed to reorder the page's own words."""
    path, teacher, _ = _rlo_teacher_roster(tmp_path)
    server = start_simulator({"DB": ":memory:", "ROSTER": str(path)}, environ={})
    try:
        page = new_context().new_page()
        ui.switch_persona(page, server.url, user_id=teacher["id"])
        who = page.get_by_test_id("who")
        name, role = who.locator("strong").bounding_box(), who.locator(".sg-role").bounding_box()
        assert role["x"] >= name["x"] + name["width"], "the role tag moved left of the name"
    finally:
        server.stop()


def test_a_stopping_simulator_ends_the_live_stream_cleanly(new_context, ui):
    """Stopping the server ends each live gradebook stream with its last chunk (no
    ERR_INCOMPLETE_CHUNKED_ENCODING in the console); the page then says it is gone."""
    server = _serve(":memory:")
    try:
        page = new_context().new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        ui.switch_persona(page, server.url, TEACHER)
        page.goto(f"{server.url}/schoology/sections/"
                  f"{section_id(server.app.extensions['clever_sim'])}/gradebook")
        status = page.locator("#gb-live-status")
        expect(status).to_have_text("Live updates: on.")
        server.stop()
        server = None
        expect(status).to_have_text(NOT_ANSWERING)
        assert [m for m in console if "INCOMPLETE_CHUNKED" in m] == [], console
    finally:
        if server is not None:
            server.stop()


_LEFT_OF = """([el, word]) => {
  const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const at = n.data.indexOf(word);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(n, at);
      range.setEnd(n, at + word.length);
      return range.getBoundingClientRect().left;
    }
  }
  return null;
}"""


def test_a_right_to_left_override_in_a_flashed_name_leaves_the_message_in_order(demo, new_context,
                                                                                ui):
    """The confirmation after Remove names the assignment: its RLO must not reverse the rest."""
    sec = section_id(demo.simulator)
    resp = httpx.post(f"{demo.sim_url}/_sim/links", json={
        "section_id": sec, "client_id": DEMO_CLIENT_ID, "assignment_id": "rlo1",
        "name": f"Quiz{RLO}evil"})
    assert resp.status_code == 201, resp.text
    page = new_context().new_page()
    ui.switch_persona(page, demo.sim_url, TEACHER)
    page.goto(f"{demo.sim_url}/schoology/sections/{sec}/assignments/{resp.json()['id']}")
    page.get_by_role("button", name="Remove from section").click()
    flash = page.locator("p.sg-flash")
    expect(flash).to_contain_text("grades the app already posted are kept")
    words = ["Removed", "from", "grades", "posted", "kept"]
    lefts = [page.evaluate(_LEFT_OF, [flash.element_handle(), w]) for w in words]
    assert lefts == sorted(lefts), f"the words after the name were reordered: {dict(zip(words, lefts))}"


def test_a_right_to_left_override_in_a_name_leaves_error_sentences_in_order(tmp_path, new_context,
                                                                            ui):
    """Refusals name the persona in a sentence built on the server (FSI … PDI around it)."""
    path, teacher, other = _rlo_teacher_roster(tmp_path)
    server = start_simulator({"DB": ":memory:", "ROSTER": str(path)}, environ={})
    try:
        page = new_context().new_page()
        ui.switch_persona(page, server.url, user_id=teacher["id"])
        for where, words in ((f"/schoology/sections/{other['id']}", ["is not a", "member of"]),
                             (f"/schoology/sections/{other['id']}/gradebook",
                              ["(teacher)", "is not a", "teacher of"])):
            resp = page.goto(server.url + where)
            assert resp.status == 403
            detail = page.locator("main p", has_text="is not a").first
            lefts = [page.evaluate(_LEFT_OF, [detail.element_handle(), w]) for w in words]
            assert None not in lefts and lefts == sorted(lefts), (where, dict(zip(words, lefts)))
    finally:
        server.stop()


def test_long_unbroken_names_ids_and_values_never_widen_any_page_of_a_phone(demo, new_context,
                                                                          ui):
    """An assignment's page, its settings (and their problems), the flash after Remove, a
    not-found page and a not-linked grade: all wrap text with no space to break at."""
    sec = section_id(demo.simulator)
    assignment_id = "A" * 120
    resp = httpx.post(f"{demo.sim_url}/_sim/links", json={
        "section_id": sec, "client_id": DEMO_CLIENT_ID, "assignment_id": assignment_id,
        "name": LONG_NAME, "description": "D" * 300, "standards": ["S" * 200]})
    assert resp.status_code == 201, resp.text
    link_id = resp.json()["id"]
    page = new_context(viewport={"width": 375, "height": 800}).new_page()
    ui.switch_persona(page, demo.sim_url, TEACHER)
    wide = {}

    def check(what: str) -> None:
        page.wait_for_load_state("load")
        sizes = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if sizes[0] > sizes[1]:
            wide[what] = sizes[0]

    section_url = f"{demo.sim_url}/schoology/sections/{sec}"
    page.goto(f"{section_url}/assignments/{link_id}")
    check("assignment page")
    page.get_by_role("button", name="Change settings").click()
    expect(page.locator("#max_points")).to_be_visible()
    check("settings")
    page.fill("#max_points", "9" * 400)
    page.locator("form.sg-form button[type=submit]").click()
    expect(page.locator("#max_points-error")).to_be_visible()
    check("settings with a problem")
    page.goto(f"{section_url}/assignments/{link_id}")
    page.get_by_role("button", name="Remove from section").click()
    expect(page.locator("p.sg-flash")).to_contain_text("Removed")
    check("flash after Remove")
    token = httpx.post(f"{demo.sim_url}/_sim/tokens", json={
        "client_id": DEMO_CLIENT_ID,
        "user_id": demo.simulator.clever.record("sections", sec)["students"][0]}).json()
    assert httpx.post(f"{demo.sim_url}/v1/grade", json={
        "assignmentID": assignment_id, "percentage": 0.5},
        headers={"Authorization": f"Bearer {token['access_token']}"}).status_code == 200
    page.goto(f"{section_url}/gradebook")
    page.locator("table.gb-unlinked a").first.click()
    expect(page.locator("h1")).to_contain_text(assignment_id)
    check("grade not linked yet")
    page.goto(f"{section_url}/gradebook/{'N' * 200}")
    check("grade not found")
    page.goto(f"{demo.sim_url}/schoology/sections/{'Q' * 200}")
    check("section not found")
    assert wide == {}, f"pages wider than the 375 px window: {wide}"
