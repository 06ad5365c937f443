"""What the write-order check costs a grade POST's statement: each grade statement applies
only where no seq at or above its own is in the file (``store._ON_TOP``, so another process
writing the same file cannot take a grade's place in the write order), against the same
statement without it (as before), on one connection, alternating batches in the same run.

* ``update``: the overwrite of a remembered grade (``Store._write_alone``'s common case),
  outside a transaction: it commits as it ends;
* ``insert``: a new grade's INSERT (before: ``VALUES … ON CONFLICT DO NOTHING``; now ``INSERT OR
  IGNORE … VALUES`` with the seq NULL where it is not on top), outside a transaction.

Each figure is the median over ``--rounds`` alternations of a batch of ``--n`` statements,
in CPU µs per statement (``time.process_time``); the WAL is checkpointed between batches,
outside the timing. Small batches, many rounds: on a loaded machine, batches of 2,000
alternated 15 times put two runs of the same statement 12% apart, batches of 100 alternated
201 times within 2%. The ratio checked / plain is the figure that carries between machines.

    .venv/bin/python bench/seq_guard.py [--n 100] [--rounds 201] [--grades 10000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator import store as store_module  # noqa: E402
from simulator.store import Store  # noqa: E402

NOW = "2026-12-07T00:00:00.000Z"
RECORD = json.dumps({"id": "x", "version": 1, "payload": "p" * 600})  # a grade record's size
PLAIN = {  # the same statements without the check (what a grade POST ran before it)
    "update": ("UPDATE grades SET version = ?1, record = ?2, updated = ?3, seq = ?4 "
               "WHERE id = ?5 AND version = ?6 AND created = ?7"),
    "insert": ("INSERT INTO grades(id, client_id, user_id, assignment_id, district_id, version, "
               "record, created, updated, seq) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10) "
               "ON CONFLICT DO NOTHING"),
}
CHECKED = {"update": store_module._UPDATE_KNOWN_GRADE, "insert": store_module._INSERT_NEW_GRADE}


def measure(n: int, rounds: int, grades: int) -> dict:
    """Median CPU µs per statement, checked and plain, each kind, alternating batches."""
    tmp = tempfile.mkdtemp(prefix="clever-sim-seq-guard-")
    store = Store(os.path.join(tmp, "g.db"))
    try:
        with store.connection() as conn:
            conn.execute("BEGIN")  # grades spread over students, as a class's arrive
            conn.executemany(store_module._INSERT_GRADE, (
                (f"{i:024x}", "c", f"u{i}", "a", "d", 1, RECORD, NOW, NOW, i + 1)
                for i in range(grades)))
            conn.execute("COMMIT")
            seq = grades
            versions = [1] * grades
            inserted = 0
            spent: dict[str, list[float]] = {f"{kind}_{form}": [] for kind in PLAIN
                                             for form in ("plain", "checked")}
            for r in range(rounds):
                forms = ("plain", "checked") if r % 2 == 0 else ("checked", "plain")
                for kind in PLAIN:
                    for form in forms:
                        sql = (PLAIN if form == "plain" else CHECKED)[kind]
                        start = time.process_time()
                        for i in range(n):
                            seq += 1
                            if kind == "update":
                                g = (i * 7919) % grades
                                conn.execute(sql, (versions[g] + 1, RECORD, NOW, seq,
                                                   f"{g:024x}", versions[g], NOW))
                                versions[g] += 1
                            else:
                                inserted += 1
                                conn.execute(sql, (f"n{inserted:023x}", "c", f"n{inserted}", "a",
                                                   "d", 1, RECORD, NOW, NOW, seq))
                        spent[f"{kind}_{form}"].append((time.process_time() - start) / n * 1e6)
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if conn.execute("SELECT COUNT(*) FROM grades").fetchone()[0] != grades + inserted:
                raise RuntimeError("a statement did not apply")
        out = {name: round(statistics.median(v), 1) for name, v in spent.items()}
        for kind in PLAIN:
            out[f"{kind}_ratio"] = round(out[f"{kind}_checked"] / out[f"{kind}_plain"], 3)
        return out
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=201)
    ap.add_argument("--grades", type=int, default=10000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    out = measure(args.n, args.rounds, args.grades)
    if args.json:
        print(json.dumps({"load": load, "us_per_statement": out}))
        return
    print(f"load average {load:.1f}; CPU µs per statement, median of {args.rounds} × {args.n}:")
    for kind in PLAIN:
        print(f"  {kind:7} plain {out[f'{kind}_plain']:6.1f}  checked {out[f'{kind}_checked']:6.1f}"
              f"  ratio {out[f'{kind}_ratio']:.3f}")


if __name__ == "__main__":
    main()
