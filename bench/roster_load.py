"""Benchmark: loading a sandbox-size roster — generation, first start, restart — time and memory,
each as a ratio to a baseline measured in the same run.

* generate: ``clever-sim fixtures generate`` with Clever's sandbox counts (239 schools,
  8,400 teachers, 56,600 students, 20,000 sections, ~460,000 enrollments);
* first start: ``clever-sim serve --roster big.json`` on a fresh database, until
  ``/_sim/health`` answers (parse, check, store);
* restart: the same command on the same database (the file's digest matches: nothing is
  parsed, checked or written);
* first start from the roster cache: ``--roster-cache DIR`` filled by one first start (also
  timed), then a fresh database each time (a CI job or a container with the cache restored);
* memory: the server's RSS once ready and its peak (VmHWM), from /proc.

Baselines: ``python -c "import flask"`` (time) and ``clever-sim serve`` with the packaged
two-district roster (time and memory).

    .venv/bin/python bench/roster_load.py [--roster big.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from grade_throughput import sim_cmd, spawn, stop  # noqa: E402

SANDBOX_ARGS = ["--schools", "239", "--teachers", "8400", "--students", "56600",
                "--sections", "20000", "--seed", "1"]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used: the machine is shared, so wall time
    alone says more about the neighbours than about the work."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(line.split()[1]) / 1024
    return values["VmRSS"], values["VmHWM"]


def start(cmd: list[str], tmp: str) -> tuple[float, float, float, float]:
    """(seconds to ready, RSS MB once ready, peak RSS MB, CPU s to ready) of one server start."""
    proc, _, ready = spawn(cmd, tmp)
    try:
        cpu = cpu_s(proc.pid)
        time.sleep(0.2)
        rss, hwm = memory_mb(proc.pid)
    finally:
        stop(proc)
    return ready, rss, hwm, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roster", default=None, help="an existing roster (default: generate one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cache", action="store_true",
                        help="skip the roster cache rows (a checkout without --roster-cache)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="clever-sim-roster-bench-")
    roster = args.roster
    gen_s = None
    if roster is None:
        roster = os.path.join(tmp, "big.json")
        started = time.perf_counter()
        with open(roster, "wb") as out:
            subprocess.run([sys.executable, "-m", "simulator.cli", "fixtures", "generate",
                            *SANDBOX_ARGS], stdout=out, stderr=subprocess.DEVNULL, check=True,
                           cwd=HERE.parent)
        gen_s = time.perf_counter() - started
    size_mb = os.path.getsize(roster) / 2**20

    flask_s = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import flask"], check=True)
        flask_s.append(time.perf_counter() - t0)
    default = [start(sim_cmd(os.path.join(tmp, f"default{i}.db")), tmp) for i in range(args.repeats)]
    first, again = [], []
    for i in range(args.repeats):
        db = os.path.join(tmp, f"big{i}.db")
        first.append(start(sim_cmd(db, roster), tmp))
        again.append(start(sim_cmd(db, roster), tmp))
    db_mb = os.path.getsize(os.path.join(tmp, "big0.db")) / 2**20
    cache = os.path.join(tmp, "cache")
    cached, fill = [], None
    if not args.no_cache:
        fill = start(sim_cmd(os.path.join(tmp, "fill.db"), roster) + ["--roster-cache", cache], tmp)
        for i in range(args.repeats):
            cached.append(start(sim_cmd(os.path.join(tmp, f"cached{i}.db"), roster)
                                + ["--roster-cache", cache], tmp))
    shutil.rmtree(tmp, ignore_errors=True)

    def med(rows, k):
        return statistics.median(r[k] for r in rows)

    base_t = statistics.median(flask_s)
    print(f"roster: {size_mb:.0f} MB of JSON ({'generated in %.1f s' % gen_s if gen_s else roster}); "
          f"database {db_mb:.0f} MB; median of {args.repeats}")
    print(f"  baseline python -c 'import flask'          {base_t:7.2f} s")
    print(f"  baseline serve, default roster             {med(default, 0):7.2f} s  ×{med(default, 0) / base_t:6.1f}   "
          f"CPU {med(default, 3):6.2f} s   RSS {med(default, 1):6.0f} MB (peak {med(default, 2):.0f})")

    def row(label, rows):
        t = med(rows, 0)
        print(f"  {label:<43}{t:7.2f} s  ×{t / base_t:6.1f}   CPU {med(rows, 3):6.2f} s   "
              f"RSS {med(rows, 1):6.0f} MB (peak {med(rows, 2):.0f}) = ×{med(rows, 1) / med(default, 1):.1f} "
              f"the default's RSS")

    row("first start, sandbox roster", first)
    row("restart on the same database", again)
    if fill is not None:
        row("first start filling the roster cache", [fill])
        row("first start from the roster cache", cached)


if __name__ == "__main__":
    main()
