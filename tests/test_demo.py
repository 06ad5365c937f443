"""`clever-sim demo`: the simulator and the reference partner in one process."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from decimal import Decimal

import httpx
import pytest
from click.testing import CliRunner

from contract_tests.reference_partner import DEFAULT_ASSIGNMENTS
from serverproc import demo_banner
from simulator.cli import main
from contract_tests.demo import (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, ensure_registration, start_demo,
                            walkthrough)


@pytest.fixture
def demo():
    running = start_demo(0, 0, ":memory:", environ={})
    yield running
    running.stop()


def _student_of_first_section(demo):
    roster = demo.simulator.roster
    section = next(s for s in roster["sections"] if s["district"] == roster["districts"][0]["id"])
    return section["students"][0]


def test_both_servers_answer(demo):
    assert httpx.get(demo.sim_url + "/_sim/health").status_code == 200
    assert httpx.get(demo.partner_url + "/healthz").status_code == 200
    assert demo.sim_url != demo.partner_url


def test_demo_app_points_at_the_partners_real_port(demo):
    app = httpx.get(demo.sim_url + f"/_sim/apps/{DEMO_CLIENT_ID}").json()
    assert app["primary_redirect_uri"] == f"{demo.partner_url}/clever/callback"
    assert app["assignments_url"] == f"{demo.partner_url}/clever/assignments"
    port = demo.partner_url.rsplit(":", 1)[1]
    assert f"http://localhost:{port}/clever/callback" in app["redirect_uris"]
    # The partner's own idea of its callback is the registered one.
    assert demo.partner.app.config["REDIRECT_URI"] == app["primary_redirect_uri"]


def test_launch_submit_grade(demo):
    assignment = DEFAULT_ASSIGNMENTS[0]
    student = _student_of_first_section(demo)
    code = httpx.post(demo.sim_url + "/_sim/codes", json={
        "client_id": DEMO_CLIENT_ID, "user_id": student, "assignment_id": assignment.id}).json()
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(code["redirect_url"])
        assert page.status_code == 200 and page.url.path == f"/assignments/{assignment.id}"
        nonce = re.search(r'name="attempt" value="([^"]+)"', page.text).group(1)
        form = {"attempt": nonce, **{f"q{i}": q.answer for i, q in enumerate(assignment.questions)}}
        form["q0"] = "wrong"
        result = browser.post(str(page.url) + "/submit", data=form)
        assert result.status_code == 200 and "sent to Schoology" in result.text
    grade = httpx.get(demo.sim_url + "/_sim/grades/wait",
                      params={"user_id": student, "timeout": 5}).json()["data"]
    assert grade["assignmentID"] == assignment.id and grade["token_kind"] == "il"
    assert Decimal(grade["lti_score"]) == Decimal("0.8")


def test_teacher_assignments_call_works_through_the_demo(demo):
    roster = demo.simulator.roster
    teacher = next(u for u in roster["users"] if "teacher" in u["roles"])
    token = httpx.post(demo.sim_url + "/_sim/tokens",
                       json={"client_id": DEMO_CLIENT_ID, "user_id": teacher["id"]}).json()["access_token"]
    resp = httpx.get(demo.partner_url + "/clever/assignments",
                     headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert [a["id"] for a in resp.json()["assignments"]] == [a.id for a in DEFAULT_ASSIGNMENTS]


def test_walkthrough_names_urls_and_three_steps(demo):
    text = walkthrough(demo)
    assert demo.sim_url in text and demo.partner_url in text
    assert f"{demo.sim_url}/schoology" in text and f"{demo.sim_url}/schoology/gradebook" in text
    assert '"Rebecca Alvarez"' in text
    assert f"Start page (links, base URLs, credentials): {demo.sim_url}/\n" in text
    for step in ("  1. Teacher:", "  2. Student:", "  3. Gradebook:"):
        assert step in text
    # one browser: the student is another persona in a new tab, not a private window
    assert 'click "Sign in as another persona" (the tab moves to /u/1/' in text
    shortcut = re.search(r"Shortcut .*: (\S+)", text).group(1)
    resp = httpx.get(shortcut)  # the fake Clever login page (nobody logged in yet)
    assert resp.status_code == 200


def test_registration_is_kept_for_the_fixture_port_and_updated_for_others(sim):
    before = sim.store.get_app(DEMO_CLIENT_ID)
    assert before.redirect_uris[0] == "http://127.0.0.1:5001/clever/callback"
    assert ensure_registration(sim, "http://127.0.0.1:5001", 5001) is False
    assert sim.store.get_app(DEMO_CLIENT_ID) == before
    assert ensure_registration(sim, "http://127.0.0.1:5123", 5123) is True
    after = sim.store.get_app(DEMO_CLIENT_ID)
    assert after.redirect_uris == ["http://127.0.0.1:5123/clever/callback",
                                      "http://localhost:5123/clever/callback"]
    assert after.assignments_url == "http://127.0.0.1:5123/clever/assignments"
    assert after.client_secret == before.client_secret
    assert sim.store.district_tokens(DEMO_CLIENT_ID)  # still connected, tokens kept


def test_registration_is_created_when_the_roster_has_no_demo_app(sim):
    sim.store.delete_app(DEMO_CLIENT_ID)
    assert ensure_registration(sim, "http://127.0.0.1:6000", 6000) is True
    app = sim.store.get_app(DEMO_CLIENT_ID)
    assert app.client_secret == DEMO_CLIENT_SECRET and app.districts == sim.district_ids


def test_busy_partner_port_is_an_oserror():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(OSError):
            start_demo(0, port, ":memory:", environ={})


def test_demo_help():
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--partner-port", "--db"):
        assert option in result.output


def test_demo_command_prints_the_walkthrough_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "simulator.cli", "demo", "--port", "0",
                             "--partner-port", "0", "--db", ":memory:"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    text = ""
    try:
        text = demo_banner(proc.stdout)
        sim = re.search(r"Simulator \(Clever \+ Schoology\): (\S+)", text).group(1)
        partner = re.search(r"Reference partner app:\s+(\S+)", text).group(1)
        assert httpx.get(sim + "/_sim/health", timeout=5).status_code == 200
        assert httpx.get(partner + "/healthz", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, text + out
    assert "Stopped." in out and "Traceback" not in out


def test_demo_command_reports_a_busy_port_without_traceback():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        result = CliRunner().invoke(main, ["demo", "--port", str(busy.getsockname()[1]),
                                           "--partner-port", "0"])
    assert result.exit_code == 2 and "cannot listen" in result.output
    assert "Traceback" not in result.output


def test_print_partner_config_follows_the_ports_and_the_rosters_demo_app():
    from contract_tests.config import tomllib

    result = CliRunner().invoke(main, ["demo", "--print-partner-config", "--port", "9000",
                                       "--partner-port", "5002"], env={"CLEVER_SIM_PORT": None})
    assert result.exit_code == 0, result.output
    doc = tomllib.loads(result.output)
    assert doc["app"] == {
        "name": "Demo Partner (reference)", "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "redirect_uris": ["http://127.0.0.1:5002/clever/callback", "http://localhost:5002/clever/callback"],
        "assignments_url": "http://127.0.0.1:5002/clever/assignments"}
    assert doc["contract"] == {"complete_assignment_hook": "http://127.0.0.1:5002/test-hooks/complete",
                               "landing_url_pattern": "/assignments/{assignment_id}", "grade_timeout_s": 10}
    assert "clever-sim contract --config partner.toml --sim-url http://127.0.0.1:9000" in result.output


def test_print_partner_config_matches_what_the_demo_registers(demo):
    from contract_tests.config import tomllib

    from contract_tests.demo import partner_config

    sim_port, partner_port = demo.sim.port, demo.partner.port
    doc = tomllib.loads(partner_config(sim_port, partner_port,
                                       registered=demo.simulator.store.get_app(DEMO_CLIENT_ID)))
    registered = httpx.get(demo.sim_url + f"/_sim/apps/{DEMO_CLIENT_ID}").json()
    assert doc["app"]["redirect_uris"] == registered["redirect_uris"]
    assert doc["app"]["assignments_url"] == registered["assignments_url"]
    assert doc["app"]["client_secret"] == registered["client_secret"]
    assert f"--print-partner-config --port {sim_port} --partner-port {partner_port} > partner.toml" \
        in walkthrough(demo)


@pytest.mark.parametrize("args", [["--port", "0"], ["--partner-port", "0"]])
def test_print_partner_config_refuses_port_zero(args):
    result = CliRunner().invoke(main, ["demo", "--print-partner-config", *args])
    assert result.exit_code == 2
    assert "--print-partner-config needs the demo's real ports, not 0" in result.output


def test_banner_says_why_not_granian_only_when_auto_fell_back(monkeypatch):
    """The default (waitress, asked for) names waitress alone; once the banner printed
    'not granian: None' for it. Only --server auto falling back says why."""
    import simulator.serving as serving

    monkeypatch.delenv("CLEVER_SIM_SERVER", raising=False)
    asked = start_demo(0, 0, ":memory:", environ={})
    try:
        line = walkthrough(asked).splitlines()[1]
    finally:
        asked.stop()
    assert line.endswith("on waitress " + serving.describe_server("waitress", "waitress")
                         .split(" ", 1)[1]) and "granian" not in line, line

    monkeypatch.setattr(serving, "granian_problem", lambda: "granian is not installed (here)")
    fell_back = start_demo(0, 0, ":memory:", environ={}, server="auto")
    try:
        line = walkthrough(fell_back).splitlines()[1]
    finally:
        fell_back.stop()
    assert line.endswith("(pure-Python WSGI); not granian: granian is not installed (here)"), line
