"""Benchmark: every page and API call that lists or reads, with a sandbox-size district and a
million stored grades, each as a ratio to ``GET /_sim/health`` measured in the same run.

Setup (not timed as a figure, but printed):

* the roster: ``--roster FILE``, or Clever's sandbox size generated here (239 schools,
  8,400 teachers, 56,600 students, 20,000 sections, ~460,000 enrollments; seed 1);
* ``--grades`` current grades (default 1,000,000) with one history entry each, written
  straight into the database in one transaction (cloned from a real grade record, so the
  JSON is the real shape), spread over every student and 18 assignment ids;
* the 18 assignments linked (Schoology assignments) in ``--linked-sections`` sections,
  including the largest one, whose gradebook is then a full grid;
* a full request journal: ``JOURNAL_CAP`` (10,000) real grade POSTs through the app; the
  journal keeps the newest that fit its memory bound (``JOURNAL_MAX_MB``, 2 MiB: ~635 of
  these), and the inspector rows say how many it held and which page they read.

Then the real server (waitress, in a thread) answers each GET ``--runs`` times; the table
shows the median, the ratio to the baseline and the slowest page / API call.

    .venv/bin/python bench/scale.py [--grades 1000000] [--runs 15] [--roster big.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.app import create_app  # noqa: E402
from simulator.inspector.routes import PER_PAGE as INSPECTOR_PER_PAGE  # noqa: E402
from simulator.roster_gen import SANDBOX, generate_roster, write_roster  # noqa: E402
from simulator.serving import start_in_thread  # noqa: E402
from simulator.web import login_cookie  # noqa: E402

ASSIGNMENTS = [f"unit{k:02d}" for k in range(18)]


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bulk_grades(sim, template: dict, total: int, client_id: str, rng: random.Random) -> float:
    """Insert ``total`` current grades (+ one history entry each) in one transaction."""
    store = sim.store
    with store.read() as db:
        students = [(r[0], r[1]) for r in db.execute(
            "SELECT id, district_id FROM users WHERE role = 'student' ORDER BY id")]
    started = time.perf_counter()
    seq = store.max_grade_seq()

    def rows():
        nonlocal seq
        n = 0
        for assignment in ASSIGNMENTS:
            for user_id, district_id in students:
                if n >= total:
                    return
                n += 1
                seq += 1
                pct = rng.randint(0, 1000) / 1000
                grade_id = f"{rng.getrandbits(96):024x}"
                record = {**template, "id": grade_id, "assignmentID": assignment, "userID": user_id,
                          "district": district_id, "percentage": pct, "lti_score": str(pct),
                          "payload": json.dumps({"assignmentID": assignment, "userID": user_id,
                                                 "percentage": pct}),
                          "version": 1}
                yield grade_id, user_id, assignment, district_id, json.dumps(record), seq

    with store.transaction() as db:
        for batch in _chunks(rows(), 50_000):
            db.executemany(
                "INSERT INTO grades(id, client_id, user_id, assignment_id, district_id, version, "
                "record, created, updated, seq) VALUES (?, ?, ?, ?, ?, 1, ?, '2026-09-01T00:00:00Z', "
                "'2026-09-01T00:00:00Z', ?)",
                [(g, client_id, u, a, d, text, s) for g, u, a, d, text, s in batch])
            # the insert trigger appends each one's history row (schema.sql)
        db.execute("ANALYZE")
    store.clear_caches()  # written behind the store's back: re-read MAX(seq), recount
    with store._write_lock, store._lease(writer=True) as db:  # noqa: SLF001
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


def _chunks(it, size):
    chunk = []
    for item in it:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def timed(http: httpx.Client, path: str, runs: int, **kw) -> tuple[float, int]:
    """(median milliseconds of ``runs`` GETs after one warm-up, response bytes)."""
    resp = http.get(path, **kw)
    assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        resp = http.get(path, **kw)
        samples.append((time.perf_counter() - started) * 1000)
        assert resp.status_code == 200, (path, resp.status_code)
    return statistics.median(samples), len(resp.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roster", default=None, help="roster file (default: generate sandbox size)")
    parser.add_argument("--grades", type=int, default=1_000_000)
    parser.add_argument("--linked-sections", type=int, default=500)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", default=None, help="keep the database in this directory")
    args = parser.parse_args()
    rng = random.Random(11)
    tmp = args.keep or tempfile.mkdtemp(prefix="clever-sim-scale-")
    roster = args.roster
    if roster is None:
        roster = os.path.join(tmp, "sandbox.json")
        started = time.perf_counter()
        doc = generate_roster(seed=1, **SANDBOX)
        with open(roster, "w", encoding="utf-8") as fh:
            write_roster(doc, fh)
        del doc
        print(f"generated the sandbox roster in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    app = create_app({"DB": os.path.join(tmp, "scale.db"), "ROSTER": roster, "SECRET_KEY": "bench"},
                     environ={})
    print(f"roster loaded in {time.perf_counter() - started:.1f} s (RSS {rss_mb():.0f} MB)")
    sim = app.extensions["clever_sim"]
    client_id = sim.roster_apps()[0]["client_id"]
    district = sim.district_ids[0]
    dtoken = sim.store.district_tokens(client_id, district)[0].access_token
    auth = {"Authorization": f"Bearer {dtoken}"}

    with sim.store.read() as db:
        big_section = db.execute(
            "SELECT s.id FROM section_members m JOIN sections s ON s.n = m.section_n "
            "WHERE m.role = 'student' GROUP BY s.id ORDER BY COUNT(*) DESC, s.id LIMIT 1").fetchone()[0]
        section_ids = [r[0] for r in db.execute("SELECT id FROM sections ORDER BY id")]
    linked = [big_section] + rng.sample([s for s in section_ids if s != big_section],
                                        min(args.linked_sections, len(section_ids) - 1))
    client = app.test_client()
    started = time.perf_counter()
    for section_id in linked:
        for k, assignment in enumerate(ASSIGNMENTS):
            resp = client.post("/_sim/links", json={"section_id": section_id, "client_id": client_id,
                                                    "assignment_id": assignment,
                                                    "name": f"Unit {k + 1} quiz",
                                                    "max_points": rng.choice([10, 20, 50, 100])})
            assert resp.status_code == 201, resp.get_data(as_text=True)
    print(f"linked {len(ASSIGNMENTS)} assignments in {len(linked)} sections in "
          f"{time.perf_counter() - started:.1f} s")

    # One real grade gives the record's shape; the million are clones of it.
    student = sim.store.get_record("sections", big_section)["students"][0]
    resp = client.post("/v1/grade", headers=auth, json={"assignmentID": "template", "userID": student,
                                                        "percentage": 0.5})
    template = resp.get_json()["data"]
    if args.grades:
        seconds = bulk_grades(sim, template, args.grades, client_id, rng)
        print(f"stored {args.grades:,} grades (+ history) in {seconds:.1f} s")

    started = time.perf_counter()
    cap = sim.journal.cap
    students = sim.store.get_record("sections", big_section)["students"]
    for i in range(cap):  # real traffic fills the journal (and overwrites real grades)
        client.post("/v1/grade", headers=auth, json={"assignmentID": ASSIGNMENTS[i % 18],
                                                     "userID": students[i % len(students)],
                                                     "percentage": (i % 100) / 100})
    print(f"journal: {cap:,} grade POSTs in {time.perf_counter() - started:.1f} s, {len(sim.journal):,} "
          f"entries kept (its memory bound, JOURNAL_MAX_MB={sim.cfg['JOURNAL_MAX_MB']})")
    print(f"database: {os.path.getsize(os.path.join(tmp, 'scale.db')) / 2**20:.0f} MB; "
          f"grades {sim.store.count('grades'):,}; history {sim.store.count('grade_history'):,}")

    with sim.store.read() as db:
        users = [r[0] for r in db.execute("SELECT id FROM users WHERE district_id = ? ORDER BY id",
                                          (district,))]
        grade_id = db.execute("SELECT id FROM grades WHERE user_id = ? LIMIT 1", (students[0],)).fetchone()[0]
        school = db.execute("SELECT school_id, COUNT(*) FROM school_people WHERE school_id != '' "
                            "GROUP BY school_id ORDER BY COUNT(*) DESC LIMIT 1").fetchone()[0]
        # ('' holds the people without a school: contacts, district admins)
    mid_user = users[len(users) // 2]
    last_entry = sim.journal.raw()[-1]["id"]
    # what the inspector rows read: the journal as filled (bounded by bytes, not the cap)
    entries = len(sim.journal)
    pages = max(1, -(-entries // INSPECTOR_PER_PAGE))
    deep = min(100, pages)  # past the last page the inspector shows the last one
    il = client.post("/_sim/tokens", json={"client_id": client_id, "user_id": students[0]}
                     ).get_json()["access_token"]
    il_auth = {"Authorization": f"Bearer {il}"}

    running = start_in_thread(app)
    rows = []
    try:
        teacher = sim.store.get_record("sections", big_section)["teacher"]
        with httpx.Client(base_url=running.url, timeout=120,  # gradebooks are their teacher's
                          cookies=login_cookie(app, teacher)) as http:
            base, _ = timed(http, "/_sim/health", args.runs)
            checks = [
                ("api", "GET /v3.0/me (il token)", "/v3.0/me", il_auth),
                ("api", "GET /v3.0/users/{id}", f"/v3.0/users/{mid_user}", auth),
                ("api", "GET /v3.0/users (first page of 100)", "/v3.0/users", auth),
                ("api", "GET /v3.0/users?starting_after=(middle)", f"/v3.0/users?starting_after={mid_user}", auth),
                ("api", "GET /v3.0/users?ending_before=(middle)", f"/v3.0/users?ending_before={mid_user}", auth),
                ("api", "GET /v3.0/users?role=student&limit=1000", "/v3.0/users?role=student&limit=1000", auth),
                ("api", "GET /v2.1/teachers?starting_after=(middle)", f"/v2.1/teachers?starting_after={mid_user}", auth),
                ("api", "GET /v3.0/sections?limit=100", "/v3.0/sections?limit=100", auth),
                ("api", "GET /v3.0/schools", "/v3.0/schools", auth),
                ("api", "GET /_sim/personas (default page)", "/_sim/personas", {}),
                ("api", "GET /_sim/personas?role=teacher&starting_after=", f"/_sim/personas?role=teacher&limit=100&starting_after={mid_user}", {}),
                ("api", "GET /_sim/grades?user_id=", f"/_sim/grades?user_id={students[0]}", {}),
                ("api", "GET /_sim/grades?assignment_id=&limit=100", "/_sim/grades?assignment_id=unit05&limit=100", {}),
                ("api", "GET /_sim/grades?after_seq=(newest-100)", f"/_sim/grades?after_seq={max(0, sim.store.max_grade_seq() - 100)}", {}),
                ("api", "GET /_sim/grades/wait (already there)", f"/_sim/grades/wait?user_id={students[0]}&assignment_id=unit03&timeout=1", {}),
                ("api", "GET /_sim/grades/{id}/history", f"/_sim/grades/{grade_id}/history", {}),
                ("api", "GET /_sim/journal?limit=100", "/_sim/journal?limit=100", {}),
                ("api", "GET /_sim/journal?user_id=&limit=100", f"/_sim/journal?user_id={students[3]}&limit=100", {}),
                ("page", "Gradebook: sections list", "/schoology/gradebook", {}),
                ("page", "Gradebook: sections list, deep page", f"/schoology/gradebook?after={section_ids[len(section_ids) // 2]}", {}),
                ("page", "Gradebook: biggest section (HTML)", f"/schoology/sections/{big_section}/gradebook", {}),
                ("page", "Gradebook: biggest section (.json)", f"/schoology/sections/{big_section}/gradebook.json", {}),
                ("page", "Gradebook: biggest section (.csv)", f"/schoology/sections/{big_section}/gradebook.csv", {}),
                ("page", "Gradebook: cell detail", f"/schoology/sections/{big_section}/gradebook/{grade_id}", {}),
                ("page", f"Inspector: newest {min(INSPECTOR_PER_PAGE, entries)} of {entries:,}",
                 "/inspector", {}),
                ("page", f"Inspector: filtered by user ({entries:,} entries)",
                 f"/inspector?user={students[3]}", {}),
                ("page", f"Inspector: page {deep} of {pages}", f"/inspector?page={deep}", {}),
                ("page", "Inspector: one entry", f"/inspector/{last_entry}", {}),
                ("page", "Schoology home (switcher, biggest school)", f"/schoology?school={school}", {}),
                ("page", "Schoology home (switcher, search)", "/schoology?q=garcia", {}),
                ("page", "Login page: biggest school's people", None, {}),
            ]
            authorize = ("/oauth/authorize?response_type=code&client_id=" + client_id +
                         f"&sim_district={district}&sim_school={school}")
            for kind, label, path, headers in checks:
                if path is None:  # the picker is for someone not signed in: the teacher's
                    with httpx.Client(base_url=running.url, timeout=120) as anonymous:  # session
                        ms, size = timed(anonymous, authorize, args.runs)  # would approve at once
                else:
                    ms, size = timed(http, path, args.runs, headers=headers)
                rows.append((kind, label, ms, size))
    finally:
        running.stop()

    print(f"\nscale: {args.grades:,} grades, roster {Path(roster).name}; median of {args.runs} GETs; "
          f"baseline GET /_sim/health {base:.2f} ms")
    for kind, label, ms, size in rows:
        print(f"  {kind:4} {label:52} {ms:9.2f} ms  ×{ms / base:7.1f}  {size / 1024:8.1f} KiB")
    for kind in ("api", "page"):
        slowest = max((r for r in rows if r[0] == kind), key=lambda r: r[2])
        print(f"slowest {'API call' if kind == 'api' else 'page'}: {slowest[1]} {slowest[2]:.1f} ms "
              f"(×{slowest[2] / base:.1f} the baseline)")
    print(f"RSS at the end: {rss_mb():.0f} MB (peak {rss_mb('VmHWM'):.0f} MB)")


if __name__ == "__main__":
    main()
