"""``scripts/run`` and ``scripts/test`` share one ``.venv``: run installs only what running
needs, test adds the test extras, and neither reinstalls what is already there.

The scripts run for real against a copy of the project whose ``.venv/bin/python`` records
``-m pip`` and ``-m pytest`` calls instead of running them (everything else, such as the
stamp's digest, goes to this interpreter), so no package index is needed.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1" = "-m" ] && { [ "$2" = "pip" ] || [ "$2" = "pytest" ]; }; then
  echo "$2 ${@:3}" >> "$(dirname "$0")/../calls.log"
  [ "$2" = "pip" ] && [ -f "$(dirname "$0")/../pip-fails" ] && exit 1
  exit 0
fi
exec REAL "$@"
"""
FAKE_CLEVER_SIM = """#!/usr/bin/env bash
echo "clever-sim $*" >> "$(dirname "$0")/../calls.log"
"""
PIP = "pip install --quiet --disable-pip-version-check -e"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    shutil.copytree(ROOT / "scripts", proj / "scripts")
    shutil.copy(ROOT / "pyproject.toml", proj / "pyproject.toml")
    bin_dir = proj / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON.replace("REAL", shlex.quote(sys.executable))),
                       ("clever-sim", FAKE_CLEVER_SIM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return proj


def script(project: Path, name: str, *args: str) -> list[str]:
    """Run scripts/NAME; the calls it made to pip, pytest and clever-sim."""
    log = project / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run([str(project / "scripts" / name), *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.rstrip() for line in log.read_text().splitlines()] if log.exists() else []


def test_run_installs_without_test_extras_then_starts_the_demo(project):
    assert script(project, "run", "--port", "9000") == [f"{PIP} .", "clever-sim demo --port 9000"]
    assert script(project, "run") == ["clever-sim demo"]  # installed once


def test_test_installs_the_test_extras_then_runs_pytest(project):
    assert script(project, "test", "-k", "grades") == [f"{PIP} .[test]", "pytest -k grades"]
    assert script(project, "test") == ["pytest"]


def test_test_after_run_adds_the_extras_and_run_after_test_changes_nothing(project):
    assert script(project, "run") == [f"{PIP} .", "clever-sim demo"]
    assert script(project, "test") == [f"{PIP} .[test]", "pytest"]
    assert script(project, "run") == ["clever-sim demo"]  # no reinstall, no downgrade
    assert script(project, "test") == ["pytest"]


def test_a_changed_dependency_list_installs_again(project):
    script(project, "test")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# a new dependency\n")
    assert script(project, "run") == [f"{PIP} .", "clever-sim demo"]
    assert script(project, "test") == [f"{PIP} .[test]", "pytest"]


def test_a_failed_install_is_retried_next_time(project):
    (project / ".venv" / "pip-fails").touch()
    failed = subprocess.run([str(project / "scripts" / "run")], capture_output=True, text=True,
                            timeout=60)
    assert failed.returncode != 0  # set -e: the demo does not start on a half-installed venv
    assert "clever-sim demo" not in (project / ".venv" / "calls.log").read_text()
    (project / ".venv" / "pip-fails").unlink()
    assert script(project, "run") == [f"{PIP} .", "clever-sim demo"]
