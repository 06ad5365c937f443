"""The whole story in a real browser, clicked like a developer would.

A teacher adds a partner assignment in fake Schoology and keeps the gradebook open; a
student, signed in as another persona in a second tab of the SAME browser (one cookie
jar), opens it, lands in the reference partner, answers and turns in; the teacher's open
gradebook (cell, row total, class average) updates by itself and no tab loses its login.
Plus: switching persona in one tab leaves the other, and the error path of Add Materials
when the partner is down.
"""

from __future__ import annotations

import re
import socket
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from math import lcm

import httpx
import pytest

from contract_tests.demo import DEMO_APP_NAME

from . import expect

pytestmark = pytest.mark.browser

TEACHER = "Rebecca Alvarez"
SECTION_NAME = "Grade 5 Math – Period 2"
ASSIGNMENT = "frac5nf1"          # "Adding Fractions …", the partner reports points (out of 5)
MAX_POINTS = Decimal(20)
CATEGORY = "Quizzes"
PERIOD = "Q1"
LIVE_TIMEOUT_MS = 5_000


def shown(value: Decimal) -> str:
    """How the gradebook writes a number: up to 2 decimals, half up, no trailing zeros."""
    text = format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def solve(prompt: str, choices: list[str]) -> str:
    """The right answer to one of the partner's fraction questions, worked out from its text."""
    value: Fraction | int | None = None
    if m := re.fullmatch(r"\s*(\d+)/(\d+)\s*\+\s*(\d+)/(\d+)\s*=\s*\?\s*", prompt):
        a, b, c, d = map(int, m.groups())
        value = Fraction(a, b) + Fraction(c, d)
    elif m := re.search(r"least common denominator of (\d+)/(\d+) and (\d+)/(\d+)", prompt):
        value = lcm(int(m.group(2)), int(m.group(4)))
    if value is None:
        pytest.fail(f"the test cannot work out the answer to {prompt!r}: update solve()")
    if not choices:
        return str(value)
    right = [c for c in choices if Fraction(c) == value]
    assert len(right) == 1, (prompt, choices, value)
    return right[0]


def enrolled_student(sim_url: str, section_id: str) -> dict:
    personas = httpx.get(f"{sim_url}/_sim/personas", params={"role": "student"}).json()["data"]
    found = [p for p in personas if section_id in p["sections"]]
    assert found, f"no student is enrolled in section {section_id}"
    return found[0]


def test_teacher_student_and_partner_tabs_in_one_browser_through_the_whole_story(
        demo, new_context, shot, ui):
    sim = demo.sim_url
    browser = new_context()  # ONE cookie jar: the teacher's, the student's and the partner's tabs

    # --- teacher: add the partner's assignment to a section ---------------------------------
    teacher = browser.new_page()
    teacher.goto(f"{sim}/schoology")
    expect(teacher.get_by_test_id("who")).to_contain_text("Nobody is logged in")
    ui.switch_persona(teacher, sim, TEACHER)
    expect(teacher.get_by_role("heading", name="Sections I teach")).to_be_visible()
    shot(teacher, "schoology-home-teacher")

    teacher.get_by_role("link", name=SECTION_NAME).click()
    expect(teacher.get_by_role("heading", level=1)).to_have_text(SECTION_NAME)
    section_id = teacher.url.rstrip("/").rsplit("/", 1)[1]

    def pick_list_checks(page, what):
        if what == "pick-list":  # the partner's list, fetched live through its assignments URL
            expect(page.get_by_role("heading", level=1)).to_contain_text(DEMO_APP_NAME)
            expect(page.locator("p.sg-small", has_text="Fetched live")).to_contain_text(
                f"GET {demo.partner_url}/clever/assignments → HTTP 200")
            partner = demo.partner.app.extensions["reference_partner"]
            for a in partner.assignments.values():
                expect(page.locator("table.sg-table")).to_contain_text(a.name)
            row = page.locator("tr", has=page.locator("code", has_text=ASSIGNMENT))
            expect(row).to_contain_text("Adding Fractions with Unlike Denominators")
            expect(row).to_contain_text("CCSS.MATH.CONTENT.5.NF.A.1")
        else:
            expect(page.locator("#max_points")).to_have_value(str(MAX_POINTS))
            expect(page.locator("input[name=grading_enabled]")).to_be_checked()
        shot(page, what)

    nav = ui.add_assignment(teacher, DEMO_APP_NAME, ASSIGNMENT, max_points=str(MAX_POINTS),
                            category=CATEGORY, period=PERIOD, screenshot=pick_list_checks)
    assert nav.status == 200

    # back on the section page: the assignment is listed with the chosen settings
    expect(teacher.locator("p.sg-flash")).to_contain_text("Added “Adding Fractions")
    row = teacher.locator("tr[data-link-id]", has_text=ASSIGNMENT)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Adding Fractions with Unlike Denominators")
    expect(row).to_contain_text(DEMO_APP_NAME)
    expect(row).to_contain_text(CATEGORY)
    expect(row).to_contain_text(PERIOD)
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^20(\.0+)?$"))
    expect(row.locator(".sg-tag.ok")).to_have_text("on")
    link_id = row.get_attribute("data-link-id")
    shot(teacher, "section-with-assignment")

    # the section's gradebook, left open from here on
    teacher.locator(".sg-actions").get_by_role("link", name="Gradebook").click()
    expect(teacher.get_by_role("heading", level=1)).to_have_text(SECTION_NAME)
    expect(teacher.locator("#gb-live-status")).to_have_text("Live updates: on.")
    column = teacher.locator(f'thead th.gb-col[data-link="{link_id}"]')
    expect(column).to_contain_text("Adding Fractions with Unlike Denominators")
    expect(column).to_contain_text(f"{shown(MAX_POINTS)} pts · {CATEGORY}")
    links = [th.get_attribute("data-link") for th in teacher.locator("thead th.gb-col").all()]
    teacher.evaluate("window.__notReloaded = true")
    student = enrolled_student(sim, section_id)
    row_total = teacher.locator(f'tbody tr[data-user="{student["id"]}"] td.gb-total')
    average = teacher.locator(f'tfoot td.gb-average[data-link="{link_id}"]')
    expect(row_total).to_have_text("—")
    expect(average).to_have_text("—")

    # --- student: open it from Schoology, land in the partner, answer, turn in ------------------
    # The partner keeps Flask's default cookie name, "session", as many partners do; cookies
    # ignore ports, so the simulator's own cookie must be named differently or each app would
    # log the student out of the other. The student holds a Schoology tab and the partner's.
    # The student signs in as another persona in a second tab of the same browser: that tab
    # moves to the persona's own address (/u/1/...), the teacher's tab stays the teacher's.
    demo.partner.app.config["SESSION_COOKIE_NAME"] = "session"
    kid = browser.new_page()
    slot = ui.add_persona(kid, sim, student["name"], user_id=student["id"])
    assert slot == "/u/1"
    expect(kid.get_by_test_id("who")).to_contain_text("(persona 1 of this browser)")
    shot(kid, "schoology-home-student-slot-1")
    kid.get_by_role("link", name=SECTION_NAME).click()
    assert kid.url == f"{sim}/u/1/schoology/sections/{section_id}"
    schoology_tab = browser.new_page()  # the student's Schoology, kept open beside the partner
    schoology_tab.goto(kid.url)
    kid_row = kid.locator(f'tr[data-link-id="{link_id}"]')
    with kid.expect_request(re.compile(re.escape(sim) + r"/u/1/oauth/authorize\?")):
        kid_row.get_by_role("button", name="Open")\
            .click()  # → Clever authorize as this tab's persona → partner callback
    kid.wait_for_url(f"{demo.partner_url}/assignments/{ASSIGNMENT}")
    activity = kid.locator("#assignment")
    expect(activity).to_have_attribute("data-assignment-id", ASSIGNMENT)
    expect(activity).to_have_attribute("data-user-id", student["id"])
    expect(activity).to_contain_text(student["name"])

    questions = kid.locator("ol.questions > li").all()
    assert len(questions) == 5
    wrong_on_purpose = 0  # one wrong answer: a partial score shows the scaling, not just 100%
    for i, li in enumerate(questions):
        prompt = li.locator("legend, div").first.inner_text()
        radios = li.locator("input[type=radio]")
        choices = [r.get_attribute("value") for r in radios.all()]
        answer = solve(prompt, choices)
        if i == wrong_on_purpose:
            assert choices, "the question answered wrong on purpose must be multiple choice"
            answer = next(c for c in choices if c != answer)
        if choices:
            li.locator(f'input[type=radio][value="{answer}"]').check()
        else:
            li.locator("input[type=text]").fill(answer)
    shot(kid, "partner-activity")

    # meanwhile the student's Schoology tab is used (its cookie rewritten): both logins hold
    schoology_tab.reload()
    expect(schoology_tab.get_by_test_id("who")).to_contain_text(student["name"])
    cookies = {c["name"]: c for c in browser.cookies()}
    assert cookies["clever_sim_session"]["path"] == "/"
    assert "session" in cookies, "the partner's own session cookie is missing"

    kid.get_by_role("button", name="Turn in").click()
    kid.wait_for_url(re.compile(re.escape(demo.partner_url) + r"/results/\w+"))
    result = kid.locator("#result")
    expect(result).to_have_attribute("data-sent", "true")
    expect(result).to_contain_text("Your score was sent to Schoology.")
    said = re.search(r"You got (\d+) of (\d+) right: ([\d.]+) / (\d+) points", result.inner_text())
    assert said, result.inner_text()
    right, total, given, maximum = said.groups()
    assert (int(right), int(total)) == (4, 5)
    lti = Decimal(given) / Decimal(maximum)                      # what Clever turns it into
    points, percent = shown(lti * MAX_POINTS), shown(lti * 100) + "%"
    shot(kid, "partner-result")
    schoology_tab.reload()  # back in Schoology after the partner: still the student
    expect(schoology_tab.get_by_test_id("who")).to_contain_text(student["name"])
    expect(schoology_tab.locator(f'tr[data-link-id="{link_id}"]')).to_be_visible()

    # --- the teacher's open gradebook updates by itself ------------------------------------
    cell = teacher.locator(f'tbody tr[data-user="{student["id"]}"] td.gb-cell').nth(
        links.index(link_id))
    expect(cell.locator(".gb-points")).to_have_text(points, timeout=LIVE_TIMEOUT_MS)
    expect(cell.locator(".gb-max")).to_have_text(f" / {shown(MAX_POINTS)}")
    expect(cell.locator(".gb-pct")).to_have_text(percent)
    expect(cell.locator(".gb-letter")).not_to_be_empty()
    expect(cell).to_have_attribute("title", re.compile(r"LTI 0?\.8"))
    # the row's total and the column's class average follow, live too
    expect(row_total.locator(".gb-total-points")).to_have_text(f"{points} / {shown(MAX_POINTS)}")
    expect(row_total.locator(".gb-total-pct")).to_have_text(percent)
    expect(average.locator(".gb-avg-pct")).to_have_text(percent)
    expect(average.locator(".gb-avg-n")).to_have_text("(1 graded)")
    assert teacher.evaluate("window.__notReloaded") is True, "the gradebook page was reloaded"
    shot(teacher, "gradebook-live-update")

    # --- cell detail: history and the LTI messages -----------------------------------------
    cell.locator("a.gb-points").click()
    teacher.wait_for_url(re.compile(r".*/gradebook/[^/]+$"))
    # a teacher-only page: the teacher's tab kept its login through the student's whole story
    assert teacher.url.startswith(f"{sim}/schoology/")
    expect(teacher.get_by_test_id("who")).to_contain_text(TEACHER)
    expect(teacher.get_by_test_id("other-personas")).to_contain_text(student["name"])
    expect(teacher.get_by_role("heading", level=1)).to_contain_text(student["name"])
    expect(teacher.get_by_role("heading", name="History (1 version)")).to_be_visible()
    history = teacher.locator("table.gb-history tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text(f"scoreGiven {given} / scoreMaximum {maximum}")
    expect(teacher.locator("dl.gb-facts")).to_contain_text(f"{points} / {shown(MAX_POINTS)}")
    expect(teacher.locator("#gb-payload")).to_contain_text(f'"assignmentID": "{ASSIGNMENT}"')
    pox = teacher.locator("#gb-pox")
    expect(pox).to_contain_text("replaceResultRequest")
    expect(pox).to_contain_text(f"{section_id}:{link_id}:{student['id']}")
    text_string = re.search(r"<textString>([^<]+)</textString>", pox.inner_text())
    assert text_string and Decimal(text_string.group(1)) == lti, pox.inner_text()
    expect(teacher.locator("#gb-ags")).to_contain_text('"scoreMaximum"')
    shot(teacher, "cell-detail")

    # --- inspector: the whole conversation is in the journal -------------------------------
    teacher.locator("nav").get_by_role("link", name="Inspector").click()
    journal = teacher.locator("table.in-journal tbody")
    grade_row = journal.locator("tr", has_text="/v1/grade")
    expect(grade_row).to_have_count(1)
    expect(grade_row).to_contain_text("POST")
    expect(grade_row).to_contain_text("200")
    expect(grade_row).to_contain_text(student["id"])
    expect(journal.locator("tr", has_text="/clever/assignments")).to_contain_text("out")
    expect(journal.locator("tr", has_text="/oauth/tokens").first).to_be_visible()
    shot(teacher, "inspector-list")


def test_switching_persona_in_one_tab_leaves_the_other_tabs_persona(demo, new_context, shot, ui):
    sim = demo.sim_url
    section = next(s for s in demo.sim.app.extensions["clever_sim"].roster["sections"]
                   if s["name"] == SECTION_NAME)
    people = {p["id"]: p for p in httpx.get(f"{sim}/_sim/personas",
                                             params={"role": "student"}).json()["data"]}
    first, second = (people[i] for i in section["students"][:2])
    browser = new_context()
    teacher = browser.new_page()
    ui.switch_persona(teacher, sim, TEACHER)
    kid = browser.new_page()
    assert ui.add_persona(kid, sim, first["name"], user_id=first["id"]) == "/u/1"

    # the student's tab switches to another student: the teacher's tab is still the teacher
    ui.switch_persona(kid, sim, second["name"], user_id=second["id"], slot="/u/1")
    teacher.reload()
    expect(teacher.get_by_test_id("who")).to_contain_text(TEACHER)
    expect(teacher.get_by_role("heading", name="Sections I teach")).to_be_visible()
    expect(kid.get_by_test_id("who")).to_contain_text(second["name"])
    shot(teacher, "teacher-tab-with-another-persona")

    # the teacher's tab opens the same page as the browser's other persona (the header's link):
    # that tab moves to slot 1; slot 0 and the other tab are unchanged
    teacher.get_by_test_id("other-personas").get_by_role("link", name=second["name"]).click()
    teacher.wait_for_url(f"{sim}/u/1/schoology")
    expect(teacher.get_by_test_id("who")).to_contain_text(second["name"])
    kid.reload()
    expect(kid.get_by_test_id("who")).to_contain_text(second["name"])
    third = browser.new_page()
    third.goto(f"{sim}/schoology")
    expect(third.get_by_test_id("who")).to_contain_text(TEACHER)
    # roles hold per tab: the student's tab sees its own grades, not the class's
    kid.goto(f"{sim}/u/1/schoology/sections/{section['id']}/gradebook")
    expect(kid.get_by_role("heading", level=1)).to_contain_text("my grades")
    assert kid.goto(f"{sim}/u/1/schoology/sections/{section['id']}/gradebook.csv").status == 403
    shot(third, "slot-0-still-the-teacher")


def test_add_materials_with_the_partner_down_shows_plain_words(demo, new_context, shot, ui):
    sim = demo.sim_url
    with socket.socket() as s:  # a port nothing listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    teacher = next(p for p in httpx.get(f"{sim}/_sim/personas", params={"role": "teacher"})
                   .json()["data"] if p["name"] == TEACHER)
    down = f"http://127.0.0.1:{port}"
    created = httpx.post(f"{sim}/_sim/apps", json={
        "name": "Offline Partner", "redirect_uris": [f"{down}/clever/callback"],
        "assignments_url": f"{down}/clever/assignments",
        "districts": [teacher["district"]]})
    assert created.status_code == 201, created.text

    page = new_context().new_page()
    ui.switch_persona(page, sim, TEACHER)
    page.get_by_role("link", name=SECTION_NAME).click()
    page.get_by_role("link", name="Add Materials").click()
    expect(page.locator("a.pick", has_text="Offline Partner")).to_contain_text(
        f"{down}/clever/assignments")
    with page.expect_navigation() as nav:
        page.locator("a.pick", has_text="Offline Partner").click()
    assert nav.value.status == 502  # an error page, not a crash (500)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Could not get the assignments from Offline Partner")
    expect(alert).to_contain_text(f"could not connect to {down}/clever/assignments")
    expect(alert).to_contain_text("connection refused")
    expect(alert.get_by_role("link", name="Retry")).to_be_visible()
    expect(page.locator("p.sg-small", has_text="Fetched live")).to_contain_text(
        f"GET {down}/clever/assignments")
    expect(page.locator("table.sg-table")).to_have_count(0)
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "Internal Server Error" not in body
    shot(page, "add-materials-partner-down")
    with page.expect_navigation() as retry:  # Retry fetches again and fails the same way
        alert.get_by_role("link", name="Retry").click()
    assert retry.value.status == 502
    expect(page.get_by_role("alert")).to_contain_text("connection refused")

    # the inspector has the outbound call, with the finding
    page.locator("nav").get_by_role("link", name="Inspector").click()
    expect(page.get_by_role("heading", name="Inspector", exact=True)).to_be_visible()
    page.select_option("select[name=direction]", value="outbound")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*direction=outbound.*"))
    row = page.locator("table.in-journal tbody tr", has_text="/clever/assignments")
    expect(row).to_have_count(2)  # the first try and the retry
    row = row.first
    expect(row).to_contain_text("out")
    expect(row.locator(".in-count")).to_have_text(re.compile(r"[1-9]"))
    shot(page, "inspector-outbound")
    row.locator("td").first.get_by_role("link").click()
    expect(page.locator("ul.in-findings")).to_contain_text(
        f"could not connect to {down}/clever/assignments")
    expect(page.locator("dl.gb-facts")).to_contain_text("outbound (simulator → partner)")
    shot(page, "inspector-entry")
