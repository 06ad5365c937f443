"""The roster cache (``--roster-cache``): a new database starts from a copy of one that
already holds the roster, only when it holds exactly that roster; a bad roster is cached
nowhere; apps, tokens and grades are never shared through it."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

import pytest

from simulator import roster as roster_mod
from simulator import roster_cache as cache_mod
from simulator import sim as sim_mod
from simulator.app import create_app
from simulator.config import ConfigError, build_config
from simulator.roster import RosterError, default_roster_path, file_digest
from simulator.roster_cache import RosterCache
from simulator.store import schema_sql
from simulator.roster_gen import generate_roster, write_roster


@pytest.fixture()
def roster_file(tmp_path):
    doc = generate_roster(seed=3, schools=2, teachers=6, students=30, sections=4)
    path = tmp_path / "roster.json"
    with open(path, "w", encoding="utf-8") as fh:
        write_roster(doc, fh)
    return path


def start(db, roster, cache):
    app = create_app({"DB": str(db), "ROSTER": str(roster), "ROSTER_CACHE": str(cache),
                      "SECRET_KEY": "t"}, environ={})
    return app.extensions["clever_sim"]


def refuse_parsing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the roster file was parsed again")

    monkeypatch.setattr(roster_mod, "_parse_json_text", refuse)
    monkeypatch.setattr(roster_mod, "validate_roster", refuse)


def test_first_start_on_a_new_database_copies_the_cached_roster_instead_of_parsing(
        tmp_path, roster_file, monkeypatch):
    cache = tmp_path / "cache"
    first = start(tmp_path / "a.db", roster_file, cache)
    try:
        expected = first.roster
        tokens_a = {t.access_token for t in first.store.district_tokens(first.roster_apps()[0]["client_id"])}
    finally:
        first.close()
    assert len(list(cache.glob("roster-*.db"))) == 1
    refuse_parsing(monkeypatch)
    second = start(tmp_path / "b.db", roster_file, cache)
    try:
        assert second.roster == expected  # the same records, in the file's order
        client_id = second.roster_apps()[0]["client_id"]
        tokens_b = {t.access_token for t in second.store.district_tokens(client_id)}
        assert tokens_b and not tokens_a & tokens_b  # tokens are made per database, not cached
    finally:
        second.close()


def test_the_cached_database_holds_the_roster_and_no_apps_tokens_or_grades(tmp_path, roster_file):
    cache = tmp_path / "cache"
    start(tmp_path / "a.db", roster_file, cache).close()
    entry = next(cache.glob("roster-*.db"))
    db = sqlite3.connect(entry)
    try:
        counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("users", "sections", "apps", "tokens", "grades", "auth_codes")}
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        db.close()
    doc = json.loads(roster_file.read_text(encoding="utf-8"))
    assert counts == {"users": len(doc["users"]), "sections": len(doc["sections"]),
                      "apps": 0, "tokens": 0, "grades": 0, "auth_codes": 0}
    assert mode == "delete"  # one self-contained file, no -wal beside it


def test_a_bad_roster_is_refused_as_before_and_nothing_is_cached_or_created(tmp_path):
    bad = tmp_path / "bad.json"
    doc = json.loads(default_roster_path().read_text(encoding="utf-8"))
    doc["users"][0]["district"] = "0123456789abcdef01234567"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    cache = tmp_path / "cache"
    with pytest.raises(RosterError) as caught:
        start(tmp_path / "a.db", bad, cache)
    assert caught.value.problems[0].path == "$.users[0].district"
    assert "unknown district '0123456789abcdef01234567'" in caught.value.problems[0].message
    assert not (tmp_path / "a.db").exists()
    assert not cache.exists() or not list(cache.iterdir())


@pytest.mark.parametrize("damage", ["garbage", "another roster"])
def test_a_cache_entry_that_is_not_this_rosters_database_is_ignored_and_the_roster_loaded(
        tmp_path, roster_file, damage):
    cache = tmp_path / "cache"
    first = start(tmp_path / "a.db", roster_file, cache)
    expected = first.roster
    first.close()
    entry = next(cache.glob("roster-*.db"))
    if damage == "garbage":
        entry.write_bytes(b"not a database" * 100)
    else:
        db = sqlite3.connect(entry)
        db.execute("UPDATE meta SET value = 'f' || value WHERE key = 'roster_digest'")
        db.commit()
        db.close()
    second = start(tmp_path / "b.db", roster_file, cache)
    try:
        assert second.roster == expected
    finally:
        second.close()
    assert not list(tmp_path.glob("b.db.*.part"))  # the refused copy was removed


def test_a_changed_roster_file_misses_the_cache_and_is_loaded(tmp_path, roster_file):
    cache = tmp_path / "cache"
    start(tmp_path / "a.db", roster_file, cache).close()
    doc = json.loads(roster_file.read_text(encoding="utf-8"))
    doc["users"][0]["name"]["first"] = "Changed"
    roster_file.write_text(json.dumps(doc), encoding="utf-8")
    second = start(tmp_path / "b.db", roster_file, cache)
    try:
        assert second.roster["users"][0]["name"]["first"] == "Changed"
    finally:
        second.close()
    assert len(list(cache.glob("roster-*.db"))) == 2


def test_an_existing_database_is_never_replaced_from_the_cache(tmp_path, roster_file):
    cache = tmp_path / "cache"
    sim = start(tmp_path / "a.db", roster_file, cache)
    client_id = sim.roster_apps()[0]["client_id"]
    tokens = {t.access_token for t in sim.store.district_tokens(client_id)}
    sim.close()
    again = start(tmp_path / "a.db", roster_file, cache)
    try:
        assert {t.access_token for t in again.store.district_tokens(client_id)} == tokens
    finally:
        again.close()


def test_a_database_another_process_makes_during_the_copy_is_kept_and_used(
        tmp_path, roster_file, monkeypatch):
    """The copy takes a while (147 MB for the sandbox roster): a database another start made
    at that path meanwhile is theirs, never renamed over; this start then opens it."""
    cache = tmp_path / "cache"
    start(tmp_path / "a.db", roster_file, cache).close()
    target = tmp_path / "b.db"
    theirs = start(tmp_path / "theirs.db", roster_file, cache)
    client_id = theirs.roster_apps()[0]["client_id"]
    tokens = {t.access_token for t in theirs.store.district_tokens(client_id)}
    theirs.close()
    real_copy = cache_mod.shutil.copyfile

    def copy_while_another_start_finishes(source, destination):
        real_copy(source, destination)
        os.link(tmp_path / "theirs.db", target)  # their database lands at the path now

    monkeypatch.setattr(cache_mod.shutil, "copyfile", copy_while_another_start_finishes)
    refuse_parsing(monkeypatch)
    mine = start(target, roster_file, cache)
    try:  # their tokens: the file was neither replaced nor loaded again
        assert {t.access_token for t in mine.store.district_tokens(client_id)} == tokens
    finally:
        mine.close()
    assert not list(tmp_path.glob("b.db.*.part"))


@pytest.mark.parametrize("source, value, message", [
    ("env", "", "roster_cache must be a directory path, not ''"),
    ("override", 5, "roster_cache must be a directory path, not 5"),
])
def test_roster_cache_setting_must_be_a_directory_path(source, value, message):
    env = {"CLEVER_SIM_ROSTER_CACHE": value} if source == "env" else {}
    overrides = {"ROSTER_CACHE": value} if source == "override" else {}
    with pytest.raises(ConfigError, match=message):
        build_config(environ=env, overrides=overrides)


def test_roster_cache_is_read_from_the_environment_and_toml(tmp_path):
    assert build_config(environ={"CLEVER_SIM_ROSTER_CACHE": "/x/c"})["ROSTER_CACHE"] == "/x/c"
    toml = tmp_path / "sim.toml"
    toml.write_text('[simulator]\nroster_cache = "cache"\n', encoding="utf-8")
    assert build_config(toml, environ={})["ROSTER_CACHE"] == str((tmp_path / "cache").resolve())


# --- `clever-sim fixtures cache`: filling the cache ahead of time (CI step, image build) --

def test_fixtures_cache_fills_the_entry_a_new_database_then_starts_from(
        tmp_path, roster_file, monkeypatch):
    from click.testing import CliRunner

    from simulator.cli import main

    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["fixtures", "cache", str(roster_file),
                                       "--roster-cache", str(cache)])
    assert result.exit_code == 0, result.output
    (entry,) = cache.glob("roster-*.db")
    assert result.output.startswith(f"{roster_file}: cached as {entry} (")
    assert list(tmp_path.glob("*.db")) == []  # its scratch database is gone
    refuse_parsing(monkeypatch)
    sim = start(tmp_path / "new.db", roster_file, cache)
    try:
        assert sim.roster_cache_entry() == entry
        doc = json.loads(roster_file.read_text(encoding="utf-8"))
        assert [u["id"] for u in sim.roster["users"]] == [u["id"] for u in doc["users"]]
    finally:
        sim.close()


def test_fixtures_cache_refuses_a_bad_roster_and_writes_nothing(tmp_path):
    from click.testing import CliRunner

    from simulator.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"districts": []}', encoding="utf-8")
    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["fixtures", "cache", str(bad), "--roster-cache", str(cache)])
    assert result.exit_code != 0
    assert "roster fixture is invalid" in result.output
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o644)])
def test_a_database_restored_from_the_cache_gets_the_mode_of_a_new_database(
        tmp_path, roster_file, umask, mode):
    cache = tmp_path / "cache"
    start(tmp_path / "fill.db", roster_file, cache).close()
    old = os.umask(umask)
    try:
        restored = RosterCache(cache, schema_sql()).restore(
            file_digest(roster_file, sim_mod._DIGEST_SALT), tmp_path / "new.db")
        fresh = sqlite3.connect(tmp_path / "plain.db")  # what SQLite itself creates
        fresh.execute("CREATE TABLE t(x)")
        fresh.close()
    finally:
        os.umask(old)
    assert restored
    assert stat.S_IMODE((tmp_path / "new.db").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain.db").stat().st_mode) == mode
    assert not list(tmp_path.glob("*.part"))
