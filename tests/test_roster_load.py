"""Loading a roster file: streamed (a record at a time, never the whole document held)
and accepted exactly when the whole-document check accepts it, every bad roster refused
with the same problems and nothing written; and on a restart, the file recognised by its
stat (device, inode, size, mtime and ctime) without being read, by its digest when the stat
changed, and any change of its bytes loaded, whatever its size and mtime say."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import time

import pytest

from simulator import roster as roster_mod
from simulator import sim as sim_mod
from simulator.app import create_app
from simulator.roster import (NotStreamable, RosterError, RosterStream, default_roster_path,
                              validate_roster)
from simulator.roster_gen import generate_roster, write_roster
from test_roster import NEGATIVE_CASES
from test_roster_roles import ROLE_CASES


@pytest.fixture(scope="module")
def default_doc() -> dict:
    return json.loads(default_roster_path().read_text(encoding="utf-8"))


def write(path, doc) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        write_roster(doc, fh)


@pytest.fixture()
def roster_doc():
    return generate_roster(seed=5, schools=2, teachers=4, students=12, sections=3)


def read_streamed(path, chunk: int = 1 << 20) -> RosterStream:
    stream = RosterStream(path, chunk=chunk)
    for _ in stream.batches():
        pass
    stream.finish()
    return stream


def start(db, roster):
    app = create_app({"DB": str(db), "ROSTER": str(roster), "SECRET_KEY": "t"}, environ={})
    return app.extensions["clever_sim"]


def roster_served(db, roster) -> dict:
    """The roster a simulator started on ``db`` with the file ``roster`` serves."""
    sim = start(db, roster)
    try:
        return sim.roster
    finally:
        sim.close()


@pytest.mark.parametrize("mutate", NEGATIVE_CASES + ROLE_CASES, ids=lambda f: f.__name__)
def test_a_bad_roster_is_refused_with_the_whole_checks_problems_and_writes_nothing(
        tmp_path, default_doc, mutate):
    doc = copy.deepcopy(default_doc)
    mutate(doc)
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(NotStreamable):
        read_streamed(path)
    db = tmp_path / "data" / "sim.db"
    with pytest.raises(RosterError) as info:
        start(db, path)
    assert info.value.problems == validate_roster(doc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roster.json"]  # no database, no folder


@pytest.mark.parametrize("text, why", [
    ('{"districts": []} {}', "text after the roster"),
    ('{"districts": [], }', "a trailing comma"),
    ('{"apps": [], "apps": []}', "a top-level key twice"),
    ('{"schools": [{"id": "a", "id": "b"}]}', "a key twice inside a record"),
    ('{"schools": [NaN]}', "NaN"),
    ('{"schools": [1e999]}', "an infinite number"),
    ('{"schools": [' + "1" * 101 + "]}", "a number of 101 digits"),
    ('{"schools": [{"ext": ' + "[" * 127 + "]" * 127 + "}]}", "nesting deeper than 128 levels"),
    ('{"schools": [{"name": "\\ud800"}]}', "a lone surrogate"),
    ('{"schools": [{"name": "x"}', "the end of the file inside the roster"),
    ("[]", "a list, not an object"),
])
def test_the_stream_refuses_text_the_json_reader_refuses(tmp_path, text, why):
    path = tmp_path / "roster.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(NotStreamable):
        read_streamed(path)
    with pytest.raises(RosterError):
        start(tmp_path / "sim.db", path)
    assert not (tmp_path / "sim.db").exists()


def test_the_stream_refuses_bytes_that_are_not_utf8(tmp_path, default_doc):
    path = tmp_path / "roster.json"
    path.write_bytes(json.dumps(default_doc).encode("utf-8").replace(b'"name"', b'"n\xffme"', 1))
    with pytest.raises(NotStreamable):
        read_streamed(path)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_records_and_numbers_cut_by_any_chunk_boundary_read_whole(tmp_path, default_doc, chunk):
    doc = copy.deepcopy(default_doc)
    doc["schools"][0]["ext"] = {"enrollment": 123456789, "ratio": -1.25e-3, "flags": [True, None]}
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    stream = RosterStream(path, chunk=chunk)
    read: dict[str, list] = {}
    for kind, batch, _texts in stream.batches():
        read.setdefault(kind, []).extend(batch)
    stream.finish()
    assert read == doc


@pytest.mark.parametrize("layout", ["compact", "indented", "ascii escapes, BOM and CRLF"])
def test_a_streamed_roster_is_stored_as_the_file_says(tmp_path, layout):
    doc = generate_roster(seed=9, schools=3, teachers=8, students=40, sections=6)
    path = tmp_path / "roster.json"
    if layout == "compact":
        with open(path, "w", encoding="utf-8") as fh:
            write_roster(doc, fh)
    elif layout == "indented":
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
    else:
        text = json.dumps(doc, indent=1, ensure_ascii=True).replace("\n", "\r\n")
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("ascii"))
    assert roster_served(tmp_path / "sim.db", path) == doc


def test_a_changed_roster_file_is_streamed_into_the_existing_database(tmp_path):
    path = tmp_path / "roster.json"
    first_doc = generate_roster(seed=1, schools=2, teachers=4, students=10, sections=2)
    second_doc = generate_roster(seed=2, schools=3, teachers=5, students=12, sections=3)
    path.write_text(json.dumps(first_doc), encoding="utf-8")
    start(tmp_path / "sim.db", path).close()
    path.write_text(json.dumps(second_doc), encoding="utf-8")
    sim = start(tmp_path / "sim.db", path)
    try:
        assert sim.roster == second_doc
        assert sim.store.count("users") == len(second_doc["users"])
    finally:
        sim.close()


def test_a_bad_changed_roster_leaves_the_stored_one_untouched(tmp_path, default_doc):
    path = tmp_path / "roster.json"
    good = generate_roster(seed=1, schools=2, teachers=4, students=10, sections=2)
    path.write_text(json.dumps(good), encoding="utf-8")
    start(tmp_path / "sim.db", path).close()
    bad = copy.deepcopy(good)
    bad["sections"][0]["students"].append("0123456789abcdef01234567")
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(RosterError) as info:
        start(tmp_path / "sim.db", path)
    assert info.value.problems == validate_roster(bad)
    path.write_text(json.dumps(good), encoding="utf-8")
    assert roster_served(tmp_path / "sim.db", path) == good


def test_a_database_another_process_made_meanwhile_is_kept_not_replaced(tmp_path, monkeypatch):
    path = tmp_path / "roster.json"
    doc = generate_roster(seed=4, schools=2, teachers=3, students=8, sections=2)
    path.write_text(json.dumps(doc), encoding="utf-8")
    real_link = os.link

    def raced(source, target):  # the other process's database lands first
        real_link(source, target)
        raise FileExistsError(target)

    monkeypatch.setattr(os, "link", raced)
    assert roster_served(tmp_path / "sim.db", path) == doc
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".loading")]


# --- restart -------------------------------------------------------------------------------

def first_teacher_name(roster: dict) -> str:
    """The first name of the roster's first teacher whose first name is ASCII."""
    teacher = next(u for u in roster["users"]
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
    assert roster_served(tmp_path / "a.db", path)["users"] == roster_doc["users"]


def test_a_touched_roster_file_is_recognised_by_its_digest_and_then_by_its_stat(
        tmp_path, roster_doc, monkeypatch):
    path = tmp_path / "roster.json"
    write(path, roster_doc)
    start(tmp_path / "a.db", path).close()
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # same bytes, another mtime
    with monkeypatch.context() as patched:
        refuse_parsing(patched)  # its digest matches: nothing parsed or stored
        start(tmp_path / "a.db", path).close()
    refuse_reading(monkeypatch)  # the new stat was recorded: not read at all
    assert roster_served(tmp_path / "a.db", path)["users"] == roster_doc["users"]


def test_changed_bytes_of_the_same_size_and_mtime_are_loaded(tmp_path, roster_doc):
    path = tmp_path / "roster.json"
    write(path, roster_doc)
    name = first_teacher_name(roster_served(tmp_path / "a.db", path))
    before = os.stat(path)
    text = path.read_text(encoding="utf-8")
    renamed = "Q" * len(name)
    assert f'"first":"{name}"' in text
    path.write_text(text.replace(f'"first":"{name}"', f'"first":"{renamed}"', 1), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or `rsync -t` would
    assert os.stat(path).st_size == before.st_size
    assert first_teacher_name(roster_served(tmp_path / "a.db", path)) == renamed


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
    assert roster_served(tmp_path / "a.db", path)["users"] == roster_doc["users"]


# --- the load's shortcuts answer exactly as the plain computations -----------------------

@pytest.mark.parametrize("name, email", [
    ({"first": "Ángel", "last": "Pérez"}, "aperez@example.org"),
    ({"first": "Straße", "middle": "ΣΟΦΊΑ", "last": "O\u0301Brien"}, "ÖZ@Example.org"),
    ({"first": "\u0301Zoë", "last": "ﬁnch"}, None),  # a part that starts with a combining mark
    ({"first": "MARY", "middle": None, "last": "Lee"}, "MLee@EXAMPLE.ORG"),
    ({"first": "", "last": "Nguyễn"}, "Nguyễn@example.vn"),
])
def test_people_search_key_is_the_folded_text_of_name_email_and_id(name, email):
    from simulator.store import _fold, person_row

    user = {"id": "0123456789abcdef01234567", "district": "d", "name": name,
            "roles": {"teacher": {"school": "s"}}}
    if email is not None:
        user["email"] = email
    parts = (name.get("first"), name.get("middle"), name.get("last"), email, user["id"])
    assert person_row(user)[6] == _fold(" ".join(p for p in parts if p))


def test_a_section_listing_unproven_ids_is_not_proven_by_the_remembered_ones():
    from simulator.schema_precheck import SchemaCompiler

    schema = roster_mod.load_schema()
    check = SchemaCompiler(schema, remember=True).compile(schema["$defs"]["objectIdList"])
    good = ["0123456789abcdef01234567", "89abcdef0123456789abcdef"]
    assert check(good) and check(good[:1]) and check([])
    for bad in ([good[0], "0123456789ABCDEF01234567"], [good[0], 1], [good[0], [good[0]]],
                [good[0], {"id": good[0]}], [good[0], None]):
        assert not check(bad), bad
    assert check(good)


# --- files a crashed first start left behind --------------------------------------------

def _aside(tmp_path, name: str, age_s: float):
    path = tmp_path / name
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE half_loaded(x)")
    conn.close()
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def test_the_next_start_deletes_the_files_a_crashed_first_start_left(tmp_path, roster_doc):
    roster = tmp_path / "roster.json"
    write(roster, roster_doc)
    left = [_aside(tmp_path, "sim.db.0123456789ab.loading", 3600),
            _aside(tmp_path, "sim.db.ba9876543210.part", 3600)]
    kept = [_aside(tmp_path, name, 3600) for name in (
        "other.db.0123456789ab.loading", "sim.db.backup", "sim.db.0123456789AB.loading",
        "sim.db.0123456789ab.loading.keep", "sim.db.notreallyhex.loading")]
    kept.append(_aside(tmp_path, "sim.db.cafecafecafe.loading", 1))  # a load in progress?
    sim = start(tmp_path / "sim.db", roster)
    try:
        assert sim.store.roster_loaded()
    finally:
        sim.close()
    assert not [p.name for p in left if p.exists()]
    assert [p.name for p in kept if not p.exists()] == []


def test_a_file_another_process_is_still_loading_into_is_left_alone(tmp_path):
    busy = _aside(tmp_path, "sim.db.0123456789ab.loading", 3600)
    writer = sqlite3.connect(busy, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO half_loaded VALUES (1)")
        assert sim_mod.remove_stale_asides(tmp_path / "sim.db") == []
        assert busy.exists()
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert busy.exists()  # written just now: maybe a load between two batches
    when = time.time() - 3600
    os.utime(busy, (when, when))  # an hour without a write and no lock: left behind
    assert sim_mod.remove_stale_asides(tmp_path / "sim.db") == [busy.name]
    assert not busy.exists()


def start_over_an_older_layout(db, roster, script: str):
    """Start on ``db`` after ``script`` rewrote its tables as an older version stored them."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(script)
    conn.close()
    return start(db, roster)


def table_sql(sim, name: str) -> str:
    """The CREATE statement SQLite keeps for table ``name``."""
    with sim.store.read() as conn:
        return conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]


def test_memberships_stored_with_a_rowid_by_an_older_version_are_rebuilt(tmp_path, roster_doc):
    roster = tmp_path / "roster.json"
    write(roster, roster_doc)
    db = tmp_path / "sim.db"
    sim = start(db, roster)
    try:
        section = roster_doc["sections"][0]
        expected = {u: sim.store.list_user_section_ids(u) for u in section["students"]}
    finally:
        sim.close()
    sim = start_over_an_older_layout(db, roster, """
        DROP TABLE section_members;
        CREATE TABLE section_members (section_id TEXT NOT NULL, user_id TEXT NOT NULL,
            role TEXT NOT NULL, PRIMARY KEY (section_id, user_id, role));
        CREATE INDEX section_members_user ON section_members(user_id, section_id);
    """)
    try:
        assert "WITHOUT ROWID" in table_sql(sim, "section_members")
        assert {u: sim.store.list_user_section_ids(u) for u in section["students"]} == expected
        assert all(expected.values())
    finally:
        sim.close()


def memberships_in(doc: dict) -> dict[str, list[str]]:
    """Each user's section ids in the roster file's order, read from the document itself."""
    out: dict[str, list[str]] = {u["id"]: [] for u in doc["users"]}
    for section in doc["sections"]:
        for uid in dict.fromkeys(section["teachers"] + section["students"]):
            out[uid].append(section["id"])
    return out


def test_stored_memberships_answer_each_users_sections_as_the_roster_lists_them(tmp_path):
    doc = generate_roster(seed=11, schools=3, teachers=6, students=30, sections=8)
    roster = tmp_path / "roster.json"
    write(roster, doc)
    sim = start(tmp_path / "sim.db", roster)
    try:
        expected = memberships_in(doc)
        store = sim.store
        assert {u: store.list_user_section_ids(u, roster_order=True) for u in expected} == expected
        assert {u: store.list_user_section_ids(u) for u in expected} == \
            {u: sorted(ids) for u, ids in expected.items()}
        assert store.section_ids_of(list(expected)) == {u: sorted(ids) for u, ids in expected.items()}
        assert sum(map(len, expected.values())) > len(doc["sections"])  # more than one each
        with store.read() as db:
            stored = db.execute("SELECT COUNT(*) FROM section_members").fetchone()[0]
        assert stored == sum(len(s["teachers"]) + len(s["students"]) for s in doc["sections"])
    finally:
        sim.close()


def test_a_database_in_the_previous_roster_layout_is_rebuilt_with_the_same_memberships(tmp_path, roster_doc):
    roster = tmp_path / "roster.json"
    write(roster, roster_doc)
    db = tmp_path / "sim.db"
    start(db, roster).close()  # a database of this version first
    sim = start_over_an_older_layout(db, roster, """  -- as layout 5 stored them
        DROP TABLE section_members; DROP TABLE users; DROP TABLE sections; DROP TABLE people;
        CREATE TABLE users (id TEXT PRIMARY KEY, district_id TEXT NOT NULL, role TEXT NOT NULL,
            data TEXT NOT NULL);
        CREATE TABLE sections (id TEXT PRIMARY KEY, district_id TEXT NOT NULL,
            school_id TEXT NOT NULL, data TEXT NOT NULL);
        CREATE TABLE people (user_id TEXT PRIMARY KEY, district_id TEXT NOT NULL,
            school_id TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL, title TEXT,
            sort_key TEXT NOT NULL, search_key TEXT NOT NULL);
        CREATE TABLE section_members (section_id TEXT NOT NULL, user_id TEXT NOT NULL,
            role TEXT NOT NULL, PRIMARY KEY (section_id, role, user_id)) WITHOUT ROWID;
        CREATE INDEX section_members_user ON section_members(user_id, section_id);
    """)
    try:
        assert "user_n" in table_sql(sim, "section_members")
        with sim.store.read() as conn:
            shapes = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                       "AND name IN ('users', 'sections', 'people')").fetchall())
        assert all("PRIMARY KEY" not in shapes[t] for t in ("people",))
        assert all("n           INTEGER PRIMARY KEY" in shapes[t] for t in ("users", "sections"))
        assert sim.store.get_user(roster_doc["users"][0]["id"]) is not None
        expected = memberships_in(roster_doc)
        assert {u: sim.store.list_user_section_ids(u, roster_order=True) for u in expected} == expected
    finally:
        sim.close()
