"""A grade's LTI messages as data: ``GET /_sim/grades/{id}/lti``, the gradebook's JSON export
and the pytest fixture's ``lti()`` -- the same bytes the gradebook's cell page shows."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import pytest

from simulator import scoring
from conftest import grade_ok, il_token, link, log_in

pytest_plugins = ["pytester"]

DEMO_CLIENT = "b4fd885bda79813831c3"
NS = {"x": scoring.LTI11_NS}


def _students(client) -> list[dict]:
    return client.get("/_sim/personas?role=student").get_json()["data"]


def _as_teacher_of(client, section: str) -> None:
    """Log this browser in as the section's teacher: the gradebook pages are theirs."""
    teacher = next(t for t in client.get("/_sim/personas?role=teacher").get_json()["data"]
                   if section in t["sections"])
    log_in(client, teacher["id"])


def _text(xml: str, tag: str) -> str:
    return ET.fromstring(xml.encode()).find(f".//x:{tag}", NS).text


@pytest.mark.parametrize("body,lti,ags_given", [
    ({"percentage": 0.8}, "0.8", 8),
    ({"scoreGiven": 2, "scoreMaximum": 3}, "0.666667", 6.666667),
    ({"scoreGiven": 12, "scoreMaximum": 10}, "1.0", 12),  # extra credit: LTI 1.1 clamps, AGS does not
    ({"percentage": 0}, "0.0", 0),
])
def test_lti_of_a_linked_grade_is_both_messages_for_its_schoology_assignment(client, sim, body, lti,
                                                                            ags_given):
    student = _students(client)[0]
    section = student["sections"][0]
    linked = link(client, section, "quiz1", max_points=10)
    grade = grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "quiz1", **body})
    resp = client.get(f"/_sim/grades/{grade['id']}/lti")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert {k: doc[k] for k in ("grade_id", "user_id", "assignment_id", "client_id", "version",
                                "lti_score")} == {
        "grade_id": grade["id"], "user_id": student["id"], "assignment_id": "quiz1",
        "client_id": DEMO_CLIENT, "version": 1, "lti_score": lti}
    [entry] = doc["links"]
    sourced = f"{section}:{linked['id']}:{student['id']}"
    assert entry["section_id"] == section and entry["link_id"] == linked["id"] and entry["max_points"] == 10
    assert entry["lti11"]["sourced_id"] == sourced
    assert entry["lti11"]["content_type"] == "application/xml"
    assert entry["lti11"]["body"] == scoring.replace_result_xml(sourced, lti, f"{grade['id']}-v1")
    assert _text(entry["lti11"]["body"], "textString") == lti
    assert entry["lti13"]["content_type"] == "application/vnd.ims.lis.v1.score+json"
    assert entry["lti13"]["body"] == {
        "userId": student["id"], "scoreGiven": ags_given, "scoreMaximum": 10,
        "timestamp": grade["last_modified"], "activityProgress": "Completed",
        "gradingProgress": "FullyGraded"}


def test_a_grade_not_linked_yet_has_no_messages(client, sim):
    student = _students(client)[0]
    grade = grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "nowhere", "percentage": 0.5})
    doc = client.get(f"/_sim/grades/{grade['id']}/lti").get_json()
    assert doc["links"] == [] and doc["lti_score"] == "0.5"


def test_a_link_in_a_section_the_student_is_not_in_is_not_theirs(client, sim):
    students = _students(client)
    student = students[0]
    foreign = next(sid for p in students for sid in p["sections"] if sid not in student["sections"])
    link(client, foreign, "quiz1", max_points=10)
    grade = grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "quiz1", "percentage": 0.5})
    assert client.get(f"/_sim/grades/{grade['id']}/lti").get_json()["links"] == []


def test_one_entry_per_section_of_the_student_linking_the_assignment(client, sim):
    student = next(s for s in _students(client) if len(s["sections"]) >= 2)
    links = [link(client, section, "quiz1", max_points=points)
             for section, points in zip(student["sections"][:2], (10, 50))]
    grade = grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "quiz1", "percentage": 0.5})
    entries = client.get(f"/_sim/grades/{grade['id']}/lti").get_json()["links"]
    assert [(e["link_id"], e["max_points"], e["lti13"]["body"]["scoreGiven"]) for e in entries] == [
        (links[0]["id"], 10, 5), (links[1]["id"], 50, 25)]


def test_a_new_post_is_a_new_version_with_a_new_message_id(client, sim):
    student = _students(client)[0]
    link(client, student["sections"][0], "quiz1", max_points=10)
    first = grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "quiz1", "percentage": 0.5})
    second = grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "quiz1", "percentage": 0.9})
    assert second["id"] == first["id"]
    entry = client.get(f"/_sim/grades/{first['id']}/lti").get_json()["links"][0]
    assert entry["lti11"]["message_id"] == f"{first['id']}-v2"
    assert _text(entry["lti11"]["body"], "imsx_messageIdentifier") == f"{first['id']}-v2"
    assert _text(entry["lti11"]["body"], "textString") == "0.9"


@pytest.mark.parametrize("grade_id", ["nope", "ffffffffffffffffffffffff", "%3Cscript%3E", "a" * 300])
def test_unknown_grade_is_a_404_in_the_control_api_shape(client, grade_id):
    resp = client.get(f"/_sim/grades/{grade_id}/lti")
    assert resp.status_code == 404 and resp.mimetype == "application/json"
    assert resp.get_json() == {"message": "Grade not found", "errors": [
        {"field": "grade_id", "problem": "no grade has this id"}]}


def test_same_messages_as_the_cell_page_and_the_json_export(client, sim):
    student = _students(client)[0]
    section = student["sections"][0]
    link(client, section, "quiz1", max_points=10)
    grade = grade_ok(client, il_token(sim, student["id"]),
                     {"assignmentID": "quiz1", "scoreGiven": 7, "scoreMaximum": 9})
    grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "unlinked1", "percentage": 0.3})
    entry = client.get(f"/_sim/grades/{grade['id']}/lti").get_json()["links"][0]
    _as_teacher_of(client, section)

    page = client.get(f"/schoology/sections/{section}/gradebook/{grade['id']}").get_data(as_text=True)
    pox = html.unescape(re.search(r'<pre[^>]*\bid="gb-pox">(.*?)</pre>', page, re.S).group(1))
    assert pox == entry["lti11"]["body"]

    export = client.get(f"/schoology/sections/{section}/gradebook.json").get_json()
    [cell] = [c for c in export["cells"] if c["grade_id"] == grade["id"]]
    assert cell["lti"] == entry
    [loose] = export["not_linked"]
    assert loose["assignment_id"] == "unlinked1" and loose["lti"] is None


def test_pytest_fixture_gives_a_grades_lti_messages(pytester):
    pytester.makepyfile(test_lti='''
        import httpx

        def test_lti_of_a_grade(clever_sim):
            student = clever_sim.students()[0]
            link = clever_sim.link(student["sections"][0], "quiz1", max_points=20)
            token = clever_sim.il_token(student)
            httpx.post(clever_sim.url + "/v1/grade", json={"assignmentID": "quiz1", "percentage": 0.75},
                       headers={"Authorization": f"Bearer {token}"}, trust_env=False)
            grade = clever_sim.wait_for_grade(student, "quiz1", timeout=5)
            doc = clever_sim.lti(grade)
            assert doc == clever_sim.lti(grade["id"])
            [entry] = doc["links"]
            assert entry["link_id"] == link["id"]
            assert "<textString>0.75</textString>" in entry["lti11"]["body"]
            assert entry["lti13"]["body"]["scoreGiven"] == 15

        def test_unknown_grade_is_a_control_api_error(clever_sim):
            try:
                clever_sim.lti("nope")
            except Exception as exc:
                assert "404" in str(exc) and "Grade not found" in str(exc), str(exc)
            else:
                raise AssertionError("no error for an unknown grade")
    ''')
    from test_pytest_plugin import PLUGIN

    result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_stored_score_that_is_no_lti_value_is_a_problem_not_a_500(client, sim):
    """A loaded snapshot may hold any lti_score: the answers say so instead of failing."""
    student = _students(client)[0]
    section = student["sections"][0]
    link(client, section, "quiz1", max_points=10)
    grade = grade_ok(client, il_token(sim, student["id"]), {"assignmentID": "quiz1", "percentage": 0.5})
    with sim.store.transaction() as db:
        for table in ("grades", "grade_history"):
            db.execute(f"UPDATE {table} SET record = json_set(record, '$.lti_score', '1.5')")
    sim.store.clear_caches()
    [entry] = client.get(f"/_sim/grades/{grade['id']}/lti").get_json()["links"]
    assert entry["lti11"] is None and entry["lti13"] is None
    assert entry["problem"] == "cannot build the LTI messages: LTI 1.1 scores are 0.0–1.0, got '1.5'"
    _as_teacher_of(client, section)
    export = client.get(f"/schoology/sections/{section}/gradebook.json")
    assert export.status_code == 200 and export.get_json()["cells"][0]["lti"] == entry
    page = client.get(f"/schoology/sections/{section}/gradebook/{grade['id']}")
    assert page.status_code == 200
