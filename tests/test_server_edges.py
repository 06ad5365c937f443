"""Edges of the two servers, over raw sockets against real servers on 127.0.0.1 port 0:
a client that leaves before a 4xx is written, a half-closed request, a request line
neither server can parse."""

from __future__ import annotations

import json
import logging
import socket
import time
from contextlib import closing

import httpx
import pytest

from conftest import SERVERS, needs_granian
from simulator.app import create_app
from simulator.serving import QuietChannel, _GranianApp, create_waitress, start_in_thread
from simulator.tenants import close_app


def _half_closed(port: int, request: bytes, *, shut: bool = True) -> bytes:
    """Send ``request``, shut the sending side (``shutdown(SHUT_WR)``; ``shut`` False: keep
    it open) and read everything the server sends until it closes."""
    with closing(socket.create_connection(("127.0.0.1", port), timeout=10)) as sock:
        sock.sendall(request)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _answer(data: bytes) -> tuple[str, dict, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    line, *fields = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (f.partition(": ") for f in fields)}
    return line, headers, body




GET = "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"
# (request, status, what the body holds): each sent, then the client's side shut
HALF_CLOSED = {
    "control-api": (GET.format(path="/_sim/health"), "200", b'"status":"ok"'),
    "page": (GET.format(path="/schoology"), "200", b"<!doctype html>"),
    "data-api-401": (GET.format(path="/v3.0/me"), "401", b'"field":"Authorization"'),
    "grade-post-401": ("POST /v1/grade HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\n\r\n{}", "401", b'"field":"Authorization"'),
    "unparsable-400": ("GARBAGE\r\n\r\n", "400", b'"problem":"Start line is invalid"'),
    "bad-content-length-400": ("GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n", "400",
                               b'"problem":"Content-Length is invalid"'),
}


@pytest.mark.parametrize("case", list(HALF_CLOSED))
def test_waitress_answers_a_half_closed_request_then_closes(case):
    """Before: waitress took the end of the client's data for a closed connection and
    closed it at once: a client that sends its request and then shuts its sending side
    (HTTP allows it; e.g. `nc -N`, some proxies) got nothing, or, racing, sometimes an answer."""
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server="waitress")
    try:
        # the emulated APIs answer after 300 ms: the server has certainly read the end of
        # the client's data by then (the other rows race it)
        for path in ("/v3.0/*", "/v1/*"):
            assert httpx.post(running.url + "/_sim/faults", json={"path": path, "latency_ms": 300},
                              trust_env=False).status_code == 201
        request, status, holds = HALF_CLOSED[case]
        line, headers, body = _answer(_half_closed(running.port, request.encode()))
        assert line.split(" ")[1] == status, line
        assert len(body) == int(headers["content-length"]) and holds in body
        # and the server goes on answering everyone else
        assert httpx.get(running.url + "/_sim/health", trust_env=False).json()["status"] == "ok"
    finally:
        running.stop()
        close_app(app)


def test_a_half_closed_long_poll_on_waitress_is_a_client_that_left():
    """A long wait whose client stops sending ends at once, as a closed browser tab's does
    (its place among the capped waits is freed): no answer (docs/decisions.md)."""
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server="waitress")
    sim = app.extensions["clever_sim"]
    try:
        # a wait that ran its course would answer 200 {"timed_out": true} after 30 s
        assert _half_closed(running.port, GET.format(path="/_sim/grades/wait?timeout=30").encode()) == b""
        deadline = time.monotonic() + 10
        while sim.waiters and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.waiters == 0
    finally:
        running.stop()
        close_app(app)


@pytest.mark.parametrize("server", [p for p in SERVERS if p.values[0] == "granian"])
def test_granian_answers_a_half_closed_request_nothing(server):
    """What granian does (its HTTP layer, before the simulator): the end of the client's
    data closes the connection, so a half-closed request whose answer is not written yet
    gets none (docs/decisions.md, "Hostile input"). Pinned with a 300 ms latency fault."""
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=server)
    try:
        added = httpx.post(running.url + "/_sim/faults", json={"path": "/v3.0/me", "latency_ms": 300},
                           trust_env=False)
        assert added.status_code == 201
        assert _half_closed(running.port, GET.format(path="/v3.0/me").encode()) == b""
        assert httpx.get(running.url + "/_sim/health", trust_env=False).json()["status"] == "ok"
    finally:
        running.stop()
        close_app(app)


# (server, status line start, content type, body): what each answers a request line it
# cannot parse; granian's HTTP layer answers before any Python code sees the request
UNPARSABLE_LINE = {
    "waitress": ("HTTP/1.0 400 Bad Request", "application/json",
                 {"message": "Bad request", "errors": [{"field": "(request)", "problem": "Start line is invalid",
                                                        "hint": "send a well-formed HTTP/1.1 request"}]}),
    "granian": ("HTTP/1.1 400 Bad Request", None, None),
}


def test_each_server_answers_an_unparsable_request_line_as_pinned(served):
    # both close the connection after it: read to the end
    line, headers, body = _answer(_half_closed(served.port, b"G@T / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                                               shut=False))
    status, content_type, expected = UNPARSABLE_LINE[served.kind]
    assert line == status
    assert headers.get("content-type") == content_type
    if expected is None:  # granian: an empty 400 (the wrapper never sees the request)
        assert headers["content-length"] == "0" and body == b""
    else:
        assert json.loads(body) == expected


def test_waitress_logs_no_traceback_when_the_client_left_before_a_4xx_was_written(caplog):
    """Before: a request line it could not parse has no path, and waitress names the path
    when the client is gone before the answer is written: an AttributeError traceback in the
    server's log. Reproduced over sockets by sending `GARBAGE` and closing at once (it
    takes a race: the close noticed between waitress's check and its write); here that
    moment is made certain: the channel finds the client gone at its first write."""
    app = create_app({"DB": ":memory:"}, environ={})
    server = create_waitress(app, "127.0.0.1", 0)
    queued: list = []
    workers, server.task_dispatcher = server.task_dispatcher, type("Queue", (), {"add_task": queued.append})()
    ours, theirs = socket.socketpair()
    try:
        channel = QuietChannel(server, ours, ("127.0.0.1", 9), server.adj, map={})
        channel.received(b"GARBAGE\r\n\r\n")
        assert queued == [channel] and channel.requests[0].error is not None
        write_soon = channel.write_soon

        def client_gone_first(data):
            channel.connected = False  # what the I/O thread sets when it reads the close
            return write_soon(data)

        channel.write_soon = client_gone_first
        with caplog.at_level(logging.INFO, logger="waitress"):
            channel.service()  # as a worker thread runs it
        assert "Client disconnected while serving (a request it could not parse)" in caplog.text
        assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    finally:
        theirs.close()
        ours.close()
        server.close()
        workers.shutdown()
        close_app(app)


# --- granian's stop: nothing enters the app once it began ---------------------------------
# granian hands on requests it had read (a half-closed connection's, a keep-alive one's) after
# the stop began; one that reached the app after the drain ran while the stores closed: a
# health check reading the in-memory store as it closed crashed the process (SIGSEGV; looping
# stop after six rounds of half-closed connections 50 times crashed 3 runs of 3 before).

STOPPING_BODY = {"message": "Service unavailable", "errors": [{
    "field": "(server)", "problem": "the simulator is stopping",
    "hint": "retry after 5 seconds, once it runs again"}]}


def test_a_request_reaching_a_draining_granian_wrapper_gets_503_and_never_the_app():
    called = []

    def app(environ, start_response):  # pragma: no cover - must not run
        called.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"ok"]

    wrapper = _GranianApp(app, max_body=1024, cap=4)
    assert wrapper.drain(timeout=1)  # nothing in the app: returns at once
    answered = []
    for path in ("/_sim/health", "/_sim/grades/wait", "/v1/grade"):
        body = b"".join(wrapper({"REQUEST_METHOD": "GET", "PATH_INFO": path},
                                lambda status, headers: answered.append((status, dict(headers)))))
        assert json.loads(body) == STOPPING_BODY
    assert called == [] and wrapper.running == 0
    assert [status for status, _ in answered] == ["503 Service Unavailable"] * 3
    assert answered[0][1]["Retry-After"] == "5" and answered[0][1]["Connection"] == "close"


@needs_granian
def test_a_keep_alive_request_after_granian_stopped_never_reaches_the_app():
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server="granian")
    request = GET.format(path="/_sim/health").encode()
    try:
        with closing(socket.create_connection(("127.0.0.1", running.port), timeout=10)) as sock:
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
            called = []
            inner = running.server.app.app
            running.server.app.app = lambda environ, start: called.append(1) or inner(environ, start)
            running.server.close(5)  # the stop begins; the store is still open
            try:
                sock.sendall(request)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            except OSError:  # granian closed the connection first: as good
                data = b""
            assert called == []
            if data:
                line, _, body = _answer(data)
                assert line == "HTTP/1.1 503 Service Unavailable"
                assert json.loads(body) == STOPPING_BODY
    finally:
        running.stop()
        close_app(app)


@pytest.mark.parametrize("server", SERVERS)
def test_a_request_still_in_the_app_when_the_stop_times_out_keeps_its_store_open(server, caplog):
    """The stop gives requests ``timeout`` to finish; one still running keeps the store open
    (closing it under the request failed it, or crashed the process on granian)."""
    import threading

    app = create_app({"DB": ":memory:"}, environ={})
    inside, release, done, statuses = threading.Event(), threading.Event(), threading.Event(), []
    inner = app.wsgi_app

    def holding(environ, start_response):
        if environ["PATH_INFO"] != "/_sim/grades":
            return inner(environ, start_response)
        inside.set()
        release.wait(30)
        try:
            return inner(environ, lambda status, headers, *exc: (
                statuses.append(status), start_response(status, headers, *exc))[1])
        finally:
            done.set()

    app.wsgi_app = holding
    running = start_in_thread(app, port=0, server=server)

    def client():
        try:
            httpx.get(running.url + "/_sim/grades", timeout=30)
        except httpx.HTTPError:  # the server may have closed the connection: not the point
            pass

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert inside.wait(30)
        with caplog.at_level(logging.WARNING, logger="clever_sim"):
            running.stop(timeout=0.2)
    finally:
        release.set()
        thread.join(30)
    assert done.wait(30)
    assert statuses == ["200 OK"]  # it read the store after the stop returned
    assert app.extensions["clever_sim"].store.list_grades() == []  # still open
    assert "a request was still running 0.2 s after the stop began" in caplog.text
    close_app(app)
