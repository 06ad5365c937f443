"""``scripts/run`` and ``scripts/test`` share one ``.venv``: run installs only what running
needs, test adds the test extras, and neither reinstalls what is already there.

The scripts run for real against a copy of the project whose ``.venv/bin/python`` records
``-m pip`` and ``-m pytest`` calls instead of running them (everything else, such as the
stamp's digest, goes to this interpreter), so no package index is needed.
"""

from __future__ import annotations

import os
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


# --- a Python older than 3.10: one line, exit 2, nothing installed or started ---------------

OLD_PYTHON = """#!/usr/bin/env bash
echo "old-python $*" >> "$(dirname "$0")/old-calls.log"
[ "$1" = "-c" ] && { echo 3.9.18; exit 1; }   # the version probe: 3.9.18, not >= 3.10
echo "Python 3.9.18"
"""


def old_python(folder: Path, name: str = "python3.9") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text(OLD_PYTHON)
    exe.chmod(0o755)
    return exe


def refused(project: Path, name: str, **env: str) -> str:
    """Run scripts/NAME expecting exit 2 with one line on stderr; that line."""
    done = subprocess.run([str(project / "scripts" / name)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("name", ["run", "test"])
def test_an_old_python_named_by_PYTHON_is_refused_not_silently_replaced(project, tmp_path, name):
    shutil.rmtree(project / ".venv")
    exe = old_python(tmp_path / "bin")
    line = refused(project, name, PYTHON=str(exe))
    assert line == f"scripts/{name}: PYTHON={exe} is Python 3.9.18; clever-sim needs 3.10 or newer"
    assert not (project / ".venv").exists()
    assert refused(project, name, PYTHON=str(tmp_path / "nope")) == \
        f"scripts/{name}: PYTHON={tmp_path / 'nope'}: no such interpreter"


@pytest.mark.parametrize("name", ["run", "test"])
def test_a_venv_made_with_an_old_python_is_refused_before_pip_runs(project, name):
    bin_dir = project / ".venv" / "bin"
    (bin_dir / "python").unlink()
    old_python(bin_dir, "python")
    line = refused(project, name)
    assert line == (f"scripts/{name}: .venv is Python 3.9.18; clever-sim needs 3.10 or newer: "
                    "remove it (rm -rf .venv) and run again (PYTHON=/path/to/python3 picks the "
                    "interpreter)")
    probes = (bin_dir / "old-calls.log").read_text().splitlines()
    assert probes and all(call.startswith("old-python -c ") for call in probes)  # no pip, no venv
    assert not (project / ".venv" / "calls.log").exists()  # clever-sim and pytest never ran


def test_no_python_new_enough_on_path_is_one_line_and_exit_2(project, tmp_path):
    shutil.rmtree(project / ".venv")
    bin_dir = tmp_path / "bin"
    old_python(bin_dir, "python3")
    for tool in ("bash", "env", "dirname", "basename"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    line = refused(project, "run", PATH=str(bin_dir), PYTHON="")
    assert line == ("scripts/run: clever-sim needs Python 3.10 or newer; none found on PATH "
                    "(set PYTHON=/path/to/python3)")
    assert not (project / ".venv").exists()
