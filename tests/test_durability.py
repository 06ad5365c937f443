"""Durability: a grade answered with 200 survives SIGKILL; overwrites of one grade race safely.

* A real ``clever-sim serve`` takes concurrent grade POSTs, is killed with SIGKILL in the
  middle, and is restarted on the same database: every grade acknowledged with 200 is
  there exactly as acknowledged, and nothing is half written (integrity check, every
  record readable, each grade's history complete up to its current version).
* Concurrent overwrites of one (student, assignment) leave exactly one current grade, equal
  to one of the acknowledged values (the last one), and one history entry per
  acknowledged POST.
* Group commit: grades queued together are written in one transaction, and one failing
  grade does not take the others down.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from contextlib import contextmanager

import httpx
import pytest

from simulator.app import create_app
from simulator.models import Grade
from simulator.serving import start_in_thread
from conftest import SERVERS
from serverproc import ServerProcess

CLIENTS = 8


def _drain(proc) -> None:
    """Keep reading the server's output so a full pipe can never block it."""
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()


def _district_auth(url: str) -> tuple[str, dict]:
    """The district with the most students, and a district-app token of it."""
    app = httpx.get(url + "/_sim/apps").json()["data"][0]
    students = httpx.get(url + "/_sim/personas?role=student").json()["data"]
    district = Counter(p["district"] for p in students).most_common(1)[0][0]
    return district, {"Authorization": f"Bearer {app['district_tokens'][district]}"}


@pytest.mark.parametrize("server_kind", SERVERS)
def test_sigkill_mid_load_loses_no_acknowledged_grade(tmp_path, server_kind):
    db = tmp_path / "sim.db"
    server = ServerProcess(["--db", str(db), "--threads", "16", "--server", server_kind])
    acked: list[dict] = []
    refused: list[tuple[int, str]] = []
    cut: list[int] = []  # clients whose POST was in flight when the server died
    lock = threading.Lock()
    stop = threading.Event()
    try:
        _drain(server.proc)
        district, auth = _district_auth(server.url)
        students = [p["id"] for p in httpx.get(
            server.url + f"/_sim/personas?role=student&district_id={district}").json()["data"]]
        assert len(students) >= 8

        def post_grades(k: int) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                for i in range(5000):
                    if stop.is_set():
                        return
                    body = {"assignmentID": f"kill-{k}-{i % 5}", "userID": students[(k + i) % len(students)],
                            "percentage": ((k * 37 + i) % 101) / 100}
                    try:
                        resp = http.post("/v1/grade", json=body, headers=auth)
                    except httpx.HTTPError:
                        cut.append(k)
                        return  # the server is gone: this POST was never acknowledged
                    with lock:
                        if resp.status_code == 200:
                            acked.append(resp.json()["data"])
                        else:
                            refused.append((resp.status_code, resp.text[:200]))

        workers = [threading.Thread(target=post_grades, args=(k,)) for k in range(CLIENTS)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while len(acked) < 600 and time.monotonic() < deadline and any(w.is_alive() for w in workers):
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGKILL)  # mid-load: POSTs are in flight right now
        server.proc.wait(timeout=10)
        stop.set()
        for w in workers:
            w.join(timeout=20)
    finally:
        stop.set()
        server.stop()
    assert server.proc.returncode == -signal.SIGKILL
    assert not refused, refused[:3]
    assert len(acked) >= 100, len(acked)
    assert cut, "no POST was in flight when the server was killed"

    with ServerProcess(["--db", str(db)]) as again:
        _drain(again.proc)
        with httpx.Client(base_url=again.url, timeout=10) as http:
            for record in acked:  # exactly as acknowledged, at its version
                history = http.get(f"/_sim/grades/{record['id']}/history",
                                   params={"after_version": record["version"] - 1, "limit": 1}).json()
                assert history["data"] == [record]
            current, after = [], None
            while True:
                params = {"limit": 5000, **({"after_seq": after} if after else {})}
                page = http.get("/_sim/grades", params=params).json()
                current += page["data"]
                if not page["has_more"]:
                    break
                after = page["next_after_seq"]
        latest = {}
        for record in acked:
            key = (record["userID"], record["assignmentID"])
            if record["version"] >= latest.get(key, {"version": 0})["version"]:
                latest[key] = record
        by_key = {(g["userID"], g["assignmentID"]): g for g in current}
        for key, record in latest.items():  # never older than what was acknowledged
            assert by_key[key]["version"] >= record["version"]

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        versions: dict[str, list[int]] = {}
        for grade_id, version, text in conn.execute(
                "SELECT grade_id, version, record FROM grade_history ORDER BY grade_id, version"):
            assert json.loads(text)["version"] == version  # every stored record reads whole
            versions.setdefault(grade_id, []).append(version)
        for grade_id, version, text in conn.execute("SELECT id, version, record FROM grades"):
            record = json.loads(text)
            assert record["id"] == grade_id and record["version"] == version
            assert versions[grade_id] == list(range(1, version + 1))  # no lost or torn version
        assert set(versions) == {row[0] for row in conn.execute("SELECT id FROM grades")}
    finally:
        conn.close()


def test_concurrent_overwrites_of_one_grade_keep_every_acknowledged_version(tmp_path):
    app = create_app({"DB": str(tmp_path / "race.db"), "SECRET_KEY": "t"}, environ={})
    running = start_in_thread(app, threads=16)
    per_client, clients = 15, 16
    acked: list[dict] = []
    lock = threading.Lock()
    try:
        district, auth = _district_auth(running.url)
        student = httpx.get(running.url + f"/_sim/personas?role=student&district_id={district}"
                            ).json()["data"][0]["id"]
        barrier = threading.Barrier(clients)

        def overwrite(k: int) -> None:
            with httpx.Client(base_url=running.url, timeout=20) as http:
                barrier.wait()
                for i in range(per_client):
                    resp = http.post("/v1/grade", headers=auth, json={
                        "assignmentID": "race", "userID": student,
                        "percentage": (k * per_client + i + 1) / 1000})
                    assert resp.status_code == 200, resp.text
                    with lock:
                        acked.append(resp.json()["data"])

        workers = [threading.Thread(target=overwrite, args=(k,)) for k in range(clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        assert len(acked) == clients * per_client

        grades = httpx.get(running.url + "/_sim/grades",
                           params={"user_id": student, "assignment_id": "race"}).json()["data"]
        assert len(grades) == 1
        current = grades[0]
        values = [r["percentage"] for r in acked]
        assert current["percentage"] in values
        newest = max(acked, key=lambda r: r["version"])
        assert {k: v for k, v in current.items() if k != "seq"} == newest
        history = httpx.get(running.url + f"/_sim/grades/{current['id']}/history",
                            params={"limit": 1000}).json()["data"]
        assert len(history) == len(acked)
        assert [h["version"] for h in history] == list(range(1, len(acked) + 1))
        assert sorted(acked, key=lambda r: r["version"]) == history
        assert Counter(h["percentage"] for h in history) == Counter(values)
        assert len({r["id"] for r in acked}) == 1
    finally:
        running.stop()


def _record(grade_id, version, created, value):
    return {"id": grade_id, "version": version, "created": created, "value": value}


def test_group_commit_writes_a_queue_in_one_transaction_and_isolates_a_failure(tmp_path):
    app = create_app({"DB": str(tmp_path / "group.db"), "SECRET_KEY": "t"}, environ={})
    store = app.extensions["clever_sim"].store
    results: dict[int, object] = {}

    def build(i):
        def make(grade_id, version, created):
            if i == 3:
                raise ValueError("this grade cannot be built")
            return _record(grade_id, version, created, i)
        return make

    def save(i: int) -> None:
        try:
            results[i] = store.save_grade(grade_id=f"g{i:023d}", client_id="c", user_id=f"u{i % 2}",
                                          assignment_id="a", district_id="d",
                                          build_record=build(i), now_iso="2026-09-01T00:00:00Z")
        except ValueError as exc:
            results[i] = exc

    commits: list[str] = []
    try:
        with store.writes_held():  # the calls queue up behind it
            workers = [threading.Thread(target=save, args=(i,)) for i in range(8)]
            for w in workers:
                w.start()
            deadline = time.monotonic() + 10
            while store.queued_grades < 8 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert store.queued_grades == 8
        for w in workers:
            w.join(timeout=10)
        assert isinstance(results[3], ValueError)
        ok = {i: r for i, r in results.items() if i != 3}
        assert len(ok) == 7 and all(isinstance(r, Grade) for r in ok.values())
        for user in ("u0", "u1"):
            grades = store.list_grades(user_id=user)
            assert len(grades) == 1
            history = store.grade_history(grades[0].id)
            assert [h["version"] for h in history] == list(range(1, len(history) + 1))
            assert sorted(h["value"] for h in history) == sorted(
                i for i in ok if f"u{i % 2}" == user)
        # Alone, a new grade is its INSERT, which commits as it ends: no BEGIN or COMMIT
        # (SQLite traces the statement once more for each statement of its triggers).
        with store.connection() as conn:  # this thread's connection, used by the call
            conn.set_trace_callback(commits.append)
            store.save_grade(grade_id="g" + "9" * 23, client_id="c", user_id="u9",
                             assignment_id="a", district_id="d", build_record=build(9),
                             now_iso="2026-09-01T00:00:00Z")
            conn.set_trace_callback(None)
        # (OR IGNORE: nothing where the grade exists, or where its seq is not on top)
        assert {sql.split("(")[0] for sql in commits} == {"INSERT OR IGNORE INTO grades"}
    finally:
        app.extensions["clever_sim"].close()


def test_many_concurrent_writers_all_return_with_every_version_kept(tmp_path):
    """Group commit under contention: every call returns its own
    record, and each (student, assignment) has one history entry per call, numbered 1…n."""
    app = create_app({"DB": str(tmp_path / "many.db"), "SECRET_KEY": "t"}, environ={})
    store = app.extensions["clever_sim"].store
    per_thread, threads = 150, 12
    results: dict[tuple[int, int], dict] = {}
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(per_thread):
                key = (t * per_thread + i) % 7
                results[(t, i)] = store.save_grade(
                    grade_id=f"g{t:03d}{i:020d}", client_id="c", user_id=f"u{key}",
                    assignment_id="a", district_id="d",
                    build_record=lambda g, v, c, n=t * 1000 + i: _record(g, v, c, n),
                    now_iso="2026-09-01T00:00:00Z")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        assert not any(w.is_alive() for w in workers), "a writer never returned"
        assert errors == []
        assert len(results) == per_thread * threads
        assert all(r.record["value"] == t * 1000 + i for (t, i), r in results.items())
        total = 0
        for user in range(7):
            grades = store.list_grades(user_id=f"u{user}")
            assert len(grades) == 1
            versions = [h["version"] for h in store.grade_history(grades[0].id)]
            assert versions == list(range(1, len(versions) + 1))
            assert grades[0].version == len(versions)
            total += len(versions)
        assert total == per_thread * threads
        assert store.queued_grades == 0
    finally:
        app.extensions["clever_sim"].close()


def test_the_kept_grade_count_never_misses_a_grade_written_while_counting(tmp_path):
    """The grades count is counted once and then kept; a grade stored while it is being
    counted must not be lost from it (the count and the keeping happen under the lock)."""
    app = create_app({"DB": str(tmp_path / "count.db"), "SECRET_KEY": "t"}, environ={})
    store = app.extensions["clever_sim"].store

    def save(n: int) -> None:
        store.save_grade(grade_id=f"g{n:023d}", client_id="c", user_id=f"u{n}", assignment_id="a",
                         district_id="d", build_record=lambda g, v, c: _record(g, v, c, n),
                         now_iso="2026-09-01T00:00:00Z")

    try:
        save(1)
        store.clear_caches()  # forget the count: the next count() reads it
        original_read = store.read
        writer: list[threading.Thread] = []

        @contextmanager
        def read_then_write_meanwhile():
            with original_read() as db:
                yield db
            if not writer:  # right after the COUNT: another request stores a grade
                writer.append(threading.Thread(target=save, args=(2,)))
                writer[0].start()
                writer[0].join(timeout=0.3)  # finishes now only if nothing holds it off

        store.read = read_then_write_meanwhile
        store.count("grades")
        store.read = original_read
        writer[0].join(timeout=10)
        with store.read() as db:
            actual = db.execute("SELECT COUNT(*) FROM grades").fetchone()[0]
        assert actual == 2
        assert store.count("grades") == actual
    finally:
        app.extensions["clever_sim"].close()


@pytest.mark.parametrize("kind", ["KeyboardInterrupt"])
def test_an_interrupted_group_write_leaves_nothing_half_written(tmp_path, kind):
    app = create_app({"DB": str(tmp_path / "intr.db"), "SECRET_KEY": "t"}, environ={})
    store = app.extensions["clever_sim"].store

    def explode(grade_id, version, created):
        raise KeyboardInterrupt

    try:
        store.save_grade(grade_id="g" + "1" * 23, client_id="c", user_id="u", assignment_id="a",
                         district_id="d", build_record=lambda g, v, c: _record(g, v, c, 1),
                         now_iso="x")
        with pytest.raises(KeyboardInterrupt):
            store.save_grade(grade_id="g" + "2" * 23, client_id="c", user_id="u",
                             assignment_id="a", district_id="d", build_record=explode, now_iso="x")
        grades = store.list_grades(user_id="u")
        assert len(grades) == 1 and grades[0].version == 1
        assert len(store.grade_history(grades[0].id)) == 1
        nxt = store.save_grade(grade_id="g" + "3" * 23, client_id="c", user_id="u",
                               assignment_id="a", district_id="d",
                               build_record=lambda g, v, c: _record(g, v, c, 2), now_iso="x")
        assert nxt.version == 2 and store.max_grade_seq() == 2
    finally:
        app.extensions["clever_sim"].close()


def test_grades_queued_while_a_batch_is_written_are_written_next_and_all_callers_return(tmp_path):
    """Group commit's hand-off: callers that queue while one caller is writing wait on
    their own turn; once that write commits, the first of them writes the whole queue in
    the next transaction, and every caller returns its own record."""
    app = create_app({"DB": str(tmp_path / "handoff.db"), "SECRET_KEY": "t"}, environ={})
    store = app.extensions["clever_sim"].store
    writing, go_on = threading.Event(), threading.Event()
    results: dict[int, object] = {}

    def first(grade_id, version, created):
        writing.set()
        assert go_on.wait(10)  # the first batch stays open while the others queue
        return _record(grade_id, version, created, 0)

    def save(i: int, build) -> None:
        results[i] = store.save_grade(grade_id=f"g{i:023d}", client_id="c", user_id=f"u{i}",
                                      assignment_id="a", district_id="d", build_record=build,
                                      now_iso="2026-09-01T00:00:00Z")

    batches: list[int] = []
    write_grades = store._write_grades

    def recording(batch):
        batches.append(len(batch))
        write_grades(batch)

    store._write_grades = recording  # each transaction's grades
    try:
        leader = threading.Thread(target=save, args=(0, first))
        leader.start()
        assert writing.wait(10)
        queued = [threading.Thread(target=save, args=(i, lambda g, v, c, n=i: _record(g, v, c, n)))
                  for i in range(1, 7)]
        for w in queued:
            w.start()
        deadline = time.monotonic() + 10
        while store.queued_grades < 6 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert store.queued_grades == 6 and not results  # nobody answered before its COMMIT
        go_on.set()
        for w in [leader, *queued]:
            w.join(timeout=10)
        assert not any(w.is_alive() for w in [leader, *queued]), "a caller never returned"
        assert sorted(results) == list(range(7))
        assert all(r.record["value"] == i and r.user_id == f"u{i}" for i, r in results.items())
        assert store.queued_grades == 0
        assert [g.seq for g in store.list_grades()] == list(range(1, 8))
        assert batches == [1, 6]  # the six queued grades: one transaction, after the first
        assert store.max_grade_seq() == 7
    finally:
        app.extensions["clever_sim"].close()


def test_a_grade_answered_is_already_committed_for_any_other_reader(tmp_path):
    """Under concurrent writers, each call returns only once its grade is committed: a
    separate SQLite connection (another process's view) opened right after the return
    finds that version or a newer one, never an older."""
    path = tmp_path / "visible.db"
    app = create_app({"DB": str(path), "SECRET_KEY": "t"}, environ={})
    store = app.extensions["clever_sim"].store
    stale: list[tuple] = []
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            for i in range(60):
                grade = store.save_grade(
                    grade_id=f"g{t:03d}{i:020d}", client_id="c", user_id=f"u{i % 4}",
                    assignment_id="a", district_id="d",
                    build_record=lambda g, v, c, n=i: _record(g, v, c, n),
                    now_iso="2026-09-01T00:00:00Z")
                row = reader.execute("SELECT version FROM grades WHERE id = ?",
                                     (grade.id,)).fetchone()
                history = reader.execute("SELECT COUNT(*) FROM grade_history WHERE grade_id = ? "
                                         "AND version = ?", (grade.id, grade.version)).fetchone()
                if row is None or row[0] < grade.version or history[0] != 1:
                    stale.append((t, i, grade.version, row, history))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            reader.close()

    try:
        workers = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        assert not any(w.is_alive() for w in workers), "a writer never returned"
        assert errors == [] and stale == []
    finally:
        app.extensions["clever_sim"].close()


def test_the_wal_starts_over_when_frames_are_left_behind_by_the_copy(tmp_path, monkeypatch):
    """Under grades that never pause, some land while the checkpoint copies the log: the
    copy leaves them behind and the log could never start over (on main it grew by every
    grade's pages: 290 MB in 6 s at one connection). Past ``WAL_RESTART_FRAMES`` pages
    the checkpoint copies what landed meanwhile with writes held, and the next grade's
    write starts the log over."""
    from simulator import store as store_module
    from simulator.store import WAL_RESTART_FRAMES

    monkeypatch.setattr(store_module, "CHECKPOINT_EVERY_S", 3600)  # only this test's checkpoints
    path = tmp_path / "wal.db"
    app = create_app({"DB": str(path), "SECRET_KEY": "t"}, environ={})
    store = app.extensions["clever_sim"].store
    count = [0]

    def grade() -> None:
        i = count[0] = count[0] + 1
        store.save_grade(grade_id=f"g{i:023d}", client_id="c", user_id=f"u{i % 50}",
                         assignment_id=f"a{i % 20}", district_id="d",
                         build_record=lambda g, v, c: _record(g, v, c, "x" * 500),
                         now_iso="2026-09-01T00:00:00Z")

    reader = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    copy = store._checkpoint_once
    passes: list[int] = []

    def copy_then_the_reader_goes():
        left = copy()
        passes.append(left[0] - left[1] if left else -1)
        if len(passes) == 1:
            reader.execute("COMMIT")  # its snapshot no longer holds the later frames back
        return left

    try:
        while _wal_frames(path) <= 2 * WAL_RESTART_FRAMES and count[0] < 20_000:
            grade()
        # A reader's snapshot keeps the copy from the frames committed after it, as a
        # grade committed during the copy stays out of it.
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM grades").fetchone()
        for _ in range(20):
            grade()
        store._checkpoint_once = copy_then_the_reader_goes
        assert store.checkpoint() == 0  # nothing left behind
        store._checkpoint_once = copy
        assert passes[0] > 0  # the first copy did leave frames behind
        before = _wal_frames(path)
        grade()
        assert _wal_frames(path) < before  # the log started over
        assert _wal_frames(path) <= 20  # one grade's pages
    finally:
        reader.close()
        app.extensions["clever_sim"].close()


def _wal_frames(db_path) -> int:
    """Frames in a live WAL: the index's header (``mxFrame``), read from the -shm file."""
    import struct

    try:
        header = (db_path.parent / (db_path.name + "-shm")).read_bytes()[:48]
    except FileNotFoundError:
        return 0
    return struct.unpack("=I", header[16:20])[0] if len(header) == 48 else 0
