"""The apps a start registers are checked against the roster it will serve exactly once per
start, on every path a start takes (a new roster is checked inside the transaction that
stores it; a kept one before anything is written): never skipped, never twice."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from simulator import sim as sim_mod
from simulator.app import create_app
from simulator.roster import NotStreamable, default_roster_path, load_roster
from simulator.roster_gen import generate_roster, write_roster

APP = {"name": "Mathly", "client_id": "mathly-dev", "client_secret": "s",
       "redirect_uris": ["http://127.0.0.1:5001/cb"]}


@pytest.fixture
def place(tmp_path, monkeypatch):
    """old.json (the packaged roster), new.json (another), a database holding old.json and
    a roster cache holding old.json's entry."""
    shutil.copyfile(default_roster_path(), tmp_path / "old.json")
    with open(tmp_path / "new.json", "w", encoding="utf-8") as fh:
        write_roster(generate_roster(schools=1, teachers=2, students=4, sections=2, seed=7,
                                     with_app=False), fh)
    monkeypatch.chdir(tmp_path)
    create_app({"DB": "sim.db", "ROSTER": "old.json", "ROSTER_CACHE": "cache"},
               environ={}).extensions["clever_sim"].close()
    return tmp_path


def _whole(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise NotStreamable("test: load it whole")
    monkeypatch.setattr(sim_mod, "RosterStream", refuse)


def _touched(name: str) -> str:
    os.utime(name, ns=(1, 1))  # same bytes, another stamp
    return name


# name: (settings, load whole?)
STARTS = {
    "new-database-streamed": (lambda: {"DB": "fresh.db", "ROSTER": "new.json"}, False),
    "new-database-from-the-roster-cache": (
        lambda: {"DB": "fresh.db", "ROSTER": "old.json", "ROSTER_CACHE": "cache"}, False),
    "new-database-roster-document": (
        lambda: {"DB": "fresh.db", "ROSTER": load_roster("new.json")}, False),
    "new-database-loaded-whole": (lambda: {"DB": "fresh.db", "ROSTER": "new.json"}, True),
    "in-memory": (lambda: {"DB": ":memory:"}, False),
    "restart-untouched-roster-file": (lambda: {"DB": "sim.db", "ROSTER": "old.json"}, False),
    "restart-touched-roster-file": (lambda: {"DB": "sim.db", "ROSTER": _touched("old.json")}, False),
    "restart-same-roster-document": (
        lambda: {"DB": "sim.db", "ROSTER": json.loads(open("old.json").read())}, False),
    "restart-new-roster-streamed": (lambda: {"DB": "sim.db", "ROSTER": "new.json"}, False),
    "restart-new-roster-loaded-whole": (lambda: {"DB": "sim.db", "ROSTER": "new.json"}, True),
    "restart-new-roster-document": (
        lambda: {"DB": "sim.db", "ROSTER": load_roster("new.json")}, False),
}


@pytest.mark.parametrize("name", list(STARTS))
def test_start_up_apps_are_checked_once_per_start(place, monkeypatch, name):
    settings, whole = STARTS[name]
    if whole:
        _whole(monkeypatch)
    calls = []
    check = sim_mod.Simulator._check_startup_apps

    def counted(self, districts, roster_apps, stored=None):
        calls.append(sorted(districts))
        return check(self, districts, roster_apps, stored)

    monkeypatch.setattr(sim_mod.Simulator, "_check_startup_apps", counted)
    sim = create_app({**settings(), "APPS": [APP]}, environ={}).extensions["clever_sim"]
    try:
        assert calls == [sorted(sim.district_ids)]  # once, against the roster it serves
        assert sim.clever.app("mathly-dev").name == "Mathly"
    finally:
        sim.close()
