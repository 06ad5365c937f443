"""Which WSGI server serves (``--server auto|granian|waitress``), and what both guarantee alike:
port 0 reports the real port, a busy port is a clear error, stop() frees the port, and
serving in a thread changes nothing interpreter-wide (the pytest plugin embeds it).

Servers bind 127.0.0.1 on port 0 and are always stopped.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from contextlib import closing

import httpx
import pytest

from simulator import serving
from simulator.app import create_app
from simulator.cli import main
from simulator.serving import ServerUnavailable, choose_server, start_in_thread
from conftest import SERVERS, needs_granian


@needs_granian
def test_auto_picks_granian_where_it_can_serve():
    assert choose_server("auto") == "granian"


def test_auto_falls_back_to_waitress_and_says_why(monkeypatch):
    monkeypatch.setattr(serving, "granian_problem", lambda: "granian is not installed (no wheel)")
    assert choose_server("auto") == "waitress"
    line = serving.describe_server("waitress", "auto")
    assert line.startswith("waitress ") and line.endswith("not granian: granian is not installed (no wheel)")


@pytest.mark.parametrize("name, problem, message", [
    ("granian", "granian is not installed (x)", "granian is not installed (x); use --server waitress (or auto)"),
    ("uvicorn", None, "unknown server 'uvicorn'; choose one of auto, granian, waitress"),
])
def test_a_server_that_cannot_serve_is_refused_by_name(monkeypatch, name, problem, message):
    monkeypatch.setattr(serving, "granian_problem", lambda: problem)
    with pytest.raises(ServerUnavailable) as caught:
        choose_server(name)
    assert str(caught.value) == message


def test_granian_of_another_series_is_not_driven(monkeypatch):
    """serving drives granian's worker directly: another minor series may have changed it."""
    pytest.importorskip("granian")
    import granian

    monkeypatch.setattr(granian, "__version__", "2.9.0")
    assert serving.granian_problem() == (
        "granian 2.9.0 is installed; the simulator drives granian "
        f"{serving.GRANIAN_SERIES[0]}.{serving.GRANIAN_SERIES[1]}.x")


def test_serve_with_an_unavailable_server_exits_2_naming_the_option(monkeypatch, capsys):
    monkeypatch.setattr(serving, "granian_problem", lambda: "granian is not installed (x)")
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--server", "granian", "--port", "0", "--db", ":memory:"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--server" in err and "granian is not installed (x); use --server waitress" in err


@pytest.mark.parametrize("server", SERVERS)
def test_port_0_reports_the_bound_port_and_stop_frees_it(server):
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=server)
    try:
        assert running.kind == server and running.port > 0
        assert running.url == f"http://127.0.0.1:{running.port}"
        health = httpx.get(running.url + "/_sim/health", trust_env=False)
        assert health.status_code == 200 and health.json()["status"] == "ok"
    finally:
        running.stop()
    with closing(socket.socket()) as probe:  # the port is free again at once
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", running.port))


@pytest.mark.parametrize("server", SERVERS)
def test_a_busy_port_is_an_os_error_and_leaves_nothing_bound(server):
    with closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = create_app({"DB": ":memory:"}, environ={})
        try:
            with pytest.raises(OSError) as caught:
                serving.bind(app, "127.0.0.1", taken.getsockname()[1], server=server)
            assert caught.value.errno is not None
        finally:
            app.extensions["clever_sim"].close()


@pytest.mark.parametrize("server", SERVERS)
def test_serving_in_a_thread_leaves_the_interpreter_settings_alone(server):
    """The pytest plugin embeds the server in a user's test session: no switch-interval
    change there (``clever-sim serve`` alone tunes the interpreter)."""
    before = sys.getswitchinterval()
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=server)
    try:
        assert httpx.get(running.url + "/_sim/health", trust_env=False).status_code == 200
        assert sys.getswitchinterval() == before
    finally:
        running.stop()


@pytest.mark.parametrize("server", SERVERS)
def test_a_body_declared_over_the_cap_is_refused_before_it_is_read(server):
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=server)
    try:
        with closing(socket.create_connection(("127.0.0.1", running.port), timeout=10)) as sock:
            sock.sendall(f"POST /_sim/tenants HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                         f"application/json\r\nContent-Length: {running.max_body + 1}\r\n\r\n{{".encode())
            head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
    finally:
        running.stop()


@pytest.mark.parametrize("server", SERVERS)
def test_a_dropped_connection_logs_no_error(server, caplog):
    """An injected drop is the simulator's doing, not a server failure: nothing at ERROR."""
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=server)
    try:
        with httpx.Client(trust_env=False, timeout=10) as http:
            http.post(running.url + "/_sim/faults", json={"path": "/v3.0/me", "drop": True})
            with pytest.raises(httpx.RemoteProtocolError):
                http.get(running.url + "/v3.0/me")
            assert http.get(running.url + "/_sim/health").status_code == 200
    finally:
        running.stop()
    assert [r.getMessage()[:80] for r in caplog.records if r.levelno >= 40] == []


@pytest.mark.parametrize("server", SERVERS)
def test_the_servers_environment_never_reads_as_request_headers(server, monkeypatch):
    """A variable named like a CGI header in the environment the server runs in (a proxy
    setting such as HTTP_PROXY) is not a header the partner sent: the journal shows only
    the request's own."""
    monkeypatch.setenv("HTTP_X_FROM_THE_SERVER_ENV", "not sent by the client")
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=server)
    try:
        answer = httpx.get(running.url + "/v3.0/me", headers={"X-Sent": "yes"}, trust_env=False)
        assert answer.status_code == 401
        (entry,) = app.extensions["clever_sim"].journal.query(path="/v3.0/me")[0]
    finally:
        running.stop()
    assert entry["request_headers"]["X-Sent"] == "yes"
    assert "X-From-The-Server-Env" not in entry["request_headers"]


def test_a_freed_request_slot_goes_to_the_longest_waiter():
    """granian's request slots are first come, first served: a slot freed while others
    wait goes to the one that queued first, never to whoever asks next."""
    slots = serving.FairSlots(1)
    order: list[int] = []
    slots.__enter__()  # the one slot is busy
    threads = []
    for i in range(5):
        def take(i: int = i) -> None:
            with slots:
                order.append(i)
        thread = threading.Thread(target=take)
        thread.start()
        threads.append(thread)
        while slots.waiting < i + 1:  # queued before the next one starts
            time.sleep(0.001)
    slots.__exit__(None, None, None)
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4]
    assert slots.waiting == 0


@pytest.mark.skipif(sys.platform == "win32", reason="waitress's trigger is a socket pair on Windows")
def test_a_worker_waking_a_stopped_waitress_writes_into_no_other_file():
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server="waitress")
    freed = running.server.trigger.trigger  # the wake-up pipe's write end: freed by the stop
    running.stop()
    read_end, write_end = os.pipe()
    os.dup2(write_end, freed)  # whatever the process opens next may get that number
    os.set_blocking(read_end, False)
    try:
        running.server.pull_trigger()  # what a worker finishing its answer does
        with pytest.raises(BlockingIOError):
            os.read(read_end, 1)  # nothing was written into the file now at that number
    finally:
        for fd in {read_end, write_end, freed}:
            os.close(fd)


def _raw(port: int, request: bytes) -> tuple[bytes, dict]:
    """Send ``request`` as is; (status line, JSON body) of the answer, read to its close."""
    import json

    with closing(socket.create_connection(("127.0.0.1", port), timeout=10)) as sock:
        sock.sendall(request)
        answer = b""
        while part := sock.recv(65536):
            answer += part
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(body)


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("method, upper", [("get", "GET"), ("Post", "POST"), ("dElEtE", "DELETE")])
def test_a_method_not_in_upper_case_is_a_400_on_either_server(server, method, upper):
    """Methods are case-sensitive (RFC 9110 §9.1): waitress refuses ``get``; granian passed
    it on and werkzeug served it as GET. Both now answer the same JSON 400."""
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=server)
    try:
        status, body = _raw(running.port, f"{method} /v3.0/me HTTP/1.1\r\nHost: localhost\r\n"
                                          f"Connection: close\r\n\r\n".encode())
        assert status.split(b" ")[1] == b"400"
        assert body == {"message": "Bad request", "errors": [{
            "field": "(request)", "problem": f'Malformed HTTP method "{method}"',
            "hint": f'HTTP methods are case-sensitive: send "{upper}"'}]}
        assert app.extensions["clever_sim"].journal.query(path="/v3.0/me")[0] == []  # never served
    finally:
        running.stop()


@pytest.mark.parametrize("server, problem", [
    pytest.param("granian", "is empty", id="granian", marks=needs_granian),
    pytest.param("waitress", "the bearer token is unknown to the simulator (never issued here, "
                             "or revoked)", id="waitress")])
def test_an_authorization_header_with_non_ascii_bytes_is_never_called_missing(server, problem):
    """granian empties a header whose value is not plain ASCII before the app sees it; the
    401 then says the header is empty (and why it may be), not that it was never sent."""
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=server)
    try:
        status, body = _raw(running.port, "GET /v3.0/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: "
                                          "Bearer café\r\nConnection: close\r\n\r\n".encode("utf-8"))
    finally:
        running.stop()
    assert status.split(b" ")[1] == b"401"
    assert body["errors"][0]["field"] == "Authorization"
    assert body["errors"][0]["problem"] == problem
    if server == "granian":
        assert body == {"message": "No authorization provided", "errors": [{
            "field": "Authorization", "problem": "is empty",
            "hint": "send Authorization: Bearer {token} (granian, the server of --server granian, "
                    "empties a header whose value is not plain ASCII)"}]}
