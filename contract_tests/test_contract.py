"""The contract suite as pytest tests: one test per check, named by its id.

Run it with ``clever-sim contract --config partner.toml`` (summary table, JUnit XML, exit
codes) or ``pytest --pyargs contract_tests --clever-config partner.toml`` (from the
project root). A failed required check fails the test; a failed recommended check fails
it only with ``--level recommended`` (otherwise it is an expected failure, ``xfail``);
reported checks never fail.
"""

from __future__ import annotations

import pytest

from contract_tests.checks import CHECKS


@pytest.mark.parametrize("check", CHECKS, ids=[c.id for c in CHECKS])
def test_check(check, contract):
    result = contract.run(check)
    if result.outcome == "PASS":
        return
    if result.outcome == "SKIP":
        pytest.skip(result.reason)
    if result.counted:
        pytest.fail(result.explanation(), pytrace=False)
    pytest.xfail(f"{result.level} check failed (not counted at --level {contract.level}): "
                 f"{result.reason}")
