"""Contract depth, second blind round: a Perl 5 partner (core modules only: IO::Socket::INET,
HTTP::Tiny, JSON::PP) written the way a small shop writes one from Clever's guide, with the
mistakes of a Perl/CGI-era engineer planted behind env BUGS=name. The correct build passes
every check (tests/test_polyglot_partners.py); each mistake fails exactly the checks meant to catch it, with a message naming
it; ``http10_close`` is no mistake (an HTTP/1.0 body ended by closing the connection) and must
pass. Skipped when perl is not installed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest

from contract_tests.checks import BY_ID
from serverproc import LineProcess
from test_contract_suite import run, sim, write_toml  # noqa: F401  (sim: a fixture)

ROOT = Path(__file__).resolve().parent.parent
PERL_APP = ROOT / "tests" / "partners" / "perl_partner" / "partner.pl"
ALL_LEVELS = ("required", "recommended", "reported")


def perl_or_skip() -> str:
    perl = shutil.which("perl")
    if perl is None:
        pytest.skip("perl is not installed: the Perl partner (tests/partners/perl_partner) cannot run here")
    return perl


@contextlib.contextmanager
def perl_partner(sim_url: str, client_id: str, bugs: tuple[str, ...] = ()):
    """The Perl partner as a subprocess on a free port; its base URL while it runs."""
    env = {**os.environ, "SIM_URL": sim_url, "CLIENT_ID": client_id, "CLIENT_SECRET": "perl-secret",
           "PORT": "0", "HOST": "127.0.0.1", "BUGS": ",".join(bugs)}
    with LineProcess([perl_or_skip(), str(PERL_APP)], r"listening on (http://\S+)", env=env,
                     timeout=30) as app:
        yield app.url


def perl_suite(sim, tmp_path: Path, bug: str, only: str | None):
    client_id = f"perl-{bug or 'ok'}".replace("_", "-")
    with perl_partner(sim.url, client_id, (bug,) if bug else ()) as url:
        toml = write_toml(tmp_path / "partner.toml", url, client_id, secret="perl-secret")
        return run(toml, sim, only=only, level="recommended")


# bug -> (the checks to run, the checks that fail (any level), words the first failure's
# summary must contain: the mistake named). Everything else run passes, or is skipped naming
# the check that owns the problem.
SCORE_RUN = "GRADE-001,GRADE-002,GRADE-003,GRADE-004"
DEPTH: dict[str, tuple[str, set[str], str]] = {
    # Step 1: the assignments list
    "latin1_json": ("ASSIGN", {"ASSIGN-001"}, "the body is not UTF-8: byte 0xE1 at offset"),
    "char_length": ("ASSIGN", {"ASSIGN-001"}, "a Content-Length counted in characters instead of bytes"),
    "double_encoded_names": ("ASSIGN", {"ASSIGN-009"}, "are UTF-8 encoded twice, so teachers read mojibake: "
                                                       "assignments[1].name is \"GÃ©omÃ©trie"),
    "null_description": ("ASSIGN", {"ASSIGN-002"}, "assignments[1].description is null: when present it must "
                                                   "be a string"),
    "standards_string": ("ASSIGN", {"ASSIGN-002"}, "standards is \"CCSS.MATH.CONTENT.4.NF.A.1\": when present "
                                                   "it must be an array of strings"),
    "no_length_keepalive": ("ASSIGN-001,ASSIGN-007", {"ASSIGN-007"},
                            "no Content-Length, no Transfer-Encoding: chunked and no Connection: close"),
    # Step 2: the launch
    "basic_with_newline": ("LOGIN-001,LOGIN-002", {"LOGIN-001"}, "a line break in a header value"),
    "cookie_without_path": ("LOGIN", {"LOGIN-003"}, "without Path=, so browsers keep it for /clever/ only"),
    "forked_sessions": ("LOGIN", {"LOGIN-003"}, "your app did not find that session"),
    "location_unescaped": ("LOGIN", {"LOGIN-008"}, "your app put the id into the Location header as is"),
    "state_not_decoded": ("LOGIN", {"LOGIN-008"}, "the id is still percent-encoded"),
    "dies_on_bad_code": ("LOGIN", {"LOGIN-005", "LOGIN-006", "LOGIN-007", "LOGIN-008", "LOGIN-009"},
                         "sent no answer to a login link with an invalid code"),
    # Step 3: the grade
    "truncated_percent": (SCORE_RUN, {"GRADE-004"}, "the score was cut down, not rounded"),
    "numeric_id_compare": ("GRADE-001,GRADE-016", {"GRADE-016"}, "is the first assignment of your list"),
    # not a mistake: an HTTP/1.0 answer whose body ends when the connection closes (the list,
    # the launch's redirects and pages, the hook's answer)
    "http10_close": ("ASSIGN,LOGIN-001,LOGIN-002,LOGIN-003,GRADE-001", set(), ""),
}


def test_every_switch_of_the_perl_partner_is_in_the_table():
    """A new switch must say what catches it."""
    source = PERL_APP.read_text(encoding="utf-8")
    known = source.split("my %KNOWN_BUGS = (", 1)[1].split(");", 1)[0]
    assert set(re.findall(r"^\s+(\w+)\s+=>", known, re.M)) == set(DEPTH)


@pytest.mark.parametrize("bug", list(DEPTH))
def test_perl_partner_mistake_fails_exactly_its_checks(sim, tmp_path, bug):
    only, failing, words = DEPTH[bug]
    result = perl_suite(sim, tmp_path, bug, only)
    assert result.failing(levels=ALL_LEVELS) == failing, result.output
    counted = any(BY_ID[c].level != "reported" for c in failing)
    assert result.exit_code == (1 if counted else 0), result.output
    if not failing:  # no mistake: every check run passes
        assert {r.outcome for r in result.results} == {"PASS"}, result.output
        return
    first = result.by_id()[sorted(failing)[0]]
    assert words in first.reason, first.explanation()
    assert "Sent:" in first.details and "Got:" in first.details and "Fix:" in first.details, first.explanation()
    for r in result.results:
        if r.outcome == "SKIP":
            assert re.search(r"see (ASSIGN|LOGIN|GRADE)-0", r.reason), r.reason


# --- the new diagnoses, without a partner -------------------------------------------------------

@pytest.mark.parametrize("text, meant", [
    ("GÃ©omÃ©trie : les triangles", "Géométrie : les triangles"),
    ("Main Idea â€“ â€œNonfictionâ€\x9d", "Main Idea – “Nonfiction”"),     # via Windows-1252
    ("Main Idea \u00e2\u0080\u0093 Nonfiction", "Main Idea – Nonfiction"),  # via Latin-1 (Perl)
    ("Géométrie : les triangles", None),
    ("Ã la carte", None),
    ("naïve café, 50 % Übung", None),
    ("Fractions", None),
    ("分数の練習", None),
])
def test_double_encoded_utf8_is_told_from_real_accents(text, meant):
    from contract_tests.assignments_checks import double_encoded

    assert double_encoded(text) == meant


def _fetch(raw: bytes, headers: dict[str, str], version: str = "HTTP/1.1"):
    import json

    from contract_tests.harness import Fetch

    fetch = Fetch(request="GET /clever/assignments", status=200, content_type="application/json",
                  raw=raw, headers=headers, http_version=version)
    try:
        fetch.doc = json.loads(raw)
    except ValueError as exc:
        fetch.json_error = str(exc)
    return fetch


def test_a_body_that_is_not_json_is_told_by_its_cause():
    from contract_tests.assignments_checks import body_mistake

    whole = '{"assignments": [{"id": "g1", "name": "Géométrie", "type": "assignment"}]}'
    latin1, utf8 = whole.encode("latin-1"), whole.encode("utf-8")
    summary, fix = body_mistake(_fetch(latin1, {"content-length": str(len(latin1))}))
    assert summary.startswith("the body is not UTF-8: byte 0xE9 at offset 40")
    assert "read as Latin-1/Windows-1252 it says \"[{\"id\": \"g1\", \"name\": \"Géométrie\"" in summary
    assert "RFC 8259" in fix
    cut = utf8[:len(whole)]    # a Content-Length that counted characters
    summary, _ = body_mistake(_fetch(cut, {"content-length": str(len(cut))}))
    assert "ends after the 74 bytes your Content-Length announced" in summary
    assert "counted in characters instead of bytes" in summary
    ascii_cut = b'{"assignments": [{"id": "g1"'  # cut, but no character is longer than a byte
    summary, _ = body_mistake(_fetch(ascii_cut, {"content-length": str(len(ascii_cut))}))
    assert summary.startswith("the body is not valid JSON (")


@pytest.mark.parametrize("headers, version, unframed", [
    ({"content-type": "application/json"}, "HTTP/1.1", True),
    ({"content-length": "10"}, "HTTP/1.1", False),
    ({"transfer-encoding": "chunked"}, "HTTP/1.1", False),
    ({"connection": "close"}, "HTTP/1.1", False),
    ({"content-type": "application/json"}, "HTTP/1.0", False),   # HTTP/1.0 ends a body by closing
])
def test_a_slow_answer_names_missing_framing_only_when_it_is_missing(headers, version, unframed):
    from contract_tests.assignments_checks import unframed as why

    assert bool(why(_fetch(b"{}", headers, version))) is unframed


@pytest.mark.parametrize("value, score, note", [
    ("0.56", 0.57, "the score was cut down, not rounded — 0.57 × 100 is 56.99999999999999"),
    ("0.55", 0.57, "the score was cut down, not rounded"),     # 11 of 20 for 11.4
    ("1", 0.57, ""),
    ("0.5", 0.57, ""),       # one decimal: a coarser mistake, named by the values alone
    ("0.57", 0.57, ""),
])
def test_a_truncated_score_is_named(value, score, note):
    from decimal import Decimal

    from contract_tests.grade_checks import truncated

    said = truncated(Decimal(value), score)
    assert (note in said) if note else said == ""


def _hop(url, status, location=None, sent="", set_cookies=()):
    from contract_tests.harness import Hop

    return Hop(url, status, location, "text/html", "", sent, list(set_cookies))


@pytest.mark.parametrize("hops, words", [
    ([_hop("http://a/clever/callback?code=x", 302, "/assignments/a1", "", ["sid=1; HttpOnly"]),
      _hop("http://a/assignments/a1", 302, "/login"), _hop("http://a/login", 200)],
     "was set by /clever/callback without Path=, so browsers keep it for /clever/ only"),
    ([_hop("http://a/clever/callback?code=x", 302, "/assignments/a1", "", ["sid=1; Path=/; HttpOnly"]),
      _hop("http://a/assignments/a1", 302, "/login", "sid=1"), _hop("http://a/login", 200)],
     "your app did not find that session"),
    ([_hop("http://a/clever/callback?code=x", 302, "/assignments/a1", "", ["sid=1; Path=/"]),
      _hop("http://a/assignments/a1", 200, None, "sid=1")], ""),
    ([_hop("http://a/clever/callback?code=x", 302, "/login")], ""),
])
def test_a_student_who_arrives_logged_out_is_told_why(hops, words):
    from contract_tests.harness import Browse, lost_session_note

    said = lost_session_note(Browse("http://a/clever/callback?code=x", hops=hops))
    assert (words in said) if words else said == ""


@pytest.mark.parametrize("location, found, words", [
    ("/assignments/Unit 3:Quiz 1/2 & 3 50%25", "Unit 3:Quiz 1/2 & 3 50%",
     "put the id into the Location header as is"),
    ("/assignments/Unit%203%3AQuiz%201%2F2%20%26%203%2050%25", "Unit 3:Quiz 1/2 & 3 50%",
     "percent-decoded twice"),
    ("/assignments/Unit%25203%3AQuiz%25201%252F2%2520%2526%25203%252050%252525",
     "Unit%203:Quiz%201%2F2%20%26%203%2050%2525", "the id is still percent-encoded"),
])
def test_a_mangled_id_is_told_from_the_location_the_app_sent(location, found, words):
    from contract_tests.harness import Browse
    from contract_tests.login_checks import WEIRD_ID, id_mistake

    visit = Browse("http://a/clever/callback", hops=[_hop("http://a/clever/callback", 302, location)])
    assert words in id_mistake(found, WEIRD_ID, visit)
