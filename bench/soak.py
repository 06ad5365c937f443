"""Soak: a `clever-sim serve` under mixed load for a long time — throughput and memory must
stay flat (the journal and caches are bounded by bytes; the pages read only what they show).

Both servers run for the whole soak: the simulator and, as the same-run baseline, the bare
Flask app (``baseline_app.py``). Every ``--sample-s`` seconds the simulator takes the mixed
load for all but the last ``--probe-s`` seconds, then the bare app takes its own load (its
two endpoints) for ``--probe-s`` seconds on the same connections count; both are driven
as fast as they answer (closed loop) unless ``--rate`` paces the simulator. Each sample
reports the simulator's req/s as a ratio to the bare app's in the same sample (the
machine's drift cancels out), and RSS (from /proc) as a ratio to the simulator's own RSS
once ready. The mix (``--connections`` keep-alive connections, each walking the whole mix in
order from its own starting point, so the mix's composition does not depend on which
requests the server answers faster):

* grade POSTs (il tokens of every student × 50 assignments, each pair graded once before
  the soak: overwrites and a growing grade history on data of a steady size), ``GET /v3.0/me``, ``/v3.0/users?limit=100`` / ``?limit=1000``,
  ``/v3.0/sections``, ``POST /_sim/codes`` (a new code every time);
* control API reads: ``/_sim/journal?limit=50``, ``/_sim/grades?limit=50``,
  ``/_sim/links``, a grade's history, ``/_sim/health``;
* pages: the inspector (newest, filtered by status, one entry), a section's gradebook
  (HTML and ``.json``).

Goals (issue 12 row 9, issue 17 item 2): throughput flat (the last samples' ratio to the
bare app within 0.9 of the first samples'), RSS after 10 minutes within 1.3× of RSS at
ready and under 100 MB on the packaged roster.

    .venv/bin/python bench/soak.py [--minutes 10] [--sample-s 30] [--roster FILE] [--json]
        [--compare OTHER_CHECKOUT]   # e.g. main's: git worktree add /tmp/base main
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from grade_throughput import CLIENT_ID, THREADS, _post_json, sim_cmd, spawn, stop  # noqa: E402
from loadgen import _read_response, build_request  # noqa: E402

GOAL_RSS_RATIO = 1.3      # RSS at the end / RSS at ready
GOAL_RSS_MB = 100.0       # steady RSS on the packaged roster
GOAL_THROUGHPUT = 0.9     # (last samples' ratio to the bare app) / (first samples')


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """RSS in MB from /proc (``RssAnon``: without the pages of mapped files, i.e. shared
    libraries, which the kernel pages in and out with the machine's memory pressure: they
    moved the two servers' ready RSS by 1.4–2.3 MB between runs of the same code)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used: its own work, whatever else the
    machine runs, so the per-request figure is steadier than req/s on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url) as resp:
        return json.load(resp)


# The soak's simulator signs sessions with this key, so the bench can log a teacher in.
_SECRET_KEY = os.urandom(24).hex()


def _teacher_cookie(user_id: str) -> dict:
    """The Cookie header of a browser logged in as ``user_id`` on the soak's simulator."""
    from flask import Flask

    from simulator.web import login_cookie

    app = Flask("soak")
    app.config.update(SECRET_KEY=_SECRET_KEY, SESSION_COOKIE_NAME="clever_sim_session")
    [(name, value)] = login_cookie(app, user_id).items()
    return {"Cookie": f"{name}={value}"}


def setup(sim_url: str) -> list:
    """Tokens, a section with a linked assignment, a grade, and the request makers of the mix."""
    students = _get_json(sim_url + "/_sim/personas?role=student&limit=200")["data"]
    tokens = [_post_json(sim_url + "/_sim/tokens", {"client_id": CLIENT_ID, "user_id": s["id"]})
              ["access_token"] for s in students]
    district = students[0]["district"]
    listing = urllib.request.Request(sim_url + f"/oauth/tokens?owner_type=district&district={district}")
    apps = _get_json(sim_url + "/_sim/apps")["data"]
    secret = next(a["client_secret"] for a in apps if a["client_id"] == CLIENT_ID)
    listing.add_header("Authorization", "Basic " + base64.b64encode(
        f"{CLIENT_ID}:{secret}".encode()).decode())
    with urllib.request.urlopen(listing) as resp:
        dtoken = json.load(resp)["data"][0]["access_token"]
    student = next(s for s in students if s["sections"])
    section = student["sections"][0]
    _post_json(sim_url + "/_sim/links", {"section_id": section, "client_id": CLIENT_ID,
                                         "assignment_id": "soak00", "name": "Soak quiz"})
    first = urllib.request.Request(sim_url + "/v1/grade", json.dumps(
        {"assignmentID": "soak00", "percentage": 0.5}).encode(), method="POST",
        headers={"Authorization": f"Bearer {tokens[students.index(student)]}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(first) as resp:
        grade_id = json.load(resp)["data"]["id"]
    # Every (student, assignment) pair of the mix graded once before the soak: the run then
    # overwrites grades (and grows their history) on data of a steady size. Without it the
    # section's gradebook kept gaining not-linked grades for 11 minutes (29 → 155 KB a page,
    # 32 → 128 ms) and the load itself grew, hiding what the server keeps.
    asyncio.run(_send_all(sim_url, [
        build_request("POST", sim_url + "/v1/grade", {"assignmentID": f"soak{a:02d}", "percentage": 0.5},
                      {"Authorization": f"Bearer {t}"}) for t in tokens for a in range(50)]))
    counter = itertools.count()

    def grade(base):
        i = next(counter)
        return build_request("POST", base + "/v1/grade",
                             {"assignmentID": f"soak{i % 50:02d}", "percentage": (i % 101) / 100},
                             {"Authorization": f"Bearer {tokens[i % len(tokens)]}"})

    def get(path, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return lambda base: build_request("GET", base + path, None, headers)

    def code(base):
        i = next(counter)
        return build_request("POST", base + "/_sim/codes",
                             {"client_id": CLIENT_ID, "user_id": students[i % len(students)]["id"]}, {})

    def newest_entry(base):  # an entry still in the journal: ~10 entries back, read 4 times a
        # second (the 2 MiB journal holds ~400 entries of this mix: ~2 s at 400 requests/s)
        newest = _NEWEST.get(base, 1)
        return build_request("GET", base + f"/inspector/{max(1, newest - 10)}", None, {})

    gradebook = f"/schoology/sections/{section}/gradebook"
    read = urllib.request.Request(sim_url + f"/v3.0/sections/{section}",
                                  headers={"Authorization": f"Bearer {dtoken}"})
    with urllib.request.urlopen(read) as resp:
        login = _teacher_cookie(json.load(resp)["data"]["teacher"])

    def page(path):  # a gradebook is its teachers' page: without the login it is a cheap 401
        return lambda base: build_request("GET", base + path, None, login)

    return [grade] * 10 + [get("/v3.0/me", tokens[0])] * 4 + [
        get("/v3.0/users?limit=100", dtoken), get("/v3.0/users?limit=1000", dtoken),
        get("/v3.0/sections", dtoken), code,
        get("/_sim/journal?limit=50"), get("/_sim/grades?limit=50"), get("/_sim/links"),
        get(f"/_sim/grades/{grade_id}/history?limit=20"), get("/_sim/health"),
        get("/inspector"), get("/inspector?status=4xx"), newest_entry,
        page(gradebook), page(gradebook + ".json")]


async def _send_all(url: str, requests: list[bytes], connections: int = 8) -> None:
    """Send every request once over ``connections`` keep-alive connections; all must be 2xx."""
    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost"), "loopback only"

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for raw in requests[k::connections]:
                writer.write(raw)
                await writer.drain()
                status = await _read_response(reader)
                assert 200 <= status < 300, status
        finally:
            writer.close()

    await asyncio.gather(*(worker(k) for k in range(connections)))


_NEWEST: dict[str, int] = {}  # server url → the newest journal id seen (for the entry page)


def _bare_mix() -> list:
    return [lambda base: build_request("POST", base + "/v1/grade", {"assignmentID": "a1",
                                                                    "percentage": 0.5}, {}),
            lambda base: build_request("GET", base + "/v3.0/me", None, {})]


async def drive(url: str, mix: list, seconds: float, connections: int,
                rate: float | None = None) -> dict:
    """Send the mix on ``connections`` keep-alive connections for ``seconds``, each walking all
    of it in order from its own offset (a connection stepping by ``connections`` saw only the
    items at its own offset: half the connections did nothing but pages, and a server that
    answered pages more slowly was sent fewer of them)
    (closed loop: as fast as the server answers; ``rate``: paced to that many a second)."""
    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost"), "loopback only"
    stats = {"requests": 0, "errors": 0, "statuses": {}, "gradebooks": 0}
    interval = connections / rate if rate else 0.0
    started = time.monotonic()
    deadline = started + seconds

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        i = k * len(mix) // connections
        next_at = time.monotonic() + (k / connections) * interval
        try:
            while time.monotonic() < deadline:
                if interval:
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_at += interval
                raw = mix[i % len(mix)](url)
                writer.write(raw)
                await writer.drain()
                status = await _read_response(reader)
                stats["requests"] += 1
                stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
                if status >= 500:
                    stats["errors"] += 1
                if b"/gradebook" in raw[:raw.index(b"\r\n")]:
                    stats["gradebooks"] += 1  # the heaviest pages: how many were served
                i += 1
        finally:
            writer.close()

    async def follow_journal() -> None:  # keeps the inspector entry page on a kept entry
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.monotonic() < deadline:
                writer.write(build_request("GET", url + "/_sim/journal?limit=1", None, {}))
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")))
                data = json.loads(await reader.readexactly(length))["data"]
                _NEWEST[url] = data[0]["id"] if data else 1
                await asyncio.sleep(0.25)
        finally:
            writer.close()

    tasks = [worker(k) for k in range(connections)]
    if url in _NEWEST:
        tasks.append(follow_journal())
    await asyncio.gather(*tasks)
    stats["seconds"] = time.monotonic() - started
    return stats


def _refresh_newest(url: str) -> None:
    data = _get_json(url + "/_sim/journal?limit=1")["data"]
    _NEWEST[url] = data[0]["id"] if data else 1


def _target_env(checkout: str | None) -> dict[str, str] | None:
    """The environment of a simulator run from ``checkout``'s code (None: this checkout's)."""
    if checkout is None:
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(checkout).resolve())] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


async def _drive_each(urls: list[str], mixes: list[list], seconds: float, connections: int,
                      rate: float | None) -> list[dict]:
    """The mix on every simulator at once, each on its own ``connections``: side by side,
    every server takes the same load under the same machine load."""
    return await asyncio.gather(*(drive(url, mix, seconds, connections, rate)
                                  for url, mix in zip(urls, mixes)))


def soak(tmp: str, minutes: float, sample_s: float, probe_s: float, connections: int,
         roster: str | None, rate: float | None, compare: list[str] | None = None) -> dict:
    """Soak this checkout's simulator (and, side by side, one from each ``compare``
    checkout); the result of this one, with ``compared`` holding the others' by checkout."""
    os.environ["CLEVER_SIM_SECRET_KEY"] = _SECRET_KEY  # inherited by the spawned servers
    checkouts: list[str | None] = [None] + list(compare or [])
    sims, urls, ready = [], [], []
    try:
        for n, checkout in enumerate(checkouts):
            sim, sim_url, ready_s = spawn(sim_cmd(os.path.join(tmp, f"soak{n}.db"), roster), tmp,
                                          _target_env(checkout))
            sims.append(sim)
            urls.append(sim_url)
            ready.append((ready_s, rss_mb(sim.pid), rss_mb(sim.pid, "RssAnon")))
        bare, bare_url, _ = spawn([sys.executable, str(HERE / "baseline_app.py"), str(THREADS)], tmp)
    except BaseException:
        for sim in sims:
            stop(sim)
        raise
    try:
        bare_ready = rss_mb(bare.pid)
        mixes, bare_mix = [setup(url) for url in urls], _bare_mix()
        runs: list[list[dict]] = [[] for _ in sims]
        totals = [{"requests": 0, "errors": 0, "statuses": {}, "gradebooks": 0} for _ in sims]
        t0 = time.monotonic()
        end = t0 + minutes * 60
        while time.monotonic() < end:
            for url in urls:
                _refresh_newest(url)
            c0 = [cpu_s(sim.pid) for sim in sims]
            done = asyncio.run(_drive_each(urls, mixes, max(1.0, sample_s - probe_s), connections,
                                           rate))
            c1 = cpu_s(bare.pid)
            b = asyncio.run(drive(bare_url, bare_mix, probe_s, connections))
            bare_cpu = (cpu_s(bare.pid) - c1) * 1000 / max(1, b["requests"])
            bare_rps = b["requests"] / b["seconds"]
            minute = round((time.monotonic() - t0) / 60, 2)
            for n, (sim, s, total, samples) in enumerate(zip(sims, done, totals, runs)):
                sim_cpu = (cpu_s(sim.pid) - c0[n]) * 1000 / max(1, s["requests"])  # (idle during b)
                for key in ("requests", "errors", "gradebooks"):
                    total[key] += s[key]
                for status, k in s["statuses"].items():
                    total["statuses"][status] = total["statuses"].get(status, 0) + k
                sim_rps = s["requests"] / s["seconds"]
                sample = {"minute": minute,
                          "sim_rps": round(sim_rps, 1), "bare_rps": round(bare_rps, 1),
                          "rps_ratio": round(sim_rps / bare_rps, 3) if bare_rps else None,
                          "gradebooks": s["gradebooks"], "sim_cpu_ms": round(sim_cpu, 3), "bare_cpu_ms": round(bare_cpu, 3),
                          "cpu_ratio": round(sim_cpu / bare_cpu, 3) if bare_cpu else None,
                          "rss_mb": round(rss_mb(sim.pid), 1), "bare_rss_mb": round(rss_mb(bare.pid), 1),
                          "anon_mb": round(rss_mb(sim.pid, "RssAnon"), 1)}
                sample["rss_ratio"] = round(sample["rss_mb"] / ready[n][1], 3)
                samples.append(sample)
                who = f"[{checkouts[n] or 'this'}] " if len(sims) > 1 else ""
                print(f"{who}{sample['minute']:6.2f} min  simulator {sim_rps:6.0f} req/s  bare {bare_rps:6.0f}"
                      f"  ratio {sample['rps_ratio']:.3f}  CPU/request {sim_cpu:.2f} ms (×"
                      f"{sample['cpu_ratio']:.2f} bare's)   RSS {sample['rss_mb']:6.1f} MB "
                      f"(×{sample['rss_ratio']:.2f} ready; anon {sample['anon_mb']:.1f})  bare RSS {sample['bare_rss_mb']:.1f} MB  "
                      f"requests {total['requests']:,}  5xx {total['errors']}", flush=True)
    finally:
        for sim in sims:
            stop(sim)
        stop(bare)
    results = [_summary(minutes, connections, rate, ready[n], bare_ready, totals[n], runs[n])
               for n in range(len(sims))]
    if len(sims) > 1:
        results[0]["compared"] = {checkout: r for checkout, r in zip(checkouts[1:], results[1:])}
    return results[0]


def _summary(minutes: float, connections: int, rate: float | None, ready: tuple,
             bare_ready: float, total: dict, samples: list[dict]) -> dict:
    ready_s, rss_ready, anon_ready = ready
    k = max(1, min(3, len(samples) // 4))  # first / last samples averaged
    first = statistics.fmean(x["rps_ratio"] for x in samples[:k])
    last = statistics.fmean(x["rps_ratio"] for x in samples[-k:])
    cpu_first = statistics.fmean(x["cpu_ratio"] for x in samples[:k])
    cpu_last = statistics.fmean(x["cpu_ratio"] for x in samples[-k:])
    steady = [x["rss_mb"] for x in samples if x["minute"] >= min(2.0, minutes / 4)] or \
        [x["rss_mb"] for x in samples]
    return {"minutes": minutes, "connections": connections, "rate": rate,
            "ready_s": round(ready_s, 3), "rss_ready_mb": round(rss_ready, 1),
            "anon_ready_mb": round(anon_ready, 1), "anon_end_mb": samples[-1]["anon_mb"],
            "bare_rss_ready_mb": round(bare_ready, 1), "requests": total["requests"],
            "errors_5xx": total["errors"], "statuses": total["statuses"],
            "gradebook_requests": total["gradebooks"],
            "throughput_first": round(first, 3), "throughput_last": round(last, 3),
            "throughput_flat": round(last / first, 3),
            "cpu_first": round(cpu_first, 3), "cpu_last": round(cpu_last, 3),
            "cpu_flat": round(cpu_first / cpu_last, 3),
            "rss_end_mb": samples[-1]["rss_mb"], "rss_end_ratio": samples[-1]["rss_ratio"],
            "rss_steady_max_mb": max(steady), "rss_max_mb": max(x["rss_mb"] for x in samples),
            "bare_rss_end_mb": samples[-1]["bare_rss_mb"], "samples": samples}


def report(r: dict) -> str:
    lines = [f"soak: {r['requests']:,} requests in {r['minutes']:g} min, {r['errors_5xx']} 5xx "
             f"(statuses {dict(sorted(r['statuses'].items()))}; {r['gradebook_requests']:,} of them "
             f"gradebook pages and exports)",
             f"throughput, ratio to the bare app in the same samples: first {r['throughput_first']}"
             f" → last {r['throughput_last']} (×{r['throughput_flat']}; goal ≥ {GOAL_THROUGHPUT})",
             f"CPU per request, ratio to the bare app's: first {r['cpu_first']} → last "
             f"{r['cpu_last']} (work per request ×{1 / r['cpu_flat']:.3f}; goal ≤ "
             f"{1 / GOAL_THROUGHPUT:.2f})",
             f"RSS: ready {r['rss_ready_mb']} MB → end {r['rss_end_mb']} MB "
             f"(×{r['rss_end_ratio']}; goal ≤ {GOAL_RSS_RATIO}); steady max "
             f"{r['rss_steady_max_mb']} MB (goal < {GOAL_RSS_MB:g}); bare app "
             f"{r['bare_rss_ready_mb']} → {r['bare_rss_end_mb']} MB; without mapped files "
             f"(RssAnon) {r['anon_ready_mb']} → {r['anon_end_mb']} MB"]
    # Throughput is judged on the work per request (CPU), steadier than req/s on a shared
    # machine: req/s of both servers swings ×3 within a minute there.
    met = (r["cpu_flat"] >= GOAL_THROUGHPUT and r["rss_end_ratio"] <= GOAL_RSS_RATIO
           and r["rss_steady_max_mb"] < GOAL_RSS_MB and r["errors_5xx"] == 0)
    lines.append("goals: " + ("met" if met else "NOT met"))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--sample-s", type=float, default=30)
    ap.add_argument("--probe-s", type=float, default=4, help="seconds of each sample given to "
                    "the bare app (the throughput baseline)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rate", type=float, default=None,
                    help="pace the simulator to this many requests a second (default: closed loop)")
    ap.add_argument("--roster", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compare", action="append", metavar="CHECKOUT", default=[],
                    help="also soak the simulator of this checkout (e.g. a `git worktree add "
                    "/tmp/base main`), run through PYTHONPATH, side by side under the same load "
                    "at the same time; repeatable")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="clever-sim-soak-")
    result = soak(tmp, args.minutes, args.sample_s, args.probe_s, args.connections, args.roster,
                  args.rate, args.compare)
    if args.json:
        print(json.dumps(result, indent=2))
    if args.compare:
        print("this checkout:")
    print(report(result))
    for checkout, other in result.get("compared", {}).items():
        print(f"{checkout}:")
        print(report(other))


if __name__ == "__main__":
    main()
