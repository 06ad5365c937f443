"""The pytest plugin (``simulator.pytest_plugin``) as a partner uses it: generated test
files run by ``pytester``, each a small downstream project."""

pytest_plugins = ["pytester"]

import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from importlib import metadata  # noqa: E402

import httpcore  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402

from simulator.app import create_app  # noqa: E402
from simulator.serving import start_in_thread  # noqa: E402

MODULE = "simulator.pytest_plugin"
# httpx imports httpcore lazily and maps its exceptions by class: imported here, it is
# never re-imported by (and unloaded after) a pytester run that happened to load it first.
_PINNED = (httpcore,)


def _installed_entry_point() -> metadata.EntryPoint | None:
    for ep in metadata.entry_points(group="pytest11"):
        if ep.name == "clever_sim":
            return ep
    return None


# `-p clever_sim` loads the plugin whether or not the entry point is installed, and never
# twice (tests/test_packaging.py proves the switches in subprocesses).
PLUGIN = ["-p", "clever_sim"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", *args)


# A tiny partner app, as a downstream conftest would have it: Clever's redirect lands on
# /clever/callback, which exchanges the code, reads /v3.0/me and, for a Schoology launch
# (state=assignment:{id}), posts the student's grade at once.
PARTNER_CONFTEST = '''
import threading

import httpx
import pytest
from flask import Flask, request
from werkzeug.serving import make_server

partner = Flask("tiny_partner")


@partner.get("/clever/callback")
def callback():
    cfg = partner.config
    sim = cfg["SIM_URL"]
    with httpx.Client(timeout=5, trust_env=False) as http:
        token = http.post(f"{sim}/oauth/tokens", auth=(cfg["CLIENT_ID"], cfg["CLIENT_SECRET"]),
                          data={"grant_type": "authorization_code", "code": request.args["code"],
                                "redirect_uri": request.base_url}).json()["access_token"]
        me = http.get(f"{sim}/v3.0/me", headers={"Authorization": f"Bearer {token}"}).json()
        state = request.args.get("state", "")
        if not state.startswith("assignment:"):
            return f"dashboard of {me['data']['id']}"
        answer = http.post(f"{sim}/v1/grade", headers={"Authorization": f"Bearer {token}"},
                           json={"assignmentID": state.split(":", 1)[1], "percentage": cfg["SCORE"]})
    return f"graded {answer.status_code}"


@pytest.fixture(scope="session")
def partner_url():
    server = make_server("127.0.0.1", 0, partner, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def clever_sim_app(partner_url):
    return {"name": "Tiny partner", "client_id": "tiny-partner", "client_secret": "tiny-secret",
            "redirect_uris": [f"{partner_url}/clever/callback"]}


@pytest.fixture
def tiny_partner(clever_sim):
    partner.config.update(SIM_URL=clever_sim.url, CLIENT_ID=clever_sim.client_id,
                          CLIENT_SECRET=clever_sim.client_secret, SCORE=0.8)
    return partner
'''

# Grades posted straight at the simulator with a persona's il token.
POST_HELPER = '''
import httpx


def post_grade(clever_sim, student, body):
    token = clever_sim.il_token(student)
    return httpx.post(clever_sim.url + "/v1/grade", json=body, trust_env=False, timeout=5,
                      headers={"Authorization": f"Bearer {token}"})
'''


def test_launch_login_grade_and_assert_grade_pass(pytester):
    pytester.makeconftest(PARTNER_CONFTEST)
    pytester.makepyfile(test_story='''
        import httpx

        def get(url):
            return httpx.get(url, timeout=10, trust_env=False)

        def test_schoology_launch_to_grade(clever_sim, tiny_partner):
            student = clever_sim.students()[0]
            url = clever_sim.launch_url(student["id"], "quiz1")
            assert url.startswith(clever_sim.app.primary_redirect_uri + "?code=")
            assert "state=assignment:quiz1" in url
            assert get(url).text == "graded 200"
            clever_sim.assert_grade(student, "quiz1", lti=0.8)
            clever_sim.assert_grade(student["id"], "quiz1", percentage="0.8")
            clever_sim.link(student["sections"][0], "quiz1", max_points=10)
            clever_sim.assert_grade(student, "quiz1", points=8)
            assert clever_sim.wait_for_grade(student, "quiz1", timeout=5)["lti_score"] == "0.8"
            exchange = clever_sim.journal(path="/oauth/tokens")
            assert [e["status"] for e in exchange] == [200]

        def test_portal_login_has_no_state(clever_sim, tiny_partner):
            student = clever_sim.students()[1]
            url = clever_sim.login_url(student)
            assert "state=" not in url
            assert get(url).text == f"dashboard of {student['id']}"

        def test_tokens_for_the_data_api(clever_sim):
            teacher = clever_sim.teachers()[0]
            district = clever_sim.district_token()
            answer = httpx.get(f"{clever_sim.url}/v3.0/users/{teacher['id']}", trust_env=False,
                               headers={"Authorization": f"Bearer {district}"})
            assert answer.status_code == 200
            me = httpx.get(f"{clever_sim.url}/v3.0/me", trust_env=False,
                           headers={"Authorization": f"Bearer {clever_sim.il_token(teacher)}"})
            assert me.json()["data"]["id"] == teacher["id"]

        def test_faults_and_clock(clever_sim, tiny_partner):
            student = clever_sim.students()[2]
            clever_sim.fault("/v1/grade", 503, retry_after=1)
            assert get(clever_sim.launch_url(student, "quiz3")).text == "graded 503"
            assert get(clever_sim.launch_url(student, "quiz3")).text == "graded 200"
            stale = clever_sim.launch_url(student, "quiz4")
            assert clever_sim.advance_clock(61) == 61
            assert clever_sim.journal(path="/v1/grade", status=503)[0]["fault"]["status"] == 503
            import pytest
            with pytest.raises(Exception):
                get(stale).raise_for_status()   # the partner's exchange fails: code expired
    ''')
    result = run(pytester)
    result.assert_outcomes(passed=4)


def test_assert_grade_failure_lists_grades_and_similar_requests(pytester):
    pytester.makepyfile(helpers=POST_HELPER)
    pytester.makepyfile(test_near='''
        from helpers import post_grade

        def test_other_assignment_and_rejected_post(clever_sim):
            student = clever_sim.students()[0]
            assert post_grade(clever_sim, student, {"assignmentID": "quiz2", "percentage": 0.8}).status_code == 200
            assert post_grade(clever_sim, student, {"assignmentID": "quiz1", "percentage": 80}).status_code == 400
            clever_sim.assert_grade(student, "quiz1", lti=0.8)

        def test_wrong_value(clever_sim):
            student = clever_sim.students()[0]
            post_grade(clever_sim, student, {"assignmentID": "quiz1", "scoreGiven": 7, "scoreMaximum": 10})
            clever_sim.assert_grade(student, "quiz1", lti=0.8)

        def test_percentage_given_as_0_to_100(clever_sim):
            student = clever_sim.students()[0]
            post_grade(clever_sim, student, {"assignmentID": "quiz1", "percentage": 0.8})
            clever_sim.assert_grade(student, "quiz1", percentage=80)

        def test_points_need_a_link(clever_sim):
            student = clever_sim.students()[0]
            post_grade(clever_sim, student, {"assignmentID": "quiz1", "percentage": 0.8})
            clever_sim.assert_grade(student, "quiz1", points=8)

        def test_wait_times_out(clever_sim):
            student = clever_sim.students()[0]
            other = clever_sim.students()[1]
            post_grade(clever_sim, other, {"assignmentID": "quiz9", "percentage": 0.5})
            clever_sim.wait_for_grade(student, "quiz9", timeout=0.2)
    ''')
    result = run(pytester)
    result.assert_outcomes(failed=5)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*assert_grade: expected lti 0.8 but no grade for student * on assignment 'quiz1' arrived",
        "*1 grade(s) stored, closest first:",
        "*assignment 'quiz2': lti_score 0.8, sent percentage 0.8*same student",
        "*similar requests (POST /v1/grade received, closest first; 2 in all):",
        "*#2 POST /v1/grade → 400 ?same student, same assignment?*'quiz1'",
        '*sent: {"assignmentID":"quiz1","percentage":80}',
        "*error: Invalid grade — percentage: is 80: must be between 0 and 1.0*",
        "*#1 POST /v1/grade → 200 ?same student, other assignment?*'quiz2'",
        "*stored: lti_score 0.8",
    ])
    result.stdout.fnmatch_lines([
        "*expected lti 0.8, got 0.7 (lti_score 0.7, sent scoreGiven 7 / scoreMaximum 10, version 1)",
    ])
    result.stdout.fnmatch_lines(["*expected percentage 80, got 0.8*",
                                 "*did you mean 0.8?*"])
    result.stdout.fnmatch_lines(["*expected points 8, got nothing*not linked to any section*"])
    result.stdout.fnmatch_lines([
        "*wait_for_grade: no grade for student * on assignment 'quiz9' arrived within 0.2 s",
        "*?same assignment, other student?*'quiz9'",
    ])
    # the failures point at the test's own line, not into the plugin
    assert "pytest_plugin.py" not in out
    result.stdout.fnmatch_lines(["test_near.py:7: AssertionError"])


def test_clever_sim_config_override_gives_a_strict_simulator(pytester):
    check = '''
        from helpers import post_grade

        def test_hyphenated_assignment_id(clever_sim, clever_sim_url):
            assert clever_sim.url == clever_sim_url  # the same address all session
            student = clever_sim.students()[0]
            answer = post_grade(clever_sim, student, {{"assignmentID": "quiz-1", "percentage": 0.5}})
            assert answer.status_code == {status}, answer.text
    '''
    pytester.makepyfile(helpers=POST_HELPER)
    pytester.makepyfile(test_a_lenient=check.format(status=200))
    pytester.makepyfile(test_b_strict='''
        import pytest
        from helpers import post_grade

        @pytest.fixture
        def clever_sim_config():
            return {"STRICT": True}

        def test_warning_is_refused(clever_sim, clever_sim_url):
            assert clever_sim.url == clever_sim_url
            student = clever_sim.students()[0]
            answer = post_grade(clever_sim, student, {"assignmentID": "quiz-1", "percentage": 0.5})
            assert answer.status_code == 400, answer.text
            clever_sim.assert_grade(student, "quiz-1", lti=0.5)
    ''')
    pytester.makepyfile(test_c_lenient_again=check.format(status=200))
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_b_strict.py:*AssertionError",
    ])
    result.stdout.fnmatch_lines(["*#1 POST /v1/grade → 400 ?same student, same assignment?*",
                                 "*error: *quiz-1*"])


def test_each_test_starts_from_a_reset_simulator_and_the_server_stops(pytester):
    url_file = pytester.path / "sim_url.txt"
    pytester.makepyfile(helpers=POST_HELPER)
    pytester.makepyfile(test_reset=f'''
        import httpx
        from helpers import post_grade

        def test_first_leaves_a_mess(clever_sim):
            open({str(url_file)!r}, "w").write(clever_sim.url)
            student = clever_sim.students()[0]
            assert post_grade(clever_sim, student, {{"assignmentID": "q1", "percentage": 1}}).status_code == 200
            clever_sim.link(student["sections"][0], "q1")
            extra = clever_sim.register_app(name="Other", redirect_uris=["http://localhost:9/cb"])
            assert extra.client_id in [a["client_id"] for a in httpx.get(clever_sim.url + "/_sim/apps", trust_env=False).json()["data"]]
            open({str(url_file)!r} + ".extra", "w").write(extra.client_id)
            clever_sim.fault("/v1/grade", 500, count=5)
            clever_sim.advance_clock(100)

        def test_second_sees_none_of_it(clever_sim):
            assert clever_sim.grades() == []
            assert clever_sim.links() == []
            assert clever_sim.journal() == []
            assert httpx.get(clever_sim.url + "/_sim/faults", trust_env=False).json()["data"] == []
            assert clever_sim.advance_clock(0) == 0
            extra = open({str(url_file)!r} + ".extra").read()
            apps = [a["client_id"] for a in httpx.get(clever_sim.url + "/_sim/apps", trust_env=False).json()["data"]]
            assert extra not in apps and clever_sim.client_id in apps
            student = clever_sim.students()[0]
            assert post_grade(clever_sim, student, {{"assignmentID": "q1", "percentage": 0.5}}).status_code == 200
            assert clever_sim.wait_for_grade(student, "q1")["version"] == 1
    ''')
    result = run(pytester)
    result.assert_outcomes(passed=2)
    url = url_file.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/_sim/health", timeout=2, trust_env=False)


def _generated_roster(path):
    from simulator.roster_gen import generate_roster

    doc = generate_roster(schools=1, teachers=2, students=5, sections=2, seed=7)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return doc


def test_command_line_options_strict_roster_port(pytester):
    roster = _generated_roster(pytester.path / "roster.json")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pytester.makepyfile(helpers=POST_HELPER)
    pytester.makepyfile(test_opts=f'''
        from helpers import post_grade

        def test_strict(clever_sim):
            student = clever_sim.students()[0]
            answer = post_grade(clever_sim, student, {{"assignmentID": "quiz-1", "percentage": 0.5}})
            assert answer.status_code == 400

        def test_roster_and_port(clever_sim):
            assert len(clever_sim.students()) == 5 and len(clever_sim.teachers()) == 2
            assert clever_sim.client_id == {roster["apps"][0]["client_id"]!r}
            assert clever_sim.url == "http://127.0.0.1:{port}"
    ''')
    strict = run(pytester, "--clever-sim-strict", "--clever-sim-roster", "roster.json",
                 "--clever-sim-port", str(port))
    strict.assert_outcomes(passed=2)
    lenient = run(pytester, "--clever-sim-roster", "roster.json", "--clever-sim-port", str(port))
    lenient.assert_outcomes(passed=1, failed=1)
    lenient.stdout.fnmatch_lines(["*test_strict*assert 200 == 400*"])


def test_clever_sim_url_uses_a_running_simulator(pytester):
    app = create_app({"DB": ":memory:"}, environ={})
    server = start_in_thread(app)
    try:
        pytester.makepyfile(helpers=POST_HELPER)
        pytester.makepyfile(test_remote=f'''
            from helpers import post_grade

            def test_first(clever_sim):
                assert clever_sim.url == {server.url!r}
                assert clever_sim.simulator is None
                student = clever_sim.students()[0]
                clever_sim.register_app(name="Temp", redirect_uris=["http://localhost:9/cb"])
                assert post_grade(clever_sim, student, {{"assignmentID": "r1", "percentage": 0.25}}).status_code == 200
                clever_sim.assert_grade(student, "r1", lti=0.25)

            def test_second_after_reset(clever_sim):
                assert clever_sim.grades() == []
        ''')
        result = run(pytester, "--clever-sim-url", server.url)
        result.assert_outcomes(passed=2)
        apps = httpx.get(server.url + "/_sim/apps", trust_env=False).json()["data"]
        assert [a["name"] for a in apps] == ["Demo Partner (reference)"]  # "Temp" undone
        assert httpx.get(server.url + "/_sim/health", trust_env=False).status_code == 200  # not stopped

        strict = run(pytester, "--clever-sim-url", server.url, "--clever-sim-strict", "-k", "second")
        strict.assert_outcomes(errors=1)
        strict.stdout.fnmatch_lines(["*asks for strict=True but the simulator at * runs with strict=False*"])
    finally:
        server.stop()


def test_clever_sim_url_unreachable_is_a_clear_error(pytester):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    pytester.makepyfile(test_x='''
        def test_one(clever_sim):
            pass

        def test_two(clever_sim):
            pass
    ''')
    result = run(pytester, "--clever-sim-url", f"http://127.0.0.1:{port}")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([f"*no simulator answers at --clever-sim-url http://127.0.0.1:{port}*"])
    assert "Traceback" not in result.stdout.str()


SMOKE = '''
    def test_smoke(clever_sim):
        assert clever_sim.students()
'''


@pytest.mark.skipif(_installed_entry_point() is None,
                    reason="the pytest11 entry point is not installed yet (pyproject "
                           "[project.entry-points.pytest11], then pip install -e .)")
def test_installed_entry_point_loads_the_plugin_without_p(pytester):
    pytester.makepyfile(test_smoke=SMOKE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_plugin_is_importable_without_side_effects():
    before = {t.name for t in threading.enumerate()}
    __import__(MODULE)
    assert MODULE in sys.modules
    assert {t.name for t in threading.enumerate()} == before


@pytest.mark.parametrize("case", ["missing-roster", "invalid-roster", "busy-port", "unreachable-url",
                                  "unknown-server"])
def test_a_simulator_that_cannot_start_is_reported_once_without_a_chained_cause(pytester, monkeypatch,
                                                                                  case):
    """The setup error is the one message: it was printed twice, the second time under
    "During handling of the above exception, another exception occurred" (pytest.fail was
    raised inside the except block that caught the cause). A CLEVER_SIM_SERVER naming no
    server was a ServerUnavailable traceback out of serving.py that never named the variable."""
    pytester.makepyfile(test_x=SMOKE)
    if case == "unknown-server":
        monkeypatch.setenv("CLEVER_SIM_SERVER", "nginx")
    (pytester.path / "bad.json").write_text('{"districts": []}', encoding="utf-8")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args, expected = {
            "missing-roster": (["--clever-sim-roster", "nosuch.json"], "cannot read roster file"),
            "invalid-roster": (["--clever-sim-roster", "bad.json"], "a roster needs at least one district"),
            "busy-port": (["--clever-sim-port", str(port)], f"cannot listen on 127.0.0.1:{port}"),
            "unreachable-url": (["--clever-sim-url", "http://127.0.0.1:1"], "no simulator answers"),
            "unknown-server": ([], "clever_sim: cannot start the simulator: CLEVER_SIM_SERVER='nginx': "
                                   "unknown server 'nginx'; choose one of auto, granian, waitress"),
        }[case]
        result = run(pytester, *args)
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "During handling of the above exception" not in out, out
    assert "Traceback" not in out, out
    # once in the ERRORS section; the short summary after it repeats it (whole under CI=true,
    # where pytest does not cut summary lines to the terminal's width)
    errors_section = out.split("short test summary info")[0]
    assert len([line for line in errors_section.splitlines() if expected in line]) == 1, out


def test_fault_drop_closes_the_connection_unanswered(pytester):
    """The page promises waitress so that a `drop` fault closes the connection unanswered;
    the fixture's fault() could not ask for one (no `drop`), only ControlClient could."""
    pytester.makepyfile(helpers=POST_HELPER)
    pytester.makepyfile(test_drop='''
        import httpx
        import pytest
        from helpers import post_grade

        def test_dropped_then_answered(clever_sim):
            student = clever_sim.students()[0]
            clever_sim.fault("/v1/grade", drop=True)
            with pytest.raises(httpx.RemoteProtocolError):
                post_grade(clever_sim, student, {"assignmentID": "q1", "percentage": 0.5})
            assert post_grade(clever_sim, student, {"assignmentID": "q1", "percentage": 0.5}).status_code == 200
            assert [e["status"] for e in clever_sim.journal(path="/v1/grade")] == [200, 444]
    ''')
    run(pytester).assert_outcomes(passed=1)
