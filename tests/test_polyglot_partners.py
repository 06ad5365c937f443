"""The contract suite against more partners not written in Python, each with its own
planted mistakes (env BUG=name): a Node.js app on node:http alone (server and client) and a
Java app on the JDK's HttpServer and HttpClient. The correct build of each passes every
check; each bug fails exactly the checks meant to catch it, with a message naming the
mistake. Node is required in CI (CLEVER_SIM_REQUIRE_NODE=1); Java skips when absent. The
correct Perl partner passes every check here too (its mistakes: test_partner_depth_perl.py;
skipped when perl is absent).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from contract_tests.checks import CHECKS
from serverproc import LineProcess, node_or_skip
from test_contract_suite import outcomes, run, sim, write_toml  # noqa: F401  (sim: a fixture)

ROOT = Path(__file__).resolve().parent.parent
NODE_APP = ROOT / "tests" / "partners" / "node_http_partner" / "partner.js"
JAVA_APP = ROOT / "tests" / "partners" / "java_partner" / "Partner.java"
ALL_IDS = [c.id for c in CHECKS]


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory) -> Path:
    """Partner.java compiled once (javac), so each bug's app starts in well under a second."""
    javac = shutil.which("javac")
    if shutil.which("java") is None or javac is None:
        pytest.skip("java/javac are not installed: the Java partner (tests/partners/java_partner) "
                    "cannot run here")
    out = tmp_path_factory.mktemp("java-partner")
    subprocess.run([javac, "-d", str(out), str(JAVA_APP)], check=True, capture_output=True, timeout=120)
    return out


@contextlib.contextmanager
def partner(lang: str, sim_url: str, client_id: str, bug: str = "", classes: Path | None = None):
    """One partner process (``BUG=bug``), its base URL while it runs."""
    args = ["--sim", sim_url, "--port", "0", "--client-id", client_id, "--client-secret", "poly-secret"]
    if lang == "node":
        cmd = [node_or_skip(), str(NODE_APP), *args]
    else:
        cmd = [shutil.which("java"), "-cp", str(classes), "Partner", *args]
    with LineProcess(cmd, r"listening on (http://\S+)", timeout=30,
                     env={**os.environ, "BUG": bug, "SLOW_MS": "2000"}) as app:
        yield app.url


def _suite(lang: str, sim, tmp_path: Path, bug: str, only: str | None, classes: Path | None = None):
    client_id = f"{lang}-poly-{bug or 'ok'}".replace("_", "-")
    with partner(lang, sim.url, client_id, bug, classes) as url:
        toml = write_toml(tmp_path / "partner.toml", url, client_id, secret="poly-secret")
        return run(toml, sim, only=only, level="recommended")


def test_node_http_partner_passes_every_check(sim, tmp_path):
    result = _suite("node", sim, tmp_path, "", None)
    assert outcomes(result) == {cid: "PASS" for cid in ALL_IDS}, result.output
    assert result.exit_code == 0


def test_perl_partner_passes_every_check(sim, tmp_path):
    from test_partner_depth_perl import perl_suite

    result = perl_suite(sim, tmp_path, "", None)
    assert outcomes(result) == {cid: "PASS" for cid in ALL_IDS}, result.output
    assert result.exit_code == 0


def test_java_partner_passes_every_check(sim, tmp_path, java_classes):
    result = _suite("java", sim, tmp_path, "", None, java_classes)
    assert outcomes(result) == {cid: "PASS" for cid in ALL_IDS}, result.output
    assert result.exit_code == 0


# bug -> (the checks to run, the checks that fail, words the first failure's summary must
# contain: the mistake named so the partner's engineer knows what to change). Everything else
# run must pass or be skipped for a named upstream reason. Each run is an area, or for the
# slow GRADE area the checks the bug touches plus their neighbours (the revocation checks
# for token mistakes: they must skip, not misreport), to keep the file fast.
TOKEN_RUN = "GRADE-001,GRADE-002,GRADE-003,GRADE-012,GRADE-013"
SCORE_RUN = "GRADE-001,GRADE-002,GRADE-003,GRADE-004"
BUGS: dict[str, tuple[str, set[str], str]] = {
    "bare_array": ("ASSIGN", {"ASSIGN-002"}, "bare JSON array: wrap it in an object"),
    "assignments_as_object": ("ASSIGN", {"ASSIGN-002"}, "\"assignments\" is a JSON object, not an array"),
    "numeric_ids": ("ASSIGN", {"ASSIGN-002"}, "not a string (send it as a string"),
    "missing_type": ("ASSIGN", {"ASSIGN-002"}, "type is missing"),
    "html_error_page": ("ASSIGN", {"ASSIGN-001"}, "Content-Type text/html, not application/json"),
    "slow_assignments": ("ASSIGN-001,ASSIGN-007", {"ASSIGN-007"}, "to answer (limit 1.5 s)"),
    "no_auth_check": ("ASSIGN", {"ASSIGN-006"}, "without a valid token"),
    "ignores_state": ("LOGIN", {"LOGIN-003"}, "not the assignment page"),
    "keeps_prefix": ("LOGIN", {"LOGIN-003", "LOGIN-008"}, "still starts with \"assignment:\""),
    "double_decode": ("LOGIN", {"LOGIN-008"}, "percent-decoded twice"),
    "query_split_decoded": ("LOGIN", {"LOGIN-008"}, "the id was cut or mis-decoded"),
    "redirect_uri_mismatch": ("LOGIN", {"LOGIN-001", "LOGIN-004"}, "redirect_uri"),
    "crash_on_bad_code": ("LOGIN", {"LOGIN-005", "LOGIN-006", "LOGIN-009"}, "HTTP 500"),
    "secret_in_query": ("LOGIN", {"LOGIN-010"}, "sent the client secret in the URL of POST /oauth/tokens"),
    "secret_in_auth_param": ("LOGIN", {"LOGIN-010"}, "sent the client secret in the URL of POST /oauth/tokens "
                                                     "(query parameter auth)"),
    "nonce_named_secret": ("LOGIN", set(), ""),  # not a mistake: a parameter named secret, not the secret
    "open_redirect": ("LOGIN", {"LOGIN-009"}, "redirected outside the app's origin"),
    "reflects_id": ("LOGIN", {"LOGIN-009"}, "unescaped in an HTML answer"),
    "token_in_query": (TOKEN_RUN, {"GRADE-001", "GRADE-002"},
                       "sent the token in the URL query (access_token=…)"),
    "token_scheme": (TOKEN_RUN, {"GRADE-001", "GRADE-002"},
                     "\"Authorization: Token …\"; Clever takes only the Bearer scheme"),
    "percent_0_100": (SCORE_RUN, {"GRADE-001", "GRADE-004"}, "looks like 0–100"),
    "percent_string": (SCORE_RUN, {"GRADE-001", "GRADE-004"}, "must be a number"),
    "score_without_max": (SCORE_RUN, {"GRADE-001", "GRADE-004"}, "scoreMaximum is missing"),
    "wrong_user": ("GRADE-001,GRADE-002,GRADE-013", {"GRADE-001", "GRADE-002"}, "is the classmate who had just launched your app"),
    "retries_400": ("GRADE-006,GRADE-008,GRADE-010", {"GRADE-010"}, "after Clever answered 400"),
    "no_retry_5xx": ("GRADE-006,GRADE-007,GRADE-011", {"GRADE-006"}, "did not send the grade again after Clever answered 500"),
    "ignores_retry_after": ("GRADE-006,GRADE-007", {"GRADE-007"}, "after a 429 that said Retry-After: 1"),
    "no_retry_network": ("GRADE-006,GRADE-009", {"GRADE-009"}, "did not send the grade again after Clever answered a dropped"),
}
NODE_BUGS = [b for b in BUGS if b != "query_split_decoded"]
JAVA_BUGS = ["numeric_ids", "query_split_decoded", "keeps_prefix", "crash_on_bad_code", "token_scheme",
             "percent_string", "wrong_user", "ignores_retry_after", "secret_in_auth_param",
             "nonce_named_secret"]


def _judge(result, bug: str) -> None:
    _, failing, words = BUGS[bug]
    assert result.failing() == failing, result.output
    if not failing:  # a switch that is no mistake: every check run passes
        assert result.exit_code == 0 and {r.outcome for r in result.results} == {"PASS"}, result.output
        return
    assert result.exit_code == 1
    first = result.by_id()[sorted(failing)[0]]
    assert words in first.reason, first.explanation()
    assert "Sent:" in first.details and "Got:" in first.details and "Fix:" in first.details
    for r in result.results:
        if r.outcome == "SKIP":
            assert re.search(r"see (ASSIGN|LOGIN|GRADE)-0", r.reason), r.reason


@pytest.mark.parametrize("bug", NODE_BUGS)
def test_node_http_partner_bug_fails_exactly_its_checks(sim, tmp_path, bug):
    _judge(_suite("node", sim, tmp_path, bug, BUGS[bug][0]), bug)


@pytest.mark.parametrize("bug", JAVA_BUGS)
def test_java_partner_bug_fails_exactly_its_checks(sim, tmp_path, java_classes, bug):
    _judge(_suite("java", sim, tmp_path, bug, BUGS[bug][0], java_classes), bug)


def test_every_planted_bug_is_in_the_table():
    """The table names every switch of both apps (a new BUG must say what catches it)."""
    node = set(re.findall(r"^  (\w+): '", NODE_APP.read_text(encoding="utf-8"), re.M))
    java = set(re.findall(r'"(\w+)"[,)]\s*//', JAVA_APP.read_text(encoding="utf-8")))
    assert node == set(NODE_BUGS)
    assert java <= set(BUGS) and set(JAVA_BUGS) <= java


# --- the messages those bugs get, without a partner ----------------------------------------------

@pytest.mark.parametrize("doc, problem", [
    ([{"id": "a"}], "the body is a bare JSON array: wrap it in an object, {\"assignments\": [ ...your array... ]}"),
    ({"assignments": {"a": {"id": "a"}}}, "\"assignments\" is a JSON object, not an array: put the "
                                          "assignment objects in an array, [{\"id\": …, \"name\": …, \"type\": \"assignment\"}, …]"),
    ("oops", "the body is a JSON string, not an object with an \"assignments\" array"),
    (None, "the body is a JSON null, not an object with an \"assignments\" array"),
    ({"assignments": [3, True, None, [1]]}, "assignments[0] is a JSON number, not an object"),
])
def test_schema_problems_use_json_type_names_not_python_ones(doc, problem):
    from contract_tests.assignments_checks import schema_problems

    problems = schema_problems(doc)
    assert problems[0] == problem
    assert not any(re.search(r"\b(dict|list|NoneType|str|int|float|bool)\b", p) for p in problems)
    if isinstance(doc, dict) and isinstance(doc.get("assignments"), list):
        assert problems[1:] == ["assignments[1] is a JSON boolean, not an object",
                                "assignments[2] is a JSON null, not an object",
                                "assignments[3] is a JSON array, not an object"]


@pytest.mark.parametrize("found, expected, words", [
    ("assignment:frac101", "frac101", "still starts with \"assignment:\""),
    ("unit 3/quiz 1 & 2 50%", "unit 3/quiz 1 & 2 50%25", "percent-decoded twice"),
    ("unit 3/quiz 1 ", "unit 3/quiz 1 & 2 50%25", ""),
    ("frac101", "frac101", ""),
    (None, "frac101", ""),
])
def test_landing_on_the_wrong_id_names_the_known_mistakes(found, expected, words):
    from contract_tests.login_checks import id_mistake

    said = id_mistake(found, expected)
    assert (words in said) if words else said == ""


@pytest.mark.parametrize("headers, query, words", [
    ({}, "access_token=abc", "sent the token in the URL query (access_token=…) and no Authorization header"),
    ({}, "", "sent no Authorization header"),
    ({"Authorization": "Token abc"}, "", "sent \"Authorization: Token …\"; Clever takes only the Bearer scheme"),
    ({"Authorization": "Bearer"}, "", "is not \"Bearer <token>\""),
    ({"Authorization": "bearer abc"}, "", ""),
])
def test_a_refused_grade_names_what_is_wrong_with_its_authorization(headers, query, words):
    from contract_tests.grade_checks import auth_mistake

    said = auth_mistake({"request_headers": headers, "query": query})
    assert (words in said) if words else said == ""
