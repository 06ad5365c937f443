"""How grades are written: the write order kept in ``grade_writes`` (no index on ``grades``
holds ``seq``), and what one overwrite costs in pages written to the WAL."""

from __future__ import annotations

import sqlite3
import statistics
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest

from simulator.store import Store, _GradeJob

NOW = "2026-12-07T00:00:00.000Z"


def _record(grade_id: str, version: int, created: str) -> dict:
    return {"id": grade_id, "version": version, "created": created}


def _save(store: Store, n: int, user: str, assignment: str):
    return store.save_grade(grade_id=f"{n:024x}", client_id="c", user_id=user,
                            assignment_id=assignment, district_id="d",
                            build_record=_record, now_iso=NOW)


def _wal_frames(path) -> int:
    """Frames in the live WAL (``mxFrame`` of the -shm file's header)."""
    import struct

    header = (path.parent / (path.name + "-shm")).read_bytes()[:48]
    return struct.unpack("=I", header[16:20])[0]


def _write_some(store: Store) -> list[tuple[str, int]]:
    """Three grades, two overwritten: (grade id, seq) of each write, in order."""
    writes = []
    for n, (user, assignment) in enumerate([("u1", "a"), ("u2", "a"), ("u1", "b"),
                                            ("u1", "a"), ("u2", "a"), ("u1", "a")]):
        grade = _save(store, n, user, assignment)
        writes.append((grade.id, grade.seq))
    return writes


def test_grades_after_a_seq_come_in_write_order_each_once_at_its_newest_write(tmp_path):
    store = Store(str(tmp_path / "g.db"))
    try:
        writes = _write_some(store)
        assert [seq for _, seq in writes] == [1, 2, 3, 4, 5, 6]
        b, u2a, u1a = writes[2][0], writes[4][0], writes[5][0]
        assert [(g.id, g.seq) for g in store.list_grades()] == [(b, 3), (u2a, 5), (u1a, 6)]
        assert [(g.id, g.seq) for g in store.list_grades(after_seq=3)] == [(u2a, 5), (u1a, 6)]
        assert [g.id for g in store.list_grades(after_seq=3, limit=1)] == [u2a]
        assert [g.id for g in store.list_grades(after_seq=6)] == []
        assert [g.id for g in store.list_grades(client_id="c", district_id="d")] == [b, u2a, u1a]
        assert [g.id for g in store.list_grades(district_id="x")] == []
        # by student or assignment: the same order, sorted from their index
        assert [g.id for g in store.list_grades(user_id="u1")] == [b, u1a]
        assert [g.id for g in store.list_grades(assignment_id="a", after_seq=5)] == [u1a]
        assert store.max_grade_seq() == 6
        assert [h["version"] for h in store.grade_history(u1a)] == [1, 2, 3]
    finally:
        store.close()


def test_a_database_that_kept_the_write_order_in_an_index_keeps_it_after_an_upgrade(tmp_path):
    path = tmp_path / "g.db"
    store = Store(str(path))
    try:
        writes = _write_some(store)
        before = [(g.id, g.seq) for g in store.list_grades()]
    finally:
        store.close()
    old = sqlite3.connect(path, isolation_level=None)  # as the previous layout stored it
    old.executescript("""
        DROP TRIGGER grade_inserted; DROP TRIGGER grade_overwritten;
        DROP TABLE grade_writes; DROP INDEX grades_by_assignment;
        CREATE INDEX grades_assignment_seq ON grades(assignment_id, seq);
        CREATE INDEX grades_seq ON grades(seq);
    """)
    old.close()
    store = Store(str(path))
    try:
        assert [(g.id, g.seq) for g in store.list_grades()] == before
        assert store.max_grade_seq() == 6
        assert _save(store, 9, "u2", "a").seq == 7  # the order goes on where it was
        assert [g.id for g in store.list_grades(after_seq=5)] == [writes[5][0], writes[4][0]]
        with store.read() as conn:
            indexes = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'grades'")}
        assert not indexes & {"grades_seq", "grades_assignment_seq"}
    finally:
        store.close()


def test_grades_written_by_a_state_load_are_in_the_write_order(tmp_path):
    from simulator.models import Grade

    store = Store(str(tmp_path / "g.db"))
    try:
        _write_some(store)
        with store.replacing_state({}, dict) as load:  # seqs as the snapshot gives them
            load.add_grades(Grade(f"{n:024x}", "c", f"u{n}", "a", "d", 1, seq, NOW, NOW,
                                  {}, "{}") for n, seq in ((1, 40), (2, 12), (3, 30)))
        assert [(g.id, g.seq) for g in store.list_grades()] == [
            (f"{2:024x}", 12), (f"{3:024x}", 30), (f"{1:024x}", 40)]
        assert store.max_grade_seq() == 40
        assert _save(store, 9, "u2", "a").seq == 41
        # u2 on "a" is the loaded grade 2: overwritten, it moves to the end of the order
        assert [g.id for g in store.list_grades(after_seq=30)] == [f"{1:024x}", f"{2:024x}"]
    finally:
        store.close()


def test_an_overwrite_appends_five_pages_to_the_wal(tmp_path):
    """The grade's row, its write-order entry's old and new pages, its history row and the
    history's index entry: no index of ``grades`` changes (the previous layout wrote ~7 pages
    a grade)."""
    path = tmp_path / "g.db"
    store = Store(str(path))
    try:
        users = [f"u{i:05d}" for i in range(400)]
        for n, user in enumerate(users):  # enough grades for several pages per B-tree
            for a in range(5):
                _save(store, n * 5 + a, user, f"a{a}")
        frames = []
        for i in range(300):
            before = _wal_frames(path)
            _save(store, 0, users[(i * 7919) % len(users)], f"a{i % 5}")
            after = _wal_frames(path)
            if after > before:  # else the checkpointer started the log over meanwhile
                frames.append(after - before)
        assert len(frames) > 100
        assert statistics.median(frames) == 5, sorted(frames)
    finally:
        store.close()


def test_an_overwrite_after_another_process_wrote_the_grade_takes_the_stored_version(tmp_path):
    """The store remembers each grade it wrote, to overwrite it without a lookup; a grade
    changed behind its back (another process on the same file) is read again, never given
    a version or first-seen time it does not have."""
    path = tmp_path / "g.db"
    store = Store(str(path))
    try:
        first = _save(store, 1, "u1", "a")
        assert _save(store, 2, "u1", "a").version == 2  # remembered: no lookup
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("UPDATE grades SET version = 7, created = '2026-01-01T00:00:00.000Z'")
        other.close()
        grade = _save(store, 3, "u1", "a")
        assert (grade.id, grade.version, grade.created) == (first.id, 8, "2026-01-01T00:00:00.000Z")
        assert (grade.record["version"], grade.record["created"]) == (8, "2026-01-01T00:00:00.000Z")
        assert [h["version"] for h in store.grade_history(first.id)] == [1, 2, 8]
        assert _save(store, 4, "u1", "a").version == 9
    finally:
        store.close()


def test_an_overwrite_rolled_back_leaves_the_next_one_its_committed_version(tmp_path):
    store = Store(str(tmp_path / "g.db"))
    try:
        first = _save(store, 1, "u1", "a")
        with store.transaction() as db:  # the store's write of an overwrite, then a rollback
            assert store._write_grade(db, ("f" * 24, "c", "u1", "a", "d", _record, NOW),
                                      100)[0].version == 2
            db.execute("ROLLBACK")
            db.execute("BEGIN")  # for the block's own COMMIT
        grade = _save(store, 2, "u1", "a")
        assert (grade.id, grade.version) == (first.id, 2)
        assert [h["version"] for h in store.grade_history(first.id)] == [1, 2]
    finally:
        store.close()


def test_the_write_order_holds_one_row_per_current_grade_however_often_it_is_overwritten(tmp_path):
    """An overwrite moves its grade's row in ``grade_writes``: with the old rows kept, a listing
    in write order (``/_sim/grades?limit=50``) stepped over every overwrite ever made before
    its first current grade, so its cost grew with the writes, not the grades."""
    path = tmp_path / "g.db"
    store = Store(str(path))
    try:
        for n in range(300):
            _save(store, n, f"u{n % 3}", "a")
        assert [(g.user_id, g.seq) for g in store.list_grades()] == [
            ("u0", 298), ("u1", 299), ("u2", 300)]
        assert store.max_grade_seq() == 300
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT seq, grade_id FROM grade_writes ORDER BY seq").fetchall() == \
            db.execute("SELECT seq, id FROM grades ORDER BY seq").fetchall()


# --- a grade written alone: one statement, no BEGIN or COMMIT ------------------------------
# Each ``execute`` releases the GIL five times (a thread hand-off each when served), so a
# grade POST at one connection (a batch of one) is written by one statement outside a
# transaction, which takes the write lock itself and commits as it ends.

@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    """The statements this thread's connection runs in the block (the store's calls on this
    thread use it), each as its first two words, in order; SQLite traces a statement again
    for each statement of its triggers, so repeats in a row are one statement."""
    traced: list[str] = []
    words: list[str] = []
    with store.connection() as conn:
        conn.set_trace_callback(traced.append)
        try:
            yield words
        finally:
            conn.set_trace_callback(None)
            words.extend(" ".join(sql.split()[:2]) for i, sql in enumerate(traced)
                         if i == 0 or sql != traced[i - 1])


def _other_process(path):
    return sqlite3.connect(path, isolation_level=None, timeout=30)


def test_a_grade_written_alone_is_one_statement_committed_for_every_other_reader(tmp_path):
    path = tmp_path / "g.db"
    store = Store(str(path))
    reader = _other_process(path)
    try:
        assert store.count("grades") == 0  # counted once, then kept
        _save(store, 0, "u0", "a")  # the write order's start is read once, then kept
        with _statements(store) as new:
            first = _save(store, 1, "u1", "a")
        assert new == ["INSERT OR"]
        with _statements(store) as overwrite:
            second = _save(store, 2, "u1", "a")
        assert overwrite == ["UPDATE grades"]
        assert (first.version, first.seq, second.version, second.seq) == (1, 2, 2, 3)
        assert second.id == first.id and second.created == first.created
        # committed: another connection sees both versions, the write order and the count
        assert reader.execute("SELECT version, seq FROM grades WHERE id = ?",
                              (first.id,)).fetchone() == (2, 3)
        assert reader.execute("SELECT version, record, received_at FROM grade_history WHERE "
                              "grade_id = ? ORDER BY version", (first.id,)).fetchall() == [
            (1, first.json, NOW), (2, second.json, NOW)]
        assert reader.execute("SELECT seq, grade_id FROM grade_writes ORDER BY seq").fetchall() \
            == [(1, f"{0:024x}"), (3, first.id)]
        assert store.count("grades") == 2
    finally:
        reader.close()
        store.close()


def test_a_grade_another_process_wrote_is_overwritten_at_its_stored_version_without_a_transaction(
        tmp_path):
    """A key this store does not remember: the INSERT does nothing where it exists, then one
    lookup and the guarded UPDATE, at the seq the INSERT did not take."""
    path = tmp_path / "g.db"
    store = Store(str(path))
    other = _other_process(path)
    try:
        other.execute("INSERT INTO grades(id, client_id, user_id, assignment_id, district_id, "
                      "version, record, created, updated, seq) VALUES (?, 'c', 'u1', 'a', 'd', "
                      "4, '{\"version\": 4}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 1)",
                      (f"{7:024x}",))
        assert store.count("grades") == 1  # counted once, then kept
        with _statements(store) as statements:
            grade = _save(store, 1, "u1", "a")
        assert statements[1:] == ["INSERT OR", "SELECT id,", "UPDATE grades"]  # after MAX(seq)
        assert (grade.id, grade.version, grade.created, grade.seq) == (
            f"{7:024x}", 5, "2026-01-01T00:00:00.000Z", 2)
        assert [h["version"] for h in store.grade_history(grade.id)] == [4, 5]
        with _statements(store) as statements:
            assert _save(store, 2, "u1", "a").version == 6  # remembered from here on
            assert _save(store, 3, "u2", "a").seq == 4
        assert statements == ["UPDATE grades", "INSERT OR"]
        assert [(g.user_id, g.seq) for g in store.list_grades()] == [("u1", 3), ("u2", 4)]
        assert store.count("grades") == 2
    finally:
        other.close()
        store.close()


def test_a_remembered_grade_another_process_changed_falls_back_to_a_transaction(tmp_path):
    path = tmp_path / "g.db"
    store = Store(str(path))
    other = _other_process(path)
    try:
        first = _save(store, 1, "u1", "a")
        other.execute("UPDATE grades SET version = 7")
        with _statements(store) as statements:
            grade = _save(store, 2, "u1", "a")
        # the guarded UPDATE applies to no row; the transaction reads the row inside it
        assert statements == ["UPDATE grades", "BEGIN IMMEDIATE", "SELECT id,", "UPDATE grades",
                              "COMMIT"]
        assert (grade.id, grade.version, grade.seq) == (first.id, 8, 2)
        with _statements(store) as statements:
            assert _save(store, 3, "u1", "a").version == 9
        assert statements == ["UPDATE grades"]
        assert [h["version"] for h in store.grade_history(first.id)] == [1, 8, 9]
    finally:
        other.close()
        store.close()


@pytest.mark.parametrize("refused", ["INSERT", "UPDATE"])
def test_a_grade_statement_that_fails_leaves_no_row_and_no_gap_in_the_write_order(tmp_path, refused):
    """A statement outside a transaction that fails is undone whole (its triggers' rows
    too), and its seq is not taken: the next grade gets it."""
    path = tmp_path / "g.db"
    store = Store(str(path))
    other = _other_process(path)
    try:
        first = _save(store, 1, "u1", "a")
        other.execute(f"CREATE TRIGGER refuse BEFORE {refused} ON grades WHEN NEW.user_id = 'u2' "
                      "OR NEW.version = 2 BEGIN SELECT RAISE(ABORT, 'refused here'); END")
        with pytest.raises(sqlite3.IntegrityError, match="refused here"):
            _save(store, 2, "u2" if refused == "INSERT" else "u1", "a")
        other.execute("DROP TRIGGER refuse")
        with store.connection() as conn:
            assert not conn.in_transaction
        assert [(g.id, g.version, g.seq) for g in store.list_grades()] == [(first.id, 1, 1)]
        assert store.count("grade_history") == 1 and store.max_grade_seq() == 1
        again = _save(store, 3, "u2" if refused == "INSERT" else "u1", "a")
        assert (again.version, again.seq) == (1 if refused == "INSERT" else 2, 2)
        assert store.count("grade_history") == 2
        assert other.execute("SELECT seq FROM grade_writes ORDER BY seq").fetchall() == (
            [(1,), (2,)] if refused == "INSERT" else [(2,)])
    finally:
        other.close()
        store.close()


def test_a_grade_after_any_revocation_is_written_in_a_transaction_that_finds_its_token(tmp_path):
    """A revocation since the token was looked up: the token is looked for inside the
    write's transaction (a revoked one is refused there, ``test_abuse_control``), so that
    grade is not written alone."""
    store = Store(str(tmp_path / "g.db"))
    try:
        with store.transaction() as db:  # a token of app "c" (no app record needed here)
            db.execute("INSERT INTO tokens(access_token, kind, id, client_id, district_id, "
                       "user_id, scopes, created) VALUES ('tok', 'il', ?, 'c', 'd', 'u1', '[]', ?)",
                       ("1" * 24, NOW))
        _save(store, 0, "u0", "a")  # the write order's start is read once, then kept
        generation = store.token_generation
        with store.revoking():
            pass  # any revocation (another token's)
        with _statements(store) as statements:
            grade = store.save_grade(grade_id=f"{1:024x}", client_id="c", user_id="u1",
                                     assignment_id="a", district_id="d", build_record=_record,
                                     now_iso=NOW, token=("tok", generation))
        assert statements == ["BEGIN IMMEDIATE", "SELECT 1", "SELECT id,", "INSERT OR",
                              "COMMIT"]
        assert grade.version == 1
        with _statements(store) as statements:  # looked up after it: written alone
            store.save_grade(grade_id=f"{2:024x}", client_id="c", user_id="u1",
                             assignment_id="a", district_id="d", build_record=_record,
                             now_iso=NOW, token=("tok", store.token_generation))
        assert statements == ["UPDATE grades"]
    finally:
        store.close()


def test_grades_queued_together_share_one_transaction_and_their_history_rows(tmp_path):
    store = Store(str(tmp_path / "g.db"))
    try:
        _save(store, 0, "u1", "a")  # remembered
        with _statements(store) as statements:
            batch = [_GradeJob((f"{n:024x}", "c", user, "a", "d", _record, NOW))
                     for n, user in ((1, "u1"), (2, "u2"), (3, "u3"))]
            with store.writes_held():
                store._write_grades(batch)
        assert statements == ["BEGIN IMMEDIATE", "UPDATE grades", "SELECT id,", "INSERT OR",
                              "SELECT id,", "INSERT OR", "COMMIT"]
        assert [(j.result.version, j.result.seq) for j in batch] == [(2, 2), (1, 3), (1, 4)]
        assert sorted((h["id"], h["version"]) for g in store.list_grades()
                      for h in store.grade_history(g.id)) == [
            (f"{0:024x}", 1), (f"{0:024x}", 2), (f"{2:024x}", 1), (f"{3:024x}", 1)]
    finally:
        store.close()


def test_any_insert_of_a_grade_appends_its_first_version_to_the_history(tmp_path):
    """The insert trigger writes a new grade's history row, whoever inserts it (a grade
    POST, a bulk load), as the update trigger does for an overwrite."""
    path = tmp_path / "g.db"
    Store(str(path)).close()
    other = _other_process(path)
    try:
        other.execute("INSERT INTO grades(id, client_id, user_id, assignment_id, district_id, "
                      "version, record, created, updated, seq) VALUES ('g1', 'c', 'u', 'a', 'd', "
                      "3, '{\"v\":3}', 'then', 'now', 5)")
        assert other.execute("SELECT grade_id, version, record, received_at FROM "
                             "grade_history").fetchall() == [("g1", 3, '{"v":3}', "now")]
        assert other.execute("SELECT seq, grade_id FROM grade_writes").fetchall() == [(5, "g1")]
    finally:
        other.close()


@pytest.mark.parametrize("history_first", [False, True])
def test_a_state_load_keeps_exactly_the_history_it_was_given(tmp_path, history_first):
    """A snapshot's history is its own (it need not hold every version, and its seqs are
    kept): the rows the insert trigger appends for its grades are taken back."""
    from simulator.models import Grade, GradeVersion

    store = Store(str(tmp_path / "g.db"))
    try:
        _write_some(store)
        grades = [Grade(f"{n:024x}", "c", f"u{n}", "a", "d", 2, 10 + n, NOW, NOW,
                        {"v": 2}, '{"v":2}') for n in (1, 2)]
        versions = [GradeVersion(7, f"{1:024x}", 1, {"v": 1}, NOW)]  # grade 2: no history
        with store.replacing_state({}, dict) as load:
            if history_first:
                with store.connection() as conn:
                    conn.execute("PRAGMA defer_foreign_keys = ON")  # until the grades come
                load.add_grade_versions(versions)
            load.add_grades(grades)
            if not history_first:
                load.add_grade_versions(versions)
        assert [(v.seq, v.grade_id, v.version) for v in store.all_grade_versions()] == [
            (7, f"{1:024x}", 1)]
        assert [(g.id, g.seq) for g in store.list_grades()] == [(f"{1:024x}", 11),
                                                                 (f"{2:024x}", 12)]
        grade = _save(store, 9, "u2", "a")  # written after the load: history as always
        assert (grade.version, grade.seq) == (3, 13)
        assert [h["version"] for h in store.grade_history(f"{2:024x}")] == [3]
    finally:
        store.close()


OLD_INSERT_TRIGGER = """
    DROP TRIGGER grade_inserted;
    CREATE TRIGGER grade_writes_insert AFTER INSERT ON grades BEGIN
        INSERT OR REPLACE INTO grade_writes(seq, grade_id) VALUES (NEW.seq, NEW.id);
    END;
"""


def test_a_database_whose_insert_trigger_wrote_only_the_write_order_gets_the_new_one(tmp_path):
    path = tmp_path / "g.db"
    store = Store(str(path))
    try:
        first = _save(store, 1, "u1", "a")
    finally:
        store.close()
    old = _other_process(path)  # as the previous version left it
    old.executescript(OLD_INSERT_TRIGGER)
    old.close()
    store = Store(str(path))
    try:
        with store.read() as conn:
            triggers = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert triggers == {"grade_inserted", "grade_overwritten"}
        new = _save(store, 2, "u2", "a")
        assert [h["version"] for h in store.grade_history(new.id)] == [1]  # once, not twice
        assert [h["version"] for h in store.grade_history(first.id)] == [1]
        assert [(g.id, g.seq) for g in store.list_grades()] == [(first.id, 1), (new.id, 2)]
    finally:
        store.close()


def test_the_background_checkpoint_runs_after_grades_written_alone(tmp_path, monkeypatch):
    """The checkpointer folds the WAL back only after new writes: a grade written by one
    statement counts as one, as a transaction does."""
    from simulator import store as store_module

    monkeypatch.setattr(store_module, "CHECKPOINT_EVERY_S", 0.01)
    store = Store(str(tmp_path / "g.db"))
    ran = threading.Event()
    checkpoint = store.checkpoint

    def noted():
        ran.set()
        return checkpoint()

    store.checkpoint = noted
    try:
        _save(store, 1, "u1", "a")
        assert ran.wait(30)
    finally:
        store.close()


def test_a_start_that_fails_midway_through_the_schema_leaves_every_trigger_in_place(
        tmp_path, monkeypatch):
    """The schema drops and creates triggers again (a newer form, an older name) on every
    start; in one transaction, so another process writing grades meanwhile never finds
    them missing, and a start that fails halfway changes nothing."""
    from simulator import store as store_module
    from simulator.errors import DatabaseUnusable

    path = tmp_path / "g.db"
    Store(str(path)).close()
    schema = store_module.schema_sql()
    cut = schema.index("DROP TRIGGER IF EXISTS grade_overwritten;")
    cut = schema.index("\n", cut)
    monkeypatch.setattr(store_module, "schema_sql",
                        lambda: schema[:cut] + "\nSELECT no_such_function();\n" + schema[cut:])
    with pytest.raises(DatabaseUnusable):
        Store(str(path))
    monkeypatch.undo()
    other = _other_process(path)
    try:
        assert {row[0] for row in other.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'")} == {
            "grade_inserted", "grade_overwritten"}
    finally:
        other.close()


# --- two processes writing grades into one file ---------------------------------------------
# Each store keeps the end of the write order in memory (``Store._seq``), read once. Another
# process's grades move the file's end on, so every grade statement applies only where no seq
# at or above its own is in the file, checked by SQLite under its write lock; where one is,
# the grade is written in a transaction that reads the end again.

_OTHER_WRITER = """
import json, os, sys, time
from simulator.store import Store
store = Store(sys.argv[1])
if len(sys.argv) > 3:  # ready; start writing together with the other writer
    open(sys.argv[3] + f".{os.getpid()}", "w").close()
    while not os.path.exists(sys.argv[3]):
        time.sleep(0.001)
seqs = [store.save_grade(grade_id=f"{n:024x}", client_id="c", user_id=user, assignment_id=a,
                         district_id="d", build_record=lambda i, v, c: {"id": i, "version": v},
                         now_iso="2026-12-07T00:00:00.000Z").seq
        for n, user, a in json.loads(sys.argv[2])]
store.close()
print(json.dumps(seqs))
"""


def _save_in_another_process(path, grades: list[tuple[int, str, str]]) -> list[int]:
    """Another process's store writes these (n, student, assignment) grades: their seqs."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _OTHER_WRITER, str(path), json.dumps(grades)],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout)


_LAST = "SELECT COALESCE(MAX(seq),"  # the write order's end, read inside the transaction
# The statements of each write while another process's grades are on top of the write order
# (the statement alone applies to no row, the transaction reads the end and writes on top).
_BEHIND = {
    "new grade alone": ["INSERT OR", "SELECT id,", "BEGIN IMMEDIATE", "SELECT id,", "INSERT OR",
                        _LAST, "INSERT OR", "COMMIT"],
    "remembered grade alone": ["UPDATE grades", "BEGIN IMMEDIATE", "SELECT id,", "UPDATE grades",
                               _LAST, "UPDATE grades", "COMMIT"],
    "batch": ["BEGIN IMMEDIATE", "UPDATE grades", "SELECT id,", "UPDATE grades", _LAST,
              "UPDATE grades", "SELECT id,", "INSERT OR", "COMMIT"],
}


@pytest.mark.parametrize("write", list(_BEHIND))
def test_a_grade_written_after_another_process_wrote_grades_comes_after_them_in_the_write_order(
        tmp_path, write):
    """The other process's grades keep their place in the write order (none is replaced by
    one written at the same seq), and a reader that saw the newest of them (wait-for-grade,
    the live gradebook, ``after_seq``) finds the grade written after them."""
    path = tmp_path / "g.db"
    store = Store(str(path))
    try:
        first = _save(store, 1, "u1", "a")  # the store now keeps the write order's end: 1
        assert _save_in_another_process(path, [(2, "u2", "a"), (3, "u3", "a")]) == [2, 3]
        seen = store.max_grade_seq()
        assert seen == 3
        with _statements(store) as statements:
            if write == "batch":
                batch = [_GradeJob((f"{n:024x}", "c", user, "a", "d", _record, NOW))
                         for n, user in ((4, "u1"), (5, "u4"))]
                with store.writes_held():
                    store._write_grades(batch)
                assert [j.error for j in batch] == [None, None]
                written = [j.result for j in batch]
            else:
                written = [_save(store, 4, "u1" if write == "remembered grade alone" else "u4",
                                 "a")]
        assert statements == _BEHIND[write]
        assert [g.seq for g in written] == list(range(4, 4 + len(written)))
        assert [g.seq for g in store.list_grades(after_seq=seen)] == [g.seq for g in written]
        current = {"u1": first.id, "u2": f"{2:024x}", "u3": f"{3:024x}",
                   "u4": f"{4 if write == 'new grade alone' else 5:024x}"}
        order = ["u2", "u3"] + [g.user_id for g in written]
        if write == "new grade alone":
            order.insert(0, "u1")
        assert [(g.user_id, g.id) for g in store.list_grades()] == [(u, current[u]) for u in order]
        with _statements(store) as statements:  # on top again: one statement
            assert _save(store, 9, "u5", "a").seq == 4 + len(written)
        assert statements == ["INSERT OR"]
    finally:
        store.close()
    with sqlite3.connect(path) as db:  # one row per current grade, each at its own seq
        assert db.execute("SELECT seq, grade_id FROM grade_writes ORDER BY seq").fetchall() == \
            db.execute("SELECT seq, id FROM grades ORDER BY seq").fetchall()


def test_two_processes_writing_grades_at_once_give_every_write_its_own_seq(tmp_path):
    """Two processes writing into one file at the same time: each write a seq of its own,
    above every one before it in the file, and the write order holds every current grade."""
    import json
    import subprocess
    import sys
    import time

    path = tmp_path / "g.db"
    Store(str(path)).close()
    writes = {p: [(p * 1000 + i, f"{p}u{i % 40}", f"a{i % 3}") for i in range(300)] for p in (1, 2)}
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _OTHER_WRITER, str(path), json.dumps(w),
                               str(go)], stdout=subprocess.PIPE, text=True)
             for w in writes.values()]
    try:
        while len(list(tmp_path.glob("go.*"))) < 2 and all(p.poll() is None for p in procs):
            time.sleep(0.01)
        go.touch()  # both stores are open: they write at the same time
        seqs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0]
    for mine in seqs:
        assert mine == sorted(mine)  # each process's writes in its own order
    every = seqs[0] + seqs[1]
    assert sorted(every) == list(range(1, 601))  # none given twice, none skipped
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT seq, grade_id FROM grade_writes ORDER BY seq").fetchall() == \
            db.execute("SELECT seq, id FROM grades ORDER BY seq").fetchall()
        assert db.execute("SELECT COUNT(*) FROM grades").fetchone()[0] == 2 * 40 * 3
        assert db.execute("SELECT COUNT(*) FROM grade_history").fetchone()[0] == 600


# --- upgrades and downgrades (docs/internals.md) --------------------------------------------

def test_a_database_a_newer_version_wrote_is_refused_and_left_as_it_was(tmp_path):
    """A newer layout number in ``meta``: refused before the schema runs (an older schema
    recreated its own triggers beside the newer ones: two history rows per new grade)."""
    from simulator import store as store_module
    from simulator.errors import DatabaseUnusable

    path = tmp_path / "g.db"
    store = Store(str(path))
    _save(store, 1, "u1", "a")
    store.close()
    newer = store_module._SCHEMA_VERSION + 1
    with sqlite3.connect(path) as db:  # as a newer version might leave it
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(newer),))
        db.execute("DROP TRIGGER grade_inserted")
        db.execute("CREATE TRIGGER grade_added AFTER INSERT ON grades BEGIN SELECT 1; END")
    with sqlite3.connect(path) as db:
        before = list(db.iterdump())
    with pytest.raises(DatabaseUnusable) as refused:
        Store(str(path))
    assert str(refused.value) == (
        f"cannot use {str(path)!r} as the simulator's database: a newer clever-sim wrote it "
        f"(database layout {newer}; this version knows up to {newer - 1}): run that version "
        f"or a later one on it; nothing was written to it (give --db a new file name, an "
        f"existing clever-sim database, or :memory:)")
    with sqlite3.connect(path) as db:
        assert list(db.iterdump()) == before


@pytest.mark.parametrize("recorded", ["1", "2", "not a number"])
def test_a_start_records_its_layout_number_over_an_older_one(tmp_path, recorded):
    from simulator import store as store_module

    path = tmp_path / "g.db"
    Store(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (recorded,))
    Store(str(path)).close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(store_module._SCHEMA_VERSION),)
