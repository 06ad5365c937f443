"""The README's three contract commands (start the demo, print the reference partner's
partner.toml, run the suite), run as the README writes them.

They are read from README.md between the ``contract-quickstart`` markers, so this test
breaks when the README drifts. The demo's ports come from ``CLEVER_SIM_PORT`` and
``CLEVER_SIM_PARTNER_PORT`` (free ports, not 8080/5001); the one fixed port in the text,
the simulator URL of the third command, is replaced by the same free port.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from contract_tests.checks import CHECKS
from contract_tests.config import load_config
from serverproc import demo_banner

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- contract-quickstart:begin -->", "<!-- contract-quickstart:end -->"
README_SIM_URL = "http://127.0.0.1:8080"

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    """The command lines of the quickstart block (comments and blank lines left out)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "README lost its quickstart markers"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    fenced = re.search(r"```(?:bash|sh)\n(.*?)```", block, re.S)
    assert fenced, "the quickstart is no longer a ```bash block"
    return [line for line in (raw.split(" #", 1)[0].strip() for raw in fenced.group(1).splitlines())
            if line and not line.startswith("#")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shell_env(tmp_path: Path) -> dict:
    """``clever-sim`` on PATH (this interpreter's), the demo on free ports."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "clever-sim"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m simulator.cli "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEVER_SIM_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
               CLEVER_SIM_PORT=str(free_port()), CLEVER_SIM_PARTNER_PORT=str(free_port()))
    return env


def test_readme_quickstart_is_three_commands():
    commands = readme_commands()
    assert len(commands) == 3, commands
    assert commands[0].startswith("clever-sim demo")
    assert "--print-partner-config" in commands[1] and "partner.toml" in commands[1]
    assert commands[2].startswith("clever-sim contract") and README_SIM_URL in commands[2]


def test_readme_contract_commands_run_as_written(shell_env, tmp_path):
    start, print_config, run_contract = readme_commands()
    sim_url = f"http://127.0.0.1:{shell_env['CLEVER_SIM_PORT']}"
    partner_url = f"http://127.0.0.1:{shell_env['CLEVER_SIM_PARTNER_PORT']}"
    demo = subprocess.Popen(["bash", "-c", start], cwd=tmp_path, env=shell_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    text = ""
    try:
        text = demo_banner(demo.stdout)
        assert f"Simulator (Clever + Schoology): {sim_url}" in text, text
        assert httpx.get(sim_url + "/", headers={"Accept": "application/json"}, timeout=5,
                         trust_env=False).json()["url"] == sim_url

        printed = subprocess.run(["bash", "-c", print_config], cwd=tmp_path, env=shell_env,
                                 text=True, capture_output=True, timeout=60)
        assert printed.returncode == 0, printed.stderr
        config = load_config(tmp_path / "partner.toml")  # what `contract` will read
        assert config.redirect_uri == f"{partner_url}/clever/callback"
        assert config.assignments_url == f"{partner_url}/clever/assignments"
        assert config.hook == f"{partner_url}/test-hooks/complete"
        registered = httpx.get(f"{sim_url}/_sim/apps/{config.client_id}", timeout=5,
                               trust_env=False).json()
        assert registered["client_secret"] == config.client_secret
        assert registered["redirect_uris"] == config.app["redirect_uris"]

        assert run_contract.count(README_SIM_URL) == 1
        result = subprocess.run(["bash", "-c", run_contract.replace(README_SIM_URL, sim_url)],
                                cwd=tmp_path, env=shell_env, text=True, capture_output=True,
                                timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Result: PASS" in result.stdout and "Traceback" not in result.stdout + result.stderr
        table = dict(re.findall(r"^((?:ASSIGN|LOGIN|GRADE)-\d{3})\s+\S+\s+(\S+)", result.stdout, re.M))
        assert sorted(table) == sorted(c.id for c in CHECKS) and set(table.values()) == {"PASS"}, result.stdout
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        rest, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, text + rest
    assert "Stopped." in rest


def readme_pytest_command() -> list[str]:
    """The README's `pytest … --pyargs contract_tests …` command, as arguments after `pytest`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"`pytest ([^`]*--pyargs contract_tests[^`]*)`", text.replace("\n", " "))
    assert len(found) == 1, found
    return shlex.split(found[0])


def test_readme_pytest_command_runs_the_suite_outside_the_project_root(tmp_path):
    """A partner has the package installed, not this checkout: the README's pytest command
    must find the suite's options from any folder (bare `--pyargs` did not: 'unrecognized
    arguments: --clever-config')."""
    args = readme_pytest_command()
    assert args[args.index("--clever-config") + 1] == "partner.toml"
    sim_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEVER_SIM_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    partner = subprocess.Popen(
        [sys.executable, "-m", "contract_tests.reference_partner", "--port", "0",
         "--sim-url", f"http://127.0.0.1:{sim_port}", "--client-id", "readme-pytest",
         "--client-secret", "readme-secret"],
        cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        first = partner.stdout.readline()
        match = re.search(r"Reference partner on (http://\S+)", first)
        assert match, first
        base = match.group(1)
        (tmp_path / "partner.toml").write_text(
            f'[app]\nname = "readme-pytest"\nclient_id = "readme-pytest"\n'
            f'client_secret = "readme-secret"\nredirect_uris = ["{base}/clever/callback"]\n'
            f'assignments_url = "{base}/clever/assignments"\n\n[contract]\n'
            'landing_url_pattern = "/assignments/{assignment_id}"\n', encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q",
             "--sim-port", str(sim_port), "--only", "ASSIGN-001,LOGIN-003"],
            cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)
    finally:
        partner.terminate()
        partner.communicate(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout and "Clever contract checks" in done.stdout, done.stdout
