"""Benchmark: grade POST throughput and latency vs a bare Flask endpoint, and start-to-ready.

Both servers run in the same run on the same WSGI server (waitress, same thread count) and
get the same load; the figure that matters is the ratio (these machines are noisy).

    .venv/bin/python bench/grade_throughput.py [--seconds 4] [--concurrency 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from loadgen import build_request, run_load  # noqa: E402

CLIENT_ID = "b4fd885bda79813831c3"


def spawn(cmd: list[str], cwd: str) -> tuple[subprocess.Popen, str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = None
    for line in proc.stdout:
        match = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        raise RuntimeError(f"{cmd} did not start")
    while True:
        try:
            with urllib.request.urlopen(url + "/_sim/health", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.005)
    return proc, url, time.perf_counter() - started


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


THREADS = 16


def sim_cmd(db: str) -> list[str]:
    return [sys.executable, "-m", "simulator.cli", "serve", "--port", "0", "--db", db,
            "--threads", str(THREADS)]


def start_to_ready(tmp: str, repeats: int = 5) -> dict:
    sims, bases = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import flask"], check=True)
        bases.append(time.perf_counter() - t0)
        proc, _, ready = spawn(sim_cmd(":memory:"), tmp)
        stop(proc)
        sims.append(ready)
    sim_s, base_s = statistics.median(sims), statistics.median(bases)
    return {"sim_ready_s": round(sim_s, 3), "baseline_import_flask_s": round(base_s, 3),
            "ratio": round(sim_s / base_s, 2)}


def grade_requests(token: str, base: str):
    def make(i: int) -> bytes:
        body = {"assignmentID": f"bench{i % 500}", "percentage": (i % 100) / 100}
        return build_request("POST", base + "/v1/grade", body, {"Authorization": f"Bearer {token}"})
    return make


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[32])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=16, help="waitress threads, both servers")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads
    tmp = tempfile.mkdtemp(prefix="clever-sim-bench-")
    report: dict = {"start_to_ready": start_to_ready(tmp)}
    bare, bare_url, _ = spawn([sys.executable, str(HERE / "bare_app.py"), str(THREADS)], tmp)
    sim, sim_url, _ = spawn(sim_cmd(os.path.join(tmp, "bench.db")), tmp)
    try:
        req = urllib.request.Request(sim_url + "/_sim/personas?role=student")
        student = json.load(urllib.request.urlopen(req))["data"][0]["id"]
        req = urllib.request.Request(sim_url + "/_sim/tokens", method="POST",
                                     data=json.dumps({"client_id": CLIENT_ID, "user_id": student}).encode(),
                                     headers={"Content-Type": "application/json"})
        token = json.load(urllib.request.urlopen(req))["access_token"]
        report["grade_post"] = {}
        for conc in args.concurrency:
            bare_runs, sim_runs = [], []
            for _ in range(args.rounds):  # interleave so drift hits both alike
                bare_runs.append(run_load(bare_url, grade_requests(token, bare_url), concurrency=conc,
                                          seconds=args.seconds))
                sim_runs.append(run_load(sim_url, grade_requests(token, sim_url), concurrency=conc,
                                         seconds=args.seconds))
            b = max(bare_runs, key=lambda r: r.rps)
            s = max(sim_runs, key=lambda r: r.rps)
            report["grade_post"][f"c{conc}"] = {"bare": b.summary(), "sim": s.summary(),
                                                "throughput_ratio": round(s.rps / b.rps, 3)}
    finally:
        stop(bare)
        stop(sim)
    if args.json:
        print(json.dumps(report))
        return
    r = report["start_to_ready"]
    print(f"start-to-ready: simulator {r['sim_ready_s']:.3f} s; baseline `python -c 'import flask'` "
          f"{r['baseline_import_flask_s']:.3f} s; ratio {r['ratio']}")
    for key, row in report["grade_post"].items():
        b, s = row["bare"], row["sim"]
        print(f"grade POST {key}: simulator {s['rps']:.0f} req/s (p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
              f"{s['errors']} errors); bare Flask {b['rps']:.0f} req/s (p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms); "
              f"ratio {row['throughput_ratio']}")


if __name__ == "__main__":
    main()
