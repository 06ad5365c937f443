"""A start that is refused (a config [app] the new roster cannot hold, a port that is taken)
changes nothing in an existing database: not its roster, not its apps, not a stamp.

Every row starts on a database that holds the packaged roster and a registered app, with a
CHANGED roster (another district) or the same roster file touched, and is refused; the
database's full SQL dump is compared before and after, and the next good start with the
new roster loads it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator.app import create_app
from simulator.cli import main
from simulator.config import ConfigError
from simulator.embedded import bind_simulator
from simulator.roster import default_roster_path
from simulator.roster_gen import generate_roster, write_roster

SUNSET_VALLEY = "4e7112c9111e8c530d98db16"  # in the packaged roster only
PARTNER = """[app]
name = "Mathly"
client_id = "mathly-dev"
client_secret = "mathly-secret"
redirect_uris = ["http://127.0.0.1:5001/clever/callback"]
"""
ENV = {"CLEVER_SIM_HOST": None, "CLEVER_SIM_PORT": None, "CLEVER_SIM_CONFIG": None,
       "CLEVER_SIM_ROSTER": None, "CLEVER_SIM_TRACEBACK": None, "CLEVER_SIM_SERVER": None}


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A database with the packaged roster (from a copy of its file) and a registered app;
    ``new.json``, a roster with another district; partner.toml files."""
    old = tmp_path / "old.json"
    old.write_bytes(Path(default_roster_path()).read_bytes())
    new_doc = generate_roster(schools=1, teachers=2, students=4, sections=2, seed=7, with_app=False)
    with open(tmp_path / "new.json", "w", encoding="utf-8") as fh:
        write_roster(new_doc, fh)
    (tmp_path / "lacks.toml").write_text(PARTNER + f'districts = ["{SUNSET_VALLEY}"]\n')
    (tmp_path / "nowhere.toml").write_text(PARTNER + f'districts = ["{"0" * 24}"]\n')
    (tmp_path / "fits.toml").write_text(PARTNER)
    sim = create_app({"DB": str(tmp_path / "sim.db"), "ROSTER": str(old)}, environ={}) \
        .extensions["clever_sim"]
    sim.clever.register_app({"name": "Kept", "client_id": "kept-app", "client_secret": "k",
                             "redirect_uris": ["http://127.0.0.1:5001/cb"]}, None)
    sim.close()
    monkeypatch.chdir(tmp_path)
    return tmp_path




def dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _cli(args: list[str], env: dict | None = None) -> str:
    result = CliRunner().invoke(main, args, env={**ENV, **(env or {})})
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _embedded(settings: dict, port: int = 0) -> str:
    with pytest.raises((ConfigError, OSError)) as refused:
        bind_simulator({"DB": "sim.db", **settings}, "127.0.0.1", port, environ={})
    return str(refused.value)


def _new_doc() -> dict:
    return json.loads(Path("new.json").read_text(encoding="utf-8"))


def _touch_old() -> str:
    """The same roster bytes with a new stamp (a copy): a good start would note the stamp."""
    os.utime("old.json", ns=(1, 1))
    return "old.json"


# (what is refused, how it is started, what its one line says)
REFUSALS = {
    "serve-app-district-the-new-roster-lacks": (
        lambda busy: _cli(["serve", "--db", "sim.db", "--roster", "new.json", "--config",
                           "lacks.toml", "--port", "0"]),
        f"[app].districts[0] unknown district '{SUNSET_VALLEY}'"),
    "serve-port-taken-with-a-new-roster": (
        lambda busy: _cli(["serve", "--db", "sim.db", "--roster", "new.json", "--config",
                           "fits.toml", "--port", str(busy)]),
        "cannot listen on 127.0.0.1:"),
    "serve-app-district-same-roster-touched": (
        lambda busy: _cli(["serve", "--db", "sim.db", "--roster", _touch_old(), "--config",
                           "nowhere.toml", "--port", "0"]),
        "unknown district"),
    "serve-unknown-server-with-a-new-roster": (
        lambda busy: _cli(["serve", "--db", "sim.db", "--roster", "new.json", "--server",
                           "nginx", "--port", "0"]),
        "Invalid value for '--server'"),
    "demo-partner-port-taken-with-a-new-roster": (
        lambda busy: _cli(["demo", "--db", "sim.db", "--port", "0", "--partner-port", str(busy)],
                          env={"CLEVER_SIM_ROSTER": "new.json"}),
        "for the reference partner"),
    "embedded-app-district-a-new-roster-document-lacks": (
        lambda busy: _embedded({"ROSTER": _new_doc(), "APPS": [
            {"name": "Mathly", "client_id": "mathly-dev", "districts": [SUNSET_VALLEY],
             "redirect_uris": ["http://127.0.0.1:5001/cb"]}]}),
        "unknown district"),
    "embedded-port-taken-with-a-new-roster": (
        lambda busy: _embedded({"ROSTER": "new.json"}, busy),
        "Address already in use"),
    "embedded-app-district-the-same-roster-file-lacks-after-a-touch": (
        lambda busy: _embedded({"ROSTER": _touch_old(), "APPS": [
            {"name": "Mathly", "client_id": "mathly-dev", "districts": ["0" * 24],
             "redirect_uris": ["http://127.0.0.1:5001/cb"]}]}),
        "unknown district"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_a_refused_restart_changes_nothing_in_the_database(place, busy_port, name):
    start, says = REFUSALS[name]
    before = dump(place / "sim.db")
    assert any("kept-app" in line for line in before)
    line = start(busy_port)
    assert says in line
    assert dump(place / "sim.db") == before
    # the next good start loads the new roster, with the app registered before
    sim = create_app({"DB": "sim.db", "ROSTER": "new.json"}, environ={}).extensions["clever_sim"]
    try:
        assert sim.district_ids == [d["id"] for d in _new_doc()["districts"]]
        assert SUNSET_VALLEY not in sim.district_ids
        assert sim.clever.app("kept-app").name == "Kept"
    finally:
        sim.close()
