"""pytest wiring of the contract suite: options, the session-wide ``contract`` fixture,
``--only`` selection and a summary table at the end.

    pytest --pyargs contract_tests --clever-config partner.toml [--sim-url URL | --sim-port N]
           [--only IDS] [--level required|recommended]

``contract_tests/conftest.py`` loads these hooks when pytest collects the package from the
project root. From anywhere else (an installed package), add ``-p contract_tests.plugin``
so pytest knows the options before it finds the package. Every hook tolerates being
registered twice (conftest and ``-p``). ``clever-sim contract`` runs the same tests,
having prepared the session itself.
"""

from __future__ import annotations

import pytest

from contract_tests.checks import CONTRACT_KEY, select
from contract_tests.config import ContractConfigError, load_config
from contract_tests.harness import BARS, SetupProblem
from contract_tests.session import open_contract


def pytest_addoption(parser: pytest.Parser) -> None:
    if getattr(parser, "_clever_contract", False):  # conftest and -p contract_tests.plugin
        return
    parser._clever_contract = True
    group = parser.getgroup("clever-contract", "Clever grade passback contract suite")
    group.addoption("--clever-config", default=None, metavar="FILE",
                    help="partner.toml with [app] and [contract] (required)")
    group.addoption("--sim-url", default=None, metavar="URL",
                    help="use this running simulator (never reset) instead of starting one")
    group.addoption("--sim-control-token", default=None, metavar="TOKEN",
                    help="the control token of the simulator at --sim-url, if it has one "
                         "(default: env CLEVER_SIM_CONTROL_TOKEN)")
    group.addoption("--sim-port", default=8080, type=int, metavar="N",
                    help="start the simulator on 127.0.0.1:N (default 8080; 0 = any free port)")
    group.addoption("--level", default="required", choices=BARS,
                    help="which failures fail the run: required (default) or recommended too")
    group.addoption("--only", default=None, metavar="IDS",
                    help="run only these checks: ids or areas, e.g. ASSIGN-001,GRADE")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only = config.getoption("--only")
    if not only:
        return
    try:
        wanted = {c.id for c in select(only)}
    except ContractConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        chk = spec.params.get("check") if spec is not None else None
        (keep if chk is None or chk.id in wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def contract(request: pytest.FixtureRequest):
    """The prepared suite session: the runner's, or one built from the options."""
    provided = request.config.stash.get(CONTRACT_KEY, None)
    if provided is not None:
        yield provided
        return
    opt = request.config.getoption
    if not opt("--clever-config"):
        pytest.exit("clever contract suite: pass --clever-config partner.toml (your app's [app] and "
                    "[contract] settings; see docs/contract-tests.md in the clever-sim repository)", returncode=2)
    try:
        cfg = load_config(opt("--clever-config"))
        session = open_contract(cfg, sim_url=opt("--sim-url"), sim_port=opt("--sim-port"),
                                level=opt("--level"), control_token=opt("--sim-control-token"))
    except (ContractConfigError, SetupProblem) as exc:
        pytest.exit(f"clever contract suite: {exc}", returncode=2)
    request.config.stash[CONTRACT_KEY] = session
    try:
        yield session
    finally:
        session.close()


_SUMMARY_DONE = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    session = config.stash.get(CONTRACT_KEY, None)
    if session is None or session.via_runner or not session.results \
            or config.stash.get(_SUMMARY_DONE, False):
        return
    config.stash[_SUMMARY_DONE] = True
    from contract_tests.report import format_table, verdict

    results = list(session.results.values())
    terminalreporter.write_sep("=", "Clever contract checks")
    terminalreporter.write_line(format_table(results))
    _, text = verdict(results, session.level, sum(r.duration_s for r in results))
    terminalreporter.write_line(text)
