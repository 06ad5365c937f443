"""The floor under a grade POST: CPU per request of the simulator's own work in process, no
server and no network (issue 17, item 1), beside the cheapest possible WSGI app.

* ``raw``: a plain WSGI app that parses the JSON body and answers it (``raw_app.app``, the
  ``raw-granian`` target of ``serving_layer.py``): what any Python app pays per request;
* ``grade``: a grade POST through the whole pipeline (``app(environ, start_response)``: the
  token, the rules, the store's write, the journal entry), one thread, file database (WAL);
* ``grade_16_threads``: the same from 16 threads at once (what group commit, the locks and
  the GIL's hand-offs between threads add under load, without a server or a network);
* ``save_grade``: ``Store.save_grade`` alone (group commit included, one grade at a time);
* ``save_grade_spread``: the same, overwriting grades spread over 2,000 students × 5
  assignments in random order (a class's grades arriving; the single student of the
  figures above keeps every B-tree's few pages hot, a real gradebook does not);
* ``alone``: the SQL of one grade as a grade POST at one connection writes it
  (``Store._write_alone``: the remembered grade's guarded UPDATE, whose triggers append the
  write order and the history row, outside a transaction: it commits as it ends) on the
  store's writer connection, no group commit;
* ``txn``: the same grade in a transaction, as a batch (or a grade that cannot be written
  alone) is (BEGIN IMMEDIATE, the UPDATE, COMMIT);
* ``empty_txn``: BEGIN IMMEDIATE; COMMIT.

Each figure is the best of ``--repeats`` batches of ``--n`` calls, in CPU µs per call
(``time.process_time``: all the process's threads, the checkpointer's too), after
``gc.freeze()`` as ``clever-sim serve`` does once serving; then each statement of one
grade's transaction alone. A server
cannot answer faster than ``grade`` plus its own per-request cost (``raw`` over a server,
measured by ``serving_layer.py --targets raw-granian``).

    .venv/bin/python bench/grade_floor.py [--n 2000] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import raw_app  # noqa: E402
from simulator.app import create_app  # noqa: E402
from simulator.clever import oauth  # noqa: E402
from simulator.store import _UPDATE_KNOWN_GRADE, _GradeJob  # noqa: E402


def _environ(token: str, body: bytes) -> dict:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/grade", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "SCRIPT_NAME": "", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
            "wsgi.version": (1, 0), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
            "HTTP_HOST": "127.0.0.1", "HTTP_AUTHORIZATION": f"Bearer {token}",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body)}


def _bodies(n: int) -> list[bytes]:
    return [json.dumps({"assignmentID": f"bench{i % 500}", "percentage": (i % 100) / 100}).encode()
            for i in range(n)]


def _best(run, n: int, repeats: int) -> float:
    """Best CPU µs per call over ``repeats`` batches of ``n`` (``run(n)`` does one batch)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        run(n)
        best = min(best, (time.process_time() - start) / n * 1e6)
    return round(best, 1)


def measure(n: int, repeats: int) -> dict:
    """Every figure (µs of CPU per call) on a fresh file database."""
    tmp = tempfile.mkdtemp(prefix="clever-sim-floor-")
    app = create_app({"DB": os.path.join(tmp, "floor.db")}, environ={})
    sim = app.extensions["clever_sim"]
    try:
        client = sim.store.get_app(sim.roster["apps"][0]["client_id"])
        student = sim.store.list_records("users", role="student", limit=1)
        student_id = (student.rows if hasattr(student, "rows") else student)[0]["id"]
        token = oauth.mint_il_token(sim, client, student_id)["access_token"]
        statuses: list[str] = []

        def start_response(status, headers, exc_info=None):
            statuses.append(status)

        def grades(k: int) -> None:
            for body in _bodies(k):
                for _ in app(_environ(token, body), start_response):
                    pass

        def raw(k: int) -> None:
            for body in _bodies(k):
                for _ in raw_app.app(_environ(token, body), start_response):
                    pass

        grades(600)  # warm: caches, statements, every (student, assignment) row exists
        statuses.clear()
        gc.collect()
        gc.freeze()  # as ``clever-sim serve`` does once serving: the roster is not rescanned
        out = {"raw": _best(raw, n, repeats)}
        # the environs are built inside the batch; measured alone and taken off below
        build = _best(lambda k: [_environ(token, b) for b in _bodies(k)], n, repeats)
        out["environ_build"] = build
        out["grade"] = round(_best(grades, n, repeats) - build, 1)
        out["raw"] = round(out["raw"] - build, 1)
        if any(not s.startswith("200") for s in statuses):
            raise RuntimeError(f"a grade POST was refused: {sorted(set(statuses))}")

        store = sim.store
        record = {"id": "x", "version": 1, "payload": "p" * 600}  # a grade record's size

        def save(k: int) -> None:
            for i in range(k):
                store.save_grade(grade_id="f" * 24, client_id=client.client_id,
                                 user_id=student_id, assignment_id=f"bench{i % 500}",
                                 district_id="d", build_record=lambda *a: record,
                                 now_iso="2026-12-07T00:00:00.000Z")

        def txn(k: int) -> None:
            with store._write_lock, store._lease(writer=True) as conn:
                seq = store._current_seq(conn)
                for i in range(k):
                    conn.execute("BEGIN IMMEDIATE")
                    _, seq, _ = store._write_grade(conn, (
                        "f" * 24, client.client_id, student_id, f"bench{i % 500}", "d",
                        lambda *a: record, "2026-12-07T00:00:00.000Z"), seq)
                    conn.execute("COMMIT")
                store._seq = seq

        def alone(k: int) -> None:
            with store._write_lock:
                for i in range(k):
                    if not store._write_alone(_GradeJob((
                            "f" * 24, client.client_id, student_id, f"bench{i % 500}", "d",
                            lambda *a: record, "2026-12-07T00:00:00.000Z"))):
                        raise RuntimeError("the grade was not written alone")

        def statements(k: int) -> dict:
            """µs per call of each statement of a grade's transaction (wall clock: one
            thread, nothing else runs, and SQLite releases the GIL inside each)."""
            spent = dict.fromkeys(("BEGIN IMMEDIATE", "SELECT", "UPDATE (+ its triggers)",
                                   "COMMIT", "alone: UPDATE (+ triggers, commit)"), 0.0)
            with store._write_lock, store._lease(writer=True) as conn:
                seq = store._current_seq(conn)
                for i in range(k):
                    key = (client.client_id, student_id, f"bench{i % 500}")
                    seq += 1
                    t0 = time.perf_counter()
                    conn.execute("BEGIN IMMEDIATE")
                    t1 = time.perf_counter()
                    gid, version, created = conn.execute(
                        "SELECT id, version, created FROM grades WHERE client_id = ? AND "
                        "user_id = ? AND assignment_id = ?", key).fetchone()
                    t2 = time.perf_counter()
                    text = json.dumps(record)
                    t3 = time.perf_counter()
                    # the triggers append the write order and the history row (schema.sql)
                    conn.execute("UPDATE grades SET version = ?, record = ?, updated = ?, seq = ? "
                                 "WHERE id = ?", (version + 1, text, "2026", seq, gid))
                    t4 = time.perf_counter()
                    conn.execute("COMMIT")
                    t5 = time.perf_counter()
                    seq += 1  # the same overwrite outside a transaction (``_write_alone``)
                    if conn.execute(_UPDATE_KNOWN_GRADE, (version + 2, text, "2026", seq, gid,
                                                          version + 1, created)).rowcount != 1:
                        raise RuntimeError("the overwrite alone did not apply")
                    t6 = time.perf_counter()
                    for name, d in zip(spent, (t1 - t0, t2 - t1, t4 - t3, t5 - t4, t6 - t5)):
                        spent[name] += d
                store._seq = seq
            return {name: round(d / k * 1e6, 1) for name, d in spent.items()}

        def empty(k: int) -> None:
            with store._write_lock, store._lease(writer=True) as conn:
                for _ in range(k):
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("COMMIT")

        def threaded(k: int, threads: int = 16) -> None:
            """``k`` grade POSTs from ``threads`` threads at once (group commit, lock and GIL
            hand-offs as under load, without a server or a network)."""
            envs = [_environ(token, b) for b in _bodies(k)]
            go = threading.Barrier(threads)

            def work(part: list[dict]) -> None:
                go.wait()
                for env in part:
                    for _ in app(env, start_response):
                        pass

            pool = [threading.Thread(target=work, args=(envs[i::threads],))
                    for i in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()

        out["grade_16_threads"] = round(_best(threaded, n, repeats) - build, 1)
        if any(not s.startswith("200") for s in statuses):
            raise RuntimeError(f"a grade POST was refused: {sorted(set(statuses))}")
        out["save_grade"] = _best(save, n, repeats)
        out["alone"] = _best(alone, n, repeats)  # before the spread: its keys are remembered
        spread = [(f"spread{u:05d}", f"a{a}") for u in range(2000) for a in range(5)]
        for i, (user, assignment) in enumerate(spread):  # every grade exists once
            store.save_grade(grade_id=f"{i:024x}", client_id=client.client_id, user_id=user,
                             assignment_id=assignment, district_id="d",
                             build_record=lambda *a: record, now_iso="2026-12-07T00:00:00.000Z")
        order = random.Random(17).choices(spread, k=n)

        def save_spread(k: int) -> None:
            for user, assignment in order[:k]:
                store.save_grade(grade_id="f" * 24, client_id=client.client_id,
                                 user_id=user, assignment_id=assignment, district_id="d",
                                 build_record=lambda *a: record,
                                 now_iso="2026-12-07T00:00:00.000Z")

        out["save_grade_spread"] = _best(save_spread, n, repeats)
        out["txn"] = _best(txn, n, repeats)
        out["empty_txn"] = _best(empty, n, repeats)
        out["statements"] = min((statements(n) for _ in range(repeats)),
                                key=lambda d: sum(d.values()))
        return out
    finally:
        sim.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    out = measure(args.n, args.repeats)
    if args.json:
        print(json.dumps({"load": load, "us_per_call": out}))
        return
    print(f"load average {load:.1f}; CPU µs per call, best of {args.repeats} × {args.n}:")
    statements = out.pop("statements")
    for name, value in out.items():
        print(f"  {name:14} {value:8.1f}")
    print("  one grade's statements (wall µs): "
          + ", ".join(f"{name} {us}" for name, us in statements.items()))


if __name__ == "__main__":
    main()
