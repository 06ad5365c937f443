"""The README stays a short front door, every link in it and in docs/ leads somewhere, and
the code a reader pastes from docs/ runs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_readme_is_a_short_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not followed (no traffic off this machine)
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_row_has_as_many_cells_as_its_header(page: Path):
    """GitHub drops the cells past the header's: a stray `| |` once hid the seed rule of
    two contract checks. A cell's own pipe is written `\\|`."""
    wrong, header = [], None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            header = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line)) - 1
        if header is None:
            header = cells
        elif cells != header:
            wrong.append(f"line {number}: {cells} cells, header {header}")
    assert not wrong, f"{page.name}: " + "; ".join(wrong)


# A page, then a quoted title: ([decisions](decisions.md), "Hostile input"),
# (`bench/README.md`, "Issue 17 at …"); or a bold item *under* a page's section.
SECTION_REF = re.compile(r'([\w./-]+\.md)(?:#[\w-]*)?\)?`?,\s*"([^"]+)"')
ITEM_UNDER = re.compile(r'\*([^*]+)\* under "([^"]+)"')


def titles(page: Path) -> set[str]:
    """What a reference can name in a page: its headings and bold lead-ins (`**Bounds.**`)."""
    text = re.sub(r"\s+", " ", page.read_text(encoding="utf-8"))
    found = {t.strip() for t in re.findall(r"\*\*([^*]+)\*\*", text)}
    found |= {line.lstrip("#").strip() for line in page.read_text(encoding="utf-8").splitlines()
              if line.startswith("#")}
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_section_named_in_quotes_exists(page: Path):
    """control-api.md once sent readers to *Server* under "Where the simulator decides",
    which had no such item (the bounds are in internals.md, "Bounds")."""
    text = re.sub(r"\s+", " ", page.read_text(encoding="utf-8"))
    broken = []
    for target, title in SECTION_REF.findall(text):
        dest = next((d for d in (page.parent / target, ROOT / target) if d.exists()), None)
        if dest is None:
            broken.append(f"{target}: no such file")
        elif not any(t == title or t.startswith(title) for t in titles(dest)):
            broken.append(f'{target} has no heading or bold item "{title}"')
    for item, section in ITEM_UNDER.findall(text):
        holders = [p for p in PAGES if any(t.startswith(section) for t in titles(p))]
        if not any(any(t.rstrip(".") == item for t in titles(p)) for p in holders):
            broken.append(f'no bold item "{item}" on a page with a section "{section}"')
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_readme_links_every_docs_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in text]
    assert not missing, f"README.md does not link {missing}"


# --- code a reader pastes ------------------------------------------------------------------

# What the `...` of the unittest example stands for: an app that logs the student in with
# the launch code and posts 80 % (as the reference partner would).
APP_STEP = '''
        import httpx
        code = launch.split("code=", 1)[1].split("&", 1)[0]
        app = self.sim.app(client_id)
        token = httpx.post(self.server.url + "/oauth/tokens", auth=(client_id, app["client_secret"]),
                           json={"code": code, "grant_type": "authorization_code",
                                 "redirect_uri": launch.split("?", 1)[0]}).json()["access_token"]
        sent = httpx.post(self.server.url + "/v1/grade", headers={"Authorization": "Bearer " + token},
                          json={"assignmentID": "quiz1", "percentage": 0.8})
        print("grade POST", sent.status_code, sent.text)
'''


def test_unittest_example_passes_for_an_app_that_posts_the_grade(tmp_path):
    """docs/pytest-plugin.md's unittest example, run as written with its `...` filled in by a
    correct app: it must pass (under STRICT it once could not, the assignment never linked)."""
    import os
    import subprocess
    import sys

    text = (ROOT / "docs" / "pytest-plugin.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "import unittest" in b]
    assert len(blocks) == 1, blocks
    elided = [line for line in blocks[0].splitlines() if line.strip().startswith("...")]
    assert len(elided) == 1, elided
    script = blocks[0].replace(elided[0], APP_STEP.strip("\n"))
    (tmp_path / "test_example.py").write_text(script, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEVER_SIM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "unittest", "-v", "test_example"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "grade POST 200" in done.stdout and "OK" in done.stderr, done.stdout + done.stderr


# --- the curl walk (README.md, docs/guide.md) ----------------------------------------------

DEMO_ID = "b4fd885bda79813831c3"


def curl_walks() -> list[tuple[str, str]]:
    """Every ```bash block that walks the API with the demo app's credentials."""
    found = []
    for page in (ROOT / "README.md", ROOT / "docs" / "guide.md"):
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            if f"ID={DEMO_ID}" in block:
                found.append((page.name, block))
    return found


@pytest.mark.skipif(__import__("shutil").which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("page, block", curl_walks(), ids=[name for name, _ in curl_walks()])
def test_curl_walk_stores_the_grade_after_a_district_token_was_reissued(page, block):
    """The walk as a reader pastes it, on a simulator where the first student's district has
    had its district-app token revoked and reissued (what the contract suite's GRADE-013 does
    to a --sim-url simulator): the token must still be the student's district's, so the grade
    POST answers 200 and the grade is listed (it once took whichever token the listing named
    first: 404 "User not found", an empty list)."""
    import os
    import subprocess

    import httpx

    from simulator.app import create_app
    from simulator.serving import start_in_thread

    assert re.search(r"^SIM=http://127\.0\.0\.1:8080$", block, re.M), block
    server = start_in_thread(create_app({"DB": ":memory:"}, environ={}))
    try:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=10) as http:
            student = http.get("/_sim/personas", params={"role": "student"}).json()["data"][0]
            app = http.get(f"/_sim/apps/{DEMO_ID}").json()
            old = app["district_tokens"][student["district"]]
            assert http.delete(f"/_sim/tokens/{old}").json()["reissued"] is True
        script = "set -eu\n" + block.replace("SIM=http://127.0.0.1:8080", f"SIM={server.url}", 1)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                              timeout=60)
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    posted, listed = answers[-2], answers[-1]
    assert posted["data"]["userID"] == student["id"] and posted["data"]["lti_score"] == "0.8", posted
    assert [g["lti_score"] for g in listed["data"]] == ["0.8"], listed


# --- docs/running.md's configuration table against the code ------------------------------

def configuration_rows() -> list[dict[str, str | None]]:
    """Each setting of running.md's table: its flag, variable, TOML key and default."""
    text = (ROOT / "docs" / "running.md").read_text(encoding="utf-8")
    table = text.split("| Setting | Flag | Env |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    rows = []
    for line in table:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        first = [re.match(r"`([^`]+)`", c) for c in cells]
        rows.append({"setting": cells[0],
                     "flag": first[1] and first[1].group(1).split()[0],
                     "env": first[2] and first[2].group(1),
                     "toml": first[3] and first[3].group(1),
                     "default": cells[4]})
    return rows


def test_serve_help_names_each_flag_its_variable_and_default():
    """A partner reads `clever-sim serve --help`, not running.md: it once named no variable
    for --db, --config, --roster or --strict."""
    from click.testing import CliRunner

    from simulator.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=1000)
    shown = " ".join(result.output.split())
    missing = []
    for row in configuration_rows():
        if not row["flag"]:
            continue
        for word in (row["flag"], row["env"]):
            if word and word not in shown:
                missing.append(f"{row['setting']}: {word}")
        default = re.match(r"`([^`]+)`|(\d+)\b", row["default"])
        if default and (default.group(1) or default.group(2)) not in shown:
            missing.append(f"{row['setting']}: default {default.group(0)}")
    assert not missing, f"clever-sim serve --help lacks {missing}"


def test_configuration_table_lists_every_variable_and_toml_key_the_code_reads():
    from simulator import config

    rows = configuration_rows()
    envs = {r["env"] for r in rows if r["env"]}
    tomls = {r["toml"] for r in rows if r["toml"]}
    assert set(config._ENV) <= envs, f"not in running.md's table: {set(config._ENV) - envs}"
    assert tomls == set(config._TOML_SIMULATOR_KEYS), tomls ^ set(config._TOML_SIMULATOR_KEYS)
    for row in rows:
        key = config._TOML_SIMULATOR_KEYS.get(row["toml"] or "")
        number = re.match(r"(\d+)\b", row["default"])
        if key and number:
            assert config.DEFAULTS[key] == int(number.group(1)), row


def options_table(page: str, after: str) -> set[str]:
    """The options a page's table lists (the first `--flag` of each row after ``after``)."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8").split(after, 1)[1]
    rows = text.split("\n\n", 1)[0].splitlines()
    return {m.group(1) for r in rows if (m := re.match(r"\| `(--[a-z-]+)", r))}


def test_contract_options_table_lists_every_option_of_contract_help():
    """contract-tests.md's table once lacked --control-token, which `contract --help` has."""
    from click.testing import CliRunner

    from simulator.cli import main

    shown = CliRunner().invoke(main, ["contract", "--help"], terminal_width=1000).output
    flags = set(re.findall(r"^\s+(--[a-z-]+)", shown, re.M)) - {"--help"}
    assert flags == options_table("contract-tests.md", "| Option | Meaning |"), flags


def test_pytest_plugin_options_table_lists_every_option_the_plugin_adds():
    from simulator import pytest_plugin

    class Parser:
        def __init__(self):
            self.flags: set[str] = set()

        def getgroup(self, *args, **kwargs):
            return self

        def addoption(self, *names, **kwargs):
            self.flags.update(n for n in names if n.startswith("--"))

        def addini(self, *args, **kwargs):
            pass

    parser = Parser()
    pytest_plugin.pytest_addoption(parser)  # type: ignore[arg-type]
    assert parser.flags == options_table("pytest-plugin.md", "| Option | Meaning |"), parser.flags


def test_readme_command_table_names_only_flags_each_command_has():
    from click.testing import CliRunner

    from simulator.cli import main

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("| Command | What it does |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    checked, wrong = 0, []
    for row in table:
        group: list[str] = []
        for usage in re.findall(r"`([^`]+)`", row.split("|")[1]):
            words = [w for w in usage.removeprefix("clever-sim ").split() if re.fullmatch(r"[a-z-]+", w)]
            if usage.startswith("clever-sim "):
                group = words[:1] if words[:1] in (["fixtures"], ["snapshot"]) else []
                command = words[:2] if group else words[:1]
            else:  # `show-default`, `snapshot load FILE`: the same group's other commands
                command = group + words[:1] if words[:1] != group else words[:2]
            shown = CliRunner().invoke(main, [*command, "--help"], terminal_width=1000).output
            assert "Usage:" in shown, (usage, shown)
            for flag in re.findall(r"--[a-z-]+", usage):
                checked += 1
                if not re.search(rf"^\s+{flag}\b", shown, re.M):
                    wrong.append(f"{' '.join(command)} {flag}")
    assert checked >= 10 and not wrong, f"README's command table names flags the commands lack: {wrong}"
