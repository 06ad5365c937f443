"""Proof of the contract suite (issue 4): it passes correct partners and catches broken ones.

- the Python reference partner and a Node.js partner pass every check;
- a broken partner fails exactly the check(s) meant to catch each of its bugs;
- the runner's exit codes (0/1/2), summary table and JUnit XML; the pytest entry point.

Everything runs in this process on port 0 (simulator and Python partners on waitress
threads; the Node partner as a subprocess), with short waits configured through the
suite's undocumented ``[contract]`` knobs so the file stays fast.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from contract_tests.checks import CHECKS
from contract_tests.config import ContractConfigError, load_config
from contract_tests.harness import Check, CheckResult, landing_id
from contract_tests.session import Contract
from contract_tests.runner import contract_command, run_contract
from partners.broken_partner import BUGS, BrokenPartner
from serverproc import node_or_skip
from simulator.app import create_app
from simulator.serving import start_in_thread

ROOT = Path(__file__).resolve().parent.parent
NODE_PARTNER = ROOT / "tests" / "partners" / "node_partner" / "server.js"
ALL_IDS = [c.id for c in CHECKS]
# assignments_timeout_s: far above a correct partner on a loaded 2-core machine (~0.5 s seen),
# far below the slow broken partner (2 s).
FAST = {"grade_timeout_s": 3, "assignments_timeout_s": 1.5, "settle_s": 0.1}


@pytest.fixture(scope="module")
def sim():
    app = create_app({"DB": ":memory:", "SECRET_KEY": "contract-proof"}, environ={})
    server = start_in_thread(app)
    yield server
    server.stop()


def write_toml(path: Path, base: str, client_id: str, *, secret: str = "s3cret", hook: bool = True,
               pattern: bool = True, **contract) -> Path:
    lines = ["[app]", f'name = "{client_id}"', f'client_id = "{client_id}"',
             f'client_secret = "{secret}"', f'redirect_uris = ["{base}/clever/callback"]',
             f'assignments_url = "{base}/clever/assignments"', "", "[contract]"]
    if hook:
        lines.append(f'complete_assignment_hook = "{base}/test-hooks/complete"')
    if pattern:
        lines.append('landing_url_pattern = "/assignments/{assignment_id}"')
    for key, value in {**FAST, **contract}.items():
        lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(toml: Path, sim, **kw):
    out: list[str] = []
    kw.setdefault("sim_url", sim.url)
    result = run_contract(str(toml), emit=out.append, **kw)
    assert result.output == "\n".join(out)
    assert "Traceback" not in result.output
    return result


def outcomes(result) -> dict[str, str]:
    return {r.id: r.outcome for r in result.results}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- correct partners pass everything --------------------------------------------------------

@pytest.fixture
def reference(sim):
    from contract_tests.reference_partner import bind_partner, create_partner_app

    app = create_partner_app({"CLEVER_URL": sim.url, "API_URL": sim.url, "GRADES_URL": sim.url,
                              "CLIENT_ID": "reference-proof", "CLIENT_SECRET": "ref-secret"})
    server = bind_partner(app, "127.0.0.1", 0).start()
    yield server
    server.stop()


def test_reference_partner_passes_every_check(sim, reference, tmp_path):
    toml = write_toml(tmp_path / "partner.toml", reference.url, "reference-proof", secret="ref-secret")
    result = run(toml, sim, level="recommended", junit_xml=str(tmp_path / "junit.xml"))
    assert outcomes(result) == {cid: "PASS" for cid in ALL_IDS}, result.output
    assert result.exit_code == 0
    assert "Result: PASS" in result.output
    cases = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    assert [c.get("name") for c in cases] == ALL_IDS


@contextlib.contextmanager
def node_partner(sim, client_id: str, secret: str, bugs: tuple[str, ...] = ()):
    """The Node.js partner as a subprocess (``BUGS`` env switches its mistakes); its URL."""
    node = node_or_skip()
    env = {**os.environ, "SIM_URL": sim.url, "CLIENT_ID": client_id, "CLIENT_SECRET": secret,
           "PORT": "0", "HOST": "127.0.0.1", "BUGS": ",".join(bugs)}
    proc = subprocess.Popen([node, str(NODE_PARTNER)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        with selectors.DefaultSelector() as sel:  # never wait forever for the banner
            sel.register(proc.stdout, selectors.EVENT_READ)
            line = proc.stdout.readline() if sel.select(timeout=15) else ""
        match = re.search(r"listening on (http://\S+)", line)
        assert match, f"node partner did not start: {line!r}"
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        proc.stdout.close()


def test_node_partner_passes_every_check(sim, tmp_path):
    with node_partner(sim, "node-proof", "node-secret") as url:
        toml = write_toml(tmp_path / "partner.toml", url, "node-proof", secret="node-secret")
        result = run(toml, sim, level="recommended")
    assert outcomes(result) == {cid: "PASS" for cid in ALL_IDS}, result.output
    assert result.exit_code == 0


# --- broken partners fail exactly the checks meant to catch them ------------------------------

GRADES_BROKEN = {"GRADE-001", "GRADE-002", "GRADE-003", "GRADE-004", "GRADE-006", "GRADE-007",
                 "GRADE-008", "GRADE-009", "GRADE-010", "GRADE-011", "GRADE-012", "GRADE-013",
                 "GRADE-014", "GRADE-015", "GRADE-016"}
# With no bug the broken partner is correct: every row below shows that all the other
# checks pass, so a separate no-bug run would only cost time.
BROKEN: dict[str, set[str]] = {
    "assignments_missing_type": {"ASSIGN-002"},
    "duplicate_ids": {"ASSIGN-003"},
    "ids_change_between_calls": {"ASSIGN-004"},
    "long_ids": {"ASSIGN-005"},
    "html_instead_of_json": {"ASSIGN-001"},      # everything needing the list is SKIPPED
    "no_auth_check": {"ASSIGN-006"},
    "slow_assignments": {"ASSIGN-007"},
    "ignores_state": {"LOGIN-003"},
    "mangles_state_id": {"LOGIN-008"},
    "exchanges_code_twice": {"LOGIN-001"},
    "secret_in_url": {"LOGIN-010"},
    "secret_in_auth_param": {"LOGIN-010"},   # the secret's value under another name
    "nonce_named_secret": set(),              # named secret, not the secret: no leak
    "wrong_redirect_uri": {"LOGIN-001", "LOGIN-004"},   # nobody can log in at all
    "no_me_hardcoded_user": {"LOGIN-002"},
    "500_without_state": {"LOGIN-004", "LOGIN-009"},      # LOGIN-009 has an empty state
    "500_on_invalid_code": {"LOGIN-005", "LOGIN-009"},    # LOGIN-009 has garbage codes
    "500_on_reused_code": {"LOGIN-006"},
    "500_on_unknown_assignment": {"LOGIN-007", "LOGIN-008", "LOGIN-009"},  # unknown ids in both
    "reflects_assignment_id": {"LOGIN-009"},
    "redirects_to_state_url": {"LOGIN-009"},
    "percentage_80": {"GRADE-001", "GRADE-004"},     # Clever refuses it, so no grade arrives
    "wrong_user_id_district_token": {"GRADE-001", "GRADE-002"},
    "omits_user_id_district_token": {"GRADE-001", "GRADE-002"},
    "text_plain": {"GRADE-001", "GRADE-003"},
    "no_retry_503": {"GRADE-006"},
    "ignores_retry_after": {"GRADE-007"},
    "no_backoff": {"GRADE-006"},
    "fixed_backoff": {"GRADE-011"},
    "il_401_gives_up": {"GRADE-012"},
    "district_401_gives_up": {"GRADE-013"},
    "no_retry_network_errors": {"GRADE-009"},
    "retries_permanent_errors": {"GRADE-010"},
    "duplicate_storm": {"GRADE-008", "GRADE-010"},        # 5 POSTs after a 400 too
    "hook_hangs": GRADES_BROKEN,                  # every hook-driven check, by timeout
    "hook_sends_nothing": GRADES_BROKEN,          # the first waits, the others fail at once
}
LEVEL = {c.id: c.level for c in CHECKS}


def test_the_table_covers_every_bug_and_every_check():
    """Every check that can fail a run is proven to catch a planted bug: here (Python), in
    test_partner_depth's table (the Node partner's misread-the-guide mistakes) or in
    test_partner_depth_perl's (the Perl partner's)."""
    from test_partner_depth import DEPTH
    from test_partner_depth_perl import DEPTH as PERL_DEPTH

    assert set(BROKEN) == set(BUGS)
    proved = set().union(*BROKEN.values(), *(failing for _, failing, _ in DEPTH.values()),
                         *(failing for _, failing, _ in PERL_DEPTH.values()))
    assert proved - {c.id for c in CHECKS if c.level == "reported"} == \
        {c.id for c in CHECKS if c.level != "reported"}


@pytest.mark.parametrize("bug", list(BROKEN))
def test_broken_partner_fails_exactly_the_checks_meant_to_catch_it(sim, tmp_path, bug):
    client_id = f"broken-{bug}"
    extra = {"grade_timeout_s": 1.5} if bug.startswith("hook_") else {}
    with BrokenPartner(sim.url, client_id, "s3cret", bugs={bug}, slow_s=2.0) as partner:
        toml = write_toml(tmp_path / "partner.toml", partner.url, client_id, **extra)
        result = run(toml, sim)
    assert result.failing() == BROKEN[bug], result.output
    expected_exit = 1 if any(LEVEL[c] == "required" for c in BROKEN[bug]) else 0
    assert result.exit_code == expected_exit
    for r in result.results:
        if r.outcome == "FAIL" and r.id in BROKEN[bug] and "not run:" not in r.reason:
            assert "Sent:" in r.details and "Got:" in r.details and "Fix:" in r.details, r.explanation()
            assert r.seed and r.seed.split(" \u2026 ")[0][:30] in r.explanation()
    if bug == "html_instead_of_json":
        skipped = [r for r in result.results if r.outcome == "SKIP"]
        assert skipped and all("ASSIGN-001" in r.reason or "ASSIGN-002" in r.reason for r in skipped)
    if bug.startswith("hook_"):
        first = result.by_id()["GRADE-001"]
        assert ("did not answer" if bug == "hook_hangs" else "no grade reached Clever within 1.5 s") \
            in first.reason, first.reason
        assert all("not run" in result.by_id()[c].reason for c in GRADES_BROKEN - {"GRADE-001"})


# The Node.js partner's own switches (BUGS env): the same mistakes in another language.
NODE_BROKEN: dict[str, set[str]] = {
    "reflects_assignment_id": {"LOGIN-009"},
    "redirects_to_state_url": {"LOGIN-009"},
    "no_backoff": {"GRADE-006"},
    "fixed_backoff": {"GRADE-011"},
    "il_401_gives_up": {"GRADE-012"},
    "district_401_gives_up": {"GRADE-013"},
    "no_retry_network_errors": {"GRADE-009"},
    "retries_permanent_errors": {"GRADE-010"},
}


@pytest.mark.parametrize("bug", list(NODE_BROKEN))
def test_broken_node_partner_fails_exactly_the_check_meant_to_catch_it(sim, tmp_path, bug):
    client_id = f"node-{bug}"
    only = ",".join(sorted({c.split("-")[0] for c in NODE_BROKEN[bug]}))
    with node_partner(sim, client_id, "node-secret", bugs=(bug,)) as url:
        toml = write_toml(tmp_path / "partner.toml", url, client_id, secret="node-secret")
        result = run(toml, sim, only=only, level="recommended")
    assert result.failing() == NODE_BROKEN[bug], result.output
    assert result.exit_code == 1


# --- runner: exit codes, table, JUnit ----------------------------------------------------------

def test_runner_starts_its_own_simulator_on_the_given_port(tmp_path):
    from contract_tests.reference_partner import bind_partner, create_partner_app

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_partner_app({"CLEVER_URL": url, "API_URL": url, "GRADES_URL": url,
                              "CLIENT_ID": "own-sim", "CLIENT_SECRET": "own-secret"})
    partner = bind_partner(app, "127.0.0.1", 0).start()
    try:
        toml = write_toml(tmp_path / "partner.toml", partner.url, "own-sim", secret="own-secret")
        out: list[str] = []
        result = run_contract(str(toml), sim_port=port, only="ASSIGN-001,LOGIN-001,GRADE-001",
                              emit=out.append)
    finally:
        partner.stop()
    assert result.exit_code == 0, result.output
    assert outcomes(result) == {"ASSIGN-001": "PASS", "LOGIN-001": "PASS", "GRADE-001": "PASS"}
    assert f"simulator  {url} (started by the runner, reset)" in result.output
    with pytest.raises(OSError):  # stopped afterwards
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_summary_table_and_junit_xml(sim, tmp_path):
    with BrokenPartner(sim.url, "junit-proof", "s3cret", bugs={"assignments_missing_type"}) as partner:
        toml = write_toml(tmp_path / "partner.toml", partner.url, "junit-proof", hook=False)
        junit = tmp_path / "out" / "contract.xml"
        junit.parent.mkdir()
        result = run(toml, sim, only="ASSIGN,GRADE-001", junit_xml=str(junit))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if re.match(r"ID\s+LEVEL\s+RESULT\s+REASON$", line))
    rows = {line.split()[0]: line.split()[1:3] for line in lines[header + 2: header + 12]}
    assert rows["ASSIGN-002"] == ["required", "FAIL"]
    assert rows["ASSIGN-001"] == ["required", "PASS"]
    assert rows["GRADE-001"] == ["required", "SKIP"]
    assert "Result: FAIL" in result.output and "ASSIGN-002" in result.output.split("Result:")[1]

    raw = junit.read_bytes()
    assert b"\x1b" not in raw
    root = ET.fromstring(raw)
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases) == [f"ASSIGN-00{i}" for i in range(1, 10)] + ["GRADE-001"]
    suite = root.find("testsuite")
    assert suite.get("tests") == "10" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    failure = cases["ASSIGN-002"].find("failure")
    assert failure is not None and failure.get("type") == "required"
    message = failure.get("message")
    assert message == failure.text
    assert "type is missing" in message and "Fix:" in message and "Seed rule:" in message
    assert cases["GRADE-001"].find("skipped") is not None
    assert cases["ASSIGN-001"].find("failure") is None


def test_without_a_hook_grade_checks_are_skipped_with_instructions(sim, reference, tmp_path):
    toml = write_toml(tmp_path / "partner.toml", reference.url, "reference-proof", secret="ref-secret",
                      hook=False)
    result = run(toml, sim, only="GRADE")
    assert result.exit_code == 0
    assert set(outcomes(result).values()) == {"SKIP"}
    assert len(result.results) == len([c for c in CHECKS if c.area == "GRADE"])
    for r in result.results:
        assert "complete_assignment_hook" in r.reason and "docs/contract-tests.md" in r.reason
    assert "NOT verified" in result.output


def test_recommended_failures_count_only_at_level_recommended(sim, tmp_path):
    with BrokenPartner(sim.url, "level-proof", "s3cret", bugs={"no_auth_check"}) as partner:
        toml = write_toml(tmp_path / "partner.toml", partner.url, "level-proof")
        relaxed = run(toml, sim, only="ASSIGN-006")
        strict = run(toml, sim, only="ASSIGN-006", level="recommended")
    assert outcomes(relaxed) == outcomes(strict) == {"ASSIGN-006": "FAIL"}
    assert relaxed.exit_code == 0 and "Recommended check(s) failed" in relaxed.output
    assert strict.exit_code == 1


BAD_CONFIGS = {
    "invalid TOML": ("[app\nname = 1", "not valid TOML"),
    "no [app]": ("[contract]\ngrade_timeout_s = 5\n", "no [app] table"),
    "misspelt [contract]": ('[app]\nclient_id = "a"\nclient_secret = "b"\nredirect_uris = ["http://127.0.0.1:1/cb"]\n'
                            'assignments_url = "http://127.0.0.1:1/a"\n[contrat]\ngrade_timeout_s = 5\n',
                            "unknown table [contrat] (known: [app], [contract], [simulator])"),
    "key above every table": ('grade_timeout_s = 5\n[app]\nclient_id = "a"\n',
                              "key 'grade_timeout_s' is outside any table"),
    "no redirect_uris": ('[app]\nclient_id = "a"\nclient_secret = "b"\n'
                         'assignments_url = "http://127.0.0.1:1/a"\n', "[app].redirect_uris is missing"),
    "no assignments_url": ('[app]\nclient_id = "a"\nclient_secret = "b"\n'
                           'redirect_uris = ["http://127.0.0.1:1/cb"]\n', "[app].assignments_url is missing"),
    "no client_id": ('[app]\nclient_secret = "b"\nredirect_uris = ["http://127.0.0.1:1/cb"]\n'
                     'assignments_url = "http://127.0.0.1:1/a"\n', "[app].client_id is missing"),
    "bad landing pattern": ('[app]\nclient_id = "a"\nclient_secret = "b"\n'
                            'redirect_uris = ["http://127.0.0.1:1/cb"]\nassignments_url = "http://127.0.0.1:1/a"\n'
                            '[contract]\nlanding_url_pattern = "/assignments"\n', "{assignment_id}"),
    "relative hook": ('[app]\nclient_id = "a"\nclient_secret = "b"\n'
                      'redirect_uris = ["http://127.0.0.1:1/cb"]\nassignments_url = "http://127.0.0.1:1/a"\n'
                      '[contract]\ncomplete_assignment_hook = "/hook"\n', "complete_assignment_hook"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_exit_2_for_config_problems(sim, tmp_path, case):
    text, expected = BAD_CONFIGS[case]
    toml = tmp_path / "partner.toml"
    toml.write_text(text, encoding="utf-8")
    result = run(toml, sim)
    assert result.exit_code == 2 and expected in result.output, result.output
    assert result.results == []


def test_exit_2_for_missing_file_bad_options_and_unreachable_servers(sim, tmp_path):
    assert (r := run(tmp_path / "nope.toml", sim)).exit_code == 2
    assert "config file not found" in r.output
    closed = f"http://127.0.0.1:{free_port()}"
    toml = write_toml(tmp_path / "partner.toml", closed, "unreachable")
    assert (r := run(toml, sim)).exit_code == 2
    assert "partner not reachable at " + closed in r.output and "[app].assignments_url" in r.output
    assert (r := run(toml, sim, sim_url=closed)).exit_code == 2
    assert "simulator not reachable at " + closed in r.output
    port = int(sim.url.rsplit(":", 1)[1])
    assert (r := run(toml, sim, sim_url=None, sim_port=port)).exit_code == 2
    assert f"cannot start the simulator on 127.0.0.1:{port}" in r.output
    assert (r := run(toml, sim, sim_port=0)).exit_code == 2 and "not both" in r.output
    assert (r := run(toml, sim, only="ASSIGN-999")).exit_code == 2 and "unknown check" in r.output
    assert (r := run(toml, sim, junit_xml=str(tmp_path / "no" / "dir.xml"))).exit_code == 2


def test_cli_exit_codes_without_tracebacks(sim, tmp_path):
    cli = CliRunner()
    missing = cli.invoke(contract_command, ["--config", str(tmp_path / "missing.toml")])
    assert missing.exit_code == 2 and "config file not found" in missing.output
    assert cli.invoke(contract_command, ["--config", "x.toml", "--level", "bogus"]).exit_code == 2
    with BrokenPartner(sim.url, "cli-proof", "s3cret", bugs={"duplicate_ids"}) as partner:
        toml = write_toml(tmp_path / "partner.toml", partner.url, "cli-proof")
        ok = cli.invoke(contract_command, ["--config", str(toml), "--sim-url", sim.url,
                                           "--only", "ASSIGN-001"])
        bad = cli.invoke(contract_command, ["--config", str(toml), "--sim-url", sim.url,
                                            "--only", "assign-003"])
    assert ok.exit_code == 0, ok.output
    assert bad.exit_code == 1, bad.output
    for res in (missing, ok, bad):
        assert "Traceback" not in res.output and "\x1b" not in res.output
    assert re.search(r"^ASSIGN-003\s+required\s+FAIL\s+1 id\(s\) appear more than once", bad.output, re.M)


def test_pytest_entry_point_runs_the_same_suite(sim, reference, tmp_path):
    toml = write_toml(tmp_path / "partner.toml", reference.url, "reference-proof", secret="ref-secret")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "contract_tests", "-p", "no:cacheprovider",
         "--clever-config", str(toml), "--sim-url", sim.url, "--only", "ASSIGN-001,LOGIN-003", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout and f"{len(ALL_IDS) - 2} deselected" in proc.stdout
    assert "Clever contract checks" in proc.stdout


# --- units: landing URLs, config, the per-check time limit ------------------------------------

@pytest.mark.parametrize("pattern, url, expected", [
    ("/assignments/{assignment_id}", "http://h/assignments/frac5nf1", "frac5nf1"),
    ("/assignments/{assignment_id}", "http://h/assignments/unit%203%2Fquiz%201", "unit 3/quiz 1"),
    ("/assignments/{assignment_id}", "http://h/assignments/unit%203/quiz%201/", "unit 3/quiz 1"),
    ("/assignments/{assignment_id}", "http://h/dashboard", None),
    ("/a/{assignment_id}/start", "http://h/a/x1/start?x=1", "x1"),
    ("/play?assignment={assignment_id}", "http://h/play?assignment=unit+3%2Fquiz+1&lang=en", "unit 3/quiz 1"),
    ("http://h/assignments/{assignment_id}", "http://h/assignments/a%20b", "a b"),
    ("http://h/assignments/{assignment_id}", "http://other/assignments/a", None),
])
def test_landing_id(pattern, url, expected):
    assert landing_id(pattern, url) == expected


def test_config_defaults_and_hidden_knobs(tmp_path):
    toml = write_toml(tmp_path / "p.toml", "http://127.0.0.1:5001", "mathly", hook=False,
                      pattern=False, grade_timeout_s=7)
    cfg = load_config(toml)
    assert cfg.hook is None and cfg.landing_url_pattern is None
    assert (cfg.grade_timeout_s, cfg.assignments_timeout_s, cfg.settle_s) == (7.0, 1.5, 0.1)
    assert cfg.redirect_uri == "http://127.0.0.1:5001/clever/callback"
    (tmp_path / "typo.toml").write_text(toml.read_text() + "complete_assignment_hok = 1\n")
    with pytest.raises(ContractConfigError, match="unknown key \\[contract\\].complete_assignment_hok"):
        load_config(tmp_path / "typo.toml")


def test_a_check_that_hangs_is_abandoned_with_a_reason(sim, tmp_path):
    cfg = load_config(write_toml(tmp_path / "p.toml", "http://127.0.0.1:1", "hang-proof"))

    class Quick(Contract):
        check_budget = 0.3

    release, finished = threading.Event(), []

    def hangs(c: Contract) -> str:
        c.doing("waiting for nothing")
        release.wait(30)  # until the test lets go, long after the 0.3 s budget
        finished.append(True)
        return "never"

    contract = Quick(cfg, sim.url, owns_simulator=False)
    try:
        result = contract.run(Check("TEST-001", "TEST", "required", "hangs", "seed", "rule", hangs))
        assert not finished, "the run waited for the hanging check instead of abandoning it"
    finally:
        release.set()
        contract.close()
    assert isinstance(result, CheckResult) and result.outcome == "FAIL" and result.counted
    assert "did not finish within" in result.reason and "waiting for nothing" in result.reason


def test_every_check_quotes_the_seed_and_has_a_stable_id():
    assert len(ALL_IDS) == len(set(ALL_IDS))
    for c in CHECKS:
        assert re.fullmatch(r"(ASSIGN|LOGIN|GRADE)-\d{3}", c.id)
        assert c.level in ("required", "recommended", "reported")
        assert c.seed and c.rule and c.title
    text = (ROOT / "docs" / "contract-tests.md").read_text(encoding="utf-8")
    for c in CHECKS:
        assert f"| {c.id} |" in text, f"{c.id} is missing from docs/contract-tests.md's check table"
    assert f"against your running app: {len(CHECKS)} checks," in text  # the count it announces


# --- reports for people: --report report.html / report.md ------------------------------------

def _outside_fences(markdown: str) -> str:
    """The Markdown text that GitHub renders as markup (fenced code blocks removed)."""
    out, fence = [], None
    for line in markdown.splitlines():
        m = re.match(r"^(`{3,})", line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            out.append(line)
    return "\n".join(out)


def test_html_and_markdown_reports_show_verdict_evidence_and_fix_with_hostile_text_escaped(sim, tmp_path):
    with BrokenPartner(sim.url, "report-proof", "s3cret", bugs={"reflects_assignment_id"}) as partner:
        toml = write_toml(tmp_path / "partner.toml", partner.url, "report-proof", hook=False)
        html_path, md_path = tmp_path / "report.html", tmp_path / "report.md"
        result = run(toml, sim, only="ASSIGN-001,LOGIN-009", reports=[str(html_path), str(md_path)])
    assert result.exit_code == 1 and outcomes(result) == {"ASSIGN-001": "PASS", "LOGIN-009": "FAIL"}
    assert f"Report: {html_path}" in result.output and f"Report: {md_path}" in result.output
    page = html_path.read_text(encoding="utf-8")
    # the partner's answer reflected <script>xss…</script>: shown as evidence, escaped
    assert re.search(r"&lt;script&gt;xss[0-9a-f]{8}&lt;/script&gt;", page)
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no external assets
    assert "<style>" in page and "Result: FAIL" in page
    assert 'id="login-009"' in page and "How to fix it:" in page and "treat state and code as untrusted text" in page
    assert "<h3>Sent</h3>" in page and "<h3>Got</h3>" in page and "Passes when:" in page
    assert re.search(r"<tr class=\"pass\"><td><a href=\"#assign-001\">ASSIGN-001</a></td><td>required</td><td>PASS</td>", page)

    md = md_path.read_text(encoding="utf-8")
    assert "| LOGIN-009 | required | FAIL |" in md and "| ASSIGN-001 | required | PASS |" in md
    assert "### LOGIN-009" in md and "**How to fix it:**" in md and "**Got:**" in md
    rendered = _outside_fences(md)
    assert "<script" not in rendered and "&lt;script&gt;xss" in rendered
    assert re.search(r"<script>xss[0-9a-f]{8}</script>", md)  # only inside a code block


def test_markdown_cells_and_fences_cannot_be_broken_by_partner_text():
    from contract_tests.report import render_markdown

    hostile = "a | b <img src=x> `` ``` [link](http://x) *bold*"
    r = CheckResult("LOGIN-009", "t", "required", "FAIL", hostile, details="x", counted=True,
                    sections=[("Got", "page: ```\n</pre><script>1</script>\n````"), ("Fix", hostile)])
    md = render_markdown([r], verdict_text="Result: FAIL", meta={"app": "a|b"})
    row = next(line for line in md.splitlines() if line.startswith("| LOGIN-009"))
    assert row.count(" | ") == 3 and "<img" not in row and "\\|" in row
    fence = re.search(r"^(`{3,})text$", md, re.M).group(1)
    assert len(fence) == 5  # longer than the answer's own ````
    assert "<script" not in _outside_fences(md) and "<img" not in _outside_fences(md)


@pytest.mark.parametrize("name, expected", [("report.txt", "name an .html file"),
                                            ("missing/report.md", "does not exist")])
def test_report_paths_are_checked_before_anything_runs(sim, tmp_path, name, expected):
    toml = write_toml(tmp_path / "partner.toml", "http://127.0.0.1:1", "report-path")
    result = run(toml, sim, reports=[str(tmp_path / name)])
    assert result.exit_code == 2 and expected in result.output and result.results == []


# --- units: how LOGIN-009 judges one answer ------------------------------------------------------

def _visit(*hops) -> "Browse":
    from contract_tests.harness import Browse, Hop

    visit = Browse("http://app.test/cb?x")
    visit.hops = [Hop(url, status, location, ctype, body) for url, status, location, ctype, body in hops]
    return visit


HTML = "text/html; charset=utf-8"
MARK = "<script>xss1</script>"


@pytest.mark.parametrize("hops, problem", [
    ([("http://app.test/cb", 500, None, HTML, "<h1>Oops</h1>")], "HTTP 500 (a server error)"),
    ([("http://app.test/cb", 302, "https://evil.invalid/x", "", "")], "redirected outside the app's origin"),
    ([("http://app.test/cb", 302, "//evil.invalid/x", "", "")], "redirected outside the app's origin"),
    ([("http://app.test/cb", 302, "javascript:alert(1)", "", "")], "redirected outside the app's origin"),
    ([("http://app.test/cb", 302, "https://app.test/a", "", "")], "redirected outside the app's origin"),
    ([("http://app.test/cb", 404, None, HTML, f"<p>No assignment {MARK}</p>")], "reflected the markup"),
    ([("http://app.test/cb", 404, None, "", f"<p>No assignment {MARK}</p>")], "reflected the markup"),
    ([("http://app.test/cb", 400, None, "application/json", '{"error": "bad"}')], "not an HTML page"),
    ([("http://app.test/cb", 200, None, HTML, "<script>x()</script><div></div>")], "an empty page"),
    ([("http://app.test/cb", 304, None, HTML, "")], "without a page to land on"),
])
def test_hostile_launch_answers_that_strand_or_endanger_a_student(hops, problem):
    from contract_tests.login_checks import Hostile, hostile_problem

    found = hostile_problem(Hostile("t", "assignment:" + MARK, markup=MARK), _visit(*hops),
                            ("http", "app.test"))
    assert found is not None and problem in found, found


@pytest.mark.parametrize("hops", [
    [("http://app.test/cb", 302, "/assignments/%3Cscript%3E", "", ""),
     ("http://app.test/assignments/%3Cscript%3E", 404, None, HTML,
      "<p>No assignment &lt;script&gt;xss1&lt;/script&gt;</p>")],
    [("http://app.test/cb", 400, None, HTML, "<h1>Login link incomplete</h1>")],
    [("http://app.test/cb", 302, "http://app.test/dashboard", "", ""),
     ("http://app.test/dashboard", 200, None, HTML, "<h1>Dashboard</h1>")],
])
def test_hostile_launch_answers_a_student_can_act_on(hops):
    from contract_tests.login_checks import Hostile, hostile_problem

    assert hostile_problem(Hostile("t", "assignment:" + MARK, markup=MARK), _visit(*hops),
                           ("http", "app.test")) is None
