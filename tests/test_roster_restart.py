"""Restarting on a database that already holds the roster file: the file is recognised by
its stat (device, inode, size, mtime and ctime) without being read, by its digest when the
stat changed, and any change of its bytes is loaded, whatever its size and mtime say."""

from __future__ import annotations

import os

import pytest

from simulator import roster as roster_mod
from simulator import sim as sim_mod
from simulator.app import create_app
from simulator.roster_gen import generate_roster, write_roster


def write(path, doc) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        write_roster(doc, fh)


@pytest.fixture()
def roster_doc():
    return generate_roster(seed=5, schools=2, teachers=4, students=12, sections=3)


def start(db, roster):
    app = create_app({"DB": str(db), "ROSTER": str(roster), "SECRET_KEY": "t"}, environ={})
    return app.extensions["clever_sim"]


def first_teacher_name(sim) -> str:
    """The first name of the roster's first teacher whose first name is ASCII."""
    teacher = next(u for u in sim.roster["users"]
                   if "teacher" in u["roles"] and u["name"]["first"].isascii())
    return teacher["name"]["first"]


def refuse_parsing(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the roster file was parsed again")

    monkeypatch.setattr(roster_mod, "_parse_json_text", refuse)
    monkeypatch.setattr(sim_mod, "RosterStream", refuse)


def refuse_reading(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the roster file was read again")

    refuse_parsing(monkeypatch)
    monkeypatch.setattr(sim_mod, "file_digest", refuse)


def test_a_restart_with_the_untouched_roster_file_does_not_read_it(tmp_path, roster_doc, monkeypatch):
    path = tmp_path / "roster.json"
    write(path, roster_doc)
    start(tmp_path / "a.db", path).close()
    refuse_reading(monkeypatch)
    again = start(tmp_path / "a.db", path)
    try:
        assert again.roster["users"] == roster_doc["users"]
    finally:
        again.close()


def test_a_touched_roster_file_is_recognised_by_its_digest_and_then_by_its_stat(
        tmp_path, roster_doc, monkeypatch):
    path = tmp_path / "roster.json"
    write(path, roster_doc)
    start(tmp_path / "a.db", path).close()
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # same bytes, another mtime
    with monkeypatch.context() as patched:
        refuse_parsing(patched)  # its digest matches: nothing parsed or stored
        start(tmp_path / "a.db", path).close()
    refuse_reading(monkeypatch)
    again = start(tmp_path / "a.db", path)  # the new stat was recorded: not read at all
    try:
        assert again.roster["users"] == roster_doc["users"]
    finally:
        again.close()


def test_changed_bytes_of_the_same_size_and_mtime_are_loaded(tmp_path, roster_doc):
    path = tmp_path / "roster.json"
    write(path, roster_doc)
    first = start(tmp_path / "a.db", path)
    try:
        name = first_teacher_name(first)
    finally:
        first.close()
    before = os.stat(path)
    text = path.read_text(encoding="utf-8")
    renamed = "Q" * len(name)
    assert f'"first":"{name}"' in text
    path.write_text(text.replace(f'"first":"{name}"', f'"first":"{renamed}"', 1), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or `rsync -t` would
    assert os.stat(path).st_size == before.st_size
    again = start(tmp_path / "a.db", path)
    try:
        assert first_teacher_name(again) == renamed
    finally:
        again.close()


def test_a_roster_replaced_by_a_snapshot_is_reloaded_from_the_untouched_file(tmp_path, roster_doc):
    path = tmp_path / "roster.json"
    write(path, roster_doc)
    first = start(tmp_path / "a.db", path)
    try:
        other = generate_roster(seed=6, schools=1, teachers=2, students=3, sections=1)
        first.store.replace_roster(other, {"roster_digest": "snapshot:x"})
        assert first.roster["users"] == other["users"]
    finally:
        first.close()
    again = start(tmp_path / "a.db", path)
    try:
        assert again.roster["users"] == roster_doc["users"]
    finally:
        again.close()
