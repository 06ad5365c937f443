"""Soak: a `clever-sim serve` under steady mixed load for a long time, its RSS sampled along
the way — memory must stay flat (the journal, caches and history are capped or paged).

The load (``--rate`` requests a second, spread over ``--connections`` keep-alive
connections) mixes what a partner's CI and a person at the pages do:

* grade POSTs (il tokens of 200 students × 50 assignments: overwrites and new grades),
* ``GET /v3.0/me``, ``/v3.0/users?limit=100`` and ``?limit=1000`` (big answers: the
  journal keeps 16 KiB of each), ``/v3.0/sections``,
* ``POST /_sim/codes`` + ``POST /oauth/tokens`` (new codes and tokens every time),
* ``GET /_sim/journal?limit=50``, the inspector, a section's gradebook, a grade's history.

RSS is read from /proc every ``--sample-s`` seconds; the report gives the RSS after the
warm-up (``--warmup-min``, default 5: the journal and SQLite's caches fill first; "before"),
at the end ("after") and the highest sample, plus the same figures for a baseline: the
bare Flask app under the same rate (its two endpoints).

    .venv/bin/python bench/soak.py [--minutes 60] [--rate 150] [--roster FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from grade_throughput import CLIENT_ID, _post_json, sim_cmd, spawn, stop  # noqa: E402
from loadgen import _read_response, build_request  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url) as resp:
        return json.load(resp)


def setup(sim_url: str) -> tuple[list, dict]:
    """Tokens, a section with a linked assignment, and the request makers of the mix."""
    students = _get_json(sim_url + "/_sim/personas?role=student&limit=200")["data"]
    tokens = [_post_json(sim_url + "/_sim/tokens", {"client_id": CLIENT_ID, "user_id": s["id"]})
              ["access_token"] for s in students]
    district = students[0]["district"]
    listing = urllib.request.Request(sim_url + f"/oauth/tokens?owner_type=district&district={district}")
    apps = _get_json(sim_url + "/_sim/apps")["data"]
    secret = next(a["client_secret"] for a in apps if a["client_id"] == CLIENT_ID)
    import base64
    listing.add_header("Authorization", "Basic " + base64.b64encode(
        f"{CLIENT_ID}:{secret}".encode()).decode())
    with urllib.request.urlopen(listing) as resp:
        dtoken = json.load(resp)["data"][0]["access_token"]
    section = next(s for s in students if s["sections"])["sections"][0]
    _post_json(sim_url + "/_sim/links", {"section_id": section, "client_id": CLIENT_ID,
                                         "assignment_id": "soak00", "name": "Soak quiz"})
    counter = itertools.count()

    def grade(base):
        i = next(counter)
        return build_request("POST", base + "/v1/grade",
                             {"assignmentID": f"soak{i % 50:02d}", "percentage": (i % 101) / 100},
                             {"Authorization": f"Bearer {tokens[i % len(tokens)]}"})

    def get(path, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return lambda base: build_request("GET", base + path, None, headers)

    def code(base):  # a code for a student (the token exchange follows on the same slot)
        i = next(counter)
        return build_request("POST", base + "/_sim/codes",
                             {"client_id": CLIENT_ID, "user_id": students[i % len(students)]["id"]}, {})

    grade_id = None
    mix = [grade] * 10 + [get("/v3.0/me", tokens[0])] * 4 + [
        get("/v3.0/users?limit=100", dtoken), get("/v3.0/users?limit=1000", dtoken),
        get("/v3.0/sections", dtoken), code, get("/_sim/journal?limit=50"), get("/inspector"),
        get(f"/schoology/sections/{section}/gradebook"), get("/_sim/health")]
    return mix, {"tokens": tokens, "grade_id": grade_id, "students": students}


async def drive(url: str, mix: list, rate: float, seconds: float, connections: int) -> dict:
    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost"), "loopback only"
    stats = {"requests": 0, "errors": 0, "statuses": {}}
    interval = connections / rate
    deadline = time.monotonic() + seconds

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        i = k
        next_at = time.monotonic() + (k / connections) * interval
        try:
            while time.monotonic() < deadline:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
                writer.write(mix[i % len(mix)](url))
                await writer.drain()
                status = await _read_response(reader)
                stats["requests"] += 1
                stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
                if status >= 500:
                    stats["errors"] += 1
                i += connections
        finally:
            writer.close()

    await asyncio.gather(*(worker(k) for k in range(connections)))
    return stats


def soak(cmd: list[str], tmp: str, minutes: float, rate: float, connections: int,
         sample_s: float, label: str, simulator: bool, warmup_min: float = 5.0) -> dict:
    proc, url, ready = spawn(cmd, tmp)
    try:
        pid = proc.pid
        started_rss = rss_mb(pid)
        if simulator:
            mix, _ = setup(url)
        else:
            mix = [lambda base: build_request("POST", base + "/v1/grade", {"assignmentID": "a1",
                                                                            "percentage": 0.5}, {}),
                   lambda base: build_request("GET", base + "/v3.0/me", None, {})]
        samples: list[tuple[float, float]] = []
        total = {"requests": 0, "errors": 0}
        t0 = time.monotonic()
        end = t0 + minutes * 60
        while time.monotonic() < end:
            chunk = min(sample_s, end - time.monotonic())
            stats = asyncio.run(drive(url, mix, rate, chunk, connections))
            total["requests"] += stats["requests"]
            total["errors"] += stats["errors"]
            samples.append((time.monotonic() - t0, rss_mb(pid)))
            print(f"[{label}] {samples[-1][0] / 60:6.1f} min  RSS {samples[-1][1]:7.1f} MB  "
                  f"requests {total['requests']:,}  5xx {total['errors']}", flush=True)
    finally:
        stop(proc)
    warm = [s for s in samples if s[0] >= warmup_min * 60] or samples
    return {"ready_s": round(ready, 3), "rss_at_start_mb": round(started_rss, 1),
            "rss_before_mb": round(warm[0][1], 1), "rss_after_mb": round(samples[-1][1], 1),
            "rss_max_mb": round(max(s[1] for s in samples), 1), "requests": total["requests"],
            "errors_5xx": total["errors"], "minutes": minutes, "rate": rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rate", type=float, default=150, help="requests per second (paced)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--sample-s", type=float, default=30)
    ap.add_argument("--roster", default=None)
    ap.add_argument("--warmup-min", type=float, default=5.0,
                    help="'before' is the first sample after this many minutes (the journal "
                         "fills its 10,000 entries in ~70 s at 150/s; SQLite caches fill too)")
    ap.add_argument("--baseline-minutes", type=float, default=None,
                    help="minutes for the bare-Flask baseline (default: a tenth of --minutes, ≥ 1)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="clever-sim-soak-")
    warmup = min(args.warmup_min, args.minutes / 4)
    sim = soak(sim_cmd(os.path.join(tmp, "soak.db"), args.roster), tmp, args.minutes, args.rate,
               args.connections, args.sample_s, "simulator", True, warmup)
    base_minutes = args.baseline_minutes or max(1.0, args.minutes / 10)
    base = soak([sys.executable, str(HERE / "baseline_app.py"), "16"], tmp, base_minutes,
                args.rate, args.connections, args.sample_s, "bare Flask", False,
                min(warmup, base_minutes / 4))
    print(json.dumps({"simulator": sim, "baseline": base}, indent=2))
    growth = sim["rss_after_mb"] - sim["rss_before_mb"]
    print(f"soak: {sim['requests']:,} requests in {sim['minutes']:g} min at {sim['rate']:g}/s, "
          f"{sim['errors_5xx']} 5xx; simulator RSS {sim['rss_before_mb']} MB after the warm-up → "
          f"{sim['rss_after_mb']} MB at the end (max {sim['rss_max_mb']} MB, growth {growth:+.1f} MB); "
          f"bare Flask {base['rss_before_mb']} → {base['rss_after_mb']} MB; "
          f"ratio end/end {sim['rss_after_mb'] / base['rss_after_mb']:.2f}")


if __name__ == "__main__":
    main()
