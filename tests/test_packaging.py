"""A non-editable `pip install .` into a fresh venv, run from another folder, serves the
packaged default fixtures, templates and stylesheet (what `pip install` users get)."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import httpx
import pytest

from serverproc import ServerProcess
from simulator.config import read_toml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_serves_packaged_fixtures(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    result = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             str(ROOT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Nothing from the source tree may be importable: run the installed command from elsewhere.
    probe = subprocess.run([str(py), "-c", "import simulator, sys; print(simulator.__file__)"],
                           cwd=elsewhere, capture_output=True, text=True)
    assert str(env_dir) in probe.stdout, probe.stdout + probe.stderr
    with ServerProcess(["--db", ":memory:"], exe=[str(env_dir / "bin" / "clever-sim")],
                       cwd=elsewhere, env={"PYTHONPATH": ""}) as server:
        health = httpx.get(server.url + "/_sim/health").json()
        assert health["districts"] == 2 and health["apps"] == 1
        page = httpx.get(server.url + "/oauth/authorize", params={"client_id": "b4fd885bda79813831c3", "response_type": "code"})
        assert page.status_code == 200 and "Log in to Demo Partner" in page.text
        assert httpx.get(server.url + "/static/sim.css").status_code == 200
    partner = subprocess.run([str(py), "-c", "import importlib.resources as r; "
                              "print(r.files('contract_tests.reference_partner').joinpath('templates').is_dir())"],
                             cwd=elsewhere, capture_output=True, text=True)
    assert partner.stdout.strip() == "True", partner.stdout + partner.stderr
    validate = subprocess.run([str(env_dir / "bin" / "clever-sim"), "fixtures", "show-default"],
                              cwd=elsewhere, capture_output=True, text=True)
    assert "Sunset Valley Unified School District" in validate.stdout


def test_dockerfile_installs_exactly_what_the_wheel_test_installs():
    """No Docker engine runs here: pin the image's install to the command tested above."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ")}
    # Everything pyproject.toml packages (and its readme) is copied, nothing else is needed.
    assert {"simulator", "contract_tests", "fixtures"} <= copied
    setuptools = read_toml(ROOT / "pyproject.toml")["tool"]["setuptools"]
    package_dirs = {setuptools.get("package-dir", {}).get(pkg, pkg.replace(".", "/")).split("/")[0]
                    for pkg in setuptools["packages"]}
    assert package_dirs <= copied, f"pyproject.toml packages {sorted(package_dirs - copied)}: not copied"
    assert any("pyproject.toml" in line and "README.md" in line for line in text.splitlines()
               if line.startswith("COPY "))
    assert "RUN pip install . " in text or "RUN pip install .\n" in text
    assert "\nUSER clever" in text and "useradd" in text
    assert "EXPOSE 8080" in text and "/_sim/health" in text.split("HEALTHCHECK", 1)[1]
    assert 'CMD ["clever-sim", "serve", "--host", "0.0.0.0", "--port", "8080"]' in text
    assert 'VOLUME ["/data"]' in text and "CLEVER_SIM_DATA_DIR=/data" in text
