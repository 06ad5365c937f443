"""The fake Schoology gradebook: grid, letters, flags, not-linked grades, cell detail with
LTI messages, CSV/JSON exports, live updates (server-sent events), escaping and 404s."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import threading
import time
import unicodedata
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Iterator
from urllib.parse import quote

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import bearer, district_token, grade_ok, il_token, link, log_in
from simulator.app import create_app
from simulator.gradebook import domain
from simulator.gradebook import routes as gradebook_routes
from simulator.scoring import LTI11_NS
from simulator.serving import start_in_thread
from simulator.web import login_cookie

NS = {"x": LTI11_NS}


# --- helpers -------------------------------------------------------------------------

def section_with_scale(sim, title: str) -> dict:
    district = sim.roster["districts"][0]
    scale = next(s for s in district["schoology"]["grading_scales"] if s["title"] == title)
    return next(s for s in sim.roster["sections"]
                if s["district"] == district["id"] and s["schoology"]["grading_scale"] == scale["id"])


@pytest.fixture
def math(sim):
    """A section graded on the Standard A–F scale."""
    return section_with_scale(sim, "Standard A–F")


@pytest.fixture
def ela(sim):
    """A section graded on the Plus/Minus scale."""
    return section_with_scale(sim, "Plus/Minus")


@pytest.fixture
def dtoken(sim, district_id):
    return district_token(sim, district_id)


def user(sim, user_id: str) -> dict:
    return sim.store.get_user(user_id)[1]


def as_teacher(client, section: dict) -> None:
    """Log this browser in as the section's teacher (the gradebook is theirs)."""
    log_in(client, section["teacher"])


def snapshot(client, section: dict) -> dict:
    as_teacher(client, section)
    resp = client.get(f"/schoology/sections/{section['id']}/gradebook.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    return resp.get_json()


def cell_of(doc: dict, user_id: str, assignment_id: str) -> dict | None:
    found = [c for c in doc["cells"] if c["user_id"] == user_id and c["assignment_id"] == assignment_id]
    assert len(found) <= 1
    return found[0] if found else None


def page(client, section: dict) -> str:
    as_teacher(client, section)
    resp = client.get(f"/schoology/sections/{section['id']}/gradebook")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    return resp.get_data(as_text=True)


def td(page_html: str, user_id: str, link_id: str) -> str:
    """The text of one grid cell (tags stripped, entities decoded, whitespace collapsed):
    the row is the student's ``<tr data-user>``, the column the header's ``data-link``."""
    links = re.findall(r'<th scope="col" class="gb-col" data-link="([^"]+)"', page_html)
    row = re.search(r'<tr data-user="%s">(.*?)</tr>' % re.escape(user_id), page_html, re.S)
    assert row and link_id in links, f"no cell for {user_id}/{link_id}"
    cells = re.findall(r'<td class="gb-cell[^"]*"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert len(cells) == len(links)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", cells[links.index(link_id)])).split())


def pre(page_html: str, element_id: str) -> str:
    m = re.search(r'<pre[^>]*id="%s"[^>]*>(.*?)</pre>' % element_id, page_html, re.S)
    assert m, f"no <pre id={element_id}>"
    return html.unescape(m.group(1))


def detail(client, section: dict, grade_id: str) -> str:
    as_teacher(client, section)
    resp = client.get(f"/schoology/sections/{section['id']}/gradebook/{grade_id}")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    return resp.get_data(as_text=True)


# --- the grid ------------------------------------------------------------------------

def test_cells_show_points_percent_and_letter(client, sim, math, dtoken):
    a1 = link(client, math["id"], "a1", max_points=20, grading_category="8790852")
    a2 = link(client, math["id"], "a2", max_points=100)
    s1, s2 = math["students"][0], math["students"][1]
    grade_ok(client, dtoken, assignmentID="a1", userID=s1, percentage=0.8)
    grade_ok(client, dtoken, assignmentID="a2", userID=s1, scoreGiven=45, scoreMaximum=50)
    grade_ok(client, dtoken, assignmentID="a1", userID=s2, scoreGiven=2, scoreMaximum=3)

    doc = snapshot(client, math)
    c = cell_of(doc, s1, "a1")
    assert (c["lti_score"], c["points"], c["max_points"], c["percent"], c["letter"]) == \
        ("0.8", 16, 20, 80, "B")
    c = cell_of(doc, s1, "a2")
    assert (c["points"], c["percent"], c["letter"]) == (90, 90, "A")
    c = cell_of(doc, s2, "a1")
    assert c["lti_score"] == "0.666667" and c["display"]["points"] == "13.33"
    assert c["display"]["percent"] == "66.67%" and c["letter"] == "D"
    assert cell_of(doc, s2, "a2") is None

    assert [(a["assignment_id"], a["max_points"], a["category"]) for a in doc["assignments"]] == \
        [("a1", 20, "Homework"), ("a2", 100, None)]

    body = page(client, math)
    assert td(body, s1, a1["id"]) == "16 / 20 80% B"
    assert td(body, s1, a2["id"]) == "90 / 100 90% A"
    assert td(body, s2, a1["id"]) == "13.33 / 20 66.67% D"
    assert td(body, s2, a2["id"]) == "—"
    assert "Homework" in body and "20 pts" in body


def test_students_are_rows_sorted_by_last_name(client, sim, math):
    doc = snapshot(client, math)
    def as_read(text: str) -> str:  # a roster reads names case- and accent-insensitively
        return "".join(c for c in unicodedata.normalize("NFKD", text)
                       if not unicodedata.combining(c)).casefold()

    names = [(as_read(s["last"]), as_read(s["first"])) for s in doc["students"]]
    assert names == sorted(names) and len(names) == len(set(math["students"]))
    lasts = [s["last"] for s in doc["students"]]
    if "Núñez" in lasts and "Nwosu" in lasts:  # accents do not push a name to the end
        assert lasts.index("Núñez") < lasts.index("Nwosu")
    body = page(client, math)
    rows = re.findall(r'<th scope="row" class="gb-student"><bdi>([^<]+)</bdi><br>', body)
    assert [html.unescape(r) for r in rows] == \
        [f"{s['last']}, {s['first']}" for s in doc["students"]]


@pytest.mark.parametrize("lti, standard, plus_minus", [
    (0.97, "A", "A+"), (0.93, "A", "A"), (0.9, "A", "A-"), (0.88, "B", "B+"),
    (0.8999, "B", "B+"), (0.8, "B", "B-"), (0.65, "D", "D"), (0.61, "D", "D-"), (0.1, "F", "F"), (0, "F", "F"),
])
def test_letter_follows_the_sections_grading_scale(client, sim, math, ela, dtoken, lti, standard,
                                                   plus_minus):
    link(client, math["id"], "q1", max_points=20)
    link(client, ela["id"], "q1", max_points=20)
    grade_ok(client, dtoken, assignmentID="q1", userID=math["students"][0], percentage=lti)
    grade_ok(client, dtoken, assignmentID="q1", userID=ela["students"][0], percentage=lti)
    assert cell_of(snapshot(client, math), math["students"][0], "q1")["letter"] == standard
    assert cell_of(snapshot(client, ela), ela["students"][0], "q1")["letter"] == plus_minus


def test_plus_minus_points_with_decimals(client, sim, ela, dtoken):
    q = link(client, ela["id"], "q7", max_points=20)
    s = ela["students"][0]
    grade_ok(client, dtoken, assignmentID="q7", userID=s, percentage=0.88)
    assert td(page(client, ela), s, q["id"]) == "17.6 / 20 88% B+"


def test_overwrite_shows_the_latest_grade(client, sim, math, dtoken):
    a = link(client, math["id"], "a1", max_points=20)
    s = math["students"][0]
    first = grade_ok(client, dtoken, assignmentID="a1", userID=s, percentage=0.5)
    second = grade_ok(client, dtoken, assignmentID="a1", userID=s, scoreGiven=8, scoreMaximum=10)
    assert first["id"] == second["id"] and second["version"] == 2
    c = cell_of(snapshot(client, math), s, "a1")
    assert (c["points"], c["version"], c["grade_id"]) == (16, 2, first["id"])
    assert td(page(client, math), s, a["id"]) == "16 / 20 80% B"


def test_extra_credit_is_clamped_and_flagged(client, sim, math, dtoken):
    a = link(client, math["id"], "x1", max_points=20)
    s = math["students"][0]
    rec = grade_ok(client, dtoken, assignmentID="x1", userID=s, scoreGiven=25, scoreMaximum=20)
    assert rec["clamped"] is True
    c = cell_of(snapshot(client, math), s, "x1")
    assert (c["lti_score"], c["points"], c["percent"], c["letter"]) == ("1.0", 20, 100, "A")
    assert c["clamped"] is True and c["out_of_range"] is True
    assert c["raw"] == "scoreGiven 25 / scoreMaximum 20"
    text = td(page(client, math), s, a["id"])
    assert text.startswith("20 / 20 100% A") and "extra credit clamped to 1.0" in text
    assert "raw value out of range (scoreGiven 25 / scoreMaximum 20)" in text
    assert 'class="gb-cell gb-flagged"' in page(client, math)


def test_in_range_grades_are_not_flagged(client, sim, math, il_student_token):
    link(client, math["id"], "a1", max_points=20)
    grade_ok(client, il_student_token, assignmentID="a1", percentage=1)
    c = cell_of(snapshot(client, math), math["students"][0], "a1")
    assert c["clamped"] is False and c["out_of_range"] is False and c["display"]["flags"] == []


@pytest.fixture
def il_student_token(sim, math):
    return il_token(sim, math["students"][0])


def test_unlinked_grade_is_listed_below_and_joins_the_grid_once_linked(client, sim, math, dtoken):
    s = math["students"][0]
    rec = grade_ok(client, dtoken, assignmentID="later1", userID=s, percentage=0.7)
    assert rec["linked"] is False
    doc = snapshot(client, math)
    assert doc["cells"] == []
    assert [(n["assignment_id"], n["user_id"], n["lti_score"]) for n in doc["not_linked"]] == \
        [("later1", s, "0.7")]
    body = page(client, math)
    below = body.split('id="not-linked"', 1)[1]
    assert "later1" in below and html.escape(user(sim, s)["name"]["last"]) in below and "0.7" in below

    a = link(client, math["id"], "later1", max_points=50)
    doc = snapshot(client, math)
    assert doc["not_linked"] == []
    assert cell_of(doc, s, "later1")["points"] == 35
    assert td(page(client, math), s, a["id"]) == "35 / 50 70% C"


def test_grade_linked_in_another_of_the_students_sections_is_not_listed_as_unlinked(client, sim,
                                                                                    dtoken):
    sections = [s for s in sim.roster["sections"] if s["district"] == sim.roster["districts"][0]["id"]]
    first, second, shared = next((a, b, set(a["students"]) & set(b["students"]))
                                 for a in sections for b in sections
                                 if a is not b and set(a["students"]) & set(b["students"]))
    s = sorted(shared)[0]
    link(client, second["id"], "r1", max_points=10)
    grade_ok(client, dtoken, assignmentID="r1", userID=s, percentage=0.5)
    assert snapshot(client, first)["not_linked"] == [] and snapshot(client, first)["cells"] == []
    assert cell_of(snapshot(client, second), s, "r1")["points"] == 5


def test_grade_of_another_app_is_not_in_this_apps_column(client, sim, math, district_id):
    link(client, math["id"], "a1", max_points=20)
    other = client.post("/_sim/apps", json={"name": "Other", "redirect_uris": ["http://localhost:9/cb"]})
    other_token = other.get_json()["district_tokens"][district_id]
    s = math["students"][0]
    grade_ok(client, other_token, assignmentID="a1", userID=s, percentage=0.3)
    doc = snapshot(client, math)
    assert cell_of(doc, s, "a1") is None
    assert [(n["assignment_id"], n["client_id"]) for n in doc["not_linked"]] == \
        [("a1", other.get_json()["client_id"])]
    assert "Other" in page(client, math)


def test_section_without_links_explains_itself(client, math):
    body = page(client, math)
    assert "No Schoology assignment is linked in this section yet" in body


# --- cell detail ---------------------------------------------------------------------

def test_cell_detail_has_history_payload_and_lti_messages(client, sim, math, dtoken):
    a = link(client, math["id"], "a1", max_points=20)
    s = math["students"][0]
    grade_ok(client, dtoken, assignmentID="a1", userID=s, percentage=0.5, attempt=1)
    rec = grade_ok(client, dtoken, assignmentID="a1", userID=s, scoreGiven=8.0, scoreMaximum=10,
                attempt=2, durationSeconds=312)
    body = detail(client, math, rec["id"])

    assert "History (2 versions)" in body
    history = body.split("<h2>History", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>\s*<td>(\d+)</td><td><time[^>]*>([^<]*)</time></td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td>", history)
    assert [(r[0], r[2], html.unescape(r[3])) for r in rows] == [
        ("1", "percentage", "percentage 0.5"),
        ("2", "scoreGiven/scoreMaximum", "scoreGiven 8.0 / scoreMaximum 10")]
    assert "<code>0.5</code>" in history and "<code>0.8</code>" in history

    payload = json.loads(pre(body, "gb-payload"))
    assert payload == {"assignmentID": "a1", "userID": s, "scoreGiven": 8.0, "scoreMaximum": 10,
                       "attempt": 2, "durationSeconds": 312}
    assert '"scoreGiven": 8.0' in pre(body, "gb-payload")  # the partner's digits, exactly
    assert json.loads(pre(body, "gb-context")) == {"attempt": 2, "durationSeconds": 312}

    root = ET.fromstring(pre(body, "gb-pox").encode())
    assert root.tag == f"{{{LTI11_NS}}}imsx_POXEnvelopeRequest"
    assert root.findtext(".//x:resultScore/x:textString", namespaces=NS) == "0.8"
    assert root.findtext(".//x:resultScore/x:language", namespaces=NS) == "en"
    assert root.findtext(".//x:sourcedGUID/x:sourcedId", namespaces=NS) == f"{math['id']}:{a['id']}:{s}"
    assert root.findtext(".//x:imsx_messageIdentifier", namespaces=NS) == f"{rec['id']}-v2"
    assert root.findtext(".//x:imsx_version", namespaces=NS) == "V1.0"

    ags = json.loads(pre(body, "gb-ags"))
    assert list(ags) == ["userId", "scoreGiven", "scoreMaximum", "timestamp", "activityProgress",
                         "gradingProgress"]
    assert ags == {"userId": s, "scoreGiven": 16, "scoreMaximum": 20,
                   "timestamp": rec["last_modified"], "activityProgress": "Completed",
                   "gradingProgress": "FullyGraded"}
    assert "16 / 20" in body and "80%" in body


def test_detail_of_clamped_grade_sends_unclamped_ags_and_clamped_lti11(client, sim, math, dtoken):
    link(client, math["id"], "x1", max_points=20)
    rec = grade_ok(client, dtoken, assignmentID="x1", userID=math["students"][0], scoreGiven=11,
                scoreMaximum=10)
    body = detail(client, math, rec["id"])
    root = ET.fromstring(pre(body, "gb-pox").encode())
    assert root.findtext(".//x:textString", namespaces=NS) == "1.0"
    ags = json.loads(pre(body, "gb-ags"))
    assert (ags["scoreGiven"], ags["scoreMaximum"]) == (22, 20)
    assert "extra credit clamped to 1.0" in body
    assert "LTI 1.1 accepts 0–1.0" in body  # the warning, in the history


def test_detail_of_unlinked_grade_explains_why_no_lti_messages(client, sim, math, dtoken):
    rec = grade_ok(client, dtoken, assignmentID="nolink", userID=math["students"][0], percentage=0.4)
    body = detail(client, math, rec["id"])
    assert 'id="gb-pox"' not in body and "No teacher has linked assignment" in body
    assert "40%" in body


def test_partner_text_is_escaped_everywhere(client, sim, math, dtoken):
    hostile = "<script>alert(1)</script>"
    link(client, math["id"], "h1", max_points=10, name="<img src=x onerror=alert(2)>")
    s = math["students"][0]
    rec = grade_ok(client, dtoken, assignmentID="h1", userID=s, percentage=0.5, note=hostile,
                **{hostile: "key too"})
    unlinked = grade_ok(client, dtoken, assignmentID='"><svg onload=alert(3)>', userID=s, percentage=0.1)
    for body in (detail(client, math, rec["id"]), page(client, math),
                 detail(client, math, unlinked["id"])):
        assert "<script>alert" not in body and "<img src=x" not in body and "<svg onload" not in body
    d = detail(client, math, rec["id"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in d
    assert json.loads(pre(d, "gb-context"))["note"] == hostile
    assert "&lt;img src=x onerror=alert(2)&gt;" in page(client, math)
    resp = client.get(f"/schoology/sections/{math['id']}/gradebook")
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


# --- exports -------------------------------------------------------------------------

def read_csv(client, section: dict) -> list[list[str]]:
    as_teacher(client, section)
    resp = client.get(f"/schoology/sections/{section['id']}/gradebook.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    # Excel reads a CSV without a BOM as ANSI: the BOM makes "Nguyễn" open cleanly
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.data.startswith(b"\xef\xbb\xbf") and not resp.data.startswith(b"\xef\xbb\xbf" * 2)
    return list(csv.reader(io.StringIO(resp.data.decode("utf-8-sig"))))


def test_csv_has_a_row_per_student_and_four_columns_per_assignment(client, sim, math, dtoken):
    link(client, math["id"], "a1", max_points=20, name="Fractions quiz")
    link(client, math["id"], "a2", max_points=100)
    s = math["students"][0]
    grade_ok(client, dtoken, assignmentID="a1", userID=s, percentage=0.8)
    rows = read_csv(client, math)
    assert rows[0] == ["student_name", "student_id",
                       "Fractions quiz [a1] points (of 20)", "Fractions quiz [a1] percent",
                       "Fractions quiz [a1] letter", "Fractions quiz [a1] grade (Points)",
                       "a2 points (of 100)", "a2 percent", "a2 letter", "a2 grade (Points)"]
    doc = snapshot(client, math)
    assert [r[1] for r in rows[1:]] == [st["id"] for st in doc["students"]]
    row = next(r for r in rows if r[1] == s)
    u = user(sim, s)
    assert row == [f"{u['name']['last']}, {u['name']['first']}", s, "16", "80", "B", "16",
                   "", "", "", ""]


def test_csv_guards_against_formula_injection(client, sim, math, dtoken):
    link(client, math["id"], "f1", max_points=10, name="=HYPERLINK(\"http://evil\",\"x\")")
    link(client, math["id"], "f2", max_points=10, name="+1+1")
    link(client, math["id"], "f3", max_points=10, name="@SUM(A1)")
    link(client, math["id"], "f4", max_points=10, name="-2")
    header = read_csv(client, math)[0]
    for start in ("'=HYPERLINK(", "'+1+1 [f2]", "'@SUM(A1) [f3]", "'-2 [f4]"):
        assert sum(h.startswith(start) for h in header) == 4, (start, header)  # points/%/letter/grade
    assert not any(h.startswith(("=", "+", "-", "@")) for h in header)


@pytest.mark.parametrize("value, expected", [
    ("=1+2", "'=1+2"), ("+x", "'+x"), ("-x", "'-x"), ("@x", "'@x"), ("\tx", "'\tx"),
    ("safe", "safe"), ("", ""), (None, ""), ("a=b", "a=b"),
])
def test_csv_safe(value, expected):
    assert domain.csv_safe(value) == expected


def test_json_export_is_structured(client, sim, math, dtoken):
    link(client, math["id"], "a1", max_points=20)
    s = math["students"][0]
    rec = grade_ok(client, dtoken, assignmentID="a1", userID=s, percentage=0.8)
    as_teacher(client, math)
    resp = client.get(f"/schoology/sections/{math['id']}/gradebook.json?download=1")
    assert "attachment" in resp.headers["Content-Disposition"]
    doc = resp.get_json()
    assert set(doc) == {"section", "assignments", "students", "cells", "not_linked", "rejected",
                        "totals", "averages", "seq"}
    assert {"user_id": s, "points": 16, "max_points": 20, "percent": 80,
            "shown": {"points": "16 / 20", "percent": "80%"}} in doc["totals"]
    assert doc["averages"] == [{"link_id": doc["assignments"][0]["link_id"], "percent": 80,
                                "graded": 1, "shown": {"percent": "80%", "graded": "(1 graded)"}}]
    assert doc["section"]["id"] == math["id"] and doc["section"]["name"] == math["name"]
    assert doc["section"]["grading_scale"]["title"] == "Standard A–F"
    assert doc["section"]["grading_scale"]["levels"][0] == {"letter": "A", "min_percent": 90}
    assert set(doc["students"][0]) == {"id", "first", "last"}
    c = doc["cells"][0]
    assert {"grade_id", "user_id", "assignment_id", "link_id", "lti_score", "points", "percent",
            "letter", "clamped", "version", "detail_url"} <= set(c)
    assert (c["grade_id"], c["lti_score"], c["points"], c["percent"], c["letter"]) == \
        (rec["id"], "0.8", 16, 80, "B")
    assert c["detail_url"] == f"/schoology/sections/{math['id']}/gradebook/{rec['id']}"
    assert doc["seq"] >= 1


def test_json_export_built_cell_by_cell_is_the_whole_document_encoded_at_once(app, client, sim, math,
                                                                              dtoken):
    """The export builds each cell's dict only while encoding it; the bytes are those of the
    whole document built first and encoded in one go (LTI messages, detail links, not-linked)."""
    link(client, math["id"], "a1", max_points=20)
    for n, student in enumerate(math["students"][:3]):
        grade_ok(client, dtoken, assignmentID="a1", userID=student, percentage=0.5 + n / 10)
        grade_ok(client, dtoken, assignmentID="not-linked", userID=student, percentage=0.25)
    as_teacher(client, math)
    got = client.get(f"/schoology/sections/{math['id']}/gradebook.json").data
    with app.test_request_context():
        grid = gradebook_routes._grid(math, lti=True)
        whole = domain.json_export(grid, gradebook_routes._detail_prefix(math["id"]))
    assert isinstance(whole["cells"], list) and len(whole["cells"]) == 3
    assert len(whole["not_linked"]) == 3
    assert all(c["lti"]["lti11"] and c["lti"]["lti13"] for c in whole["cells"])
    assert got == gradebook_routes._EXPORT.encode(whole).encode()


def test_only_the_json_export_grid_keeps_grade_records(client, sim, math, dtoken):
    """A cell's grade record (~1 KB of decoded JSON) is kept only where the LTI messages are
    built from it: linked cells of the JSON export's grid; never a not-linked cell."""
    link(client, math["id"], "a1", max_points=20)
    student = math["students"][0]
    linked = grade_ok(client, dtoken, assignmentID="a1", userID=student, percentage=0.8)
    grade_ok(client, dtoken, assignmentID="elsewhere", userID=student, percentage=0.4)
    page_grid = domain.build_grid(sim.schoology, math)
    export_grid = domain.build_grid(sim.schoology, math, lti=True)
    for grid in (page_grid, export_grid):
        assert len(grid.cells) == 1 and len(grid.not_linked) == 1
        assert grid.not_linked[0][1].record is None
    [page_cell], [export_cell] = page_grid.cells.values(), export_grid.cells.values()
    assert page_cell.record is None
    assert export_cell.record["id"] == linked["id"] and export_cell.record["lti_score"] == "0.8"
    assert page_cell.text_values() == export_cell.text_values()


def test_whole_section_renders_take_turns(app, sim, math, dtoken, client, monkeypatch):
    """The page and both exports build the whole grid; concurrent requests take turns (their
    peaks would stack in the server's memory), and every one is answered."""
    link(client, math["id"], "a1", max_points=20)
    grade_ok(client, dtoken, assignmentID="a1", userID=math["students"][0], percentage=0.8)
    inside, most, guard = [0], [0], threading.Lock()
    real = domain.build_grid

    def counting(store, section, **kwargs):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.005)  # gives up the interpreter: an ungated render would enter now
            return real(store, section, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(domain, "build_grid", counting)
    statuses: list[int] = []

    def browse(path: str) -> None:
        browser = app.test_client()
        as_teacher(browser, math)
        statuses.append(browser.get(path).status_code)

    paths = [f"/schoology/sections/{math['id']}/gradebook{ext}" for ext in ("", ".json", ".csv")]
    threads = [threading.Thread(target=browse, args=(p,)) for p in paths * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 12
    assert most[0] == 1


# --- sections list -------------------------------------------------------------------

def test_sections_list_links_every_gradebook(client, sim):
    body = client.get("/schoology/gradebook").get_data(as_text=True)
    for s in sim.roster["sections"]:
        assert f'href="/schoology/sections/{s["id"]}/gradebook"' in body
        assert html.escape(s["name"]) in body


def test_sections_list_pages(client, sim, monkeypatch):
    monkeypatch.setattr(domain, "SECTIONS_PER_PAGE", 2)
    seen, url, pages = [], "/schoology/gradebook", 0
    while url:
        body = client.get(url).get_data(as_text=True)
        ids = re.findall(r'href="/schoology/sections/([0-9a-f]+)/gradebook"', body)
        assert 1 <= len(ids) <= 2
        seen += ids
        nxt = re.search(r'rel="next" href="([^"]+)"', body)
        url = html.unescape(nxt.group(1)) if nxt else None
        pages += 1
        if pages == 2:
            back = re.search(r'rel="prev" href="([^"]+)"', body)
            prev_ids = re.findall(r'href="/schoology/sections/([0-9a-f]+)/gradebook"',
                                  client.get(html.unescape(back.group(1))).get_data(as_text=True))
            assert prev_ids == seen[:2]
    every = sorted(s["id"] for s in sim.roster["sections"])
    assert seen == every and pages == (len(every) + 1) // 2 == 4


# --- 404s ----------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["gradebook", "gradebook.csv", "gradebook.json",
                                    "gradebook/events", "gradebook/0123456789abcdef01234567"])
def test_unknown_section_is_a_friendly_404(client, suffix):
    resp = client.get(f"/schoology/sections/nope%3Cb%3E/{suffix}")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    body = resp.get_data(as_text=True)
    assert "Section not found" in body and "nope&lt;b&gt;" in body


def test_unknown_grade_and_grade_of_another_section_are_404(client, sim, math, dtoken):
    as_teacher(client, math)
    resp = client.get(f"/schoology/sections/{math['id']}/gradebook/0123456789abcdef01234567")
    assert resp.status_code == 404 and "Grade not found" in resp.get_data(as_text=True)
    outsider = next(s for s in sim.roster["users"] if "student" in s["roles"]
                    and s["district"] == math["district"] and s["id"] not in math["students"])
    rec = grade_ok(client, dtoken, assignmentID="a1", userID=outsider["id"], percentage=0.5)
    resp = client.get(f"/schoology/sections/{math['id']}/gradebook/{rec['id']}")
    assert resp.status_code == 404 and "Grade not found" in resp.get_data(as_text=True)


# --- live updates --------------------------------------------------------------------

def test_page_works_without_script_and_wires_the_live_script(client, math):
    body = page(client, math)
    assert 'data-events-url="/schoology/sections/%s/gradebook/events"' % math["id"] in body
    assert 'data-snapshot-url="/schoology/sections/%s/gradebook.json"' % math["id"] in body
    assert '<script src="/static/live.js" defer></script>' in body
    with client.get("/static/live.js") as resp:
        script = resp.get_data(as_text=True)
    assert "textContent" in script and "innerHTML" not in script and "EventSource" in script


def read_events(lines, until: str, timeout: float) -> list[tuple[str, dict, str | None]]:
    """Parse SSE lines until an event named ``until`` (or the stream ends)."""
    events, name, data, eid = [], None, [], None
    deadline = time.monotonic() + timeout
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line.startswith("id:"):
            eid = line[3:].strip()
        elif line == "" and name:
            events.append((name, json.loads("\n".join(data)), eid))
            if name == until:
                return events
            name, data, eid = None, [], None
        assert time.monotonic() < deadline, f"no {until} event within {timeout}s: {events}"
    return events


def test_an_open_events_stream_receives_each_grade_posted():
    # A short heartbeat lets the server notice the closed stream quickly when the test ends.
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", "GRADEBOOK_SSE_HEARTBEAT_S": 0.2},
                     environ={})
    running = start_in_thread(app)
    try:
        s = app.extensions["clever_sim"]
        section = section_with_scale(s, "Standard A–F")
        client = app.test_client()
        a = link(client, section["id"], "live1", max_points=20)
        cookie = login_cookie(app, section["teacher"])
        token = district_token(s, section["district"])
        student = section["students"][0]
        got: list = []
        opened = threading.Event()

        def listen():
            with httpx.Client(base_url=running.url, timeout=10, cookies=cookie) as http:
                with http.stream("GET", f"/schoology/sections/{section['id']}/gradebook/events") as r:
                    got.append(r.headers["content-type"])
                    opened.set()
                    got.append(read_events(r.iter_lines(), "grade", 8))

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        assert opened.wait(5)
        time.sleep(0.2)
        with httpx.Client(base_url=running.url) as http:
            resp = http.post("/v1/grade", json={"assignmentID": "live1", "userID": student,
                                                "percentage": 0.8}, headers=bearer(token))
            assert resp.status_code == 200
        t.join(5)
        assert not t.is_alive()  # the grade's event reached the open stream
        # the server notices the closed stream at its next heartbeat and frees the thread
        deadline = time.monotonic() + 5
        while gradebook_routes.streams(app).open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gradebook_routes.streams(app).open == 0
        assert got[0].startswith("text/event-stream")
        name, data, eid = got[1][-1]
        assert name == "grade"
        assert (data["user_id"], data["assignment_id"], data["link_id"]) == (student, "live1", a["id"])
        assert data["cell"]["points"] == "16" and data["cell"]["percent"] == "80%"
        assert data["cell"]["letter"] == "B" and eid == str(data["seq"])
        assert data["detail_url"] == f"/schoology/sections/{section['id']}/gradebook/{data['grade_id']}"
    finally:
        running.stop()


@contextmanager
def stream_setup(**cfg) -> Iterator[tuple[Flask, Any, dict, FlaskClient]]:
    """A simulator with these gradebook-stream settings and a section on the A–F scale:
    ``(app, sim, section, test client)``; the store is closed after."""
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", **cfg}, environ={})
    try:
        s = app.extensions["clever_sim"]
        yield app, s, section_with_scale(s, "Standard A–F"), app.test_client()
    finally:
        app.extensions["clever_sim"].close()


def test_events_resume_from_last_event_id_and_skip_other_sections():
    with stream_setup(GRADEBOOK_SSE_MAX_S=1.5, GRADEBOOK_SSE_HEARTBEAT_S=0.3) as (app, s, section, client):
        link(client, section["id"], "e1", max_points=10)
        token = district_token(s, section["district"])
        outsider = next(u for u in s.roster["users"] if "student" in u["roles"]
                        and u["district"] == section["district"] and u["id"] not in section["students"])
        before = s.store.max_grade_seq()
        grade_ok(client, token, assignmentID="e1", userID=outsider["id"], percentage=0.2)
        mine = grade_ok(client, token, assignmentID="e1", userID=section["students"][0], percentage=0.9)
        unlinked = grade_ok(client, token, assignmentID="u9", userID=section["students"][1], percentage=0.3)
        as_teacher(client, section)
        resp = client.get(f"/schoology/sections/{section['id']}/gradebook/events",
                          headers={"Last-Event-ID": str(before)}, buffered=False)
        assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
        text, events = drain(resp.response, resp)
        assert text.startswith("retry: ")
        grades = [e for e in events if e[0] == "grade"]
        assert [g[1]["grade_id"] for g in grades] == [mine["id"], unlinked["id"]]
        assert grades[0][1]["cell"]["letter"] == "A" and grades[1][1]["link_id"] is None
        assert events[-1][0] == "bye"
        assert ": heartbeat" in text


def stream_events(client, section: dict, after_seq: int, query: str = "") -> list:
    """Every event of one short stream (the app's GRADEBOOK_SSE_MAX_S ends it) from ``after_seq``."""
    resp = client.get(f"/schoology/sections/{section['id']}/gradebook/events",
                      query_string={"q": query} if query else {},
                      headers={"Last-Event-ID": str(after_seq)}, buffered=False)
    assert resp.status_code == 200
    return drain(resp.response, resp)[1]


def drain(chunks, resp) -> tuple[str, list]:
    """The rest of a streamed response (to its "bye"): its text and its events."""
    text = "".join(chunk.decode() for chunk in chunks)
    resp.close()
    return text, read_events(iter(text.split("\n")), "bye", 5)


def test_grade_events_carry_the_rows_total_and_the_columns_class_average():
    with stream_setup(GRADEBOOK_SSE_MAX_S=1.5, GRADEBOOK_SSE_HEARTBEAT_S=0.2) as (app, s, section, client):
        a = link(client, section["id"], "t1", max_points=20)
        b = link(client, section["id"], "t2", max_points=10)
        off = link(client, section["id"], "t3", max_points=50, grading_enabled=False)
        token = district_token(s, section["district"])
        first, second = section["students"][:2]
        before = s.store.max_grade_seq()
        as_teacher(client, section)
        resp = client.get(f"/schoology/sections/{section['id']}/gradebook/events", buffered=False)
        chunks = iter(resp.response)
        assert next(chunks).decode().startswith("retry:")  # the stream holds the grid now
        poster = app.test_client()
        grade_ok(poster, token, assignmentID="t1", userID=first, percentage=0.8)    # 16 / 20
        grade_ok(poster, token, assignmentID="t2", userID=first, percentage=0.55)   # 5.5 / 10
        grade_ok(poster, token, assignmentID="t1", userID=second, percentage=0.5)   # 10 / 20
        grade_ok(poster, token, assignmentID="t3", userID=second, percentage=1)     # grading off
        grades = [d for name, d, _ in drain(chunks, resp)[1] if name == "grade"]
        assert [(d["user_id"], d["link_id"]) for d in grades] == [
            (first, a["id"]), (first, b["id"]), (second, a["id"]), (second, off["id"])]
        # each event: the row's total and the column's average as they stand after it
        assert [d["total"] for d in grades] == [
            {"points": "16 / 20", "percent": "80%"}, {"points": "21.5 / 30", "percent": "71.67%"},
            {"points": "10 / 20", "percent": "50%"},
            {"points": "10 / 20", "percent": "50%"}]  # a column with grading off adds nothing
        assert [d["average"] for d in grades] == [
            {"percent": "80%", "graded": "(1 graded)"}, {"percent": "55%", "graded": "(1 graded)"},
            {"percent": "65%", "graded": "(2 graded)"}, {"percent": "100%", "graded": "(1 graded)"}]
        # the page shows the same texts on reload
        body = page(client, section)
        assert re.search(r'<span class="gb-total-points">21.5 / 30</span> '
                         r'<span class="muted gb-total-pct">71.67%</span>', body)
        assert re.search(rf'data-link="{a["id"]}"><span class="gb-avg-pct">65%</span> '
                         r'<span class="muted sg-small gb-avg-n">\(2 graded\)</span>', body)
        # a reconnect (Last-Event-ID) replays the grades with the totals as they stand now; a
        # filtered page's stream averages over the students its filter keeps
        name = s.store.get_user(second)[1]["name"]["last"]
        grades = [d for n, d, _ in stream_events(client, section, before, name) if n == "grade"]
        assert grades[2]["average"] == {"percent": "50%", "graded": "(1 graded)"}
        assert grades[0]["total"] == {"points": "21.5 / 30", "percent": "71.67%"}  # per row


@pytest.mark.parametrize("last_event_id", ["²", "-1", "abc", "9" * 40, ""])
def test_events_ignore_unreadable_last_event_ids(last_event_id):
    with stream_setup(GRADEBOOK_SSE_MAX_S=0.2) as (app, _, section, client):
        as_teacher(client, section)
        resp = client.get(f"/schoology/sections/{section['id']}/gradebook/events",
                          headers={"Last-Event-ID": last_event_id}, buffered=False)
        assert resp.status_code == 200
        text = "".join(chunk.decode() for chunk in resp.response)
        resp.close()
        assert text.startswith("retry: ") and "event: bye" in text


def test_events_tell_the_page_when_assignments_change():
    with stream_setup(GRADEBOOK_SSE_MAX_S=3) as (app, _, section, client):
        as_teacher(client, section)
        resp = client.get(f"/schoology/sections/{section['id']}/gradebook/events", buffered=False)
        chunks = iter(resp.response)
        assert next(chunks).decode().startswith("retry:")
        threading.Timer(0.3, lambda: link(app.test_client(), section["id"], "new1")).start()
        text = next(chunks).decode()
        resp.close()
        assert "event: layout" in text and "assignments changed" in text


def test_events_streams_are_capped_and_released():
    with stream_setup(GRADEBOOK_SSE_MAX_STREAMS=1, GRADEBOOK_SSE_MAX_S=5) as (app, _, section, client):
        url = f"/schoology/sections/{section['id']}/gradebook/events"
        as_teacher(client, section)
        first = client.get(url, buffered=False)
        assert first.status_code == 200
        refused = client.get(url, buffered=False)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
        assert gradebook_routes.streams(app).open == 1
        first.close()
        assert gradebook_routes.streams(app).open == 0
        again = client.get(url, buffered=False)
        assert again.status_code == 200
        again.close()


# --- domain units --------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    ("16", "16"), ("16.0", "16"), ("16.5", "16.5"), ("13.333333", "13.33"), ("0.005", "0.01"),
    ("0.004", "0"), ("99.995", "100"), ("0", "0"),
])
def test_two_places(value, text):
    assert domain.two_places(Decimal(value)) == text


def test_letter_is_the_highest_level_whose_minimum_is_reached():
    district = {"schoology": {"grading_scales": [{"id": "s", "title": "S", "levels": [
        {"letter": "F", "min_percent": 0}, {"letter": "A", "min_percent": 90},
        {"letter": "B", "min_percent": 80.5}]}]}}
    scale = domain.find_scale(district, "s")
    assert [scale.letter(Decimal(p)) for p in ("90", "89.99", "80.5", "80.49", "0")] == \
        ["A", "B", "B", "F", "F"]
    assert domain.find_scale(district, "missing") is None
    assert domain.find_scale(None, "s") is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section_id=st.text(min_size=1, max_size=40), grade_id=st.text(min_size=1, max_size=40),
       suffix=st.sampled_from(["gradebook", "gradebook.csv", "gradebook.json", "gradebook/{g}",
                               "gradebook/events?after_seq={g}"]))
def test_any_section_or_grade_id_is_a_404_not_a_500(client, section_id, grade_id, suffix):
    path = f"/schoology/sections/{quote(section_id, safe='')}/" + \
        suffix.format(g=quote(grade_id, safe=""))
    resp = client.get(path)
    # An id of "/" collapses into another route ("//" is merged, as Clever does): that page's
    # own answer (401: nobody logged in) is right too. Never a 5xx.
    assert resp.status_code in (404, 308, 401), (path, resp.status_code)


# --- rejected grade POSTs ------------------------------------------------------------

def test_rejected_grade_posts_show_on_the_cell_with_the_last_error_and_a_journal_link(
        client, sim, math, dtoken):
    a1 = link(client, math["id"], "a1", max_points=20)
    s1, s2 = math["students"][0], math["students"][1]
    for body in ({"assignmentID": "a1", "userID": s1, "percentage": 5},
                 {"assignmentID": "a1", "userID": s1, "percentage": 80}):
        resp = client.post("/v1/grade", json=body, headers=bearer(dtoken))
        assert resp.status_code == 400
    body = page(client, math)
    name = domain.student_of(s1, user(sim, s1)).name
    assert td(body, s1, a1["id"]) == \
        f"— ⚠ 2 rejected POSTs for {name}, a1 percentage: is 80: must be between 0 and 1.0"
    assert td(body, s2, a1["id"]) == "—"  # nothing tried, nothing shown
    url = re.search(r'<a class="gb-rejected" href="([^"]+)"', body).group(1)
    journal = client.get(html.unescape(url))
    assert journal.status_code == 200
    rows = re.findall(r"<tr>\s*<td><a href=\"/inspector/\d+\"", journal.get_data(as_text=True))
    assert len(rows) == 2  # found by student, assignment and app, with a district-app token

    doc = snapshot(client, math)
    (r,) = doc["rejected"]
    assert (r["user_id"], r["assignment_id"], r["count"], r["last_status"]) == (s1, "a1", 2, 400)
    assert r["last_error"] == "percentage: is 80: must be between 0 and 1.0"
    assert r["last_hint"] == "looks like 0–100; send 0.8 for 80%"

    # an accepted grade fills the cell; the rejections stay listed (they happened)
    grade_ok(client, dtoken, assignmentID="a1", userID=s1, percentage=0.8)
    assert td(page(client, math), s1, a1["id"]).startswith("16 / 20 80% B ⚠ 2 rejected")


def test_rejected_posts_for_unlinked_assignments_and_other_sections_students(client, sim, math,
                                                                             dtoken):
    s1 = math["students"][0]
    outsider = next(u["id"] for u in sim.roster["users"]
                    if "student" in u["roles"] and u["id"] not in math["students"]
                    and u.get("district") == math["district"])
    for who in (s1, outsider):
        resp = client.post("/v1/grade", json={"assignmentID": "zz9", "userID": who,
                                              "scoreGiven": 3}, headers=bearer(dtoken))
        assert resp.status_code == 400
    body = page(client, math)
    table = body.split('id="rejected"', 1)[1]
    assert "<code>zz9</code>" in table and "1 rejected POST<" in table
    assert "Fix: " in table
    assert [r["user_id"] for r in snapshot(client, math)["rejected"]] == [s1]


def test_rejected_counts_follow_the_journal_as_it_drops_its_oldest_entries(client, sim, math,
                                                                           dtoken):
    s1 = math["students"][0]
    sim.journal.cap = 3  # the gradebook counts what the journal still holds, nothing older
    for pct in (5, 6, 7):
        resp = client.post("/v1/grade", json={"assignmentID": "a1", "userID": s1,
                                              "percentage": pct}, headers=bearer(dtoken))
        assert resp.status_code == 400
    (r,) = snapshot(client, math)["rejected"]
    assert (r["count"], r["last_error"]) == (3, "percentage: is 7: must be between 0 and 1.0")
    client.get("/v3.0/me", headers=bearer(dtoken))  # journaled: the oldest rejection goes
    (r,) = snapshot(client, math)["rejected"]
    assert (r["count"], r["last_error"]) == (2, "percentage: is 7: must be between 0 and 1.0")
    for _ in range(2):
        client.get("/v3.0/me", headers=bearer(dtoken))
    assert snapshot(client, math)["rejected"] == []
    sim.journal.clear()
    client.post("/v1/grade", json={"assignmentID": "a1", "userID": s1, "percentage": 9},
                headers=bearer(dtoken))
    assert [r["count"] for r in snapshot(client, math)["rejected"]] == [1]


# --- who may see a gradebook -----------------------------------------------------------

def gradebook_urls(section: dict, grade_id: str) -> list[str]:
    base = f"/schoology/sections/{section['id']}/gradebook"
    return [base, f"{base}/{grade_id}", f"{base}.csv", f"{base}.json", f"{base}/events"]


def test_logged_out_visitors_see_no_gradebook_and_get_a_one_click_switch_back(client, sim, math,
                                                                              dtoken):
    rec = grade_ok(client, dtoken, assignmentID="a1", userID=math["students"][0], percentage=0.8)
    for url in gradebook_urls(math, rec["id"]):
        resp = client.get(url)
        assert resp.status_code == 401 and resp.mimetype == "text/html", url
        text = resp.get_data(as_text=True)
        assert "Log in to see this gradebook" in text and "José" not in text
    page_html = client.get(gradebook_urls(math, rec["id"])[0]).get_data(as_text=True)
    teacher = domain.student_of(math["teacher"], user(sim, math["teacher"])).name
    assert f"View as {teacher} (teacher)" in page_html
    csrf = re.search(r'name="csrf" value="([^"]+)"', page_html).group(1)
    back = client.post("/schoology/persona", data={"csrf": csrf, "user_id": math["teacher"],
                                                   "next": f"/schoology/sections/{math['id']}/gradebook"})
    assert back.status_code == 303
    assert back.headers["Location"] == f"/schoology/sections/{math['id']}/gradebook"
    assert client.get(back.headers["Location"]).status_code == 200


def test_a_student_sees_only_their_own_grades(client, sim, math, dtoken):
    a1 = link(client, math["id"], "a1", max_points=20)
    me, other = math["students"][0], math["students"][1]
    mine = grade_ok(client, dtoken, assignmentID="a1", userID=me, percentage=0.8)
    theirs = grade_ok(client, dtoken, assignmentID="a1", userID=other, percentage=0.3)
    grade_ok(client, dtoken, assignmentID="u1", userID=other, percentage=0.3)  # not linked
    client.post("/v1/grade", json={"assignmentID": "a1", "userID": other, "percentage": 7},
                headers=bearer(dtoken))
    log_in(client, me)
    resp = client.get(f"/schoology/sections/{math['id']}/gradebook")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert re.findall(r'<tr data-user="([^"]+)"', body) == [me]
    assert td(body, me, a1["id"]) == "16 / 20 80% B"
    assert other not in body and "live.js" not in body and "gradebook.csv" not in body
    assert "my grades" in body
    base = f"/schoology/sections/{math['id']}/gradebook"
    assert client.get(f"{base}/{mine['id']}").status_code == 200
    assert client.get(f"{base}/{theirs['id']}").status_code == 404
    for url in (f"{base}.csv", f"{base}.json", f"{base}/events"):
        resp = client.get(url)
        assert resp.status_code == 403 and "Students see their own grades only" in \
            resp.get_data(as_text=True), url


def test_a_teacher_of_another_section_is_refused(client, sim, math, ela):
    other_teacher = next(s["teacher"] for s in sim.roster["sections"]
                         if s["teacher"] != math["teacher"])
    log_in(client, other_teacher)
    resp = client.get(f"/schoology/sections/{math['id']}/gradebook")
    assert resp.status_code == 403 and "Not your section" in resp.get_data(as_text=True)


# --- grading types ---------------------------------------------------------------------

@pytest.mark.parametrize("grading_type, percentage, cell_text, header, csv_grade", [
    ("points", 0.8, "16 / 20 80% B", "Points", "16"),
    ("percentage", 0.8, "80% B", "Percentage", "80%"),
    ("letter", 0.8, "B 80%", "Letter grade", "B"),
    ("pass_fail", 0.8, "Pass 80%", "Pass/Fail", "Pass"),
    ("pass_fail", 0.6, "Pass 60%", "Pass/Fail", "Pass"),
    ("pass_fail", 0.59, "Fail 59%", "Pass/Fail", "Fail"),
])
def test_the_grading_type_decides_what_cells_headers_and_exports_show(
        client, sim, math, dtoken, grading_type, percentage, cell_text, header, csv_grade):
    a = link(client, math["id"], "t1", max_points=20, grading_type=grading_type, name="Typed")
    s = math["students"][0]
    grade_ok(client, dtoken, assignmentID="t1", userID=s, percentage=percentage)
    body = page(client, math)
    assert td(body, s, a["id"]) == cell_text
    column = re.search(r'data-link="%s">(.*?)</th>' % a["id"], body, re.S).group(1)
    assert f'<span class="gb-meta gb-type">{header}</span>' in column
    rows = read_csv(client, math)
    assert rows[0][-1] == f"Typed [t1] grade ({header})"
    assert next(r for r in rows if r[1] == s)[-1] == csv_grade
    doc = snapshot(client, math)
    assert doc["assignments"][0]["grading_type"] == grading_type
    cell = cell_of(doc, s, "t1")
    assert cell["display"]["shown"] == cell_text.split(" ")[0]


# --- filter, sort, totals --------------------------------------------------------------

def test_gradebook_filters_sorts_and_totals(client, sim, math, dtoken):
    a1 = link(client, math["id"], "a1", max_points=20)
    a2 = link(client, math["id"], "a2", max_points=10)
    link(client, math["id"], "off", max_points=50, grading_enabled=False)
    s1, s2, s3 = math["students"][:3]
    grade_ok(client, dtoken, assignmentID="a1", userID=s1, percentage=0.5)   # 10 / 20
    grade_ok(client, dtoken, assignmentID="a2", userID=s1, percentage=1)     # 10 / 10
    grade_ok(client, dtoken, assignmentID="off", userID=s1, percentage=1)    # grading off: not totalled
    grade_ok(client, dtoken, assignmentID="a1", userID=s2, percentage=0.9)   # 18 / 20
    body = page(client, math)
    row = re.search(r'<tr data-user="%s">.*?<td class="gb-total">(.*?)</td>' % s1, body, re.S)
    assert " ".join(re.sub(r"<[^>]+>", " ", row.group(1)).split()) == "20 / 30 66.67%"
    foot = body.split("<tfoot>", 1)[1].split("</tfoot>", 1)[0]
    averages = [" ".join(re.sub(r"<[^>]+>", " ", t).split())
                for t in re.findall(r'<td class="gb-average"[^>]*>(.*?)</td>', foot, re.S)]
    assert averages == ["70% (2 graded)", "100% (1 graded)", "100% (1 graded)"]

    def order(query: str) -> list[str]:
        resp = client.get(f"/schoology/sections/{math['id']}/gradebook{query}")
        assert resp.status_code == 200
        return re.findall(r'<tr data-user="([^"]+)"', resp.get_data(as_text=True))

    everyone = order("")
    assert order(f"?sort={a1['id']}&order=desc")[:2] == [s2, s1]        # 90% then 50%, then ungraded
    assert order(f"?sort={a1['id']}")[:2] == [s1, s2]
    assert order("?sort=total&order=desc")[:2] == [s2, s1] and s3 in order("?sort=total")[2:]
    assert order("?sort=nonsense") == everyone                           # unknown: name order, no error
    name = domain.student_of(s2, user(sim, s2))
    assert order(f"?q={quote(name.name.upper())}") == [s2]
    assert order(f"?q={s3}") == [s3]
    assert order("?q=nobody-has-this-name") == []
    assert "0 of" in client.get(f"/schoology/sections/{math['id']}/gradebook?q=zzzz").get_data(as_text=True)
    assert a2  # linked


def test_grade_page_shows_every_versions_payload_and_what_changed(client, sim, math, dtoken):
    link(client, math["id"], "a1", max_points=20)
    s = math["students"][0]
    grade_ok(client, dtoken, assignmentID="a1", userID=s, percentage=0.5, attempt=1)
    grade_ok(client, dtoken, assignmentID="a1", userID=s, percentage=0.5, attempt=1)
    rec = grade_ok(client, dtoken, assignmentID="a1", userID=s, percentage=0.75, attempt=2)
    body = detail(client, math, rec["id"])
    versions = body.split("<h2>Every version's payload</h2>", 1)[1].split("<h2>", 1)[0]
    assert versions.count('<details class="gb-version"') == 3
    diffs = [html.unescape(d) for d in re.findall(r'<pre tabindex="0" class="gb-json gb-diff">(.*?)</pre>',
                                                  versions, re.S)]
    assert len(diffs) == 1 and "Same payload as the version before." in versions
    assert '-  "percentage": 0.5,' in diffs[0] and '+  "percentage": 0.75,' in diffs[0]
    assert '-  "attempt": 1' in diffs[0] and '+  "attempt": 2' in diffs[0]


@pytest.mark.parametrize("server", ["waitress", "granian"])
def test_a_stopping_server_ends_a_live_stream_with_bye_and_its_last_chunk(server):
    """Stopping the server (``RunningServer.stop``) must not cut a live stream mid-response:
    the browser would log ERR_INCOMPLETE_CHUNKED_ENCODING."""
    import socket

    from simulator.embedded import start_simulator
    from simulator.web import login_cookie

    running = start_simulator({"DB": ":memory:"}, environ={}, server=server)
    try:
        sim = running.app.extensions["clever_sim"]
        section = sim.roster["sections"][0]
        (name, value), = login_cookie(running.app, section["teacher"]).items()
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as conn:
            conn.sendall(f"GET /schoology/sections/{section['id']}/gradebook/events HTTP/1.1\r\n"
                         f"Host: 127.0.0.1\r\nCookie: {name}={value}\r\n\r\n".encode())
            got = b""
            while b": connected" not in got:
                got += conn.recv(65536)
            running.stop()
            running = None
            while chunk := conn.recv(65536):
                got += chunk
    finally:
        if running is not None:
            running.stop()
    assert b"Transfer-Encoding: chunked" in got or b"transfer-encoding: chunked" in got
    assert b'event: bye\ndata: {"reason":"the simulator is stopping"}\n\n' in got
    assert got.endswith(b"\r\n0\r\n\r\n"), got[-200:]
