"""A start refused on a NEW database leaves no file behind (the database, its -wal and
-shm, a folder made for it), on every path a first start takes and however it is started:
``bind_simulator`` (the pytest plugin, the contract runner, ``demo``) and ``create_app``
alike, not only ``clever-sim serve`` (whose ``removed_on_failure`` calls the same
``Simulator.abandon`` when its server cannot be made).

The paths: the roster streamed into a file written aside, a copy from the roster cache,
and the whole (non-streamed) load: a roster given as a document, or a file the stream
does not prove valid.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from simulator import sim as sim_mod
from simulator.app import create_app
from simulator.config import ConfigError
from simulator.embedded import bind_simulator
from simulator.roster import NotStreamable, default_roster_path, load_roster

NOWHERE = "0" * 24  # a district no roster here has
BAD_APP = {"name": "Mathly", "client_id": "mathly-dev", "districts": [NOWHERE],
           "redirect_uris": ["http://127.0.0.1:5001/cb"]}


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A copy of the packaged roster file and a roster cache holding its entry."""
    shutil.copyfile(default_roster_path(), tmp_path / "roster.json")
    cached = create_app({"DB": str(tmp_path / "first.db"), "ROSTER": str(tmp_path / "roster.json"),
                         "ROSTER_CACHE": str(tmp_path / "cache")}, environ={})
    entry = cached.extensions["clever_sim"].roster_cache_entry()
    cached.extensions["clever_sim"].close()
    assert entry is not None and entry.is_file()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _unstreamable(monkeypatch) -> None:
    """The stream proves nothing: the roster file is loaded whole (as for a shape the
    stream's pre-check does not handle)."""
    def refuse(*args, **kwargs):
        raise NotStreamable("test: load it whole")
    monkeypatch.setattr(sim_mod, "RosterStream", refuse)


# (roster settings, whether the whole load must run): every first-start path
PATHS = {
    "streamed-into-a-file-aside": (lambda place: {"ROSTER": "roster.json"}, False),
    "copied-from-the-roster-cache": (
        lambda place: {"ROSTER": "roster.json", "ROSTER_CACHE": "cache"}, False),
    "whole-load-of-a-roster-document": (
        lambda place: {"ROSTER": load_roster(default_roster_path())}, False),
    "whole-load-of-a-file-the-stream-does-not-prove": (
        lambda place: {"ROSTER": "roster.json"}, True),
    "whole-load-with-an-empty-roster-cache-beside-the-new-database": (
        lambda place: {"ROSTER": "roster.json", "ROSTER_CACHE": "new/cache"}, True),
}
STARTS = {
    "bind_simulator": lambda settings: bind_simulator(settings, "127.0.0.1", 0, environ={}),
    "create_app": lambda settings: create_app(settings, environ={}),
}


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("start", list(STARTS))
@pytest.mark.parametrize("path", list(PATHS))
def test_a_start_refused_on_a_new_database_leaves_no_file(place, monkeypatch, path, start):
    roster_settings, whole = PATHS[path]
    if whole:
        _unstreamable(monkeypatch)
    before = _left(place)
    cache_before = _left(place / "cache")
    settings = {"DB": "new/deeper/sim.db", "APPS": [BAD_APP], **roster_settings(place)}
    with pytest.raises(ConfigError, match=f"unknown district '{NOWHERE}'"):
        STARTS[start](settings)
    assert _left(place) == before  # no sim.db, -wal, -shm, no folder "new"
    assert _left(place / "cache") == cache_before


@pytest.mark.parametrize("path", list(PATHS))
def test_the_same_start_without_the_bad_app_makes_the_database(place, monkeypatch, path):
    """The refusal above is the app's: the same start otherwise makes the file."""
    roster_settings, whole = PATHS[path]
    if whole:
        _unstreamable(monkeypatch)
    app = create_app({"DB": "new/deeper/sim.db", **roster_settings(place)}, environ={})
    try:
        assert app.extensions["clever_sim"].district_ids
    finally:
        app.extensions["clever_sim"].close()
    assert (place / "new" / "deeper" / "sim.db").is_file()


def test_a_refused_start_keeps_a_database_that_existed(place):
    """Only a file this start made goes: an existing database stays (with its roster)."""
    create_app({"DB": "sim.db", "ROSTER": "roster.json"}, environ={}).extensions["clever_sim"].close()
    with pytest.raises(ConfigError):
        create_app({"DB": "sim.db", "ROSTER": load_roster(default_roster_path()),
                    "APPS": [BAD_APP]}, environ={})
    assert (place / "sim.db").is_file()


@pytest.mark.parametrize("path", list(PATHS))
def test_a_new_database_goes_when_its_server_cannot_be_made(place, monkeypatch, path):
    """Refused after the simulator was built (the WSGI server failed): the file it made goes."""
    from simulator import serving

    roster_settings, whole = PATHS[path]
    if whole:
        _unstreamable(monkeypatch)
    before = _left(place)

    def refused(*args, **kwargs):
        raise OSError("test: the server cannot be made")
    monkeypatch.setattr(serving, "bind", refused)
    with pytest.raises(OSError, match="the server cannot be made"):
        bind_simulator({"DB": "new/deeper/sim.db", **roster_settings(place)}, "127.0.0.1", 0,
                       environ={})
    assert _left(place) == before
