"""Benchmark of the serving layer (issue 17, item 1): the simulator on granian and on waitress,
a bare Flask app on granian, and a plain WSGI app on granian (``raw-granian``: parse the
JSON body, answer it; ``raw_app.py``, the true serving ceiling; ``busy-granian``: the same
app spinning, per grade POST, the CPU a grade POST costs the simulator in process, measured
by ``grade_floor.py`` at the start: the best any server could do with the simulator's work;
``durable-granian``: the same app writing each grade as one autocommit UPSERT into a WAL file
before answering, the floor of any design that stores an acknowledged grade in SQLite;
``durable-sim-granian``: the same into the simulator's own grade tables with its own
statements and triggers, no other work), each as a ratio to a bare Flask app on waitress measured in interleaved pairs in the same run.

Figures (the issue's table): grade POST throughput at c32 and c1, p99 latency at c32,
``GET /v3.0/me`` throughput at c32; and for each, the server's CPU per request (its process
CPU seconds over the requests answered, from /proc on Linux), which a loaded machine
disturbs far less than requests per second, and its context switches per request (every
thread's, from /proc: the thread hand-offs a request costs). Every target runs in its own process started
here (``clever-sim serve --server NAME``, ``bench/baseline_app.py --server NAME``,
``bench/raw_app.py``, 16 threads); the load comes from ``wrk`` (C, two threads) when it is installed, else from
``loadgen.py``. Each figure is the median over ``--pairs`` pairs (baseline, target,
baseline, target, …).

``--before TREE`` adds ``before-granian`` (and ``before-waitress`` with ``sim-waitress``):
the simulator of another checkout (``git worktree add /tmp/base main``) run with
PYTHONPATH=TREE, so before and after are measured in the same run against the same
baseline.

    .venv/bin/python bench/serving_layer.py [--pairs 5] [--seconds 3] [--json]
        [--targets sim-granian sim-waitress bare-granian raw-granian busy-granian durable-granian
         durable-sim-granian] [--before /tmp/base]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from grade_throughput import process_cpu_s, spawn, stop, student_token  # noqa: E402
from loadgen import build_request, run_load  # noqa: E402

THREADS = 16
# The issue's baseline is ``waitress-serve --threads=8`` (issue 17's table); ``--baseline-threads``
# changes it (rounds before 2026-12-08 used 16).
BASELINE_THREADS = 8
TARGETS = {  # name: command line (the baseline is bare-waitress)
    "bare-waitress": lambda tmp: [sys.executable, str(HERE / "baseline_app.py"),
                                  str(BASELINE_THREADS), "--server", "waitress"],
    "bare-granian": lambda tmp: [sys.executable, str(HERE / "baseline_app.py"), str(THREADS),
                                 "--server", "granian"],
    # the serving ceiling: a plain WSGI app (parse the JSON body, answer) on the same wrapper
    "raw-granian": lambda tmp: [sys.executable, str(HERE / "raw_app.py"), str(THREADS)],
    # the floor with the simulator's work: the same app spinning the in-process CPU of a
    # grade POST (``grade_floor.py``, measured at the start of the run) before answering
    "busy-granian": lambda tmp: [sys.executable, str(HERE / "raw_app.py"), str(THREADS),
                                 "--busy-us", str(FLOOR_US)],
    # the floor of a durable grade: the plain app writing each grade as one autocommit
    # UPSERT into a WAL file before answering (the simulator's promise to an acknowledged grade)
    "durable-granian": lambda tmp: [sys.executable, str(HERE / "raw_app.py"), str(THREADS),
                                    "--durable", os.path.join(tmp, "durable.db")],
    # the same with the simulator's own grade tables, triggers and statements
    "durable-sim-granian": lambda tmp: [sys.executable, str(HERE / "raw_app.py"), str(THREADS),
                                        "--durable-sim", os.path.join(tmp, "durable-sim.db")],
    "sim-granian": lambda tmp: _sim(tmp, "granian"),
    "sim-waitress": lambda tmp: _sim(tmp, "waitress"),
}
FLOOR_US = 0.0  # the in-process CPU µs of a grade POST (``grade_floor.py``), set by main()
GOALS = {"grade_c32": 2.0, "grade_c1": 1.5, "me_c32": 1.5}  # throughput ratios; p99: ≤ 1.0

WRK_GRADE = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"assignmentID": "bench%d", "percentage": %.2f}', counter % 500, (counter % 100) / 100)
  return wrk.format("POST", "/v1/grade", {["Authorization"] = "Bearer TOKEN",
    ["Content-Type"] = "application/json"}, body)
end
"""
WRK_ME = """
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer TOKEN"
"""


def _sim(tmp: str, server: str, tag: str = "sim") -> list[str]:
    return [sys.executable, "-m", "simulator.cli", "serve", "--port", "0", "--threads",
            str(THREADS), "--server", server, "--db", os.path.join(tmp, f"bench-{tag}-{server}.db")]


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, path: str, script: str, conc: int, seconds: float) -> dict:
    """One wrk run: requests/s, requests, p99 ms, errors (non-2xx and socket errors)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run(["wrk", "-t", str(min(2, conc)), "-c", str(conc), "-d",
                              f"{max(1, round(seconds))}s", "--latency", "-s", fh.name, url + path],
                             capture_output=True, text=True, timeout=seconds + 30)
    finally:
        os.unlink(fh.name)
    if "Requests/sec" not in out.stdout:
        raise RuntimeError(f"wrk failed: {out.stdout}{out.stderr}")
    out = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": done, "p99_ms": p99,
            "errors": errors + (int(bad.group(1)) if bad else 0)}


def run_loadgen(url: str, path: str, token: str, conc: int, seconds: float) -> dict:
    """The same figures from the asyncio load generator (when wrk is missing)."""
    auth = {"Authorization": f"Bearer {token}"}
    if path == "/v1/grade":
        def make(i: int) -> bytes:
            body = {"assignmentID": f"bench{i % 500}", "percentage": (i % 100) / 100}
            return build_request("POST", url + path, body, auth)
    else:
        raw = build_request("GET", url + path, None, auth)
        make = lambda i: raw  # noqa: E731
    result = run_load(url, make, concurrency=conc, seconds=seconds)
    return {"rps": result.rps, "requests": result.requests, "p99_ms": result.pct(99),
            "errors": result.errors}


def run_one(url: str, pid: int, path: str, token: str, conc: int, seconds: float,
            tool: str) -> dict:
    """One load run on one server, with the server's CPU per request (ms; None off Linux)."""
    before, switched = process_cpu_s(pid), context_switches(pid)
    if tool == "wrk":
        script = (WRK_GRADE if path == "/v1/grade" else WRK_ME).replace("TOKEN", token)
        result = run_wrk(url, path, script, conc, seconds)
    else:
        result = run_loadgen(url, path, token, conc, seconds)
    after, switched_after = process_cpu_s(pid), context_switches(pid)
    result["cpu_ms"] = (1000 * (after - before) / result["requests"]
                        if before is not None and after is not None and result["requests"] else None)
    result["switches"] = ((switched_after - switched) / result["requests"]
                          if switched is not None and switched_after is not None
                          and result["requests"] else None)
    return result


def context_switches(pid: int) -> int | None:
    """Context switches (voluntary and not) of every thread of a process so far: each GIL
    hand-off between the server's threads is one or two; None off Linux."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/status") as fh:
                total += sum(int(line.split()[1]) for line in fh
                             if line.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")))
        except OSError:  # the thread ended meanwhile
            continue
    return total


def measure(servers: dict[str, tuple[str, int]], tokens: dict[str, str], pairs: int,
            seconds: float, tool: str) -> dict:
    """Every figure for the baseline and its targets (``servers``: name -> (url, pid),
    baseline first; ``tokens``: each target's bearer token), interleaved."""
    loads = {"grade_c32": ("/v1/grade", 32), "grade_c1": ("/v1/grade", 1),
             "me_c32": ("/v3.0/me", 32)}
    out: dict = {}
    for figure, (path, conc) in loads.items():
        runs: dict[str, list[dict]] = {name: [] for name in servers}
        for _ in range(pairs):
            for who, (url, pid) in servers.items():  # the baseline, then the target: pair after pair
                runs[who].append(run_one(url, pid, path, tokens.get(who, "bare"), conc,
                                         seconds, tool))
        out[figure] = {name: {"rps": statistics.median(r["rps"] for r in rs),
                              "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                              "cpu_ms": _median_or_none([r["cpu_ms"] for r in rs]),
                              "switches": _median_or_none([r["switches"] for r in rs]),
                              "errors": sum(r["errors"] for r in rs)} for name, rs in runs.items()}
    return out


def _median_or_none(values: list[float | None]) -> float | None:
    return None if None in values else statistics.median(values)


def main() -> None:
    global BASELINE_THREADS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--targets", nargs="*",
                    default=["sim-granian", "sim-waitress", "bare-granian", "raw-granian",
                             "busy-granian"],
                    choices=[t for t in TARGETS if t != "bare-waitress"])
    ap.add_argument("--before", metavar="TREE", default=None,
                    help="also measure the simulator of this checkout (PYTHONPATH=TREE)")
    ap.add_argument("--busy-us", type=float, nargs="*", default=[], metavar="US",
                    help="also the plain app spinning each of these CPU µs per grade POST "
                         "(targets busy-US): how much work per grade each goal allows")
    ap.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--baseline-threads", type=int, default=BASELINE_THREADS,
                    help="threads of the bare-Flask-on-waitress baseline (the issue's: 8)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    BASELINE_THREADS = args.baseline_threads
    tool = "wrk" if args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk")) \
        else "python"
    # Measured together, round by round (baseline, then each of the group): with --before,
    # the other checkout's simulator beside ours on the same server.
    groups = [[f"before-{name[4:]}", name] if args.before and name.startswith("sim-") else [name]
              for name in args.targets]
    for us in args.busy_us:  # the plain app with a fixed amount of work per grade POST
        name = f"busy-{us:g}us"
        TARGETS[name] = lambda tmp, us=us: [sys.executable, str(HERE / "raw_app.py"),
                                            str(THREADS), "--busy-us", str(us)]
        groups.append([name])
    targets = [name for group in groups for name in group]
    load_at_start = os.getloadavg()
    floor = None
    if "busy-granian" in targets:
        global FLOOR_US
        import grade_floor
        floor = grade_floor.measure(1000, 3)
        FLOOR_US = floor["grade"]
    tmp = tempfile.mkdtemp(prefix="clever-sim-bench-")
    procs, servers = [], {}
    try:
        for name in ["bare-waitress", *targets]:
            if name.startswith("before-"):
                cmd = _sim(tmp, name.split("-", 1)[1], "before")
                env = dict(os.environ, PYTHONPATH=os.path.abspath(args.before))
            else:
                cmd, env = TARGETS[name](tmp), None
            proc, url, _ = spawn(cmd, tmp, env)
            procs.append(proc)
            servers[name] = (url, proc.pid)
        figures: dict = {}
        for group in groups:  # each simulator has its own database: its own token
            tokens = {name: student_token(servers[name][0])
                      if name.startswith(("sim-", "before-")) else "bare" for name in group}
            part = measure({"bare-waitress": servers["bare-waitress"],
                            **{name: servers[name] for name in group}},
                           tokens, args.pairs, args.seconds, tool)
            for figure, by_name in part.items():
                for name in group:
                    figures.setdefault(figure, {}).update(
                        {name: by_name[name],
                         f"bare-waitress (paired with {name})": by_name["bare-waitress"]})
    finally:
        for proc in procs:
            stop(proc)
    report = {"load_at_start": load_at_start, "load": os.getloadavg(), "tool": tool,
              "baseline_threads": BASELINE_THREADS,
              "pairs": args.pairs, "seconds": args.seconds, "before": args.before,
              "floor_us": floor, "figures": figures}
    report["ratios"] = {name: _pair_ratios(figures, name) for name in targets}
    if args.json:
        print(json.dumps(report))
        return
    print(f"load average {load_at_start[0]:.1f} at the start, {report['load'][0]:.1f} at the end, "
          f"on {os.cpu_count()} CPUs; load from {tool}; median of {args.pairs} interleaved pairs "
          f"of {args.seconds:g} s; baseline = bare Flask on waitress ({BASELINE_THREADS} threads)"
          + (f"; before-* = the simulator of {args.before}" if args.before else ""))
    if floor:
        print(f"in process (grade_floor.py, CPU µs): grade POST {floor['grade']}, save_grade "
              f"{floor['save_grade']}, its SQL transaction {floor['txn']}, raw app "
              f"{floor['raw']}; busy-granian spins {FLOOR_US} µs per grade POST")
    print("| target | grade POST c32 | grade POST c1 | p99 at c32 | /v3.0/me c32 |")
    print("|---|---|---|---|---|")
    for name, r in report["ratios"].items():
        print(f"| {name} | {r['grade_c32']} | {r['grade_c1']} | {r['p99_c32']} | {r['me_c32']} |")
    print("server CPU per request, ms (the paired baseline's in brackets):")
    print("| target | grade POST c32 | grade POST c1 | /v3.0/me c32 |")
    print("|---|---|---|---|")
    for name in targets:
        cells = [_cpu_cell(figures[figure], name) for figure in ("grade_c32", "grade_c1", "me_c32")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("server context switches per request, all its threads (the paired baseline's in "
          "brackets):")
    print("| target | grade POST c32 | grade POST c1 | /v3.0/me c32 |")
    print("|---|---|---|---|")
    for name in targets:
        cells = [_cpu_cell(figures[figure], name, "switches", "{:.2f}")
                 for figure in ("grade_c32", "grade_c1", "me_c32")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("absolute (req/s; p99 ms):")
    for figure, by_name in figures.items():
        print(f"  {figure}: " + "; ".join(f"{n} {f['rps']:.0f} ({f['p99_ms']:.1f} ms, "
                                           f"{f['errors']} errors)" for n, f in by_name.items()))
    sim = report["ratios"].get("sim-granian")
    if sim:
        met = [f"{k} {'met' if sim[k] >= goal else 'NOT met'} ({sim[k]} vs ≥ {goal})"
               for k, goal in GOALS.items()]
        met.append(f"p99_c32 {'met' if sim['p99_c32'] <= 1.0 else 'NOT met'} ({sim['p99_c32']} vs ≤ 1.0)")
        print("goals (sim-granian): " + "; ".join(met))


def _cpu_cell(by_name: dict, name: str, key: str = "cpu_ms", fmt: str = "{:.3f}") -> str:
    mine, base = by_name[name][key], by_name[f"bare-waitress (paired with {name})"][key]
    if mine is None or base is None:
        return "n/a"
    return f"{fmt.format(mine)} ({fmt.format(base)})"


def _pair_ratios(figures: dict, name: str) -> dict:
    """``name``'s figures over the baseline runs paired with it."""
    out = {}
    for figure, by_name in figures.items():
        f, base = by_name[name], by_name[f"bare-waitress (paired with {name})"]
        out[figure] = round(f["rps"] / base["rps"], 2)
        if figure == "grade_c32":
            out["p99_c32"] = round(f["p99_ms"] / base["p99_ms"], 2)
    return out


if __name__ == "__main__":
    main()
