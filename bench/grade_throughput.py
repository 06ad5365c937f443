"""Benchmark: start-to-ready, grade POST and /v3.0/me throughput and latency, each as a ratio
to a baseline measured in the same run.

* start-to-ready: ``clever-sim serve`` until /_sim/health answers, vs ``python -c "import flask"``;
* grade POST (il token, 500 assignments overwritten round-robin) at each ``--concurrency``
  (default 1, 32, 128), vs a bare Flask JSON endpoint on the same WSGI server (``--server``,
  default waitress; same thread count): ``bench/baseline_app.py``;
* ``GET /v3.0/me`` at ``--me-concurrency`` (default 32), vs the bare app's ``/v3.0/me``.

Rounds are interleaved (bare, simulator, bare, …) so drift hits both alike; the best round
of each is kept. The load generator (``loadgen.py``) runs in this process on the same
machine, so absolute figures depend on the machine; the ratios are what to compare.

    .venv/bin/python bench/grade_throughput.py [--seconds 4] [--rounds 2]
        [--concurrency 1 32 128] [--me-concurrency 32] [--threads 16] [--json]
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

from loadgen import LoadResult, build_request, run_load  # noqa: E402

CLIENT_ID = "b4fd885bda79813831c3"
THREADS = 16
GOAL_RATIO = 0.6          # grade POSTs at ≥ 0.6 of the bare endpoint's throughput
GOAL_P99_C32_MS = 50.0    # p99 under 50 ms at concurrency 32


def spawn(cmd: list[str], cwd: str, env: dict[str, str] | None = None
          ) -> tuple[subprocess.Popen, str, float]:
    """Start a server (``env``: its environment, default this one's); (process, url,
    seconds until /_sim/health answered)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    url = None
    for line in proc.stdout:
        match = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        raise RuntimeError(f"{cmd} did not start")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_sim/health", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.005)
    # Keep reading the server's output so a full pipe never blocks it.
    import threading
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, url, time.perf_counter() - started


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


SERVER = "waitress"  # both the simulator and the bare app (``--server``)


def sim_cmd(db: str, roster: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "simulator.cli", "serve", "--port", "0", "--db", db,
           "--threads", str(THREADS), "--server", SERVER]
    return cmd + (["--roster", roster] if roster else [])


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


def me_requests(token: str, base: str):
    raw = build_request("GET", base + "/v3.0/me", None, {"Authorization": f"Bearer {token}"})
    return lambda i: raw


def _post_json(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def student_token(sim_url: str) -> str:
    with urllib.request.urlopen(sim_url + "/_sim/personas?role=student&limit=1") as resp:
        student = json.load(resp)["data"][0]["id"]
    return _post_json(sim_url + "/_sim/tokens", {"client_id": CLIENT_ID,
                                                "user_id": student})["access_token"]


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) a process has used; None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loaded(url: str, pid: int | None, make, conc: int, seconds: float
            ) -> tuple[LoadResult, float | None]:
    """One load run and the server's CPU ms per request answered (None: not measured)."""
    before = process_cpu_s(pid) if pid else None
    result = run_load(url, make, concurrency=conc, seconds=seconds)
    after = process_cpu_s(pid) if pid else None
    if before is None or after is None or not result.requests:
        return result, None
    return result, 1000 * (after - before) / result.requests


def compare(bare_url: str, sim_url: str, make_bare, make_sim, conc: int, seconds: float,
            rounds: int, pids: tuple[int, int] | None = None) -> dict:
    """The best of ``rounds`` interleaved runs of each; with ``pids`` (bare, simulator),
    also each server's CPU per request, the median over the rounds (a loaded machine
    moves it far less than requests per second)."""
    bare_runs: list[tuple[LoadResult, float | None]] = []
    sim_runs: list[tuple[LoadResult, float | None]] = []
    for _ in range(rounds):  # interleave so drift hits both alike
        bare_runs.append(_loaded(bare_url, pids and pids[0], make_bare, conc, seconds))
        sim_runs.append(_loaded(sim_url, pids and pids[1], make_sim, conc, seconds))
    b = max((r for r, _ in bare_runs), key=lambda r: r.rps)
    s = max((r for r, _ in sim_runs), key=lambda r: r.rps)
    out = {"bare": b.summary(), "sim": s.summary(), "throughput_ratio": round(s.rps / b.rps, 3),
           "p99_ratio": round(s.pct(99) / b.pct(99), 2) if b.pct(99) else None}
    for name, runs in (("bare", bare_runs), ("sim", sim_runs)):
        cpu = [c for _, c in runs]
        out[name]["cpu_ms_per_request"] = None if None in cpu else round(statistics.median(cpu), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 32, 128],
                    help="grade POST concurrencies (none: skip grade POSTs)")
    ap.add_argument("--me-concurrency", type=int, nargs="*", default=[32],
                    help="GET /v3.0/me concurrencies (none: skip it)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=16, help="request threads, both servers")
    ap.add_argument("--server", choices=["waitress", "granian"], default="waitress",
                    help="the WSGI server of both the simulator and the bare app "
                         "(serving_layer.py compares across servers)")
    ap.add_argument("--skip-ready", action="store_true", help="skip the start-to-ready figure")
    ap.add_argument("--roster", default=None, help="roster file for the simulator (default: packaged)")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args()
    global THREADS, SERVER
    THREADS, SERVER = args.threads, args.server
    tmp = tempfile.mkdtemp(prefix="clever-sim-bench-")
    report: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    if not args.skip_ready:
        report["start_to_ready"] = start_to_ready(tmp)
    bare, bare_url, _ = spawn([sys.executable, str(HERE / "baseline_app.py"), str(THREADS),
                               "--server", SERVER], tmp)
    sim, sim_url, _ = spawn(sim_cmd(os.path.join(tmp, "bench.db"), args.roster), tmp)
    try:
        token = student_token(sim_url)
        pids = (bare.pid, sim.pid)
        report["load_at_start"] = os.getloadavg()
        report["grade_post"] = {
            f"c{conc}": compare(bare_url, sim_url, grade_requests(token, bare_url),
                                grade_requests(token, sim_url), conc, args.seconds, args.rounds,
                                pids)
            for conc in args.concurrency}
        report["me"] = {
            f"c{conc}": compare(bare_url, sim_url, me_requests(token, bare_url),
                                me_requests(token, sim_url), conc, args.seconds, args.rounds, pids)
            for conc in args.me_concurrency}
        report["load_at_end"] = os.getloadavg()
    finally:
        stop(bare)
        stop(sim)
    if args.json:
        print(json.dumps(report))
        return
    print_report(report)


def print_report(report: dict) -> None:
    m = report["machine"]
    print(f"machine: {m['cpus']} CPUs, Python {m['python']}; baseline = bare Flask on the "
          f"simulator's server ({SERVER}), same threads, same run")
    if "load_at_start" in report:
        print(f"load average {report['load_at_start'][0]:.1f} at the start of the loads, "
              f"{report['load_at_end'][0]:.1f} at the end")
    r = report.get("start_to_ready")
    if r:
        print(f"start-to-ready: simulator {r['sim_ready_s']:.3f} s; baseline `python -c 'import flask'` "
              f"{r['baseline_import_flask_s']:.3f} s; ratio {r['ratio']}")
    for title, key in (("grade POST", "grade_post"), ("GET /v3.0/me", "me")):
        for conc, row in report.get(key, {}).items():
            b, s = row["bare"], row["sim"]
            print(f"{title} {conc}: simulator {s['rps']:.0f} req/s (p50 {s['p50_ms']} ms, "
                  f"p99 {s['p99_ms']} ms, {s['errors']} errors); bare {b['rps']:.0f} req/s "
                  f"(p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms); throughput ratio "
                  f"{row['throughput_ratio']}; server CPU per request: simulator "
                  f"{s.get('cpu_ms_per_request')} ms, bare {b.get('cpu_ms_per_request')} ms")
    c32 = report.get("grade_post", {}).get("c32")
    if c32:
        ok_ratio = c32["throughput_ratio"] >= GOAL_RATIO
        ok_p99 = c32["sim"]["p99_ms"] < GOAL_P99_C32_MS
        print(f"goals at c32: ratio ≥ {GOAL_RATIO}: {'met' if ok_ratio else 'NOT met'} "
              f"({c32['throughput_ratio']}); p99 < {GOAL_P99_C32_MS:g} ms: "
              f"{'met' if ok_p99 else 'NOT met'} ({c32['sim']['p99_ms']} ms)")


if __name__ == "__main__":
    main()
