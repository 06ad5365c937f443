"""Partner-controlled text is shown as text on every page, never run (real Chromium).

A reference partner whose assignment names, description and standards are HTML/JS, an
app name with a script tag, and grades whose context fields and assignmentID are
hostile. On every page: ``window.__pwned`` stays undefined, no dialog opens, no injected
element exists, and the hostile text is visible literally (so it was escaped, not merely
blocked by the Content-Security-Policy).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from . import expect

pytestmark = pytest.mark.browser

TEACHER = "Rebecca Alvarez"
SECTION_NAME = "Grade 5 Math – Period 2"
CLIENT_ID = "hostile0partner0app1"
CLIENT_SECRET = "hostile-partner-secret-0123456789abcdef"
APP_NAME = "Hostile <script>window.__pwned=7</script> Partner"
NAME_1 = "<script>window.__pwned=1</script>Quiz"
NAME_2 = '"><img src=x onerror="window.__pwned=2">'
DESCRIPTION = "<b onmouseover=\"window.__pwned=11;alert('description')\">Hover me</b> & more"
STANDARDS = ("<i onclick=\"window.__pwned=12\">CCSS.5.NF</i>",
             "<img src=x onerror=\"window.__pwned=13;alert('standard')\">")
DESCRIPTION_2 = "</textarea></pre><script>window.__pwned=21</script>"
ASSIGNMENTS = [
    {"id": "xss1", "name": NAME_1, "description": DESCRIPTION, "standards": list(STANDARDS),
     "format": "points"},
    {"id": "xss2", "name": NAME_2, "description": DESCRIPTION_2},
]
NOTE = "<script>window.__pwned=3</script>"
UNLINKED_ID = "<script>window.__pwned=4</script>"
REFLECTED = "<script>window.__pwned=8</script>"


@dataclass
class Hostile:
    sim_url: str
    partner_url: str
    district: str


@pytest.fixture
def hostile():
    """The simulator and a reference partner serving hostile assignments, registered
    through ``POST /_sim/apps`` with the partner's real port."""
    from contract_tests.reference_partner import bind_partner, create_partner_app
    from simulator.app import create_app
    from simulator.serving import start_in_thread

    sim_server = start_in_thread(create_app({"DB": ":memory:", "GRADEBOOK_SSE_HEARTBEAT_S": 0.3},
                                            environ={}))
    partner = None
    try:
        partner = bind_partner(create_partner_app({
            "CLEVER_URL": sim_server.url, "API_URL": sim_server.url,
            "GRADES_URL": sim_server.url, "CLIENT_ID": CLIENT_ID,
            "CLIENT_SECRET": CLIENT_SECRET, "ASSIGNMENTS": ASSIGNMENTS}), "127.0.0.1", 0)
        registered = httpx.post(f"{sim_server.url}/_sim/apps", json={
            "name": APP_NAME, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "redirect_uris": [f"{partner.url}/clever/callback"],
            "assignments_url": f"{partner.url}/clever/assignments"})
        assert registered.status_code == 201, registered.text
        partner.start()
        teacher = next(p for p in httpx.get(f"{sim_server.url}/_sim/personas",
                                            params={"role": "teacher"}).json()["data"]
                       if p["name"] == TEACHER)
        yield Hostile(sim_server.url, partner.url, teacher["district"])
    finally:
        try:
            if partner is not None:
                partner.stop()
        finally:
            sim_server.stop()


class Watch:
    """One browser page with a dialog trap: ``check(what, *texts)`` after each navigation."""

    def __init__(self, page, shot):
        self.page, self.shot, self.dialogs = page, shot, []
        page.on("dialog", self._dialog)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def check(self, what: str, *texts: str) -> None:
        page = self.page
        page.wait_for_load_state("load")
        for hover in page.get_by_text("Hover me").all():  # fire any live mouseover handler
            if hover.is_visible():
                hover.hover()
        for text in texts:
            # visible somewhere (a page may also hold it in a closed <select>'s options)
            expect(page.get_by_text(text).filter(visible=True).first,
                   f"{what}: {text!r} shown as text").to_be_visible()
        injected = page.locator("img[src=x], [onmouseover], [onerror], [onclick]")
        assert injected.count() == 0, f"{what}: injected elements {injected.evaluate_all('e => e.map(x => x.outerHTML)')}"
        scripts = page.evaluate("""() => Array.from(document.scripts)
            .filter(s => s.textContent.includes('__pwned')).length""")
        assert scripts == 0, f"{what}: a <script> element with partner text exists"
        assert page.evaluate("typeof window.__pwned") == "undefined", \
            f"{what}: partner text ran as script (window.__pwned = {page.evaluate('window.__pwned')})"
        assert not self.dialogs, f"{what}: dialogs opened: {self.dialogs}"
        self.shot(page, what)


def post_grade(h: Hostile, body: dict) -> dict:
    tokens = httpx.get(f"{h.sim_url}/oauth/tokens", auth=(CLIENT_ID, CLIENT_SECRET),
                       params={"owner_type": "district", "district": h.district})
    assert tokens.status_code == 200, tokens.text
    token = tokens.json()["data"][0]["access_token"]
    resp = httpx.post(f"{h.sim_url}/v1/grade", json=body,
                      headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_hostile_partner_text_is_inert_everywhere(hostile, new_context, shot, ui):
    h = hostile
    page = new_context().new_page()
    w = Watch(page, shot)
    ui.switch_persona(page, h.sim_url, TEACHER)
    page.get_by_role("link", name=SECTION_NAME).click()
    section_url = page.url

    # Add Materials → the hostile app: its pick list, then the settings page of each assignment
    page.get_by_role("link", name="Add Materials").click()
    w.check("add-materials", APP_NAME)
    page.goto(section_url)
    for i, (wanted, name) in enumerate((("xss1", NAME_1), ("xss2", NAME_2))):
        def at(p, step, i=i, name=name):
            if step == "pick-list" and i == 0:
                w.check("pick-list", APP_NAME, NAME_1, NAME_2, DESCRIPTION, *STANDARDS,
                        DESCRIPTION_2)
            elif step == "settings":
                w.check(f"settings-{i + 1}", name)
        ui.add_assignment(page, "Hostile", wanted, max_points="10", screenshot=at)
    w.check("section", NAME_1, NAME_2)

    page.get_by_role("link", name=NAME_1).click()
    w.check("section-material", NAME_1, DESCRIPTION, *STANDARDS)

    # the gradebook, open while the grades arrive (live cells are set as text too)
    page.goto(f"{section_url}/gradebook")
    expect(page.locator("#gb-live-status")).to_have_text("Live updates: on.")
    student = page.locator("tbody tr[data-user]").first.get_attribute("data-user")
    post_grade(h, {"assignmentID": "xss1", "userID": student, "scoreGiven": 3,
                   "scoreMaximum": 5, "note": NOTE})
    post_grade(h, {"assignmentID": UNLINKED_ID, "userID": student, "percentage": 0.5,
                   "comment": "<img src=x onerror=\"window.__pwned=5\">"})
    cell = page.locator(f'tbody tr[data-user="{student}"] td.gb-cell').first
    expect(cell.locator(".gb-points")).to_have_text("6", timeout=5_000)
    expect(page.locator("#gb-live-status")).to_contain_text("not linked in this section")
    w.check("gradebook-live", NAME_1, NAME_2)
    page.reload()
    w.check("gradebook", NAME_1, NAME_2, UNLINKED_ID)

    cell.locator("a.gb-points").click()
    w.check("cell-detail", NAME_1, NOTE)
    expect(page.locator("#gb-context")).to_contain_text(NOTE)
    page.go_back()
    page.locator("table.gb-unlinked a").first.click()
    w.check("cell-detail-unlinked", UNLINKED_ID)

    # the inspector: the list (with a hostile assignment id and a reflected bad filter) ...
    page.goto(f"{h.sim_url}/inspector")
    w.check("inspector-list", UNLINKED_ID)
    page.goto(f"{h.sim_url}/inspector?status={REFLECTED}&method={REFLECTED}")
    w.check("inspector-list-bad-filter", REFLECTED)
    # ... and the entries: the grade POST with the hostile note, the partner's hostile list
    page.goto(f"{h.sim_url}/inspector?path=/v1/grade&assignment=xss1")
    page.locator("table.in-journal tbody tr td a").first.click()
    w.check("inspector-entry-grade", NOTE)
    expect(page.locator("#in-request-body")).to_contain_text(NOTE)
    page.goto(f"{h.sim_url}/inspector?direction=outbound")
    page.locator("table.in-journal tbody tr td a").first.click()
    w.check("inspector-entry-assignments", "window.__pwned=1")
    expect(page.locator("#in-response-body")).to_contain_text("<script>window.__pwned=1")
