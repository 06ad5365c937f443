"""Contract depth: mistakes of a partner engineer who misread Clever's guide, planted in the
Node.js partner (tests/partners/node_partner/server.js, env BUGS=name), each failing exactly
the checks meant to catch it with a message that names the mistake.

The switches were listed from the guide before looking at the other partners' bugs; those the
suite already caught are kept here too (their messages are asserted), and the two that are
no mistake (rounds_to_hundredths, secure_cookie) must pass. Node is required in CI
(CLEVER_SIM_REQUIRE_NODE=1).
"""

from __future__ import annotations

import re

import pytest

from contract_tests.checks import BY_ID
from test_contract_suite import NODE_BROKEN, NODE_PARTNER, node_partner, run, sim, write_toml  # noqa: F401

SCORE_RUN = "GRADE-001,GRADE-002,GRADE-003,GRADE-004"
ALL_LEVELS = ("required", "recommended", "reported")

# bug -> (the checks to run, the checks that fail (any level), words the first failure's
# summary must contain). Everything else run passes, or is skipped naming the check that
# owns the problem.
DEPTH: dict[str, tuple[str, set[str], str]] = {
    # Step 1: the assignments list
    "bom_in_list": ("ASSIGN", {"ASSIGN-001"}, "starts with a UTF-8 byte order mark"),
    "data_wrapper": ("ASSIGN", {"ASSIGN-002"}, "the assignment objects are under \"data\"; name that key "
                                               "\"assignments\""),
    "empty_name": ("ASSIGN", {"ASSIGN-002"}, "assignments[1].name is empty"),
    # Step 2: the launch
    "keeps_session": ("LOGIN-001,LOGIN-002,LOGIN-003,LOGIN-011", {"LOGIN-011"},
                      "the browser was still logged in as student"),
    "splits_state_at_colons": ("LOGIN-003,LOGIN-008", {"LOGIN-008"}, "the id was cut at its own \":\""),
    "lowercases_state_id": ("LOGIN-003,LOGIN-008", {"LOGIN-008"}, "the id was lower-cased"),
    "strict_cookie": ("LOGIN", {"LOGIN-003"}, "is SameSite=Strict: a launch is a navigation another site "
                                              "started"),
    "none_without_secure": ("LOGIN", {"LOGIN-003"}, "is SameSite=None without Secure"),
    "csrf_state_check": ("LOGIN", {"LOGIN-001"}, "checks state against a value it issued itself"),
    "grade_on_launch": ("LOGIN-001,LOGIN-012,GRADE-001,GRADE-008", {"LOGIN-012"},
                        "only opened"),
    # Step 3: the grade
    "zero_score_skipped": ("GRADE-001,GRADE-004,GRADE-014,GRADE-015", {"GRADE-014"},
                           "no grade reached Clever for a score of 0"),
    "shared_pending_grade": ("GRADE-001,GRADE-014,GRADE-015", {"GRADE-015"},
                             "at the same moment: no grade POST for student"),
    "grade_url_trailing_slash": (SCORE_RUN, {"GRADE-001"}, "POSTs grades to /v1/grade/ (a trailing slash)"),
    "first_completion_only": (SCORE_RUN + ",GRADE-005", {"GRADE-005"},
                              "the second completion's grade did not arrive"),
    "numeric_assignment_id": ("ASSIGN," + SCORE_RUN, {"GRADE-001"}, "send it as a string: \"100"),
    "camelcase_id_keys": (SCORE_RUN, {"GRADE-001", "GRADE-002"}, "field names are case-sensitive: use assignmentID"),
    "internal_id_in_grade": (SCORE_RUN, {"GRADE-001"}, "Clever stored the grade for user"),
    "both_score_formats": (SCORE_RUN, {"GRADE-001", "GRADE-004"}, "send exactly one score format"),
    "pass_fail_score": (SCORE_RUN, {"GRADE-004"}, "but the student earned 0.57"),
    "rounds_to_hundredths": (SCORE_RUN, set(), ""),   # the app's own precision: not judged
    # not a mistake: a Secure; SameSite=None session cookie (an LTI app in an iframe) on
    # http://127.0.0.1 is sent back, as browsers do on loopback; it once failed LOGIN-003
    "secure_cookie": ("LOGIN", set(), ""),
    "first_district_token": (SCORE_RUN, {"GRADE-002"}, "use the district-app token of the student's district"),
    "teacher_token_for_grade": ("ASSIGN-001," + SCORE_RUN, {"GRADE-001"}, "this il token belongs to a teacher"),
    "retry_after_ms": ("GRADE-007", {"GRADE-007"}, "after a 429 that said Retry-After: 1"),
}


def test_every_switch_of_the_node_partner_is_in_a_table():
    """A new switch must say what catches it (here or in test_contract_suite's NODE_BROKEN)."""
    source = NODE_PARTNER.read_text(encoding="utf-8")
    known = source.split("const KNOWN_BUGS = new Set([", 1)[1].split("]);", 1)[0]
    switches = set(re.findall(r"'(\w+)'", known))
    assert switches == set(NODE_BROKEN) | set(DEPTH)
    assert not set(NODE_BROKEN) & set(DEPTH)


@pytest.mark.parametrize("bug", list(DEPTH))
def test_node_partner_mistake_fails_exactly_its_checks(sim, tmp_path, bug):
    only, failing, words = DEPTH[bug]
    client_id = f"depth-{bug}".replace("_", "-")
    with node_partner(sim, client_id, "node-secret", bugs=(bug,)) as url:
        toml = write_toml(tmp_path / "partner.toml", url, client_id, secret="node-secret")
        result = run(toml, sim, only=only, level="recommended")
    assert result.failing(levels=ALL_LEVELS) == failing, result.output
    counted = any(BY_ID[c].level != "reported" for c in failing)
    assert result.exit_code == (1 if counted else 0), result.output
    if failing:
        first = result.by_id()[sorted(failing)[0]]
        assert words in first.reason, first.explanation()
        assert "Sent:" in first.details and "Got:" in first.details, first.explanation()
        if BY_ID[first.id].level != "reported":
            assert "Fix:" in first.details, first.explanation()
    for r in result.results:
        if r.outcome == "SKIP":
            assert re.search(r"see (ASSIGN|LOGIN|GRADE)-0", r.reason), r.reason


# --- the new messages, without a partner -----------------------------------------------------

@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("app.localhost", True),
    ("[::1]", True), ("::1", True), ("LOCALHOST.", True),
    ("10.0.0.5", False), ("app", False), ("example.com", False), ("localhost.example.com", False),
    (None, False), ("", False),
])
def test_secure_cookies_go_to_loopback_hosts_only(host, loopback):
    from contract_tests.harness import is_loopback

    assert is_loopback(host) is loopback


@pytest.mark.parametrize("found, words", [
    ("unit 3:quiz 1/2 & 3 50%25", "the id was lower-cased"),
    ("Unit 3", "the id was cut at its own \":\""),
    ("assignment:Unit 3:Quiz 1/2 & 3 50%25", "still starts with \"assignment:\""),
    ("Unit 3:Quiz 1/2 & 3 50%", "percent-decoded twice"),
    ("Unit 3:Quiz 1/2 ", ""),
    ("Unit 3:Quiz 1/2 & 3 50%25", ""),
])
def test_landing_on_a_mangled_weird_id_names_the_mistake(found, words):
    from contract_tests.login_checks import WEIRD_ID, id_mistake

    said = id_mistake(found, WEIRD_ID)
    assert (words in said) if words else said == ""


def test_new_checks_are_where_the_run_needs_them():
    """GRADE-014/015 run before the revocations (a partner that loses grades after GRADE-013
    fails only GRADE-013); LOGIN-011/012 with the other launch checks."""
    from contract_tests.checks import CHECKS

    order = [c.id for c in CHECKS]
    assert order.index("GRADE-015") < order.index("GRADE-012") < order.index("GRADE-013")
    assert order.index("LOGIN-009") < order.index("LOGIN-011") < order.index("LOGIN-012") < order.index("GRADE-001")
    assert BY_ID["LOGIN-011"].level == BY_ID["GRADE-014"].level == BY_ID["GRADE-015"].level == "required"
    assert BY_ID["LOGIN-012"].level == "recommended"


def test_retries_of_an_app_posting_to_v1_grade_slash_are_checked_too(sim, tmp_path):
    """Faults are injected on /v1/grade and apply with or without the final slash (as the
    endpoint does), so the retry checks judge such an app's retries instead of saying the
    failure was never served: only GRADE-001 fails, for the slash."""
    client_id = "depth-slash-retries"
    with node_partner(sim, client_id, "node-secret", bugs=("grade_url_trailing_slash",)) as url:
        toml = write_toml(tmp_path / "partner.toml", url, client_id, secret="node-secret")
        result = run(toml, sim, only="GRADE-001,GRADE-006,GRADE-007,GRADE-009", level="recommended")
    assert result.failing(levels=ALL_LEVELS) == {"GRADE-001"}, result.output
    assert {r.id for r in result.results if r.outcome == "PASS"} >= {"GRADE-006", "GRADE-007",
                                                                      "GRADE-009"}, result.output
