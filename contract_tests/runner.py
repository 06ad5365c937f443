"""``clever-sim contract``: run the contract suite against a partner app, print a summary
table, write JUnit XML, exit 0 (pass) / 1 (a counted check failed) / 2 (cannot run).

    clever-sim contract --config partner.toml [--sim-port N | --sim-url URL]
                        [--junit-xml FILE] [--report report.html|report.md] [--only IDS]
                        [--level required|recommended]

Without ``--sim-url`` the runner starts the simulator in this process on
127.0.0.1:``--sim-port`` (default 8080: your app must already point its Clever base URLs
there), with throwaway in-memory state, and resets it at the start. With ``--sim-url`` it
uses that simulator and never resets it (every check reads only what happened after its
own marks). Either way it registers ``[app]`` (POST /_sim/apps, or PATCH when the client
id exists), then runs the pytest suite in ``contract_tests`` (``pytest.main``) with the
prepared session.

``run_contract(...)`` is the same thing as a function (the proof tests call it).
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click

from .config import ContractConfigError, load_config
from .harness import BARS, CheckResult, SetupProblem
from .session import Contract, open_contract

PKG_DIR = Path(__file__).resolve().parent
INTERRUPTED = 130


@dataclass
class ContractRun:
    """What one run produced: the exit code, the results in order, the printed text."""

    exit_code: int
    results: list[CheckResult] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0

    def by_id(self) -> dict[str, CheckResult]:
        return {r.id: r for r in self.results}

    def failing(self, *, levels: tuple[str, ...] = ("required", "recommended")) -> set[str]:
        return {r.id for r in self.results if r.outcome == "FAIL" and r.level in levels}


class _Plugin:
    """Hands the prepared session to the pytest run (see conftest.contract)."""

    def __init__(self, contract: Contract):
        self.contract = contract

    def pytest_configure(self, config) -> None:
        from .checks import CONTRACT_KEY
        config.stash[CONTRACT_KEY] = self.contract


def _pytest_args(ini: Path, cfg_path: str, level: str, only: str | None) -> list[str]:
    args = [str(PKG_DIR / "test_contract.py"),
            "-c", str(ini), "--rootdir", str(PKG_DIR), "--confcutdir", str(PKG_DIR),
            "-p", "no:cacheprovider", "-p", "no:faulthandler", "-p", "no:randomly",
            "-s", "-q", "--no-header", "-rN",
            "--clever-config", cfg_path, "--level", level]
    if only:
        args += ["--only", only]
    return args


def run_contract(config_path: str | None, *, sim_port: int | None = None, sim_url: str | None = None,
                 junit_xml: str | None = None, only: str | None = None, level: str = "required",
                 emit: Callable[[str], None] | None = None,
                 control_token: str | None = None,
                 reports: tuple[str, ...] | list[str] = ()) -> ContractRun:
    """Run the suite; every line it prints goes through ``emit`` (default: stdout)."""
    lines: list[str] = []
    real_out, real_err = sys.stdout, sys.stderr  # pytest's output is captured; ours is not

    def say(text: str = "", err: bool = False) -> None:
        lines.append(text)
        if emit is not None:
            emit(text)
        else:
            click.echo(text, file=real_err if err else real_out)

    started = time.monotonic()

    def finish(code: int, results: list[CheckResult] | None = None) -> ContractRun:
        return ContractRun(code, results or [], "\n".join(lines), time.monotonic() - started)

    # 1. everything that can be checked before touching the network
    try:
        if sim_port is not None and sim_url is not None:
            raise ContractConfigError("give --sim-port (start a simulator) or --sim-url (use a "
                                      "running one), not both")
        if level not in BARS:
            raise ContractConfigError(f"--level must be one of {', '.join(BARS)}, not {level!r}")
        from .checks import select
        selected = select(only)
        if junit_xml:
            parent = Path(junit_xml).resolve().parent
            if Path(junit_xml).is_dir():
                raise ContractConfigError(f"cannot write --junit-xml {junit_xml}: it is a directory; "
                                          f"name a file, e.g. {Path(junit_xml) / 'contract.xml'}")
            if not parent.is_dir():
                raise ContractConfigError(f"cannot write --junit-xml {junit_xml}: directory {parent} "
                                          f"does not exist")
        for report in reports:
            _check_report_path(report)
        cfg = load_config(config_path)
    except ContractConfigError as exc:
        say(f"clever-sim contract: config problem: {exc}", err=True)
        return finish(2)
    except Exception as exc:  # e.g. an install missing a dependency: never a traceback, never 1
        say(f"clever-sim contract: cannot run: {type(exc).__name__}: {exc}", err=True)
        return finish(2)

    # 2. the simulator, the app registration, the partner's reachability
    contract = None
    try:
        contract = open_contract(cfg, sim_url=sim_url, sim_port=8080 if sim_port is None else sim_port,
                                 level=level, control_token=control_token)
    except ContractConfigError as exc:
        say(f"clever-sim contract: config problem: {exc}", err=True)
        return finish(2)
    except SetupProblem as exc:  # what is unreachable, then how to fix it: on one line
        reason = " — ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        say(f"clever-sim contract: cannot run: {reason}", err=True)
        return finish(2)
    except Exception as exc:  # never a traceback
        say(f"clever-sim contract: cannot run: {type(exc).__name__}: {exc}", err=True)
        return finish(2)

    try:
        contract.via_runner = True
        say(f"Clever contract suite: app {cfg.app['name']!r} (client_id {cfg.client_id})")
        say(f"  simulator  {contract.sim_url} "
            f"({'started by the runner, reset' if contract.owns_simulator else 'given by --sim-url, not reset'})")
        say(f"  partner    assignments {cfg.assignments_url}; redirect URI {cfg.redirect_uri}")
        say(f"  hook       {cfg.hook or '(none: grade checks will be skipped)'}")
        say(f"  checks     {len(selected)} at --level {level}")
        say("")
        contract.on_result = lambda r: say(f"  {r.id:<11} {r.outcome:<5} {r.duration_s:6.2f} s  "
                                           f"{r.reason[:80]}")
        code, pytest_out = _run_pytest(contract, cfg.path, level, only)
        results = [contract.results[c.id] for c in selected if c.id in contract.results]
        seconds = time.monotonic() - started
        if code == INTERRUPTED:
            say("\nclever-sim contract: interrupted")
            return finish(INTERRUPTED, results)
        missing = [c.id for c in selected if c.id not in contract.results]
        if missing and code not in (0, 1):
            say(f"\nclever-sim contract: the suite could not run (pytest exit {code}): "
                f"{_last_error(pytest_out)}", err=True)
            return finish(2, results)
        for cid in missing:  # a check pytest never ran: report it, never drop it silently
            chk = next(c for c in selected if c.id == cid)
            results.append(CheckResult(cid, chk.title, chk.level, "FAIL",
                                       "the suite did not run this check (see pytest's output)",
                                       counted=True, seed=chk.seed))
        from .report import format_failures, format_table, verdict, write_junit, write_report
        say("")
        say(format_table(results))
        failures = format_failures(results)
        if failures:
            say("")
            say("Failures")
            say("========")
            say(failures)
        exit_code, text = verdict(results, level, seconds)
        say("")
        say(text)
        if junit_xml:
            try:
                write_junit(junit_xml, results, seconds=seconds,
                            properties={"app": cfg.app["name"], "client_id": cfg.client_id,
                                        "simulator": contract.sim_url, "level": level})
            except OSError as exc:
                say(f"clever-sim contract: cannot write --junit-xml {junit_xml}: {exc.strerror or exc}",
                    err=True)
                return finish(2, results)
            say(f"JUnit XML: {junit_xml}")
        meta = {"app": cfg.app["name"], "client_id": cfg.client_id, "simulator": contract.sim_url,
                "level": level, "time": f"{seconds:.1f} s"}
        for report in reports:
            try:
                write_report(report, results, verdict_text=text, meta=meta)
            except OSError as exc:
                say(f"clever-sim contract: cannot write --report {report}: {exc.strerror or exc}",
                    err=True)
                return finish(2, results)
            say(f"Report: {report}")
        return finish(exit_code, results)
    except Exception as exc:  # a bug in the suite: say so, never a traceback
        say(f"clever-sim contract: internal error: {type(exc).__name__}: {exc} (please report it)",
            err=True)
        return finish(2, list(contract.results.values()))
    finally:
        contract.close()


def _check_report_path(report: str) -> None:
    """A --report file must be .html/.htm or .md/.markdown in an existing directory."""
    from .report import REPORT_FORMATS, report_format

    if report_format(report) is None:
        raise ContractConfigError(f"--report {report}: name an .html file (a page for CI "
                                  f"artifacts) or an .md file (a PR comment); known extensions: "
                                  f"{', '.join(REPORT_FORMATS)}")
    if Path(report).is_dir():
        raise ContractConfigError(f"cannot write --report {report}: it is a directory")
    parent = Path(report).resolve().parent
    if not parent.is_dir():
        raise ContractConfigError(f"cannot write --report {report}: directory {parent} does not exist")


def _run_pytest(contract: Contract, cfg_path: str, level: str, only: str | None) -> tuple[int, str]:
    """pytest.main on the package's test module, isolated from the caller's pytest config."""
    import pytest

    buffer = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="clever-contract-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        args = _pytest_args(ini, cfg_path, level, only)
        try:
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                code = pytest.main(args, plugins=[_Plugin(contract)])
        except KeyboardInterrupt:
            return INTERRUPTED, buffer.getvalue()
    code = int(code)
    if code == 2 and "KeyboardInterrupt" in buffer.getvalue():
        return INTERRUPTED, buffer.getvalue()
    return code, buffer.getvalue()


def _last_error(output: str) -> str:
    """The last meaningful line of pytest's output (no traceback frames)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E ") or "Error" in line]
    picked = errors[-1] if errors else (lines[-1] if lines else "no output")
    return picked[2:].strip() if picked.startswith("E ") else picked


@click.command("contract")
@click.option("--config", "config_path", default=None, metavar="FILE",
              help="partner.toml: [app] (credentials, redirect URIs, assignments URL) and "
                   "[contract] (completion hook, landing URL pattern, grade timeout).")
@click.option("--sim-port", type=click.IntRange(0, 65535), default=None, metavar="N",
              help="Start the simulator on 127.0.0.1:N (default 8080); your app must already "
                   "use http://127.0.0.1:N as its Clever base URLs.")
@click.option("--sim-url", default=None, metavar="URL",
              help="Use a running simulator instead (it is never reset).")
@click.option("--junit-xml", default=None, metavar="FILE",
              help="Write JUnit XML: one testcase per check, named by its id.")
@click.option("--report", "reports", multiple=True, metavar="FILE",
              help="Also write a report for people: report.html (one self-contained page, for CI "
                   "artifacts) or report.md (for a PR comment), by extension. Repeatable.")
@click.option("--only", default=None, metavar="IDS",
              help="Run only these checks: ids or areas, comma-separated (e.g. ASSIGN,LOGIN-003).")
@click.option("--level", type=click.Choice(BARS), default="required", show_default=True,
              help="Which failures fail the run: required checks only, or recommended ones too.")
@click.option("--control-token", default=None, metavar="TOKEN", envvar="CLEVER_SIM_CONTROL_TOKEN",
              help="The control token of the simulator at --sim-url, when it was started with "
                   "one (env CLEVER_SIM_CONTROL_TOKEN).")
def contract_command(config_path: str | None, sim_port: int | None, sim_url: str | None,
                     junit_xml: str | None, only: str | None, level: str,
                     control_token: str | None, reports: tuple[str, ...] = ()) -> None:
    """Run the Clever grade passback contract suite against your app.

    Exit codes: 0 every check that counts passed; 1 one failed; 2 the suite could not run
    (config, simulator or app not reachable).
    """
    outcome = run_contract(config_path, sim_port=sim_port, sim_url=sim_url, junit_xml=junit_xml,
                           only=only, level=level, control_token=control_token, reports=reports)
    sys.stdout.flush()
    raise SystemExit(outcome.exit_code)


if __name__ == "__main__":  # pragma: no cover
    contract_command()
