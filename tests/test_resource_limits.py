"""Resource limits: oversized bodies are refused before they are read whole, slow clients do
not hold the server's worker threads, and the journal, the caches and grade histories are
capped or paged so memory stays flat under any amount of traffic.

The network tests run the real WSGI server (waitress, as ``clever-sim serve`` does) on
127.0.0.1, port 0, with raw sockets; every socket and server is closed at the end.
"""

from __future__ import annotations

import gc
import re
import socket
import time
import tracemalloc
from contextlib import closing, contextmanager

import httpx
import pytest

from simulator import ratelimit
from simulator import store as store_mod
from simulator.app import create_app
from simulator.gradebook import domain as gradebook_domain
from simulator.journal import BODY_CAP, Journal, RawEntry
from simulator.serving import start_in_thread
from conftest import SERVERS, bearer, district_token, il_token, log_in

MIB = 1024 * 1024


@contextmanager
def served(threads: int = 4, server: str = "auto", **cfg):
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", **cfg}, environ={})
    running = start_in_thread(app, threads=threads, server=server)
    try:
        yield app, running
    finally:
        running.stop()


def connect(running, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(running.port)), timeout=timeout)
    return sock


def read_head(sock: socket.socket) -> bytes:
    """Read until the end of a response head (or the connection closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def student_token(app) -> tuple[str, str]:
    sim = app.extensions["clever_sim"]
    student = sim.store.list_records("users", role="student", limit=1).rows[0]
    return student["id"], il_token(sim, student["id"])


# --- bodies over the cap ---------------------------------------------------------------------

def server_cap(running) -> int:
    """The body cap the WSGI server enforces itself (MAX_CONTENT_LENGTH, 1 MiB)."""
    return running.max_body


@pytest.mark.parametrize("server", SERVERS)
def test_declared_body_over_the_server_cap_is_refused_after_the_headers(server):
    with served(server=server) as (app, running):
        _, token = student_token(app)
        declared = 10 * server_cap(running)
        with closing(connect(running)) as sock:
            sock.sendall((f"POST /v1/grade HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n").encode()
                         + b"{" + b" " * 1023)  # 1 KiB of it: the rest is never sent
            head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        assert httpx.get(running.url + "/_sim/health").status_code == 200


@pytest.mark.parametrize("server", SERVERS)
def test_chunked_body_is_cut_off_at_the_cap_not_read_to_the_end(server):
    with served(server=server) as (app, running):
        _, token = student_token(app)
        with closing(connect(running)) as sock:
            sock.sendall((f"POST /v1/grade HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
                          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
            chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
            sent = 0
            try:
                while sent < server_cap(running) + 256 * 1024:  # a little over the cap, of a far bigger body
                    sock.sendall(chunk)
                    sent += 64 * 1024
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server already answered and closed
            head = read_head(sock)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]


@pytest.mark.parametrize("server", SERVERS)
def test_grade_body_over_the_endpoint_limit_is_a_413_with_the_reason(server):
    with served(server=server) as (app, running):
        _, token = student_token(app)
        resp = httpx.post(running.url + "/v1/grade", headers={**bearer(token),
                                                               "Content-Type": "application/json"},
                          content=b'{"assignmentID": "a1", "percentage": 0.5, "pad": "' + b"x" * 200_000 + b'"}')
        assert resp.status_code == 413
        body = resp.json()
        assert body["message"].startswith("Request body too large")
        assert body["errors"][0]["field"] == "(body)"


# --- slow clients ------------------------------------------------------------------------------

@pytest.mark.parametrize("server", SERVERS)
def test_slow_clients_do_not_hold_the_worker_threads(server):
    """Two worker threads; 24 slow connections (headers dribbled, bodies stalled, answers
    never read); meanwhile ordinary requests are all answered. (On granian a stalled body
    holds one of its Python threads, of which it has ``threads`` plus the wait cap.)"""
    with served(threads=2, server=server) as (app, running):
        sim = app.extensions["clever_sim"]
        student, token = student_token(app)
        client = app.test_client()
        for i in range(600):  # a multi-MB journal answer for the readers that never read
            client.post("/v1/grade", headers=bearer(token), json={"assignmentID": f"s{i}",
                                                                 "percentage": 0.5})
        slow: list[socket.socket] = []
        try:
            for i in range(8):  # headers that never end
                s = connect(running)
                s.sendall(b"POST /v1/grade HTTP/1.1\r\nHost: t\r\n")
                slow.append(s)
            for i in range(8):  # a body that stalls after 10 bytes of 5,000
                s = connect(running)
                s.sendall((f"POST /v1/grade HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
                           "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n").encode()
                          + b'{"assignm')
                slow.append(s)
            for i in range(8):  # a big answer nobody reads (tiny receive window)
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.settimeout(10)
                s.connect(("127.0.0.1", int(running.port)))
                s.sendall(b"GET /_sim/journal?limit=10000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
                slow.append(s)
            for s in slow[:8]:  # keep the header dribblers dribbling
                s.sendall(b"X-Slow: 1\r\n")
            with httpx.Client(base_url=running.url, timeout=10) as http:
                for i in range(20):
                    assert http.get("/_sim/health").status_code == 200
                    resp = http.post("/v1/grade", headers=bearer(token),
                                     json={"assignmentID": f"fast{i}", "percentage": 0.9})
                    assert resp.status_code == 200, resp.text
            for s in slow[:16]:  # the stalled ones are still waiting: nothing was answered
                s.setblocking(False)
                with pytest.raises(BlockingIOError):
                    s.recv(1)
            assert len(sim.store.list_grades(user_id=student, limit=10_000)) == 620
        finally:
            for s in slow:
                s.close()


@pytest.mark.parametrize("server", SERVERS)
def test_many_idle_connections_do_not_lock_other_clients_out(server):
    """More idle connections than waitress's default limit (100): new clients still get in."""
    with served(threads=2, server=server) as (app, running):
        idle = []
        try:
            for _ in range(150):
                idle.append(connect(running))
            with httpx.Client(base_url=running.url, timeout=10) as http:
                for _ in range(5):
                    assert http.get("/_sim/health").status_code == 200
        finally:
            for s in idle:
                s.close()


# --- memory: the journal ---------------------------------------------------------------------

def test_journal_keeps_the_newest_entries_and_cuts_big_bodies_on_capture():
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", "JOURNAL_CAP": 50}, environ={})
    try:
        sim = app.extensions["clever_sim"]
        client = app.test_client()
        dtok = district_token(sim, sim.district_ids[0])
        for _ in range(30):
            assert client.get("/v3.0/users?limit=1000", headers=bearer(dtok)).status_code == 200
        full = len(client.get("/v3.0/users?limit=1000", headers=bearer(dtok)).get_data())
        assert full > BODY_CAP  # the answer is bigger than what the journal keeps
        student, token = student_token(app)
        for i in range(120):
            client.post("/v1/grade", headers=bearer(token), json={"assignmentID": f"j{i}",
                                                                 "percentage": 0.5})
        assert len(sim.journal) == 50 and sim.journal.dropped == 101
        raw = sim.journal.raw()
        assert all(isinstance(e, RawEntry) for e in raw)
        ids = [e["id"] for e in raw]
        assert ids == list(range(ids[0], ids[0] + 50)) and ids[-1] == 151
        listing = client.get("/_sim/journal?path=/v3.0/users&limit=1").get_json()
        assert listing["total"] == 0  # the big answers were the oldest: gone
        big = Journal(cap=100)
        big.add(RawEntry({"method": "GET", "path": "/v3.0/users", "status": 200}, [], None, [],
                         b"x" * (5 * MIB), time.time(), lambda t: "now"))
        kept = big.raw()[0]
        assert len(kept.response_body) == BODY_CAP and kept.response_len == 5 * MIB
        shown = big.get(kept["id"])["response_body"]
        assert shown.endswith(f"… [{5 * MIB - BODY_CAP} more bytes not kept]")
    finally:
        app.extensions["clever_sim"].close()


def test_journal_byte_cap_drops_the_oldest_entries():
    journal = Journal(cap=10_000, bytes_cap=200_000)
    for i in range(100):
        journal.add(RawEntry({"path": f"/p{i}"}, [("HTTP_X", "y")], b"r" * 20_000, [],
                             b"a" * 20_000, 0.0, lambda t: "now"))
    assert journal.bytes <= 200_000 and len(journal) < 10
    assert journal.dropped == 100 - len(journal)
    assert [e["path"] for e in journal.raw()][-1] == "/p99"
    journal.add({"path": "/dict", "response_body": "z" * 1000})  # outbound entries count too
    assert journal.bytes <= 200_000 and journal.raw()[-1]["path"] == "/dict"
    journal.clear()
    assert journal.bytes == 0 and len(journal) == 0


def _grade_entry(user: str, assignment: str, status: int, **more) -> RawEntry:
    fields = {"method": "POST", "path": "/v1/grade", "status": status, "user_id": user,
              "client_id": "app1", "assignment_id": assignment, **more}
    return RawEntry(fields, [], b"{}", [], b"{}", 0.0, lambda t: "now")


def test_journal_indexes_rejected_grade_posts_only_while_it_holds_them():
    journal = Journal(cap=4)
    for user, assignment, status in [("s1", "a1", 400), ("s1", "a1", 422), ("s1", "a2", 200),
                                     ("s2", "a1", 401), ("s1", "a1", 400)]:
        journal.add(_grade_entry(user, assignment, status))
    counts = {key: (n, e["id"]) for key, n, e in journal.rejected_grades(["s1", "s2", "s3"])}
    # the first entry (s1/a1, id 1) was dropped with the journal's oldest: 2 left, newest id 5
    assert counts == {("s1", "app1", "a1"): (2, 5), ("s2", "app1", "a1"): (1, 4)}
    for _ in range(4):
        journal.add({"path": "/v3.0/me", "status": 200})
    assert journal.rejected_grades(["s1", "s2"]) == []
    journal.add(_grade_entry("s1", "a1", 400))
    journal.clear()
    assert journal.rejected_grades(["s1"]) == []


@pytest.mark.parametrize("entry", [
    _grade_entry("s1", "a1", 200),                                  # accepted
    _grade_entry("s1", "a1", 400, method="GET"),                    # not a POST
    _grade_entry("s1", "a1", 400, path="/v1/grades"),               # another path
    _grade_entry("s1", "a1", None),                                 # no status
    _grade_entry(None, "a1", 400),                                  # no student named
    _grade_entry("s1", None, 400),                                  # no assignment named
    _grade_entry("s1", "a1", 400, client_id=None),                  # no app
], ids=["accepted", "get", "other-path", "no-status", "no-user", "no-assignment", "no-app"])
def test_journal_index_skips_what_is_not_a_named_rejected_grade_post(entry):
    journal = Journal(cap=10)
    journal.add(entry)
    assert journal.rejected_grades(["s1"]) == [] and len(journal) == 1


def test_journal_index_is_bounded_by_the_journal_bytes_too():
    journal = Journal(cap=10_000, bytes_cap=50_000)
    for i in range(200):
        journal.add(_grade_entry(f"s{i % 7}", f"a{i % 3}", 400))
    held = sum(n for _, n, _ in journal.rejected_grades(f"s{i}" for i in range(7)))
    assert held == len(journal) < 200


def _journal_memory(sim, send) -> int:
    """Bytes the journal really holds (tracemalloc) after ``send()``: traced memory with
    the entries, minus traced memory once they are dropped."""
    gc.collect()
    tracemalloc.start()
    try:
        send()
        gc.collect()
        with_entries = tracemalloc.get_traced_memory()[0]
        sim.journal.clear()
        gc.collect()
        return with_entries - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_journal_byte_bound_holds_after_many_large_requests():
    """Big headers (any client can send ~250 KB of them) and bodies count at their real size:
    the journal's memory, measured, stays under journal_max_mb however many arrive."""
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", "JOURNAL_MAX_MB": 1}, environ={})
    try:
        sim = app.extensions["clever_sim"]
        client = app.test_client()
        _, token = student_token(app)
        pad = {"X-Pad": "p" * 20_000, "X-Trace": "t" * 5_000}

        def send():
            for i in range(300):
                assert client.post("/v1/grade", headers={**bearer(token), **pad}, json={
                    "assignmentID": f"big{i % 7}", "percentage": 0.5,
                    "context": {"note": "n" * 8_000}}).status_code == 200
                assert client.get("/v3.0/me", headers={**bearer(token), **pad}).status_code == 200
            assert len(sim.journal) < 100 and sim.journal.dropped > 500  # the oldest went first

        held = _journal_memory(sim, send)
        assert 0 < held <= 1 * MIB  # counting headers at a flat 80 bytes held ~15 MB here
    finally:
        app.extensions["clever_sim"].close()


def test_journal_accounts_for_at_least_what_a_small_entry_really_holds():
    """The byte count is an upper bound on memory for ordinary traffic too (grade POSTs,
    /me), not only for big bodies: counted bytes ≥ measured bytes."""
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", "JOURNAL_MAX_MB": 64}, environ={})
    try:
        sim = app.extensions["clever_sim"]
        client = app.test_client()
        _, token = student_token(app)
        sim.journal.clear()
        counted = []

        def send():
            for i in range(400):
                client.post("/v1/grade", headers=bearer(token),
                            json={"assignmentID": f"s{i % 9}", "percentage": 0.25})
                client.get("/v3.0/me", headers=bearer(token))
            counted.append(sim.journal.bytes)

        held = _journal_memory(sim, send)
        assert len(counted) == 1 and held <= counted[0]
    finally:
        app.extensions["clever_sim"].close()


def test_default_journal_reads_look_only_at_the_entries_shown(monkeypatch, app, sim, client):
    """A full journal does not make every /_sim/journal or /inspector read walk it all
    (the work of an unfiltered read does not grow with the journal)."""
    from simulator import journal as journal_mod
    from simulator.inspector import routes as inspector_routes

    for i in range(1_500):  # all kept by the default caps (2 MiB: ~2,000 such entries)
        sim.journal.add({"direction": "inbound", "method": "GET", "path": f"/p{i}",
                         "status": 200})
    visited = {"n": 0}

    def counting(real):
        def wrapper(*args, **kwargs):
            visited["n"] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(journal_mod, "_matches", counting(journal_mod._matches))
    monkeypatch.setattr(inspector_routes, "_matches", counting(inspector_routes._matches))
    monkeypatch.setattr(journal_mod, "_materialize", counting(journal_mod._materialize))
    listing = client.get("/_sim/journal?limit=50").get_json()
    assert listing["total"] == 1_500 and listing["data"][0]["path"] == "/p1499"
    page = client.get("/inspector?page=3").get_data(as_text=True)
    assert "/p1399" in page and "/p1349" not in page
    assert visited["n"] == 50 + 50  # the entries shown, materialised; none scanned
    visited["n"] = 0
    assert client.get("/_sim/journal?path=/p14&limit=5").get_json()["total"] == 111
    assert visited["n"] >= 1_500  # a filter has to look at every entry


def test_journal_lookup_by_id_is_direct():
    journal = Journal(cap=5)
    for i in range(12):
        journal.add({"path": f"/p{i}"})
    assert journal.get(12)["path"] == "/p11" and journal.get(8)["path"] == "/p7"
    assert journal.get(7) is None and journal.get(13) is None


# --- memory: caches and histories -------------------------------------------------------------

def test_store_caches_stay_under_their_byte_bound(sim, client):
    tokens, users_cache = sim.store.caches["tokens"], sim.store.caches["users"]
    tokens.max_bytes = 5_000  # a few tokens' worth
    users_cache.max_bytes = 20_000
    users = sim.store.list_records("users", limit=100).rows
    for user in users:
        token = il_token(sim, user["id"])
        assert client.get("/v3.0/me", headers=bearer(token)).status_code == 200
        for cache in (tokens, users_cache):
            assert 1 <= len(cache) and cache.bytes <= cache.max_bytes
    assert len(tokens) < len(users)  # it was cleared on the way


def test_byte_cache_refuses_an_entry_bigger_than_its_bound_and_clears_when_full():
    cache = store_mod.ByteCache(1_000)
    cache.put("huge", "x", 1_001)
    assert cache.get("huge") is None and cache.bytes == 0
    for i in range(10):
        cache.put(i, i, 300)
        assert cache.bytes <= 1_000
    assert len(cache) == 1 and cache.get(9) == 9  # cleared whole each time it filled


def test_rate_limiter_keeps_short_keys_and_only_the_current_minute():
    limiter = ratelimit.RateLimiter(per_minute=5)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):  # clients may send any Authorization header: 10 KB each here
            limiter.hit(f"{i:04d}" + "k" * 10_000, now=60.0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(limiter) == 200
    assert held < 200 * 10_000 // 10  # the 2 MB of headers are not kept, only short keys
    assert limiter.hit("0000" + "k" * 10_000, now=61.0)[1] == 3  # its digest still counts it
    limiter.hit("next-minute", now=120.0)
    assert len(limiter) == 1  # a new minute drops the old counts whole


def test_rate_limiter_counts_a_bounded_number_of_tokens_a_minute(monkeypatch):
    monkeypatch.setattr(ratelimit, "KEYS_MAX", 10)
    limiter = ratelimit.RateLimiter(per_minute=1_000)
    for i in range(50):
        limiter.hit(f"token-{i}", now=0.0)
    assert len(limiter) == 11  # ten tokens, then one shared count for the rest
    assert limiter.hit("token-3", now=0.0)[1] == 998
    assert limiter.hit("another", now=0.0)[1] == 1_000 - 41


def test_grade_history_pages_and_the_cell_page_shows_the_newest_versions(monkeypatch, sim, client):
    monkeypatch.setattr(gradebook_domain, "HISTORY_SHOWN", 5)
    section = sim.store.list_records("sections", limit=1).rows[0]
    student = section["students"][0]
    token = il_token(sim, student)
    for i in range(23):
        assert client.post("/v1/grade", headers=bearer(token),
                           json={"assignmentID": "h1", "percentage": i / 100}).status_code == 200
    grade = client.get(f"/_sim/grades?user_id={student}").get_json()["data"][0]
    seen, after = [], 0
    while True:
        page = client.get(f"/_sim/grades/{grade['id']}/history?limit=10&after_version={after}").get_json()
        seen += [h["version"] for h in page["data"]]
        if not page["has_more"]:
            break
        after = seen[-1]
    assert seen == list(range(1, 24))
    assert client.get(f"/_sim/grades/{grade['id']}/history?limit=0").status_code == 400
    assert client.get("/_sim/grades/nope/history").status_code == 404
    listing = client.get(f"/_sim/grades?limit=1&user_id={student}").get_json()
    assert listing["has_more"] is False and len(listing["data"]) == 1
    log_in(client, section["teacher"])  # the gradebook is the section's teacher's
    page = client.get(f"/schoology/sections/{section['id']}/gradebook/{grade['id']}").get_data(as_text=True)
    assert "History (5 versions)" in page
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>", page.split("<h2>History", 1)[1])
    assert rows == ["19", "20", "21", "22", "23"]


# --- the C heap: glibc keeps freed memory unless asked (simulator/heap.py) ---------------

def test_heap_trimmer_runs_in_a_named_daemon_thread_and_stops_when_told():
    import threading

    from simulator import heap

    if heap._libc() is None:  # noqa: SLF001 - not glibc: nothing to tune, nothing started
        assert heap.start_trimmer(0.01) is None and heap.fix_mmap_threshold() is False
        return
    stop = heap.start_trimmer(0.01)
    names = lambda: [t.name for t in threading.enumerate()]  # noqa: E731
    assert stop is not None and "clever-sim-malloc-trim" in names()
    time.sleep(0.05)  # a few trims
    stop.set()
    deadline = time.monotonic() + 5
    while "clever-sim-malloc-trim" in names() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "clever-sim-malloc-trim" not in names()
    assert heap.fix_mmap_threshold() is True


def test_serve_makes_all_threads_share_two_glibc_heaps(monkeypatch):
    """M_ARENA_MAX (-8) = 2: one arena per thread kept what each thread freed (~10 MB more
    RSS under the soak with 16 workers); one arena cost CPU per request."""
    import ctypes

    from simulator import serving

    calls = []

    class Libc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc() if name == "libc.so.6" else None)
    serving.limit_malloc_arenas()
    assert calls == [(-8, 2)]


def test_one_heap_setting_is_a_no_op_without_glibc(monkeypatch):
    import ctypes

    from simulator import serving

    def no_glibc(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    serving.limit_malloc_arenas()  # macOS, Windows, musl: nothing to tune, nothing raised
