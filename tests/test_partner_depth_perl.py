"""Contract depth, second blind round: a Perl 5 partner (core modules only: IO::Socket::INET,
HTTP::Tiny, JSON::PP) written the way a small shop writes one from Clever's guide, with the
mistakes of a Perl/CGI-era engineer planted behind env BUGS=name. The correct build passes
every check; each mistake fails exactly the checks meant to catch it, with a message naming
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

from contract_tests.checks import BY_ID, CHECKS
from serverproc import LineProcess
from test_contract_suite import outcomes, run, sim, write_toml  # noqa: F401  (sim: a fixture)

ROOT = Path(__file__).resolve().parent.parent
PERL_APP = ROOT / "tests" / "partners" / "perl_partner" / "partner.pl"
ALL_IDS = [c.id for c in CHECKS]
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


def _suite(sim, tmp_path: Path, bug: str, only: str | None):
    client_id = f"perl-{bug or 'ok'}".replace("_", "-")
    with perl_partner(sim.url, client_id, (bug,) if bug else ()) as url:
        toml = write_toml(tmp_path / "partner.toml", url, client_id, secret="perl-secret")
        return run(toml, sim, only=only, level="recommended")


def test_perl_partner_passes_every_check(sim, tmp_path):
    result = _suite(sim, tmp_path, "", None)
    assert outcomes(result) == {cid: "PASS" for cid in ALL_IDS}, result.output
    assert result.exit_code == 0
