"""Issue 12 rows 1 and 2: no load kills, freezes or starves the server.

Row 1: idle connections and many used tenants once exhausted the file descriptors
(``ValueError: filedescriptor out of range in select()``, the process died). Now the
event loop uses poll(), and connections, tenants and SQLite handles are bounded from the
descriptor limit, with 503 + Retry-After past a bound.

Row 2: long-polls and live gradebook streams held every worker thread. Now they run on
threads of their own (``serving.WaitDispatcher``) under a server-wide cap, and a closed
stream frees its place at once.

Servers bind 127.0.0.1 on port 0 and are always stopped; sockets are always closed.
"""

from __future__ import annotations

import json
import resource
import select
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

import httpx
import pytest

from simulator import limits, store as store_mod
from simulator.app import create_app
from simulator.errors import ServiceUnavailable
from simulator.serving import start_in_thread
from simulator.web import login_cookie
from conftest import SERVERS, bearer, il_token, needs_granian
from fake_browser import open_live_stream
from serverproc import ServerProcess

FD_LIMIT = 1024  # the usual default soft limit; the crash needed only ~1,000 descriptors


def _read_answer(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One HTTP answer with a Content-Length body from a raw socket: (status, headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _assert_busy(status: int, headers: dict, body: bytes, message: str, field: str) -> dict:
    """A 503 that says which bound was reached, when to retry, in the canonical error shape."""
    assert status == 503, body
    assert int(headers["retry-after"]) >= 1
    doc = json.loads(body)
    assert doc["message"] == message and doc["errors"][0]["field"] == field, doc
    assert doc["errors"][0]["problem"] and doc["errors"][0]["hint"]
    return doc


# --- row 1: descriptors ----------------------------------------------------------------------

def test_bounds_fit_the_descriptor_limit():
    for fd in (256, 1024, 4096, 65536):
        b = limits.bounds_for(fd)
        used = (limits.RESERVED_FDS + b.connections + b.sqlite_handles * limits.FDS_PER_SQLITE)
        assert used <= fd, (fd, b)
        assert 1 <= b.tenants <= b.sqlite_handles and 1 <= b.waiters <= b.connections
    assert limits.bounds_for(1024).connections < 1000  # the old limit did not fit 1,024


def _serve_with_fd_limit(db: Path, fd_limit: int, hard: int | None = None) -> ServerProcess:
    """``clever-sim serve`` in a child whose descriptor limit is ``fd_limit`` (soft; hard:
    ``hard``, else the same)."""
    boot = ("import resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({fd_limit}, {hard or fd_limit})); "
            "from simulator.cli import main; sys.exit(main())")
    server = ServerProcess(["--db", str(db)], exe=[sys.executable, "-c", boot], timeout=60)
    # drain its output so a chatty server never blocks on a full pipe
    threading.Thread(target=lambda: server.output.extend(server.proc.stdout), daemon=True).start()
    return server


def _use_tenant(base: str, name: str) -> list[int]:
    """Create a tenant and use it as a CI job does: read its apps and roster, store a grade."""
    statuses = []
    with httpx.Client(base_url=base, timeout=60) as http:
        made = http.post("/_sim/tenants", json={"name": name})
        statuses.append(made.status_code)
        if made.status_code != 201:
            return statuses
        t = f"/t/{name}"
        apps = http.get(f"{t}/_sim/apps")
        statuses.append(apps.status_code)
        people = http.get(f"{t}/_sim/personas", params={"role": "student", "limit": 1})
        statuses.append(people.status_code)
        token = http.post(f"{t}/_sim/tokens", json={"client_id": apps.json()["data"][0]["client_id"],
                                                    "user_id": people.json()["data"][0]["id"]})
        statuses.append(token.status_code)
        grade = http.post(f"{t}/v1/grade", headers=bearer(token.json()["access_token"]),
                          json={"assignmentID": "quiz1", "percentage": 0.75})
        statuses.append(grade.status_code)
        statuses.append(http.get(f"{t}/_sim/grades").status_code)
    return statuses


def test_idle_connections_and_100_used_tenants_leave_the_server_answering(tmp_path):
    """1,200 idle connections plus 100 tenants used from many threads, at 1,024 descriptors:
    the process lives, every request is answered (no 5xx), state is intact."""
    server = _serve_with_fd_limit(tmp_path / "sim.db", FD_LIMIT)
    idle: list[socket.socket] = []
    try:
        host, port = server.url.removeprefix("http://").split(":")
        for _ in range(1200):
            try:
                idle.append(socket.create_connection((host, int(port)), timeout=5))
            except OSError:  # the backlog is full: that client just waits elsewhere
                break
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: _use_tenant(server.url, f"job-{i}"), range(100)))
        assert [r for r in results if set(r) != {200, 201}] == [], results
        with httpx.Client(base_url=server.url, timeout=20) as http:
            assert http.get("/_sim/health").status_code == 200
            listing = http.get("/_sim/tenants").json()
            assert listing["count"] == 100 and listing["limit"] == limits.bounds_for(FD_LIMIT).tenants
            assert len(http.get("/t/job-99/_sim/grades").json()["data"]) == 1
        assert server.proc.poll() is None, server.read_rest()
    finally:
        for s in idle:
            s.close()
        code = server.stop()
    out = "".join(server.output)
    assert "filedescriptor out of range" not in out and "Too many open files" not in out, out[-3000:]
    assert code == 0, out[-3000:]


def test_serve_raises_its_soft_descriptor_limit_and_derives_its_bounds_from_it(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("the hard descriptor limit here is below 4096")
    server = _serve_with_fd_limit(tmp_path / "sim.db", FD_LIMIT, hard=4096)
    try:
        listing = httpx.get(server.url + "/_sim/tenants", timeout=20).json()
        assert listing["limit"] == limits.bounds_for(4096).tenants > limits.bounds_for(FD_LIMIT).tenants
    finally:
        assert server.stop() == 0


def test_when_every_connection_is_busy_a_new_one_gets_a_503(monkeypatch):
    """At the connection limit idle connections make room; when all are serving requests
    (here: long-polls), a newcomer is told so with 503 + Retry-After, not left hanging.
    On waitress (``BoundedServer``); granian keeps the newcomer in the listen backlog."""
    monkeypatch.setattr(limits, "current", lambda: limits.bounds_for(200))
    limit = limits.bounds_for(200).connections
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    running = start_in_thread(app, threads=2, waiters=limit, server="waitress")
    busy: list[socket.socket] = []
    try:
        for i in range(limit):
            s = socket.create_connection(("127.0.0.1", running.port), timeout=10)
            s.sendall(f"GET /_sim/grades/wait?assignment_id=busy{i}&timeout=30 HTTP/1.1\r\n"
                      f"Host: localhost\r\n\r\n".encode())
            busy.append(s)
        _wait_until(lambda: running.waiting == limit)
        with closing(socket.create_connection(("127.0.0.1", running.port), timeout=10)) as late:
            late.sendall(b"GET /_sim/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, headers, body = _read_answer(late)
        _assert_busy(status, headers, body, "Too many connections", "connection")
        assert headers["connection"] == "close"
    finally:
        for s in busy:
            s.close()
        running.stop()


def test_idle_connections_make_room_for_new_clients_at_the_limit(monkeypatch):
    """On waitress: the longest-idle connection is closed at once for a newcomer."""
    monkeypatch.setattr(limits, "current", lambda: limits.bounds_for(200))
    limit = limits.bounds_for(200).connections
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    running = start_in_thread(app, threads=2, server="waitress")
    idle: list[socket.socket] = []
    try:
        for _ in range(limit * 2):
            idle.append(socket.create_connection(("127.0.0.1", running.port), timeout=10))
        with httpx.Client(base_url=running.url, timeout=20) as http:
            assert http.get("/_sim/health").status_code == 200
        _wait_until(lambda: len(running.server.active_channels) <= limit)
        # the oldest idle connections were the ones closed
        assert _closed_by_server(idle[0]) and not _closed_by_server(idle[-1])
    finally:
        for s in idle:
            s.close()
        running.stop()


@needs_granian
def test_granian_closes_connections_that_send_no_request_and_serves_the_waiting_ones(monkeypatch):
    """granian cannot close an idle connection to make room: at its limit a newcomer waits
    in the listen backlog until idle ones are closed (after GRANIAN_IDLE_S), then is served."""
    from simulator import serving

    monkeypatch.setattr(limits, "current", lambda: limits.bounds_for(200))
    monkeypatch.setattr(serving, "GRANIAN_IDLE_S", 1)
    limit = limits.bounds_for(200).connections
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    running = start_in_thread(app, threads=2, server="granian")
    idle: list[socket.socket] = []
    try:
        for _ in range(limit + 5):
            idle.append(socket.create_connection(("127.0.0.1", running.port), timeout=10))
        with httpx.Client(base_url=running.url, timeout=20) as http:
            assert http.get("/_sim/health").status_code == 200
        assert _closed_by_server(idle[0])
    finally:
        for s in idle:
            s.close()
        running.stop()


def _closed_by_server(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 2)
    if not readable:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_sqlite_connections_stay_within_the_process_budget(tmp_path):
    """Many stores used from many threads never hold more SQLite connections than the
    budget; with every one in use, one more waits, then is a 503 naming the reason."""
    budget = store_mod.HandleBudget(limit=4, wait_s=30)
    stores = [store_mod.Store(str(tmp_path / f"s{i}.db"), budget=budget) for i in range(6)]
    peak, failures = [], []
    try:
        def work(i: int) -> None:
            try:
                for j in range(30):
                    stores[(i + j) % len(stores)].count("apps")
                    peak.append(budget.open)
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == [] and max(peak) <= 4 and budget.open <= 4
        budget.wait_s = 0.2
        with ExitStack() as held:  # four threads' worth of connections, leased at once
            for s in stores[:4]:
                held.enter_context(_leased_elsewhere(s))
            with pytest.raises(ServiceUnavailable) as refused:
                stores[5].count("apps")
            assert refused.value.status == 503 and refused.value.headers["Retry-After"]
            assert refused.value.errors[0].field == "database"
        assert stores[5].count("apps") >= 0  # returned connections serve again
    finally:
        for s in stores:
            s.close()
    assert budget.open == 0


@contextmanager
def _leased_elsewhere(store):
    """Hold one of ``store``'s connections in another thread until the block ends."""
    leased, done = threading.Event(), threading.Event()

    def hold():
        with store.read():
            leased.set()
            done.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert leased.wait(10)
    try:
        yield
    finally:
        done.set()
        t.join()


def test_a_closed_store_refuses_use_instead_of_reopening_its_file(tmp_path):
    """A deleted tenant's late request must not recreate its database file."""
    path = tmp_path / "gone.db"
    s = store_mod.Store(str(path))
    s.close()
    path.unlink()
    with pytest.raises(Exception, match="closed"):
        s.count("apps")
    assert not path.exists()


# --- row 2: waiting never holds a worker ------------------------------------------------------

def _wait_until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        time.sleep(0.02)


def _teacher_cookie(app, section_id: str, tenant: str | None = None) -> str:
    """``Cookie:`` value of the section's teacher (a gradebook stream is theirs); a tenant's
    login cookie has its own name and the root's secret here."""
    teacher = app.extensions["clever_sim"].store.get_record("sections", section_id)["teacher"]
    ((name, value),) = login_cookie(app, teacher).items()
    return f"{name}-t-{tenant}={value}" if tenant else f"{name}={value}"


@pytest.fixture(params=SERVERS)
def busy_server(tmp_path, request):
    """A file-backed simulator on 16 workers (as served) with 9 tenants besides the root,
    on each server."""
    app = create_app({"DB": str(tmp_path / "sim.db"), "SECRET_KEY": "t"}, environ={})
    running = start_in_thread(app, threads=16, server=request.param)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as http:
            for i in range(9):
                assert http.post("/_sim/tenants", json={"name": f"t{i}"}).status_code == 201
        yield app, running
    finally:
        running.stop()


def test_waits_and_streams_leave_grades_and_health_answering(busy_server):
    """100 long-polls and 50 live streams at once: /_sim/health and a grade POST answer
    while every wait is still pending, and each wait then sees its own grade."""
    app, running = busy_server
    sim = app.extensions["clever_sim"]
    section = sim.store.list_records("sections", limit=1).rows[0]["id"]
    student = sim.store.list_records("users", role="student", limit=1).rows[0]["id"]
    token = il_token(sim, student)
    sockets: list[socket.socket] = []
    try:
        for i in range(50):  # 5 per tenant (the per-tenant cap is 6)
            prefix = "" if i % 10 == 9 else f"/t/t{i % 10}"
            sockets.append(open_live_stream(running.port,
                                        f"{prefix}/schoology/sections/{section}/gradebook/events",
                                        _teacher_cookie(app, section, prefix[3:] or None)))
        waits = []
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", running.port), timeout=60)
            s.sendall(f"GET /_sim/grades/wait?assignment_id=w{i}&timeout=60 HTTP/1.1\r\n"
                      f"Host: localhost\r\n\r\n".encode())
            waits.append(s)
        sockets += waits
        with httpx.Client(base_url=running.url, timeout=60) as http:
            assert http.get("/_sim/health").status_code == 200
            first = http.post("/v1/grade", headers=bearer(token),
                              json={"assignmentID": "not-awaited", "percentage": 0.5})
            assert first.status_code == 200, first.text
            still_waiting, _, _ = select.select(waits, [], [], 0)
            assert still_waiting == []  # answered before any wait ended
            for i in range(100):
                assert http.post("/v1/grade", headers=bearer(token),
                                 json={"assignmentID": f"w{i}", "percentage": 0.5}).status_code == 200
        for i, s in enumerate(waits):
            status, _, body = _read_answer(s)
            doc = json.loads(body)
            assert status == 200 and doc["timed_out"] is False, doc
            assert doc["data"]["assignmentID"] == f"w{i}"
    finally:
        for s in sockets:
            s.close()


@pytest.mark.parametrize("server", SERVERS)
def test_waits_past_the_server_cap_get_a_503_and_workers_stay_free(server):
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    running = start_in_thread(app, threads=2, waiters=3, server=server)
    held = []
    try:
        for i in range(3):
            s = socket.create_connection(("127.0.0.1", running.port), timeout=30)
            s.sendall(f"GET /_sim/grades/wait?assignment_id=x{i}&timeout=30 HTTP/1.1\r\n"
                      f"Host: localhost\r\n\r\n".encode())
            held.append(s)
        _wait_until(lambda: running.waiting == 3)
        with httpx.Client(base_url=running.url, timeout=30) as http:
            over = http.get("/_sim/grades/wait", params={"assignment_id": "y", "timeout": 30})
            _assert_busy(over.status_code, {k.lower(): v for k, v in over.headers.items()},
                         over.content, "Too many waiting requests", "wait")
            section = app.extensions["clever_sim"].store.list_records("sections", limit=1).rows[0]
            stream = http.get(f"/schoology/sections/{section['id']}/gradebook/events",
                              headers={"Cookie": _teacher_cookie(app, section["id"])})
            _assert_busy(stream.status_code, {k.lower(): v for k, v in stream.headers.items()},
                         stream.content, "Too many waiting requests", "wait")
            for _ in range(5):  # the two workers are free
                assert http.get("/_sim/health").status_code == 200
    finally:
        for s in held:
            s.close()
        running.stop()


def test_closing_streams_frees_their_slots_at_once(busy_server):
    """At the per-tenant cap, closing the open streams lets a new one open (long before a
    heartbeat could have noticed: the heartbeat here is 10 minutes away)."""
    app, running = busy_server
    app.config["GRADEBOOK_SSE_HEARTBEAT_S"] = 600
    sim = app.extensions["clever_sim"]
    section = sim.store.list_records("sections", limit=1).rows[0]["id"]
    path = f"/schoology/sections/{section}/gradebook/events"
    from simulator.gradebook.routes import streams

    cookie = _teacher_cookie(app, section)
    opened = [open_live_stream(running.port, path, cookie) for _ in range(6)]
    try:
        with httpx.Client(base_url=running.url, timeout=30, headers={"Cookie": cookie}) as http:
            full = http.get(path)
            _assert_busy(full.status_code, {k.lower(): v for k, v in full.headers.items()},
                         full.content, "Too many live gradebook streams", "stream")
        for s in opened:
            s.close()
        _wait_until(lambda: streams(app).open == 0 and running.waiting == 0)
        opened = [open_live_stream(running.port, path, cookie)]
    finally:
        for s in opened:
            s.close()


def test_a_closed_long_poll_ends_and_frees_its_place():
    """On waitress, which reads every connection while its request runs. (granian notices a
    closed connection only when it writes the answer: there the place is freed at the
    long-poll's timeout, at most WAIT_MAX_S; live streams write a heartbeat every second.)"""
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    running = start_in_thread(app, threads=2, waiters=1, server="waitress")
    try:
        s = socket.create_connection(("127.0.0.1", running.port), timeout=30)
        s.sendall(b"GET /_sim/grades/wait?assignment_id=z&timeout=60 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        _wait_until(lambda: running.waiting == 1)
        s.close()
        _wait_until(lambda: running.waiting == 0)  # not after 60 s
        with httpx.Client(base_url=running.url, timeout=30) as http:
            again = http.get("/_sim/grades/wait", params={"assignment_id": "z", "timeout": 0.1})
            assert again.status_code == 200 and again.json()["timed_out"] is True
    finally:
        running.stop()


@pytest.mark.parametrize("server", SERVERS)
def test_stopping_the_server_ends_pending_waits_first(server):
    """Graceful shutdown: a pending long-poll ends before the stores close (no wait thread
    is left running against a closed store)."""
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    running = start_in_thread(app, threads=2, server=server)
    with closing(socket.create_connection(("127.0.0.1", running.port), timeout=30)) as s:
        s.sendall(b"GET /_sim/grades/wait?assignment_id=z&timeout=60 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        _wait_until(lambda: running.waiting == 1)
        running.stop()
        assert running.waiting == 0
