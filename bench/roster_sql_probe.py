"""What an SQL-first roster load would cost at the least (issue 17, item 3): the sandbox
roster stored by SQLite's own JSON parser (``json_each``), with no Python per record.

Not the simulator's load: a floor under any design that still stores the same tables.
Every table the real load fills is filled here from the document's text in SQL, the
persona keys through one Python ``fold`` call per name part (as ``store.person_row`` needs:
NFKD and casefold have no SQL form), then ``store.finish_roster`` (memberships, indexes,
ANALYZE). Checks are reduced to a handful of SQL scans (ids' shape, references); the
roster's JSON Schema (types, required fields, enums, repeated keys) is not checked at all.
Baseline, in the same run: the simulator's own load of the same file into a fresh file with
the same pragmas (``sim._stream_roster``, what a first start without the roster cache runs).
Prints CPU seconds per phase and the floor's ratio to the baseline; add the measured restart
(``roster_load.py``) for the rest of a start.

    .venv/bin/python bench/roster_sql_probe.py --roster /tmp/big.json --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.sim import _stream_roster  # noqa: E402
from simulator.store import clear_roster, finish_roster, fold, schema_sql  # noqa: E402

ROLE_ORDER = "CASE WHEN json_type(value, '$.roles.student') IS NOT NULL THEN 'student' " \
    "WHEN json_type(value, '$.roles.teacher') IS NOT NULL THEN 'teacher' " \
    "WHEN json_type(value, '$.roles.staff') IS NOT NULL THEN 'staff' " \
    "WHEN json_type(value, '$.roles.district_admin') IS NOT NULL THEN 'district_admin' " \
    "ELSE 'contact' END"

PHASES = [
    ("districts, schools, terms",
     ["INSERT INTO districts(id, data) SELECT json_extract(value, '$.id'), value "
      "FROM doc, json_each(doc.t, '$.districts')"] +
     [f"INSERT INTO {k}(id, district_id, data) SELECT json_extract(value, '$.id'), "
      f"json_extract(value, '$.district'), value FROM doc, json_each(doc.t, '$.{k}')"
      for k in ("schools", "terms")]),
    ("users", [f"INSERT INTO users(id, district_id, role, data) SELECT json_extract(value, '$.id'), "
               f"json_extract(value, '$.district'), {ROLE_ORDER}, value "
               f"FROM doc, json_each(doc.t, '$.users')"]),
    ("user_roles", ["INSERT OR IGNORE INTO user_roles(role, district_id, user_id) "
                    "SELECT r.key, u.district_id, u.id FROM users u, json_each(u.data, '$.roles') r"]),
    ("people (fold per name part)",
     ["INSERT INTO people(user_id, district_id, role, name, title, sort_key, search_key, school_id) "
      "SELECT id, district_id, role, "
      "coalesce(json_extract(data, '$.name.first') || ' ' || json_extract(data, '$.name.last'), id), "
      "json_extract(data, '$.roles.' || role || '.title'), "
      "fold(coalesce(json_extract(data, '$.name.last'), '')) || char(0) || "
      "fold(coalesce(json_extract(data, '$.name.first'), '')), "
      "fold(coalesce(json_extract(data, '$.name.first'), '')) || ' ' || "
      "fold(coalesce(json_extract(data, '$.name.last'), '')) || ' ' || "
      "lower(coalesce(json_extract(data, '$.email'), '')) || ' ' || id, "
      "coalesce(json_extract(data, '$.roles.' || role || '.school'), "
      "json_extract(data, '$.roles.' || role || '.schools[0]'), '') FROM users"]),
    ("school_people", ["INSERT OR IGNORE INTO school_people(school_id, rank, sort_key, user_id) "
                       "SELECT school_id, CASE role WHEN 'teacher' THEN 0 WHEN 'student' THEN 1 "
                       "ELSE 2 END, sort_key, user_id FROM people"]),
    ("sections", ["INSERT INTO sections(id, district_id, school_id, data) SELECT "
                  "json_extract(value, '$.id'), json_extract(value, '$.district'), "
                  "json_extract(value, '$.school'), value FROM doc, json_each(doc.t, '$.sections')"]),
    ("checks (a few SQL scans)",
     ["SELECT count(*) FROM users WHERE length(id) != 24 OR id GLOB '*[^0-9a-f]*' "
      "OR district_id NOT IN (SELECT id FROM districts)",
      "SELECT count(*) FROM sections WHERE length(id) != 24 OR id GLOB '*[^0-9a-f]*' "
      "OR school_id NOT IN (SELECT id FROM schools)",
      "SELECT count(*) FROM sections s, json_each(s.data, '$.students') j "
      "WHERE j.value NOT IN (SELECT id FROM users)"]),
]


def one_load(raw: bytes, folder: str) -> dict[str, float]:
    """CPU seconds per phase of one SQL-first load into a fresh file."""
    spent: dict[str, float] = {}
    t = time.process_time()
    hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8")
    spent["sha256 + UTF-8"] = time.process_time() - t
    path = os.path.join(folder, f"probe-{time.monotonic_ns()}.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.create_function("fold", 1, fold, deterministic=True)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.executescript(schema_sql())
    db.execute("BEGIN")
    t = time.process_time()
    dropped = clear_roster(db)
    db.execute("CREATE TEMP TABLE doc(t TEXT)")
    db.execute("INSERT INTO doc VALUES (?)", (text,))
    spent["the text into SQLite"] = time.process_time() - t
    for name, statements in PHASES:
        t = time.process_time()
        for sql in statements:
            db.execute(sql).fetchall()
        spent[name] = time.process_time() - t
    t = time.process_time()
    finish_roster(db, dropped, {}, {})
    spent["memberships, indexes, ANALYZE"] = time.process_time() - t
    db.execute("COMMIT")
    db.close()
    os.unlink(path)
    fold.cache_clear()
    return spent


def simulator_load(roster: str, folder: str) -> float:
    """CPU seconds of the simulator's own streamed load of ``roster`` into a fresh file."""
    path = os.path.join(folder, f"base-{time.monotonic_ns()}.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.executescript(schema_sql())
    db.execute("BEGIN")
    t = time.process_time()
    _stream_roster(db, roster, None)
    spent = time.process_time() - t
    db.execute("COMMIT")
    db.close()
    os.unlink(path)
    fold.cache_clear()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roster", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    raw = Path(args.roster).read_bytes()
    print(f"load average {os.getloadavg()[0]:.1f}; CPU s per phase, {args.repeats} loads")
    runs, base = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):  # alternating: the noise falls on both alike
            base.append(simulator_load(args.roster, folder))
            runs.append(one_load(raw, folder))
    for name in runs[0]:
        print(f"  {name:32s} " + " / ".join(f"{r[name]:.2f}" for r in runs))
    totals = [sum(r.values()) for r in runs]
    print(f"  {'SQL-first floor, total':32s} " + " / ".join(f"{t:.2f}" for t in totals))
    print(f"  {'baseline: the simulator load':32s} " + " / ".join(f"{t:.2f}" for t in base))
    print(f"  {'floor / baseline':32s} " + " / ".join(f"{t / b:.2f}" for t, b in zip(totals, base)))


if __name__ == "__main__":
    main()
