"""Benchmark: the gradebook of a full section — 40 students × 60 linked assignments, a grade in
every cell (2,400 grades) — against a baseline measured in the same run (GET /_sim/health).

The roster is generated here (the default fixture's district, school, term and app, plus one
teacher and 40 students in one section); assignments are linked through the control API and
every grade is POSTed to /v1/grade, so the records are the real thing.  The server is the
real one (waitress, in a thread); each figure is the median of ``--runs`` GETs.

``--rejected N`` then times the page with N rejected grade POSTs journaled (one student
after another, one assignment; the journal's caps raised to hold them all) against the same
page with one rejected POST per student journaled: both pages show the same rejections, and
the page reads the journal's index of them by student, so the ratio should stay near 1
however long the journal is.

    .venv/bin/python bench/gradebook_scale.py [--runs 20] [--students 40] [--assignments 60]
                                              [--rejected 10000]
"""

from __future__ import annotations

import argparse
import copy
import json
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
from simulator.roster import default_roster_path  # noqa: E402
from simulator.serving import start_in_thread  # noqa: E402
from simulator.web import login_cookie  # noqa: E402

FIRST = ["Ava", "Ben", "Chloé", "Diego", "Emma", "Farah", "Gus", "Hana", "Ivan", "Jade"]
LAST = ["Ng", "Núñez", "Okafor", "Patel", "Quinn", "Rossi", "Smith", "Tanaka", "Ueda", "Vega",
        "Walsh", "Xu", "Young", "Zhou", "Adams", "Brown", "Costa", "Dubois", "Evans", "Fischer"]


def object_id(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(24))


def build_roster(n_students: int, rng: random.Random) -> tuple[dict, str]:
    """The default fixture trimmed to its first district, plus a generated section."""
    doc = json.loads(Path(default_roster_path()).read_text(encoding="utf-8"))
    district = doc["districts"][0]
    school = next(s for s in doc["schools"] if s["district"] == district["id"])
    template = next(s for s in doc["sections"] if s["district"] == district["id"])
    student_tpl = next(u for u in doc["users"] if "student" in u["roles"]
                       and u["district"] == district["id"])
    teacher = next(u for u in doc["users"] if "teacher" in u["roles"]
                   and u["district"] == district["id"])
    students = []
    for i in range(n_students):
        u = copy.deepcopy(student_tpl)
        u["id"] = object_id(rng)
        u["name"] = {"first": FIRST[i % len(FIRST)], "last": f"{LAST[i % len(LAST)]}{i // len(LAST) or ''}"}
        u["email"] = f"bench{i}@example.org"
        role = u["roles"]["student"]
        role["school"], role["schools"] = school["id"], [school["id"]]
        for key in ("sis_id", "state_id", "student_number"):
            if key in role:
                role[key] = f"B{i:05d}"
        students.append(u)
    section = copy.deepcopy(template)
    section.update(id=object_id(rng), name="Bench section – Period 9", school=school["id"],
                   teacher=teacher["id"], teachers=[teacher["id"]],
                   students=[u["id"] for u in students], section_number="BENCH-09",
                   sis_id="BENCH-09")
    doc["users"] = doc["users"] + students
    doc["sections"] = doc["sections"] + [section]
    return doc, section["id"]


def timed(http: httpx.Client, path: str, runs: int) -> float:
    """Median milliseconds of ``runs`` GETs (after one warm-up)."""
    assert http.get(path).status_code == 200, path
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        resp = http.get(path)
        samples.append((time.perf_counter() - started) * 1000)
        assert resp.status_code == 200, (path, resp.status_code)
    return statistics.median(samples)


def journal_growth(http: httpx.Client, sim, section: dict, auth: dict,
                   args: argparse.Namespace) -> tuple[float, float, float, int]:
    """(page ms with each student's rejected POST journaled once, with ``args.rejected``
    rejected POSTs journaled, health ms, entries held). Both pages show the same rejections
    (one per student, on the first assignment; only the counts differ), so the ratio is
    what the journal's length costs. The two journals alternate, so drift cancels out."""
    path = f"/schoology/sections/{section['id']}/gradebook"
    students = section["students"]

    def reject(n: int) -> list:
        sim.journal.clear()
        for i in range(n):  # 80 (percent, not a fraction): a 400, journaled
            resp = http.post("/v1/grade", headers=auth, json={
                "assignmentID": "bench000", "userID": students[i % len(students)],
                "percentage": 80})
            assert resp.status_code == 400, resp.text
        return sim.journal.raw()

    short, long = reject(len(students)), reject(max(args.rejected, len(students)))
    shorts, longs, healths = [], [], []
    for _ in range(3):
        for kept, out in ((long, longs), (short, shorts)):
            sim.journal.clear()
            for entry in kept:
                sim.journal.add(entry)
            out.append(timed(http, path, args.runs))
        healths.append(timed(http, "/_sim/health", args.runs))
    return (statistics.median(shorts), statistics.median(longs), statistics.median(healths),
            len(long))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--assignments", type=int, default=60)
    parser.add_argument("--rejected", type=int, default=0,
                        help="then time the page with this many rejected grade POSTs journaled")
    args = parser.parse_args()
    rng = random.Random(7)

    with tempfile.TemporaryDirectory() as tmp:
        roster, section_id = build_roster(args.students, rng)
        roster_file = Path(tmp) / "roster.json"
        roster_file.write_text(json.dumps(roster), encoding="utf-8")
        cfg = {"DB": str(Path(tmp) / "bench.db"), "ROSTER": str(roster_file), "SECRET_KEY": "bench"}
        if args.rejected:  # hold every rejected POST (a grade POST's entry is ~3.4 KB)
            cfg.update(JOURNAL_CAP=max(10_000, args.rejected + 100),
                       JOURNAL_MAX_MB=max(4, args.rejected * 8 // 1024 + 1))
        app = create_app(cfg, environ={})
        running = start_in_thread(app)
        try:
            sim = app.extensions["clever_sim"]
            client_id = sim.roster["apps"][0]["client_id"]
            section = sim.store.get_record("sections", section_id)
            token = sim.store.district_tokens(client_id, section["district"])[0].access_token
            started = time.perf_counter()
            teacher = login_cookie(app, section["teacher"])  # the gradebook is the teacher's
            with httpx.Client(base_url=running.url, timeout=30, cookies=teacher) as http:
                for i in range(args.assignments):
                    resp = http.post("/_sim/links", json={
                        "section_id": section_id, "client_id": client_id,
                        "assignment_id": f"bench{i:03d}", "name": f"Assignment {i + 1}",
                        "max_points": rng.choice([10, 20, 25, 50, 100])})
                    assert resp.status_code == 201, resp.text
                auth = {"Authorization": f"Bearer {token}"}
                for student in section["students"]:
                    for i in range(args.assignments):
                        resp = http.post("/v1/grade", headers=auth, json={
                            "assignmentID": f"bench{i:03d}", "userID": student,
                            "percentage": rng.randint(0, 1000) / 1000})
                        assert resp.status_code == 200, resp.text
                setup_s = time.perf_counter() - started
                cells = len(http.get(f"/schoology/sections/{section_id}/gradebook.json").json()["cells"])
                assert cells == args.students * args.assignments, cells

                base = timed(http, "/_sim/health", args.runs)
                page = timed(http, f"/schoology/sections/{section_id}/gradebook", args.runs)
                export = timed(http, f"/schoology/sections/{section_id}/gradebook.json", args.runs)
                csv_ms = timed(http, f"/schoology/sections/{section_id}/gradebook.csv", args.runs)
                page_bytes = len(http.get(f"/schoology/sections/{section_id}/gradebook").content)
                if args.rejected:
                    rejected = journal_growth(http, sim, section, auth, args)
        finally:
            time.sleep(0.2)  # let the last keep-alive connection finish before closing
            running.stop()

    print(f"gradebook scale: {args.students} students × {args.assignments} assignments = "
          f"{cells} graded cells (setup {setup_s:.1f} s); median of {args.runs} GETs")
    print(f"  baseline GET /_sim/health      {base:8.2f} ms")
    print(f"  GET gradebook page (HTML)      {page:8.2f} ms  ×{page / base:7.1f}  ({page_bytes / 1024:.0f} KiB)")
    print(f"  GET gradebook.json export      {export:8.2f} ms  ×{export / base:7.1f}")
    print(f"  GET gradebook.csv export       {csv_ms:8.2f} ms  ×{csv_ms / base:7.1f}")
    if args.rejected:
        short, long, health, held = rejected
        print(f"  one rejected grade POST per student on the page, journaled once or {held:,} "
              f"times in all (median of 3 × {args.runs}, alternating):")
        print(f"    gradebook page, {args.students:>6,} entries   {short:8.2f} ms  ×{short / health:7.1f} health")
        print(f"    gradebook page, {held:>6,} entries   {long:8.2f} ms  ×{long / health:7.1f} health"
              f"  ×{long / short:5.2f} the short journal's page")


if __name__ == "__main__":
    main()
