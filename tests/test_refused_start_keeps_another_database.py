"""A refused start removes only what it made: a database another process created at the
same path while this start ran (between the start looking for the file and making it)
is that process's, and stays, with its grades, -wal and -shm.

``clever-sim serve`` (whose cleanup decided "this start made the database" from a look
taken before the start) and ``create_app`` (whose own look came before the roster was
read, which takes seconds for a big one) alike.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from simulator import sim as sim_mod
from simulator.app import create_app
from simulator.cli import main
from simulator.config import ConfigError
from simulator.roster import default_roster_path, load_roster
from simulator.store import Store

NOWHERE = "0" * 24  # a district no roster here has
NO_DISTRICT_TOML = f"""[app]
name = "Mathly"
client_id = "mathly-dev"
client_secret = "mathly-secret"
redirect_uris = ["http://127.0.0.1:5001/clever/callback"]
districts = ["{NOWHERE}"]
"""


def _another_process_makes(path: Path) -> None:
    """What another start (or a tool) on the same path leaves: a database with a grade, and
    the -wal and -shm of a store still open on it."""
    store = Store(str(path))
    store.save_grade(grade_id="a" * 24, client_id="c", user_id="u", assignment_id="a",
                     district_id="d", build_record=lambda i, v, c: {"id": i, "version": v},
                     now_iso="2026-12-08T00:00:00.000Z")
    _another_process_makes.open.append(store)


_another_process_makes.open = []


@pytest.fixture
def others():
    yield _another_process_makes.open
    while _another_process_makes.open:
        _another_process_makes.open.pop().close()


def _grades_in(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT id, version FROM grades").fetchall()


def test_a_refused_serve_keeps_a_database_another_process_made_after_it_looked(
        tmp_path, monkeypatch, others):
    (tmp_path / "no-district.toml").write_text(NO_DISTRICT_TOML, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "state" / "sim.db"
    looked = sim_mod.remove_stale_asides  # the start's first look at the database's folder

    def meanwhile(path, *args, **kwargs):
        _another_process_makes(db)
        return looked(path, *args, **kwargs)

    monkeypatch.setattr(sim_mod, "remove_stale_asides", meanwhile)
    result = CliRunner().invoke(main, ["serve", "--db", "state/sim.db", "--config",
                                       "no-district.toml", "--port", "0"],
                                env={"CLEVER_SIM_CONFIG": None, "CLEVER_SIM_TRACEBACK": None})
    assert result.exit_code == 2, (result.output, result.exception)
    assert f"unknown district '{NOWHERE}'" in result.stderr
    assert sorted(p.name for p in db.parent.iterdir()) == ["sim.db", "sim.db-shm", "sim.db-wal"]
    assert _grades_in(db) == [("a" * 24, 1)]


def test_a_refused_start_keeps_a_database_another_process_made_while_it_read_the_roster(
        tmp_path, monkeypatch, others):
    """The window between the start's look and its store creating the file: the roster is
    read in it (a roster document here; a big roster file the stream cannot prove, too)."""
    db = tmp_path / "state" / "sim.db"
    read = sim_mod.Simulator._read_roster

    def meanwhile(self, stored):
        doc = read(self, stored)
        _another_process_makes(db)
        return doc

    monkeypatch.setattr(sim_mod.Simulator, "_read_roster", meanwhile)
    bad_app = {"name": "Mathly", "client_id": "mathly-dev", "districts": [NOWHERE],
               "redirect_uris": ["http://127.0.0.1:5001/cb"]}
    with pytest.raises(ConfigError, match=f"unknown district '{NOWHERE}'"):
        create_app({"DB": str(db), "ROSTER": load_roster(default_roster_path()),
                    "APPS": [bad_app]}, environ={})
    assert sorted(p.name for p in db.parent.iterdir()) == ["sim.db", "sim.db-shm", "sim.db-wal"]
    assert _grades_in(db) == [("a" * 24, 1)]


def test_a_refused_start_still_removes_the_new_database_it_made_itself(tmp_path):
    """The same start with nobody else at the path: the file it made, its folder, go."""
    bad_app = {"name": "Mathly", "client_id": "mathly-dev", "districts": [NOWHERE],
               "redirect_uris": ["http://127.0.0.1:5001/cb"]}
    with pytest.raises(ConfigError, match=f"unknown district '{NOWHERE}'"):
        create_app({"DB": str(tmp_path / "state" / "sim.db"),
                    "ROSTER": load_roster(default_roster_path()), "APPS": [bad_app]}, environ={})
    assert list(tmp_path.iterdir()) == []


def test_a_demo_whose_partner_cannot_be_served_removes_the_new_database_it_made(
        tmp_path, monkeypatch):
    """The simulator was built and bound, then the reference partner's server failed: the
    demo's new database goes with it (the start's own, ``Simulator.abandon``)."""
    from contract_tests import demo, reference_partner

    def refused(*args, **kwargs):
        raise OSError("test: the partner's server cannot be made")

    monkeypatch.setattr(reference_partner, "bind_partner", refused)
    with pytest.raises(OSError, match="the partner's server cannot be made"):
        demo.start_demo(0, 0, str(tmp_path / "state" / "demo.db"), environ={})
    assert list(tmp_path.iterdir()) == []
