"""Bad input to any `clever-sim` command: one plain line on stderr, exit 2, nothing written.

Every row runs in a folder holding a text file, a foreign SQLite database, a directory and
a valid partner.toml; the folder's files are compared byte for byte before and after.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator.cli import main

NOTES = b"meeting notes, not a database\n"
PARTNER_TOML = """[app]
name = "Mathly"
client_id = "mathly-dev"
client_secret = "mathly-secret"
redirect_uris = ["http://127.0.0.1:5001/clever/callback"]
assignments_url = "http://127.0.0.1:5001/clever/assignments"
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_bytes(NOTES)
    (tmp_path / "adir").mkdir()
    (tmp_path / "partner.toml").write_text(PARTNER_TOML, encoding="utf-8")
    (tmp_path / "bad-app.toml").write_text(PARTNER_TOML.replace('["http://127.0.0.1:5001/clever/callback"]',
                                                                '["localhost:5001/callback"]'), encoding="utf-8")
    (tmp_path / "strict.toml").write_text('[simulator]\nstrict = "yes"\n', encoding="utf-8")
    (tmp_path / "no-district.toml").write_text(PARTNER_TOML + 'districts = ["000000000000000000000000"]\n',
                                               encoding="utf-8")
    (tmp_path / "twice.json").write_text('{"users": [], "users": []}', encoding="utf-8")
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "no-districts.json").write_text('{"districts": []}', encoding="utf-8")
    (tmp_path / "blank.json").write_text(" \n\t\n", encoding="utf-8")
    (tmp_path / "latin1.toml").write_bytes('[app]\nname = "Mathé"\n'.encode("latin-1"))
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE recipes (name TEXT)")
    other.commit()
    other.close()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}




# (args, what the one line must say); "{busy}" is a port something already listens on.
CASES = {
    # serve: --db, --config, --roster, numbers, host, port
    "serve-db-not-sqlite": (["serve", "--db", "notes.txt"],
                            "cannot use 'notes.txt' as the simulator's database: file is not a database"),
    "serve-db-foreign-sqlite": (["serve", "--db", "other.db"],
                                "it is another program's SQLite database (tables recipes)"),
    "serve-db-directory": (["serve", "--db", "adir"], "'adir' as the simulator's database: it is a directory"),
    "serve-db-under-a-file": (["serve", "--db", "notes.txt/state.db"], "cannot use 'notes.txt/state.db'"),
    "serve-config-missing": (["serve", "--config", "nope.toml"], "config file not found: nope.toml"),
    "serve-config-directory": (["serve", "--config", "adir"], "'adir' is a directory"),
    "serve-config-not-toml": (["serve", "--config", "notes.txt"], "notes.txt: not valid TOML"),
    "serve-config-strict-not-a-bool": (["serve", "--db", "new.db", "--config", "strict.toml"],
                                       "config: strict.toml: [simulator].strict must be true or false, "
                                       "not 'yes'"),
    "serve-config-not-utf8": (["serve", "--config", "latin1.toml"],
                              "config: latin1.toml: not valid TOML: the file is not UTF-8 text"),
    "serve-config-app-bad-redirect": (["serve", "--db", "new.db", "--config", "bad-app.toml"],
                                      "config: bad-app.toml: [app].redirect_uris[0] is not an absolute "
                                      "http(s) URL"),
    # an [app] district only the roster can refute: refused after the roster loaded, and
    # the database (default or --db, its folders, a roster cache entry) made for it removed
    "serve-config-app-unknown-district": (["serve", "--config", "no-district.toml"],
                                          "config: no-district.toml: [app].districts[0] unknown "
                                          "district '000000000000000000000000' (known: "),
    "serve-config-app-unknown-district-new-db": (["serve", "--db", "state/sim.db", "--roster-cache",
                                                  "cache/rosters", "--config", "no-district.toml"],
                                                 "unknown district '000000000000000000000000'"),
    "serve-config-app-unknown-district-cache-dir": (["serve", "--db", "new.db", "--roster-cache", "adir",
                                                     "--config", "no-district.toml"],
                                                    "unknown district '000000000000000000000000'"),
    # the file itself: what is wrong with it, not "roster fixture is invalid: $: …" and a
    # pointer to `fixtures validate` for a file that is not there
    "serve-roster-missing": (["serve", "--roster", "nope.json"],
                             "clever-sim serve: cannot read roster file 'nope.json': no such file"),
    "serve-roster-directory": (["serve", "--roster", "adir"], "'adir' is a directory"),
    "serve-roster-not-json": (["serve", "--roster", "notes.txt"],
                              "clever-sim serve: roster file 'notes.txt' is not valid JSON"),
    "serve-roster-invalid": (["serve", "--roster", "twice.json"],
                             "clever-sim serve: roster file 'twice.json' repeats the key 'users'"),
    # a roster that is JSON but not a roster keeps the pointer to `fixtures validate`
    "serve-roster-not-a-roster": (["serve", "--roster", "no-districts.json", "--port", "0"],
                                  "roster fixture is invalid: $: 'apps' is a required property (and 5 "
                                  "more problem(s)); `clever-sim fixtures validate FILE` lists every problem"),
    "serve-port-not-a-number": (["serve", "--port", "eighty"], "Invalid value for '--port'"),
    "serve-port-too-big": (["serve", "--port", "70000"], "Invalid value for '--port'"),
    "serve-threads-zero": (["serve", "--threads", "0"], "Invalid value for '--threads'"),
    "serve-host-not-an-address": (["serve", "--host", "999.1.1.1"], "'999.1.1.1' is not an IP address or host name"),
    "serve-host-with-port": (["serve", "--host", "127.0.0.1:8080"], "(give the port with --port)"),
    "serve-host-url": (["serve", "--host", "http://localhost"], "is not an IP address or host name"),
    "serve-port-in-use": (["serve", "--db", ":memory:", "--port", "{busy}"],
                          "cannot listen on 127.0.0.1:{busy}: Address already in use (choose another "
                          "port with --port, or 0 for any free one)"),
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): no interface here has it; binding sends nothing
    "serve-host-not-this-machine": (["serve", "--db", ":memory:", "--host", "192.0.2.1"],
                                    "(no interface of this machine has that address: use --host "
                                    "127.0.0.1, or 0.0.0.0 for all)"),
    "serve-port-in-use-new-db": (["serve", "--db", "state/sim.db", "--port", "{busy}"],
                                 "cannot listen on 127.0.0.1:{busy}"),
    "unknown-option": (["serve", "--colour"], "No such option '--colour'"),
    # click raises this one without a context: the help named was the top level's
    "option-without-its-value": (["serve", "--port"],
                                 "clever-sim serve: Option '--port' requires an argument. (see "
                                 "'clever-sim serve --help')"),
    "snapshot-option-without-its-value": (["snapshot", "save", "out.json", "--url"],
                                          "(see 'clever-sim snapshot save --help')"),
    # demo
    "demo-db-not-sqlite": (["demo", "--db", "notes.txt", "--port", "0", "--partner-port", "0"],
                           "file is not a database"),
    "demo-port-not-a-number": (["demo", "--port", "x"], "Invalid value for '--port'"),
    "demo-port-in-use": (["demo", "--port", "{busy}", "--partner-port", "0"],
                         "cannot listen on 127.0.0.1:{busy} for the simulator: Address already in use "
                         "(choose another port with --port, or 0 for any free one)"),
    "demo-port-in-use-new-db": (["demo", "--db", "state/sim.db", "--port", "{busy}", "--partner-port", "0"],
                                "cannot listen on 127.0.0.1:{busy} for the simulator"),
    "demo-partner-port-in-use-new-db": (["demo", "--db", "state/sim.db", "--port", "0", "--partner-port",
                                         "{busy}"], "cannot listen on 127.0.0.1:{busy} for the reference partner"),
    "demo-same-port-twice": (["demo", "--port", "8765", "--partner-port", "8765"],
                             "Invalid value for '--partner-port': is 8765, the same as --port: the "
                             "simulator and the reference partner need a port each (or 0 for any free one)"),
    "demo-partner-port-in-use": (["demo", "--port", "0", "--partner-port", "{busy}"],
                                 "cannot listen on 127.0.0.1:{busy} for the reference partner: Address "
                                 "already in use (choose another port with --partner-port, or 0 for any free one)"),
    # fixtures
    "validate-missing": (["fixtures", "validate", "nope.json"], "'nope.json' does not exist"),
    "validate-directory": (["fixtures", "validate", "adir"], "'adir' is a directory"),
    # not a JSON document at all is input it cannot use (2); a JSON roster with problems is 1
    "validate-not-json": (["fixtures", "validate", "notes.txt"],
                          "clever-sim fixtures validate: roster file 'notes.txt' is not valid JSON: "
                          "Expecting value at line 1, column 1"),
    "validate-empty": (["fixtures", "validate", "empty.json"],
                       "clever-sim fixtures validate: roster file 'empty.json' is empty: a roster is one "
                       "JSON object (`clever-sim fixtures show-default` prints the packaged one to start from)"),
    "validate-blank": (["fixtures", "validate", "blank.json"], "roster file 'blank.json' is empty"),
    "serve-roster-empty": (["serve", "--roster", "empty.json", "--port", "0"],
                           "clever-sim serve: roster file 'empty.json' is empty: a roster is one JSON object"),
    "validate-not-utf8": (["fixtures", "validate", "latin1.toml"],
                          "roster file 'latin1.toml' is not UTF-8 text (byte offset 18)"),
    "validate-key-twice": (["fixtures", "validate", "twice.json"],
                           "roster file 'twice.json' repeats the key 'users' inside one JSON object "
                           "(the earlier value would be silently lost)"),
    "generate-zero-schools": (["fixtures", "generate", "--schools", "0"], "Invalid value for '--schools'"),
    "generate-seed-not-a-number": (["fixtures", "generate", "--seed", "x"], "Invalid value for '--seed'"),
    "generate-output-directory": (["fixtures", "generate", "-o", "adir"], "'adir' is a directory"),
    "generate-output-under-a-file": (["fixtures", "generate", "--schools", "1", "--teachers", "1",
                                      "--students", "1", "--sections", "1", "-o", "notes.txt/r.json"],
                                     "notes.txt/r.json: Not a directory"),
    # snapshot
    "snapshot-save-db-not-sqlite": (["snapshot", "save", "out.json", "--db", "notes.txt"],
                                    "file is not a database"),
    "snapshot-save-db-foreign": (["snapshot", "save", "out.json", "--db", "other.db"],
                                 "another program's SQLite database"),
    "snapshot-save-db-missing": (["snapshot", "save", "out.json", "--db", "nope.db"], "no database at 'nope.db'"),
    "snapshot-save-to-directory": (["snapshot", "save", "adir", "--db", "other.db"], "'adir' is a directory"),
    "snapshot-save-nothing-listening": (["snapshot", "save", "out.json", "--url", "http://127.0.0.1:{closed}"],
                                        "cannot reach the simulator at http://127.0.0.1:{closed}"),
    "snapshot-save-url-without-scheme": (["snapshot", "save", "out.json", "--url", "127.0.0.1:8080"],
                                         "--url '127.0.0.1:8080' is not an http(s) URL, e.g. "
                                         "http://127.0.0.1:8080"),
    "snapshot-load-url-without-scheme": (["snapshot", "load", "partner.toml", "--url", "localhost:9000"],
                                         "--url 'localhost:9000' is not an http(s) URL"),
    "snapshot-url-and-db": (["snapshot", "save", "out.json", "--url", "http://x", "--db", "a.db"],
                            "give --url or --db, not both"),
    "snapshot-load-missing": (["snapshot", "load", "nope.json", "--db", "new.db"], "no such file: 'nope.json'"),
    "snapshot-load-directory": (["snapshot", "load", "adir", "--db", "new.db"], "'adir' is a directory"),
    "snapshot-load-not-json": (["snapshot", "load", "notes.txt", "--db", "new.db"], "'notes.txt' is not valid JSON"),
    "snapshot-load-into-not-sqlite": (["snapshot", "load", "partner.toml", "--db", "notes.txt"],
                                      "not a loadable snapshot"),
    # contract
    "contract-config-missing": (["contract", "--config", "nope.toml"], "config file not found: nope.toml"),
    "contract-config-directory": (["contract", "--config", "adir"], "adir is a directory"),
    "contract-config-not-toml": (["contract", "--config", "notes.txt"], "notes.txt: not valid TOML"),
    "contract-config-not-utf8": (["contract", "--config", "latin1.toml"],
                                 "latin1.toml: not valid TOML: the file is not UTF-8 text"),
    "contract-config-under-a-file": (["contract", "--config", "notes.txt/partner.toml"], "config file not found"),
    "contract-sim-port-not-a-number": (["contract", "--config", "partner.toml", "--sim-port", "x"],
                                       "Invalid value for '--sim-port'"),
    "contract-sim-port-too-big": (["contract", "--config", "partner.toml", "--sim-port", "70000"],
                                  "Invalid value for '--sim-port'"),
    "contract-level-unknown": (["contract", "--config", "partner.toml", "--level", "strict"],
                               "Invalid value for '--level'"),
    "contract-junit-directory": (["contract", "--config", "partner.toml", "--junit-xml", "adir"],
                                 "cannot write --junit-xml adir: it is a directory"),
    "contract-junit-no-folder": (["contract", "--config", "partner.toml", "--junit-xml", "nodir/c.xml"],
                                 "does not exist"),
    "contract-port-and-url": (["contract", "--config", "partner.toml", "--sim-port", "0", "--sim-url", "http://x"],
                              "not both"),
    "contract-sim-port-in-use": (["contract", "--config", "partner.toml", "--sim-port", "{busy}"],
                                 "clever-sim contract: cannot run"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_cli_input_gets_one_line_exit_2_and_writes_nothing(folder, busy_port, name):
    args, expected = CASES[name]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens once closed
    fill = {"busy": busy_port, "closed": closed}
    args = [a.format(**fill) for a in args]
    before = tree(folder)
    # port 0 unless a row names one: the port is bound first, and 8080 may be taken here
    result = CliRunner().invoke(main, args, env={"CLEVER_SIM_HOST": None, "CLEVER_SIM_PORT": "0",
                                                 "CLEVER_SIM_CONFIG": None, "CLEVER_SIM_TRACEBACK": None})
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("clever-sim "), lines[0]
    assert expected.format(**fill) in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert tree(folder) == before


# A bad value from a CLEVER_SIM_* variable: the line names the variable, not only the
# flag (an "Invalid value for '--port'" sent people looking for a --port nobody typed).
ENV_CASES = {
    "port": ({"CLEVER_SIM_PORT": "eighty"}, ["serve", "--db", ":memory:"],
             "Invalid value for '--port': 'eighty' is not a valid integer range. (from the "
             "environment: CLEVER_SIM_PORT='eighty')"),
    "server": ({"CLEVER_SIM_SERVER": "gunicorn"}, ["serve", "--db", ":memory:"],
               "(from the environment: CLEVER_SIM_SERVER='gunicorn')"),
    "host": ({"CLEVER_SIM_HOST": "999.1.1.1"}, ["serve", "--db", ":memory:"],
             "(from the environment: CLEVER_SIM_HOST='999.1.1.1')"),
    "journal-cap": ({"CLEVER_SIM_JOURNAL_CAP": "-1"}, ["serve", "--db", ":memory:"],
                    "config: CLEVER_SIM_JOURNAL_CAP='-1': journal_cap must be a positive whole "
                    "number, not -1"),
    "control-token": ({"CLEVER_SIM_CONTROL_TOKEN": "two words"}, ["serve", "--db", ":memory:"],
                      "config: CLEVER_SIM_CONTROL_TOKEN='two words': control_token must be"),
}


@pytest.mark.parametrize("name", list(ENV_CASES))
def test_a_bad_environment_value_names_its_variable(folder, name):
    env, args, expected = ENV_CASES[name]
    result = CliRunner().invoke(main, args, env={"CLEVER_SIM_HOST": None, "CLEVER_SIM_PORT": None,
                                                 "CLEVER_SIM_CONFIG": None, "CLEVER_SIM_TRACEBACK": None,
                                                 **env})
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_a_bad_flag_value_does_not_blame_the_environment(folder):
    result = CliRunner().invoke(main, ["serve", "--port", "eighty"],
                                env={"CLEVER_SIM_PORT": "8080", "CLEVER_SIM_CONFIG": None})
    assert result.exit_code == 2
    assert "environment" not in result.stderr and "Invalid value for '--port'" in result.stderr


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads any file: an unreadable file cannot be made here")
@pytest.mark.parametrize("args", [["serve", "--config", "secret.toml"], ["serve", "--roster", "secret.toml", "--port", "0"],
                                  ["contract", "--config", "secret.toml"],
                                  ["snapshot", "load", "secret.toml", "--db", "new.db"]])
def test_an_unreadable_file_gets_one_line_and_exit_2(folder, args):
    secret = folder / "secret.toml"
    secret.write_text(PARTNER_TOML, encoding="utf-8")
    secret.chmod(0)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "ermission denied" in result.stderr or "cannot read" in result.stderr


def test_the_installed_command_prints_no_traceback(folder):
    """The console script goes through the same one place as CliRunner does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEVER_SIM_")}
    done = subprocess.run([sys.executable, "-m", "simulator.cli", "serve", "--db", "notes.txt",
                           "--port", "0"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "clever-sim serve: cannot use 'notes.txt' as the simulator's database: file is not a "
        "database (give --db a new file name, an existing clever-sim database, or :memory:)"]
    assert (folder / "notes.txt").read_bytes() == NOTES


def test_an_unexpected_error_is_one_line_unless_the_traceback_is_asked_for(folder, monkeypatch):
    import simulator.roster as roster

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(roster, "default_roster_path", broken)
    result = CliRunner().invoke(main, ["fixtures", "show-default"], env={"CLEVER_SIM_TRACEBACK": None})
    assert result.exit_code == 2
    assert result.stderr.strip() == ("clever-sim fixtures show-default: internal error: RuntimeError: boom "
                                     "(please report it; CLEVER_SIM_TRACEBACK=1 shows where)")
    raised = CliRunner().invoke(main, ["fixtures", "show-default"], env={"CLEVER_SIM_TRACEBACK": "1"})
    assert isinstance(raised.exception, RuntimeError)


def test_a_bare_command_prints_its_help_unprefixed():
    result = CliRunner().invoke(main, [])
    assert result.exit_code in (0, 2)  # click < 8.2 exits 0 here
    assert (result.stderr or result.stdout).startswith("Usage: ")


def test_a_snapshot_refused_for_its_control_token_is_one_line(folder, monkeypatch):
    """The server's one error (Authorization missing) joins the status on the same line."""
    from simulator.app import create_app
    from simulator.serving import start_in_thread

    monkeypatch.delenv("CLEVER_SIM_CONTROL_TOKEN", raising=False)
    server = start_in_thread(create_app({"DB": ":memory:", "CONTROL_TOKEN": "s3cret"}, environ={}))
    try:
        before = tree(folder)
        result = CliRunner().invoke(main, ["snapshot", "save", "out.json", "--url", server.url])
    finally:
        server.stop()
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"clever-sim snapshot save: cannot save a snapshot from {server.url}: HTTP 401: Control "
        "token required; Authorization: is missing (send Authorization: Bearer {the "
        "--control-token / CLEVER_SIM_CONTROL_TOKEN value})")
    assert tree(folder) == before


def test_ctrl_c_in_a_command_exits_130_not_1(monkeypatch):
    """1 means a check or validation failed, 2 bad input; an interrupted command is
    neither (128 + SIGINT, as `clever-sim contract` answers it)."""
    import simulator.roster_gen as roster_gen

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(roster_gen, "generate_roster", interrupted)
    result = CliRunner().invoke(main, ["fixtures", "generate"])
    assert result.exit_code == 130
    assert result.stderr.strip() == "Aborted!"


def test_a_start_refused_after_opening_an_existing_database_keeps_it_whole(folder):
    """Only what the refused start made is removed: a database that was there stays, with
    what it held."""
    from simulator.app import create_app

    sim = create_app({"DB": "kept.db"}, environ={}).extensions["clever_sim"]
    sim.clever.register_app({"name": "Kept", "client_id": "kept-app", "client_secret": "k",
                             "redirect_uris": ["http://127.0.0.1:5001/cb"]}, None)
    sim.close()
    result = CliRunner().invoke(main, ["serve", "--db", "kept.db", "--config", "no-district.toml",
                                       "--port", "0"], env={"CLEVER_SIM_CONFIG": None})
    assert result.exit_code == 2 and "unknown district" in result.stderr
    again = create_app({"DB": "kept.db"}, environ={}).extensions["clever_sim"]
    try:
        assert again.clever.app("kept-app").name == "Kept"
    finally:
        again.close()


# The commands that start a simulator of their own (`demo`, `contract --sim-port`) word a bad
# roster or server setting as `serve` does: one line, the first problem and how many more,
# never the class name of an exception or a problem per line.
BAD_ROSTER_LINE = ("roster fixture is invalid: $: 'apps' is a required property (and 5 more "
                   "problem(s)); `clever-sim fixtures validate FILE` lists every problem")
OWN_SIMULATOR_CASES = {
    "demo-roster": ({"CLEVER_SIM_ROSTER": "{folder}/bad-roster.json"}, ["demo", "--port", "0"],
                    "clever-sim demo: " + BAD_ROSTER_LINE),
    "contract-roster": ({"CLEVER_SIM_ROSTER": "{folder}/bad-roster.json"},
                        ["contract", "--sim-port", "0", "--config", "{folder}/partner.toml"],
                        "clever-sim contract: config problem: simulator roster: " + BAD_ROSTER_LINE),
    "contract-server": ({"CLEVER_SIM_SERVER": "nginx"},
                        ["contract", "--sim-port", "0", "--config", "{folder}/partner.toml"],
                        "clever-sim contract: config problem: CLEVER_SIM_SERVER='nginx': unknown "
                        "server 'nginx'; choose one of auto, granian, waitress"),
}


@pytest.mark.parametrize("name", list(OWN_SIMULATOR_CASES))
def test_a_command_starting_its_own_simulator_words_a_bad_setting_in_one_line(folder, name):
    (folder / "bad-roster.json").write_text('{"users": 3}', encoding="utf-8")
    env, args, expected = OWN_SIMULATOR_CASES[name]
    result = CliRunner().invoke(main, [a.format(folder=folder) for a in args],
                                env={"CLEVER_SIM_CONFIG": None, "CLEVER_SIM_TRACEBACK": None,
                                     **{k: v.format(folder=folder) for k, v in env.items()}})
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.strip().splitlines() == [expected]
