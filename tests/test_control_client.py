"""``simulator.control_client``: the control API from plain Python (no pytest), against a real
server on 127.0.0.1:0 (``live_sim``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import post_grade_over_http
from simulator.control_client import App, ControlAPIError, ControlClient

REDIRECT = "http://127.0.0.1:5001/clever/callback"


@pytest.fixture
def partner(control):
    view = control.register_app({"name": "Client test", "redirect_uris": [REDIRECT]})
    yield App.from_view(view)
    control.delete_app(view["client_id"], ok=(200, 404))


def test_a_grade_posted_with_a_minted_token_is_waited_for_and_listed(live_sim, control, partner):
    student = control.personas("student")[0]
    token = control.il_token(partner.client_id, student["id"])
    answer = post_grade_over_http(live_sim.url, token, {"assignmentID": "quiz1", "percentage": 0.8})
    assert answer.status_code == 200
    grade = control.wait_for_grade(student["id"], "quiz1", timeout=5, client_id=partner.client_id)
    assert grade["percentage"] == 0.8 and grade["assignmentID"] == "quiz1"
    assert [g["id"] for g in control.grades(client_id=partner.client_id)] == [grade["id"]]
    assert [h["version"] for h in control.grade_history(grade["id"])] == [1]


def test_waiting_for_a_grade_that_never_comes_gives_none(control, partner):
    student = control.personas("student")[0]
    assert control.wait_for_grade(student["id"], "never", timeout=0) is None


def test_a_launch_code_carries_the_assignment_state(control, partner):
    student = control.personas("student")[0]
    code = control.mint_code(partner.client_id, student["id"], assignment_id="quiz1")
    assert code["state"] == "assignment:quiz1"
    assert code["redirect_url"].startswith(REDIRECT + "?")


def test_faults_journal_and_clock(live_sim, control, partner):
    fault = control.fault("/v1/grade", 503, count=1)
    assert [f["id"] for f in control.faults()] == [fault["id"]]
    student = control.personas("student")[0]
    token = control.il_token(partner.client_id, student["id"])
    answer = post_grade_over_http(live_sim.url, token, {"assignmentID": "q", "percentage": 0.5})
    assert answer.status_code == 503
    assert control.journal(path="/v1/grade")[0]["status"] == 503
    control.clear_faults()
    control.clear_journal()
    assert control.faults() == [] and control.journal(path="/v1/grade") == []
    assert control.advance_clock(61) == 61


def test_app_lookup_update_and_delete(control, partner):
    assert control.app(partner.client_id)["name"] == "Client test"
    assert control.update_app(partner.client_id, {"name": "Renamed"})["name"] == "Renamed"
    control.delete_app(partner.client_id)
    assert control.app(partner.client_id) is None


def test_a_refusal_raises_with_the_simulators_field_problem_and_fix(control):
    with pytest.raises(ControlAPIError) as caught:
        control.fault("v1/grade", 503)
    assert caught.value.status == 400
    assert str(caught.value) == ("POST /_sim/faults → HTTP 400: Invalid fault\n"
                                 "  path: must start with / (e.g. /v1/grade or /v3.0/*)")


def test_an_unreachable_simulator_is_a_control_api_error_naming_the_url():
    with ControlClient("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(ControlAPIError, match="cannot reach the simulator at http://127.0.0.1:9"):
            client.health()


def test_the_client_works_in_a_plain_script_without_pytest(live_sim):
    script = textwrap.dedent(f"""
        import sys
        from simulator.control_client import ControlClient
        with ControlClient({live_sim.url!r}) as sim:
            assert sim.health()["status"] == "ok"
            print(len(sim.personas("teacher")) > 0, "pytest" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
