"""The QA engineer's click-through in a real browser (issue 15): live "Not linked yet",
streams given back when a page is left, rejected grades in plain sight, roles, the phone
layout, and every page checked by axe-core and screenshotted at both sizes."""

from __future__ import annotations

import re

import httpx
import pytest

from contract_tests.demo import DEMO_CLIENT_ID
from simulator.gradebook import routes as gradebook_routes

from . import expect

pytestmark = pytest.mark.browser

TEACHER = "Rebecca Alvarez"
SECTION_NAME = "Grade 5 Math – Period 2"


def section_of(demo, name: str = SECTION_NAME) -> dict:
    sim = demo.sim.app.extensions["clever_sim"]
    return next(s for s in sim.roster["sections"] if s["name"] == name)


def student_token(demo, student_id: str) -> str:
    resp = httpx.post(f"{demo.sim_url}/_sim/tokens",
                      json={"client_id": DEMO_CLIENT_ID, "user_id": student_id})
    assert resp.status_code == 201, resp.text
    return resp.json()["access_token"]


def post_grade(demo, token: str, **body) -> httpx.Response:
    return httpx.post(f"{demo.sim_url}/v1/grade", json=body,
                      headers={"Authorization": f"Bearer {token}"})


def teacher_gradebook(demo, new_context, ui):
    """A teacher's tab on the section's gradebook, live."""
    page = new_context().new_page()
    ui.switch_persona(page, demo.sim_url, TEACHER)
    page.goto(f"{demo.sim_url}/schoology/sections/{section_of(demo)['id']}/gradebook")
    expect(page.locator("#gb-live-status")).to_have_text("Live updates: on.")
    return page


def test_not_linked_yet_updates_live_without_a_reload(demo, new_context, ui, shot):
    page = teacher_gradebook(demo, new_context, ui)
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#gb-unlinked-none")).to_be_visible()
    expect(page.locator("#gb-unlinked")).to_be_hidden()
    section = section_of(demo)
    student = section["students"][0]
    resp = post_grade(demo, student_token(demo, student), assignmentID="not-yet-linked-1",
                      percentage=0.75)
    assert resp.status_code == 200, resp.text
    row = page.locator("#gb-unlinked tbody tr", has_text="not-yet-linked-1")
    expect(row).to_have_count(1)
    expect(page.locator("#gb-unlinked-none")).to_be_hidden()
    expect(row).to_contain_text("0.75")
    expect(row).to_contain_text("75%")
    expect(row).to_contain_text("Demo Partner")
    expect(row).to_contain_text("percentage 0.75")
    # a second POST for the same grade updates its row, not a new one
    post_grade(demo, student_token(demo, student), assignmentID="not-yet-linked-1", percentage=0.5)
    expect(row).to_contain_text("50%")
    expect(page.locator("#gb-unlinked tbody tr")).to_have_count(1)
    assert page.evaluate("window.__notReloaded") is True
    href = row.get_by_role("link").get_attribute("href")
    assert href.startswith(f"/schoology/sections/{section['id']}/gradebook/")
    shot(page, "not-linked-live")


def test_a_left_page_gives_its_live_stream_back(demo, new_context, ui):
    page = teacher_gradebook(demo, new_context, ui)
    app = demo.sim.app
    cap = gradebook_routes.streams(app).cap
    for _ in range(cap + 2):  # more reloads than the server has stream slots
        page.reload()
        expect(page.locator("#gb-live-status")).to_have_text("Live updates: on.")
    page.goto(f"{demo.sim_url}/schoology")
    page.wait_for_function("1", polling=100)  # let the server see the closed stream
    for _ in range(50):
        if gradebook_routes.streams(app).open == 0:
            break
        page.wait_for_timeout(100)
    assert gradebook_routes.streams(app).open == 0


def test_a_pass_fail_column_shows_pass_or_fail_live(demo, new_context, ui):
    section = section_of(demo)
    link = httpx.post(f"{demo.sim_url}/_sim/links", json={
        "section_id": section["id"], "client_id": DEMO_CLIENT_ID, "assignment_id": "pf1",
        "name": "Exit ticket", "max_points": 10, "grading_type": "pass_fail"}).json()
    page = teacher_gradebook(demo, new_context, ui)
    column = page.locator(f'thead th.gb-col[data-link="{link["id"]}"]')
    expect(column.locator(".gb-type")).to_have_text("Pass/Fail")
    links = [th.get_attribute("data-link") for th in page.locator("thead th.gb-col").all()]
    student = section["students"][0]
    cell = page.locator(f'tbody tr[data-user="{student}"] td.gb-cell').nth(links.index(link["id"]))
    post_grade(demo, student_token(demo, student), assignmentID="pf1", percentage=0.4)
    expect(cell.locator(".gb-points")).to_have_text("Fail")
    expect(cell.locator(".gb-pct")).to_have_text("40%")
    expect(cell.locator(".gb-points")).to_have_attribute("aria-label", re.compile(r"^Fail, .+, Exit ticket$"))
    post_grade(demo, student_token(demo, student), assignmentID="pf1", percentage=0.9)
    expect(cell.locator(".gb-points")).to_have_text("Pass")


def test_why_has_this_student_no_grade_answered_from_the_gradebook(demo, new_context, ui, shot):
    section = section_of(demo)
    link = httpx.post(f"{demo.sim_url}/_sim/links", json={
        "section_id": section["id"], "client_id": DEMO_CLIENT_ID, "assignment_id": "q9",
        "name": "Quiz nine", "max_points": 10}).json()
    student = section["students"][0]
    token = student_token(demo, student)
    assert post_grade(demo, token, assignmentID="q9", percentage=85).status_code == 400
    page = new_context().new_page()
    ui.switch_persona(page, demo.sim_url, TEACHER)
    page.goto(f"{demo.sim_url}/schoology/sections/{section['id']}/gradebook")
    links = [th.get_attribute("data-link") for th in page.locator("thead th.gb-col").all()]
    row = page.locator(f'tbody tr[data-user="{student}"]')
    cell = row.locator("td.gb-cell").nth(links.index(link["id"]))
    expect(cell.locator("a.gb-rejected")).to_contain_text("⚠ 1 rejected POST")
    expect(cell.locator(".gb-rejected-why")).to_have_text("percentage: is 85: must be between 0 and 1.0")
    shot(page, "gradebook-rejected")
    row.get_by_role("link", name=re.compile(r"^QA view")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("student")
    expect(page.locator("ul.in-findings")).to_contain_text("Fix: looks like 0–100; send 0.85 for 85%")
    expect(page.locator("table.in-journal tbody tr").first).to_contain_text("grade rejected")
    shot(page, "qa-view")
    # the rejected attempt, found by student, assignment and app in the inspector
    page.get_by_role("link", name=re.compile(r"^The 1 attempt in the inspector")).click()
    expect(page.locator("table.in-journal tbody tr")).to_have_count(1)
    expect(page.locator("table.in-journal tbody tr")).to_contain_text("send 0.85 for 85%")


def test_view_as_this_student_from_the_gradebook(demo, new_context, ui):
    section = section_of(demo)
    student = section["students"][0]
    page = teacher_gradebook(demo, new_context, ui)
    page.locator(f'tbody tr[data-user="{student}"]').get_by_role(
        "button", name=re.compile(r"^View as ")).click()
    # the student opens in a persona slot of their own; the teacher's stays the teacher's
    page.wait_for_url(f"{demo.sim_url}/u/1/schoology/sections/{section['id']}")
    expect(page.get_by_test_id("who")).to_contain_text("student")
    page.goto(f"{demo.sim_url}/u/1/schoology/sections/{section['id']}/gradebook")
    expect(page.locator("tbody tr[data-user]")).to_have_count(1)
    expect(page.get_by_role("heading", level=1)).to_contain_text("my grades")
    page.goto(f"{demo.sim_url}/schoology/sections/{section['id']}/gradebook")
    expect(page.locator("tbody tr[data-user]")).to_have_count(len(section["students"]))
