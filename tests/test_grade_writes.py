"""How grades are written: the write order kept in ``grade_writes`` (no index on ``grades``
holds ``seq``), and what one overwrite costs in pages written to the WAL."""

from __future__ import annotations

import sqlite3
import statistics

from simulator.store import Store

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
        DROP TRIGGER grade_writes_insert; DROP TRIGGER grade_overwritten;
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
