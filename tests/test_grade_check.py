"""``simulator.grade_check``: grade assertions over a ``ControlClient`` (no pytest plugin), and
the failure reports that say what did arrive instead. A real server on 127.0.0.1:0 (``live_sim``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import post_grade_over_http
from simulator.control_client import ControlClient
from simulator.grade_check import assert_grade, explain, wait_for_grade


@pytest.fixture
def client_id(control) -> str:
    return control.apps()[0]["client_id"]


@pytest.fixture
def student(control) -> dict:
    return control.personas("student")[0]


def send_grade(control: ControlClient, client_id: str, student: dict, body: dict) -> int:
    """The status of the student's grade POSTed as the partner's app would."""
    token = control.il_token(client_id, student["id"])
    return post_grade_over_http(control.url, token, body).status_code


def failure(call, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_a_percentage_grade_passes_as_lti_percentage_and_linked_points(control, client_id, student):
    assert send_grade(control, client_id, student, {"assignmentID": "quiz1", "percentage": 0.8}) == 200
    assert assert_grade(control, student, "quiz1", lti=0.8)["assignmentID"] == "quiz1"
    assert_grade(control, student["id"], "quiz1", percentage="0.8")
    control.link(student["sections"][0], client_id, "quiz1", max_points=10)
    assert_grade(control, student, "quiz1", points=8)
    assert_grade(control, student, "quiz1", points=8.004)  # Schoology shows 2 decimals


def test_a_score_grade_is_measured_before_the_clamp(control, client_id, student):
    body = {"assignmentID": "quiz2", "scoreGiven": 12, "scoreMaximum": 10}
    assert send_grade(control, client_id, student, body) == 200
    assert_grade(control, student, "quiz2", lti=1)
    assert_grade(control, student, "quiz2", percentage=1.2)


@pytest.mark.parametrize("expected, message", [
    ({}, "assert_grade takes exactly one of lti=, percentage= or points="),
    ({"lti": 0.5, "points": 5}, "assert_grade takes exactly one of lti=, percentage= or points="),
    ({"lti": "most"}, "assert_grade: lti='most' is not a number"),
    ({"points": True}, "assert_grade: points=True is not a number"),
])
def test_assert_grade_refuses_anything_but_one_number(control, student, expected, message):
    with pytest.raises(TypeError) as caught:
        assert_grade(control, student, "quiz1", **expected)
    assert str(caught.value) == message


def test_a_wrong_value_names_what_was_sent(control, client_id, student):
    send_grade(control, client_id, student, {"assignmentID": "quiz1", "scoreGiven": 7, "scoreMaximum": 10})
    text = failure(assert_grade, control, student, "quiz1", lti=0.8)
    assert text.splitlines()[0] == (
        f"assert_grade: student {student['id']} on assignment 'quiz1': expected lti 0.8, got 0.7 "
        "(lti_score 0.7, sent scoreGiven 7 / scoreMaximum 10, version 1)")


def test_a_percentage_given_on_a_0_to_100_scale_gets_the_fraction_as_a_hint(control, client_id, student):
    send_grade(control, client_id, student, {"assignmentID": "quiz1", "percentage": 0.8})
    text = failure(assert_grade, control, student, "quiz1", percentage=80)
    assert "(percentage is Clever's 0–1.0 format: did you mean 0.8?)" in text.splitlines()


def test_points_without_a_link_say_how_to_link(control, client_id, student):
    send_grade(control, client_id, student, {"assignmentID": "quiz1", "percentage": 0.8})
    text = failure(assert_grade, control, student, "quiz1", points=8)
    assert "got nothing" in text
    assert ("the assignment is not linked to any section, so the gradebook shows no points: link "
            "it first (clever_sim.link(section_id, assignment_id, max_points=…), "
            "ControlClient.link or POST /_sim/links)") in text


def test_a_missing_grade_lists_the_closest_grades_and_requests(control, client_id, student):
    other = control.personas("student")[1]
    assert send_grade(control, client_id, student, {"assignmentID": "quiz2", "percentage": 0.8}) == 200
    assert send_grade(control, client_id, student, {"assignmentID": "quiz1", "percentage": 80}) == 400
    assert send_grade(control, client_id, other, {"assignmentID": "quiz1", "percentage": 0.5}) == 200
    lines = failure(assert_grade, control, student, "quiz1", lti=0.8).splitlines()
    assert lines[0] == (f"assert_grade: expected lti 0.8 but no grade for student {student['id']} "
                        "on assignment 'quiz1' arrived")
    assert lines[1] == "2 grade(s) stored, closest first:"
    assert lines[2].startswith(f"  student {student['id']} assignment 'quiz2': lti_score 0.8")
    assert lines[2].endswith("← same student")
    assert lines[3].endswith("← same assignment")
    assert lines[4] == "similar requests (POST /v1/grade received, closest first; 3 in all):"
    assert "→ 400 [same student, same assignment]" in lines[5]
    assert lines[6] == '      sent: {"assignmentID":"quiz1","percentage":80}'
    assert lines[7].startswith("      error: Invalid grade — percentage: is 80: must be between 0 and 1.0")
    assert "→ 200 [same student, other assignment]" in lines[8]
    assert "→ 200 [same assignment, other student]" in lines[11]


def test_a_grade_that_never_comes_says_so_after_the_timeout(control):
    student = control.personas("student")[0]
    text = failure(wait_for_grade, control, student, "quiz9", timeout=0.2)
    assert text.splitlines()[0] == (f"wait_for_grade: no grade for student {student['id']} on "
                                    "assignment 'quiz9' arrived within 0.2 s")
    assert text.splitlines()[1:] == [
        "no grades stored at all.",
        "similar requests: none — no POST /v1/grade reached the simulator (is your app's grades "
        f"base URL {control.url}?)"]


def test_a_report_on_a_simulator_that_is_gone_keeps_the_headline():
    with ControlClient("http://127.0.0.1:9", timeout=2) as gone:
        text = explain(gone, "assert_grade: expected lti 1", "u1", "quiz1")
    assert text.startswith("assert_grade: expected lti 1\n(could not read what arrived: "
                           "GET /_sim/grades → HTTP 0: cannot reach the simulator at http://127.0.0.1:9")


def test_the_client_and_grade_check_work_in_a_script_without_pytest():
    script = textwrap.dedent("""
        import sys

        import httpx

        from simulator.control_client import ControlClient
        from simulator.embedded import start_simulator
        from simulator.grade_check import assert_grade

        server = start_simulator({"DB": ":memory:"})
        try:
            with ControlClient(server.url) as sim:
                client_id = sim.apps()[0]["client_id"]
                student = sim.personas("student")[0]
                token = sim.il_token(client_id, student["id"])
                httpx.post(server.url + "/v1/grade", json={"assignmentID": "quiz1", "percentage": 0.8},
                           headers={"Authorization": "Bearer " + token}, trust_env=False)
                print(assert_grade(sim, student, "quiz1", lti=0.8, timeout=5)["lti_score"])
                try:
                    assert_grade(sim, student, "quiz1", lti=0.5)
                except AssertionError as exc:
                    print(str(exc).splitlines()[1])
        finally:
            server.stop()
        print("pytest" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0.8", "1 grade(s) stored, closest first:", "False"]
