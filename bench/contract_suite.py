"""Benchmark: wall time of the contract suite against the reference partner.

Everything in one process, as ``clever-sim contract --sim-url`` runs it: the simulator and
the reference partner on waitress threads (port 0), the suite through ``run_contract``
with the *default* ``[contract]`` timings a partner gets (grade_timeout_s 10, settle 1 s).
Baselines are measured in the same run, on the same machine (these machines are noisy):

- ``python -c "import pytest"`` in a fresh interpreter (what any pytest run pays);
- N ``GET /_sim/health`` round trips on one connection (the suite's unit of work).

The figure that matters is the suite's wall time and how it compares with the baselines
(the suite's own floor is about 5.8 s of deliberate waiting: Retry-After 1 s, 1 s of storm
watching, the reference partner's doubling backoff after two runs of three 5xx in a row
(2 × 1.05 s) and two dropped connections (0.3 s, plus 0.3 s of hanging), and 1.1 s of watching for retries of
the six permanent errors; the token checks add no waiting of their own).

    .venv/bin/python bench/contract_suite.py [--rounds 3] [--health 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contract_tests.reference_partner import bind_partner, create_partner_app  # noqa: E402
from contract_tests.runner import run_contract  # noqa: E402
from simulator.app import create_app  # noqa: E402
from simulator.serving import start_in_thread  # noqa: E402

TOML = """\
[app]
name = "Reference partner (bench)"
client_id = "bench-reference"
client_secret = "bench-secret"
redirect_uris = ["{url}/clever/callback"]
assignments_url = "{url}/clever/assignments"

[contract]
complete_assignment_hook = "{url}/test-hooks/complete"
landing_url_pattern = "/assignments/{{assignment_id}}"
"""


def import_pytest_s() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pytest"], check=True)
    return time.perf_counter() - started


def health_loop_s(url: str, n: int) -> float:
    with httpx.Client(trust_env=False, timeout=5) as client:
        client.get(url + "/_sim/health")
        started = time.perf_counter()
        for _ in range(n):
            client.get(url + "/_sim/health").raise_for_status()
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="suite runs (default 3)")
    parser.add_argument("--health", type=int, default=200, help="health round trips (default 200)")
    args = parser.parse_args()

    sim = start_in_thread(create_app({"DB": ":memory:"}, environ={}))
    partner = bind_partner(create_partner_app({
        "CLEVER_URL": sim.url, "API_URL": sim.url, "GRADES_URL": sim.url,
        "CLIENT_ID": "bench-reference", "CLIENT_SECRET": "bench-secret"}), "127.0.0.1", 0).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            toml = Path(tmp) / "partner.toml"
            toml.write_text(TOML.format(url=partner.url), encoding="utf-8")
            import_s = [import_pytest_s() for _ in range(3)]
            health_s = [health_loop_s(sim.url, args.health) for _ in range(3)]
            warm = time.perf_counter()  # imports and first-use costs, reported apart
            run_contract(str(toml), sim_url=sim.url, only="ASSIGN-001", emit=lambda line: None)
            warm_s = time.perf_counter() - warm
            runs = []
            for _ in range(args.rounds):
                result = run_contract(str(toml), sim_url=sim.url, emit=lambda line: None)
                if result.exit_code != 0:
                    print(result.output)
                    print("the reference partner did not pass: the benchmark is void")
                    return 1
                runs.append(result)
    finally:
        partner.stop()
        sim.stop()

    suite = [r.seconds for r in runs]
    median = statistics.median(suite)
    imp = statistics.median(import_s)
    hl = statistics.median(health_s)
    print(f"contract suite vs reference partner: {len(runs[0].results)} checks, {args.rounds} rounds")
    print(f"  suite wall time     median {median:6.2f} s   (min {min(suite):.2f}, max {max(suite):.2f}; "
          f"after a warm-up run of {warm_s:.2f} s)")
    print(f"  baseline: python -c 'import pytest'   {imp:6.3f} s  → suite = {median / imp:5.1f}×")
    print(f"  baseline: {args.health} × GET /_sim/health    {hl:6.3f} s  → suite = {median / hl:5.1f}× "
          f"({hl / args.health * 1000:.2f} ms per round trip)")
    last = runs[-1].results
    slowest = sorted(last, key=lambda r: r.duration_s, reverse=True)[:6]
    print("  slowest checks (last round): " + ", ".join(f"{r.id} {r.duration_s:.2f} s" for r in slowest))
    waits = sum(r.duration_s for r in last)
    print(f"  time inside checks {waits:.2f} s; runner + pytest overhead "
          f"{runs[-1].seconds - waits:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
