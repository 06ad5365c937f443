"""What a partner gets from a plain install, proved from outside the checkout.

One wheel is built from exactly the files the Dockerfile copies and installed WITHOUT extras
into a fresh venv in a temporary folder (module fixture, shared by every test here). From
there: `clever-sim serve`, `clever-sim contract` against the reference partner, the Node.js
partner and a broken partner (exit codes 0/1/2 and the JUnit file), and the pytest plugin in
a throwaway project. Those tests need the package index (the venv's dependencies), so they
are marked ``network``; the plugin switches and the Dockerfile pins run offline.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import venv
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from contract_tests.checks import CHECKS
from partners.broken_partner import BrokenPartner
from serverproc import LineProcess, ServerProcess, node_or_skip
from simulator.config import read_toml

ROOT = Path(__file__).resolve().parents[1]
NODE_PARTNER = ROOT / "tests" / "partners" / "node_partner" / "server.js"
TEST_EXTRAS = ("hypothesis", "playwright", "schemathesis")
CHECK_COUNT = len(CHECKS)  # the installed suite runs every check the checkout declares
# The suite's undocumented speed knobs (contract_tests/config.py) keep these runs short.
FAST = {"grade_timeout_s": 3, "assignments_timeout_s": 1.5, "settle_s": 0.1}


def dockerfile_sources() -> list[str]:
    """Every path the Dockerfile COPYs into the image's build folder."""
    sources: list[str] = []
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    return sources


def clean_env(**extra: str) -> dict:
    """The environment of a partner's shell: nothing from this checkout or this pytest run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "CLEVER_SIM_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_partner_toml(path: Path, base: str, client_id: str, secret: str) -> Path:
    lines = ["[app]", f'name = "{client_id}"', f'client_id = "{client_id}"',
             f'client_secret = "{secret}"', f'redirect_uris = ["{base}/clever/callback"]',
             f'assignments_url = "{base}/clever/assignments"', "", "[contract]",
             f'complete_assignment_hook = "{base}/test-hooks/complete"',
             'landing_url_pattern = "/assignments/{assignment_id}"']
    lines += [f"{key} = {value}" for key, value in FAST.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Installed:
    """A fresh venv holding only the wheel and its runtime dependencies."""

    env_dir: Path
    elsewhere: Path   # a folder outside the checkout to run from

    @property
    def python(self) -> str:
        return str(self.env_dir / "bin" / "python")

    @property
    def clever_sim(self) -> str:
        return str(self.env_dir / "bin" / "clever-sim")

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), cwd=cwd or self.elsewhere, env=env or clean_env(),
                              capture_output=True, text=True, timeout=timeout)

    def contract(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(self.clever_sim, "contract", *args)

    def serve(self) -> ServerProcess:
        return ServerProcess(["--db", ":memory:"], exe=[self.clever_sim], cwd=self.elsewhere,
                             env={"PYTHONPATH": ""})

    def reference_partner(self, sim_url: str, client_id: str, secret: str) -> LineProcess:
        return LineProcess([self.python, "-m", "contract_tests.reference_partner", "--sim-url", sim_url,
                            "--port", "0", "--client-id", client_id, "--client-secret", secret],
                           r"Reference partner on (http://\S+)", env=clean_env(), cwd=self.elsewhere)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """Build the wheel from the Dockerfile's files, `pip install` it (no extras) in a new venv."""
    base = tmp_path_factory.mktemp("plain-install")
    src = base / "src"
    src.mkdir()
    for name in dockerfile_sources():
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(base / "wheelhouse"), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list((base / "wheelhouse").glob("clever_grade_sim-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    done = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", str(wheels[0])],
                          capture_output=True, text=True, timeout=600, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return Installed(env_dir, elsewhere)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# --- the install itself -------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.network
def test_plain_install_has_the_runtime_and_none_of_the_test_extras(installed):
    probe = installed.run(installed.python, "-c",
                          "import simulator, contract_tests, clever_sim, pytest; print(simulator.__file__)")
    assert probe.returncode == 0 and str(installed.env_dir) in probe.stdout, probe.stdout + probe.stderr
    listed = installed.run(installed.python, "-m", "pip", "list", "--format=freeze")
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "pytest" in names and not names & set(TEST_EXTRAS), sorted(names)
    entry = installed.run(installed.python, "-c", "from importlib.metadata import entry_points; "
                          "print([e.value for e in entry_points(group='pytest11', name='clever_sim')])")
    assert entry.stdout.strip() == "['clever_sim']", entry.stdout + entry.stderr


@pytest.mark.slow
@pytest.mark.network
def test_plain_install_serves_packaged_fixtures(installed):
    with installed.serve() as server:
        health = httpx.get(server.url + "/_sim/health").json()
        assert health["districts"] == 2 and health["apps"] == 1
        page = httpx.get(server.url + "/oauth/authorize",
                         params={"client_id": "b4fd885bda79813831c3", "response_type": "code"})
        assert page.status_code == 200 and "Log in to Demo Partner" in page.text
        assert httpx.get(server.url + "/static/sim.css").status_code == 200
    shown = installed.run(installed.clever_sim, "fixtures", "show-default")
    assert "Sunset Valley Unified School District" in shown.stdout


# --- clever-sim contract from the plain install --------------------------------------------

def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {case.get("name"): case for case in root.iter("testcase")}


@pytest.mark.slow
@pytest.mark.network
def test_contract_passes_the_installed_reference_partner_starting_its_own_simulator(installed):
    """The README's path: the runner starts the simulator on --sim-port; exit 0, a full JUnit."""
    port = free_port()
    with installed.reference_partner(f"http://127.0.0.1:{port}", "ref-plain", "ref-secret") as partner:
        toml = write_partner_toml(installed.elsewhere / "ref.toml", partner.url, "ref-plain", "ref-secret")
        junit = installed.elsewhere / "ref.xml"
        done = installed.contract("--config", str(toml), "--sim-port", str(port),
                                  "--level", "recommended", "--junit-xml", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Result: PASS" in done.stdout and done.stderr == ""
    cases = junit_cases(junit)
    assert len(cases) == CHECK_COUNT
    assert not [name for name, case in cases.items() if case.find("failure") is not None]


@pytest.mark.slow
@pytest.mark.network
def test_contract_passes_the_node_partner_against_the_installed_server(installed, tmp_path):
    node = node_or_skip()
    with installed.serve() as server, \
            LineProcess([node, str(NODE_PARTNER)], r"listening on (http://\S+)",
                        env=clean_env(SIM_URL=server.url, CLIENT_ID="node-plain",
                                      CLIENT_SECRET="node-secret", PORT="0", HOST="127.0.0.1")) as partner:
        toml = write_partner_toml(tmp_path / "node.toml", partner.url, "node-plain", "node-secret")
        junit = tmp_path / "node.xml"
        done = installed.contract("--config", str(toml), "--sim-url", server.url,
                                  "--junit-xml", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    cases = junit_cases(junit)
    assert len(cases) == CHECK_COUNT
    assert all(case.find("failure") is None for case in cases.values())


@pytest.mark.slow
@pytest.mark.network
def test_contract_exits_1_and_names_the_failed_checks_for_a_broken_partner(installed, tmp_path):
    with installed.serve() as server, \
            BrokenPartner(server.url, "broken-plain", "s3cret", bugs={"percentage_80"}) as partner:
        toml = write_partner_toml(tmp_path / "broken.toml", partner.url, "broken-plain", "s3cret")
        junit = tmp_path / "broken.xml"
        done = installed.contract("--config", str(toml), "--sim-url", server.url,
                                  "--only", "GRADE-001,GRADE-004", "--junit-xml", str(junit))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Result: FAIL" in done.stdout and "GRADE-004" in done.stdout
    cases = junit_cases(junit)
    assert sorted(cases) == ["GRADE-001", "GRADE-004"]
    failure = cases["GRADE-004"].find("failure")
    assert failure is not None and failure.get("type") == "required"
    assert "percentage" in failure.get("message")


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("case", ["missing_config", "config_is_a_directory", "not_toml",
                                  "no_simulator_at_sim_url", "partner_not_listening"])
def test_contract_exits_2_with_one_line_when_it_cannot_run(installed, tmp_path, case):
    closed = f"http://127.0.0.1:{free_port()}"
    toml = write_partner_toml(tmp_path / "partner.toml", closed, "nobody", "secret")
    junit = tmp_path / "junit.xml"
    args = {
        "missing_config": ["--config", str(tmp_path / "nope.toml")],
        "config_is_a_directory": ["--config", str(tmp_path)],
        "not_toml": ["--config", str(tmp_path / "notes.txt")],
        "no_simulator_at_sim_url": ["--config", str(toml), "--sim-url", closed],
        "partner_not_listening": ["--config", str(toml), "--sim-port", "0"],
    }[case]
    (tmp_path / "notes.txt").write_text("not = [toml\n", encoding="utf-8")
    done = installed.contract(*args, "--junit-xml", str(junit))
    assert done.returncode == 2, done.stdout + done.stderr
    assert one_line(done.stderr).startswith("clever-sim contract: ")
    assert not junit.exists()


@pytest.mark.slow
@pytest.mark.network
def test_readme_pytest_command_runs_the_suite_from_the_plain_install(installed):
    """`pytest … --pyargs contract_tests --clever-config partner.toml` as the README writes it,
    from a folder that is not the checkout (only there did the bare command know the options)."""
    from test_readme_contract import readme_pytest_command

    port = free_port()
    with installed.reference_partner(f"http://127.0.0.1:{port}", "ref-pytest", "ref-secret") as partner:
        write_partner_toml(installed.elsewhere / "partner.toml", partner.url, "ref-pytest", "ref-secret")
        done = installed.run(installed.python, "-m", "pytest", *readme_pytest_command(),
                             "-p", "no:cacheprovider", "-q", "--sim-port", str(port),
                             "--only", "ASSIGN-001,LOGIN-003")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout and "Clever contract checks" in done.stdout, done.stdout


# --- the pytest plugin from the plain install, in a throwaway project -----------------------

PLUGIN_USER_TEST = '''
import sys

import httpx


def test_a_grade_my_app_posts_is_seen(clever_sim):
    student = clever_sim.students()[0]
    answer = httpx.post(clever_sim.url + "/v1/grade", trust_env=False, timeout=5,
                        headers={"Authorization": f"Bearer {clever_sim.il_token(student)}"},
                        json={"assignmentID": "quiz1", "percentage": 0.8})
    assert answer.status_code == 200, answer.text
    clever_sim.assert_grade(student, "quiz1", lti=0.8)


def test_the_plugin_is_registered_once(pytestconfig):
    plugin = sys.modules["simulator.pytest_plugin"]
    names = [name for name, p in pytestconfig.pluginmanager.list_name_plugin() if p is plugin]
    assert names == ["simulator.pytest_plugin"]
'''


def throwaway_project(folder: Path) -> Path:
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # its own rootdir
    (folder / "test_my_app.py").write_text(PLUGIN_USER_TEST, encoding="utf-8")
    return folder


@pytest.mark.slow
@pytest.mark.network
def test_pytest_plugin_works_from_the_plain_install_in_a_new_project(installed, tmp_path):
    project = throwaway_project(tmp_path / "my_app")
    done = installed.run(installed.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    off = installed.run(installed.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-p", "no:clever_sim", cwd=project)
    assert off.returncode == 1 and "fixture 'clever_sim' not found" in off.stdout, off.stdout


# --- the plugin's switches (offline: this checkout's own install) ---------------------------

@pytest.mark.slow
@pytest.mark.parametrize("autoload, args, on", [
    (True, [], True),
    (True, ["-p", "no:clever_sim"], False),
    (False, [], False),
    (False, ["-p", "clever_sim"], True),
    (True, ["-p", "clever_sim"], True),                 # named although autoloaded: once
    (True, ["-p", "simulator.pytest_plugin"], True),    # the module's own name: still once
], ids=["autoloaded", "no-clever_sim-turns-it-off", "autoload-disabled", "p-clever_sim-turns-it-on",
        "p-clever_sim-and-autoload", "p-module-and-autoload"])
def test_plugin_switches_work_as_the_readme_says(tmp_path, autoload, args, on):
    project = throwaway_project(tmp_path / "my_app")
    env = clean_env() if autoload else clean_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    if on:
        assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout + done.stderr
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "fixture 'clever_sim' not found" in done.stdout
        assert "fixture 'pytestconfig' not found" not in done.stdout


# --- the image installs what the wheel test installs (no Docker engine here) ----------------

def test_dockerfile_copies_everything_the_wheel_packages():
    copied = set(dockerfile_sources())
    setuptools = read_toml(ROOT / "pyproject.toml")["tool"]["setuptools"]
    package_dirs = {setuptools.get("package-dir", {}).get(pkg, pkg.replace(".", "/")).split("/")[0]
                    for pkg in setuptools["packages"]}
    modules = {f"{name}.py" for name in setuptools.get("py-modules", [])}
    needed = package_dirs | modules | {"pyproject.toml", "README.md"}
    assert needed <= copied, f"pyproject.toml packages {sorted(needed - copied)}: not copied"


def test_dockerfile_installs_plainly_and_runs_as_a_server():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "RUN pip install . " in text or "RUN pip install .\n" in text  # no extras
    assert "\nUSER clever" in text and "useradd" in text
    assert "EXPOSE 8080" in text
    assert 'CMD ["python", "-m", "simulator.healthcheck"]' in text.split("HEALTHCHECK", 1)[1]
    assert 'CMD ["clever-sim", "serve", "--host", "0.0.0.0", "--port", "8080"]' in text
    assert 'VOLUME ["/data"]' in text and "CLEVER_SIM_DATA_DIR=/data" in text


def test_contract_needs_nothing_outside_the_runtime_dependencies():
    """pytest runs the contract suite, so it is a dependency, not an extra."""
    project = read_toml(ROOT / "pyproject.toml")["project"]
    runtime = {dep.split(">")[0].split("=")[0].split(";")[0].strip().lower()
               for dep in project["dependencies"]}
    assert {"pytest", "httpx", "click", "flask", "waitress"} <= runtime
    assert project["entry-points"]["pytest11"] == {"clever_sim": "clever_sim"}


# --- the documented commands parse (README, Dockerfile header, CI recipes) ------------------

def documented_contract_commands() -> list[tuple[str, list[str]]]:
    """Every `clever-sim contract …` command line the docs give, as arguments."""
    import re
    import shlex

    found = []
    for path in [ROOT / "README.md", ROOT / "Dockerfile", *sorted((ROOT / "docs").glob("*.md")),
                 *sorted((ROOT / "docs" / "ci").glob("*.yml"))]:
        for match in re.finditer(r"clever-sim contract((?: +--?[\w-]+(?: +[^\s`|\\-][^\s`|\\]*)?)+)",
                                 path.read_text(encoding="utf-8")):
            found.append((path.name, shlex.split(match.group(1))))
    return found


def test_every_documented_contract_command_names_real_options():
    from contract_tests.runner import contract_command

    commands = documented_contract_commands()
    assert {name for name, _ in commands} >= {"README.md", "Dockerfile", "contract-tests.md",
                                              "github-actions.yml", "gitlab-ci.yml"}
    for name, args in commands:
        ctx = contract_command.make_context("clever-sim contract", list(args))
        assert ctx.params["config_path"], (name, args)


def test_ci_recipes_install_without_extras():
    for recipe in (ROOT / "docs" / "ci").glob("*.yml"):
        for line in recipe.read_text(encoding="utf-8").splitlines():
            if "pip install" in line:
                assert "[" not in line.split("pip install", 1)[1], f"{recipe.name}: {line.strip()}"


def _runtime_requirement(name: str):
    from packaging.requirements import Requirement

    project = read_toml(ROOT / "pyproject.toml")["project"]
    return next(r for r in map(Requirement, project["dependencies"]) if r.name.lower() == name)


@pytest.mark.parametrize("platform, machine, implementation, installs", [
    ("linux", "x86_64", "CPython", True),
    ("linux", "aarch64", "CPython", True),
    ("darwin", "arm64", "CPython", True),
    ("darwin", "x86_64", "CPython", True),
    ("win32", "AMD64", "CPython", True),
    ("win32", "ARM64", "CPython", False),   # no granian wheel: waitress serves
    ("linux", "ppc64le", "CPython", False),  # no wheel: no Rust build on install
    ("linux", "x86_64", "PyPy", False),
])
def test_granian_is_required_only_where_it_has_a_wheel(platform, machine, implementation, installs):
    granian = _runtime_requirement("granian")
    env = {"sys_platform": platform, "platform_machine": machine,
           "platform_python_implementation": implementation}
    assert granian.marker.evaluate(env) is installs


def test_subclassed_servers_are_pinned_to_the_series_serving_drives():
    from simulator.serving import GRANIAN_SERIES

    assert str(_runtime_requirement("waitress").specifier) in ("<4,>=3.0", ">=3.0,<4")
    granian = _runtime_requirement("granian").specifier
    major, minor = GRANIAN_SERIES
    assert f"{major}.{minor}.99" in granian and f"{major}.{minor + 1}.0" not in granian
