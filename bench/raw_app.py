"""The serving ceiling: a plain WSGI app (no Flask) that parses a ``POST /v1/grade`` JSON
body and answers it, and answers ``GET /v3.0/me`` and ``/_sim/health`` with a small JSON
document, on the simulator's own granian wrapper (``serving.GranianServer``). Whatever an
app does, it cannot answer faster than this on the same server.

``--busy-us N``: each grade POST first spins N µs of its thread's CPU in Python, holding the
GIL (the simulator's own work per grade, measured in process by ``grade_floor.py``): the
best a server could do with that much work per request and nothing else (no locks, no
SQLite, no other threads).

``--durable FILE``: each grade POST also writes the grade as one autocommit UPSERT into a
SQLite file in WAL mode with ``synchronous=NORMAL`` (one connection per thread), so the grade
survives a crash of the process once answered, the promise the simulator keeps: the floor
of any design that stores an acknowledged grade in SQLite before answering.

``--durable-sim FILE``: the same, but into the simulator's own tables (``store.schema_sql``)
with the simulator's own statements (``store._INSERT_NEW_GRADE`` for a new key, then
``store._UPDATE_KNOWN_GRADE``, whose triggers append the history row and the write order),
one writer at a time as the store has: what the simulator's grade rows cost, served.

    python bench/raw_app.py [THREADS] [--busy-us N] [--durable[-sim] FILE]   # prints "on http://127.0.0.1:PORT"
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

ME = json.dumps({"type": "user",
                 "data": {"id": "5f1b2c3d4e5f60718293a4b5", "district": "4e7112c9111e8c530d98db16",
                          "type": "user", "authorized_by": "district"},
                 "links": [{"rel": "self", "uri": "/me"}]}).encode()


BUSY_S = 0.0  # CPU seconds spun per grade POST (``--busy-us``)
DURABLE: str | None = None  # the SQLite file each grade POST writes (``--durable``)
UPSERT = ("INSERT INTO grades(key, record, seq) VALUES (?, ?, 1) ON CONFLICT(key) DO UPDATE "
          "SET record = excluded.record, seq = seq + 1")
_local = threading.local()
SIM_TABLES = False  # ``--durable-sim``: the simulator's tables and statements
_sim_keys: dict[str, tuple[str, int, str]] = {}  # assignmentID -> (grade id, version, created)
_sim_lock = threading.Lock()
_sim_seq = [0]
_SIM_SQL: dict[str, str] = {}  # the store's statements, read once by prepare_durable


def _write_as_simulator(conn: sqlite3.Connection, key: str, text: str) -> None:
    """One grade through the simulator's statements: INSERT a new key, else the guarded UPDATE."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    with _sim_lock:
        _sim_seq[0] += 1
        seq = _sim_seq[0]
        known = _sim_keys.get(key)
        if known is None:
            grade_id = f"{seq:024x}"
            conn.execute(_SIM_SQL["insert"], (grade_id, "app", "student", key, "district", 1,
                                             text, now, now, seq))
            _sim_keys[key] = (grade_id, 1, now)
        else:
            grade_id, version, created = known
            conn.execute(_SIM_SQL["update"], (version + 1, text, now, seq, grade_id, version,
                                               created))
            _sim_keys[key] = (grade_id, version + 1, created)


def _connection() -> sqlite3.Connection:
    """This thread's connection to ``DURABLE`` (WAL, synchronous=NORMAL, autocommit)."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = sqlite3.connect(DURABLE, isolation_level=None, timeout=30,
                                             check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def prepare_durable(path: str) -> None:
    """Create the grades table of ``--durable``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    if SIM_TABLES:  # imported here: the other targets never load the simulator
        from simulator.store import _INSERT_NEW_GRADE, _UPDATE_KNOWN_GRADE, schema_sql
        conn.executescript(schema_sql())
        _SIM_SQL.update(insert=_INSERT_NEW_GRADE, update=_UPDATE_KNOWN_GRADE)
    conn.execute("CREATE TABLE IF NOT EXISTS grades(key TEXT PRIMARY KEY, record TEXT NOT NULL, "
                 "seq INTEGER NOT NULL)")
    conn.close()


def app(environ: dict, start_response) -> list[bytes]:
    """Parse the body when there is one, answer it back (as the bare Flask app does)."""
    length = environ.get("CONTENT_LENGTH") or ""
    if environ.get("REQUEST_METHOD") == "POST" and length.isdigit():
        if BUSY_S:
            until = time.thread_time() + BUSY_S
            while time.thread_time() < until:
                pass
        body = json.loads(environ["wsgi.input"].read(int(length)))
        out = json.dumps({"data": body, "warnings": []}).encode()
        if DURABLE is not None:
            if SIM_TABLES:
                _write_as_simulator(_connection(), str(body.get("assignmentID")), out.decode())
            else:
                _connection().execute(UPSERT, (str(body.get("assignmentID")), out))
    else:
        out = ME
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]


if __name__ == "__main__":
    import argparse

    from app_server import serve

    ap = argparse.ArgumentParser()
    ap.add_argument("threads", type=int, nargs="?", default=16)
    ap.add_argument("--busy-us", type=float, default=0.0)
    ap.add_argument("--durable", metavar="FILE")
    ap.add_argument("--durable-sim", metavar="FILE")
    args = ap.parse_args()
    BUSY_S = args.busy_us / 1e6
    if args.durable or args.durable_sim:
        DURABLE = args.durable or args.durable_sim
        SIM_TABLES = bool(args.durable_sim)
        prepare_durable(DURABLE)
    serve(app, "granian", args.threads)
