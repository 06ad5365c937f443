"""Benchmark: CPU seconds to check a large snapshot (``snapshot.check_snapshot``) before it is
loaded, as a ratio to reading the same document's JSON text (``jsontext.loads``) in the same run;
for scale, the CPU seconds of writing it into a fresh in-memory simulator (``import_state``
with ``checked=True``: the writes alone).

    .venv/bin/python bench/snapshot_validation.py [--grades 10000] [--repeats 5]

The snapshot is a real export (one simulator, the packaged roster, one grade with its history
and a Schoology link) whose grade is copied ``--grades`` times (each a new id, seq, assignment
and history entry), so every reference check runs on every copy. To compare with another
checkout, run this file with it first on the path (``PYTHONPATH=/tmp/base``): the script uses
only ``create_app``, ``export_state``, ``check_snapshot``, ``import_state`` and ``jsontext.loads``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

from simulator import jsontext, snapshot
from simulator.app import create_app
from simulator.clever import oauth


def big_snapshot(grades: int) -> dict:
    """A valid snapshot holding ``grades`` current grades, each with one history entry."""
    app = create_app({"DB": ":memory:"}, environ={})
    sim = app.extensions["clever_sim"]
    try:
        student = next(u for u in sim.roster["users"] if "student" in u["roles"])
        partner = sim.store.get_app(sim.roster["apps"][0]["client_id"])
        token = oauth.mint_il_token(sim, partner, student["id"])["access_token"]
        answer = app.test_client().post("/v1/grade", json={"assignmentID": "a0", "percentage": 0.5},
                                        headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        doc = snapshot.export_state(sim)
    finally:
        sim.close()
    grade, entry = doc["grades"][0], doc["grade_history"][0]
    doc["grades"], doc["grade_history"] = [], []
    for i in range(grades):
        gid, assignment = f"{i:024x}", f"a{i}"
        record = {**copy.deepcopy(grade["record"]), "id": gid, "assignmentID": assignment}
        doc["grades"].append({**grade, "id": gid, "assignment_id": assignment, "seq": i + 1,
                              "record": record})
        doc["grade_history"].append({**entry, "grade_id": gid, "seq": i + 1, "record": record})
    return doc


def load_into_fresh_simulator(doc: dict) -> None:
    """``import_state`` without its check: what loading costs besides the check."""
    app = create_app({"DB": ":memory:"}, environ={})
    sim = app.extensions["clever_sim"]
    try:
        snapshot.import_state(sim, doc, checked=True)
    finally:
        sim.close()


def cpu_seconds(work, repeats: int) -> float:
    """The median CPU time (this process) of ``work()``."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grades", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    doc = big_snapshot(args.grades)
    text = json.dumps(doc)
    assert snapshot.validate_snapshot(doc) == [], snapshot.validate_snapshot(doc)[:3]
    snapshot.check_snapshot(doc)  # anything compiled once is compiled before the timing
    parse = cpu_seconds(lambda: jsontext.loads(text), args.repeats)
    check = cpu_seconds(lambda: snapshot.check_snapshot(doc), args.repeats)
    write = cpu_seconds(lambda: load_into_fresh_simulator(doc), 1)
    print(json.dumps({"grades": args.grades, "bytes": len(text), "parse_cpu_s": round(parse, 4),
                      "check_cpu_s": round(check, 4), "check_over_parse": round(check / parse, 2),
                      "write_cpu_s": round(write, 4),
                      "loadavg": [round(x, 2) for x in os.getloadavg()],
                      "simulator": os.path.dirname(snapshot.__file__)}))


if __name__ == "__main__":
    main()
