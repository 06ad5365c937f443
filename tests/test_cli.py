"""`clever-sim` commands: fixture validation and config errors without tracebacks."""

from __future__ import annotations

import json

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
    result = CliRunner().invoke(main, ["serve", "--roster", str(bad), "--db", ":memory:"])
    assert result.exit_code == 2 and "roster fixture is invalid" in result.output
