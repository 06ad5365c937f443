"""`clever-sim` commands: fixture validation and config errors without tracebacks."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from simulator.cli import main
from simulator.roster import default_roster_path


def test_fixtures_validate_accepts_default():
    result = CliRunner().invoke(main, ["fixtures", "validate", str(default_roster_path())])
    assert result.exit_code == 0
    assert "valid (2 districts" in result.output


def test_fixtures_validate_lists_every_problem_with_json_path(tmp_path):
    doc = json.loads(default_roster_path().read_text(encoding="utf-8"))
    doc["users"][0]["district"] = "ffffffffffffffffffffffff"
    doc["sections"][0]["id"] = "nope"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    result = CliRunner().invoke(main, ["fixtures", "validate", str(bad)])
    assert result.exit_code == 1
    assert "$.sections[0].id" in result.output
    assert "problem(s)" in result.output


def test_fixtures_validate_reports_invalid_json_position_as_bad_input(tmp_path):
    """Not JSON at all is input the command cannot use: exit 2 and one line, as every
    command answers it (exit 1 is a JSON roster with problems)."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"districts": [\n  {,}\n]}', encoding="utf-8")
    result = CliRunner().invoke(main, ["fixtures", "validate", str(bad)])
    assert result.exit_code == 2
    assert result.stderr == (f"clever-sim fixtures validate: roster file {str(bad)!r} is not valid JSON: "
                             f"Expecting property name enclosed in double quotes at line 2, column 4\n")


def test_serve_rejects_broken_config_without_traceback(tmp_path):
    cfg = tmp_path / "partner.toml"
    cfg.write_text("[app]\nredirect_uris = []\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--config", str(cfg), "--db", ":memory:"])
    assert result.exit_code == 2
    assert "redirect_uris must be a non-empty list" in result.output
    assert "Traceback" not in result.output


def test_serve_rejects_invalid_toml(tmp_path):
    cfg = tmp_path / "partner.toml"
    cfg.write_text("[app\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--config", str(cfg), "--db", ":memory:"])
    assert result.exit_code == 2 and "not valid TOML" in result.output


def test_serve_rejects_bad_roster_naming_the_path(tmp_path):
    bad = tmp_path / "roster.json"
    bad.write_text('{"districts": []}', encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--roster", str(bad), "--db", ":memory:", "--port", "0"])
    assert result.exit_code == 2 and "roster fixture is invalid" in result.output


def _rewritten_after_each_read(monkeypatch, path) -> list[str]:
    """Make every read of a TOML file rewrite ``path`` afterwards (as an editor saving during
    the start would); returns the list of paths read."""
    from simulator import config

    reads: list[str] = []
    real_read = config.read_toml

    def read_then_rewrite(p):
        reads.append(str(p))
        doc = real_read(p)
        path.write_text("[simulator]\nstrict = false\n", encoding="utf-8")
        return doc

    monkeypatch.setattr(config, "read_toml", read_then_rewrite)
    return reads


def test_serve_reads_its_config_file_once_so_a_file_changed_meanwhile_never_mixes(tmp_path, monkeypatch):
    """serve builds the layered config once and hands it to create_app: the TOML file is
    read once, and a file rewritten during the start cannot give half of each version."""
    from simulator import serving

    path = tmp_path / "partner.toml"
    path.write_text('[simulator]\nstrict = true\njournal_cap = 77\n[app]\nname = "First"\n'
                    'client_id = "first-app"\nredirect_uris = ["http://127.0.0.1:5001/cb"]\n',
                    encoding="utf-8")
    reads = _rewritten_after_each_read(monkeypatch, path)

    built: list = []

    def refuse(app, *args, **kwargs):
        built.append(app)
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(serving, "bind", refuse)
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--db", ":memory:", "--port", "0"],
                                env={"CLEVER_SIM_CONFIG": None, "CLEVER_SIM_STRICT": None,
                                     "CLEVER_SIM_JOURNAL_CAP": None})
    assert result.exit_code == 2 and "Address already in use" in result.stderr
    assert reads == [str(path)]
    (app,) = built
    assert app.config["STRICT"] is True and app.config["JOURNAL_CAP"] == 77
    assert app.config["CONFIG_FILE"] == str(path)
    assert [a["client_id"] for a in app.config["APPS"]] == ["first-app"]


def test_create_app_takes_a_built_config_alone(monkeypatch):
    from simulator.app import create_app
    from simulator.config import build_config

    settings = build_config(environ={}, overrides={"DB": ":memory:", "STRICT": True})
    monkeypatch.setenv("CLEVER_SIM_STRICT", "false")  # not read: settings are taken as they are
    app = create_app(settings=settings)
    try:
        assert app.config["STRICT"] is True
    finally:
        app.extensions["clever_sim"].close()
    with pytest.raises(TypeError, match="give settings alone"):
        create_app({"STRICT": True}, settings=settings)


def test_demo_reads_the_config_file_of_clever_sim_config_once(tmp_path, monkeypatch):
    """demo builds its config once and hands it to the simulator it starts (a file rewritten
    meanwhile cannot give half of each version)."""
    import contract_tests.demo as demo

    path = tmp_path / "sim.toml"
    path.write_text("[simulator]\nstrict = true\njournal_cap = 77\n", encoding="utf-8")
    reads = _rewritten_after_each_read(monkeypatch, path)

    started: list = []

    def stop_at_once(running):  # instead of printing the walkthrough and waiting for Ctrl+C
        started.append(running.sim.app.config)
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "walkthrough", stop_at_once)
    result = CliRunner().invoke(main, ["demo", "--port", "0", "--partner-port", "0"],
                                env={"CLEVER_SIM_CONFIG": str(path), "CLEVER_SIM_STRICT": None,
                                     "CLEVER_SIM_JOURNAL_CAP": None, "CLEVER_SIM_DB": None})
    assert result.exit_code == 0, result.output
    assert reads == [str(path)]
    (cfg,) = started
    assert cfg["STRICT"] is True and cfg["JOURNAL_CAP"] == 77
