"""The grade POST's hot path takes shortcuts (measured in ``bench/README.md``); each one must
behave exactly as the long way round it replaced.

* the answer reuses the record's stored JSON text instead of ``jsonify``-ing it again;
* record ids are made as Clever's Mongo ObjectIds are, without a system call each;
* a stored grade wakes long-polls without taking a lock when nobody waits;
* the body is read straight from the server's input when its length is declared;
* waitress's connections (``serving.QuietChannel``) are not reported writable while a
  worker is writing its answer, and every answer still arrives whole;
* a partner-facing path matched once is looked up after (``traffic.EmulatedTraffic``),
  never answered as another method, path or version.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from contextlib import contextmanager

import pytest
from flask import jsonify
from werkzeug.test import EnvironBuilder

from simulator import ids
from simulator.app import create_app
from simulator.clever.grades_routes import grade_response
from simulator import serving
from simulator.serving import QuietChannel, one_address, start_in_thread
from simulator.models import Grade
from conftest import SERVERS, assert_error, bearer, il_token

HEX24 = re.compile(r"[0-9a-f]{24}")


# --- the answer: the stored text, byte for byte what jsonify would write ----------------------

HOSTILE = ["<script>alert(1)</script>", "Zoë O'Brien \"quoted\" \\ back", "日本語 🌲", "\u2028\u2029",
           "</script><!--", "\x00\x1f control"]


@pytest.mark.parametrize("text", HOSTILE)
def test_grade_answer_is_byte_for_byte_what_jsonify_writes(text):
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    record = {"id": "a" * 24, "assignmentID": text, "percentage": 0.5,
              "context": {"note": text, "n": [1, 2.5, None, True]}, "warnings": [text]}
    grade = Grade(id="a" * 24, client_id="c", user_id="u", assignment_id=text, district_id="d",
                  version=1, seq=1, created="t", updated="t", record=record,
                  json=json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    warnings = [text, "second"]
    with app.app_context():
        expected = jsonify({"data": record, "warnings": warnings}).get_data()
    got = grade_response(grade, warnings)
    plain = grade_response(record, warnings)  # a record without stored text
    assert got == expected == plain
    assert json.loads(got) == {"data": record, "warnings": warnings}


def test_posted_grade_answer_matches_the_stored_record(client, sim, student):
    token = il_token(sim, student["id"])
    resp = client.post("/v1/grade", json={"assignmentID": "hot1", "percentage": 0.25,
                                          "note": "<b>hi</b> 🌲"}, headers=bearer(token))
    assert resp.status_code == 200
    assert resp.get_data().endswith(b"}\n")
    stored = sim.store.list_grades(user_id=student["id"], assignment_id="hot1")[0]
    assert resp.get_json()["data"] == stored.record
    assert resp.get_data().startswith(b'{"data":' + stored.json.encode() + b',"warnings":[')
    assert resp.get_json()["data"]["context"] == {"note": "<b>hi</b> 🌲"}


# --- ids ---------------------------------------------------------------------------------------

def test_object_ids_are_24_hex_unique_and_later_ones_sort_later(monkeypatch):
    made = [ids.object_id() for _ in range(20_000)]
    assert all(HEX24.fullmatch(i) for i in made)
    assert len(set(made)) == len(made)
    clock = iter([1_700_000_000, 1_700_000_001])  # the leading 4 bytes are Unix seconds
    monkeypatch.setattr(ids.time, "time", lambda: next(clock))
    earlier, later = ids.object_id(), ids.object_id()
    assert earlier[:8] == f"{1_700_000_000:08x}" and later > earlier


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_does_not_repeat_the_parents_ids():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the next id and leave at once
        os.close(read)
        os.write(write, ids.object_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent = ids.object_id()
    assert HEX24.fullmatch(child)
    assert child[8:18] != parent[8:18]  # the per-process part


# --- waking long-polls -------------------------------------------------------------------------

class _CountingCondition:
    """A Condition that counts notify_all calls (to see whether a lock was taken)."""

    def __init__(self) -> None:
        self.inner = threading.Condition()
        self.notified = 0

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

    def wait(self, timeout=None):
        return self.inner.wait(timeout)

    def notify_all(self):
        self.notified += 1
        self.inner.notify_all()


def test_a_stored_grade_wakes_a_waiter_and_takes_no_lock_when_nobody_waits(app, sim, student):
    sim._grades_changed = condition = _CountingCondition()  # noqa: SLF001
    token = il_token(sim, student["id"])
    client = app.test_client()
    assert client.post("/v1/grade", json={"assignmentID": "w0", "percentage": 0.1},
                       headers=bearer(token)).status_code == 200
    assert condition.notified == 0  # nobody waiting: no lock, no notify

    found: list = []
    waiter = threading.Thread(target=lambda: found.append(sim.wait_for(
        lambda: sim.store.list_grades(assignment_id="w1", limit=1), timeout=30)))
    waiter.start()
    deadline = time.monotonic() + 10
    while sim.waiters == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert sim.waiters == 1
    assert client.post("/v1/grade", json={"assignmentID": "w1", "percentage": 0.7},
                       headers=bearer(token)).status_code == 200
    waiter.join(timeout=10)
    assert not waiter.is_alive()
    assert condition.notified >= 1
    assert found[0][0].record["lti_score"] == "0.7"
    assert sim.waiters == 0


# --- reading the body ----------------------------------------------------------------------

def test_declared_length_body_and_a_body_without_a_length_read_alike(client, sim, student):
    token = il_token(sim, student["id"])
    raw = json.dumps({"assignmentID": "len1", "percentage": 0.5}).encode()
    declared = client.post("/v1/grade", data=raw, headers={**bearer(token),
                                                           "Content-Type": "application/json"})
    assert declared.status_code == 200
    environ = EnvironBuilder(path="/v1/grade", method="POST", data=raw,
                             headers={**bearer(token), "Content-Type": "application/json"}
                             ).get_environ()
    del environ["CONTENT_LENGTH"]  # as a chunked upload arrives: the server marks its end
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input_terminated"] = True
    answer: list = []
    body = b"".join(client.application(environ, lambda status, headers, exc=None:
                                       answer.append(status)))
    assert answer == ["200 OK"]
    assert json.loads(body)["data"]["version"] == 2
    entries = [e for e in sim.journal if e["path"] == "/v1/grade"]
    assert [e["request_body"] for e in entries[-2:]] == [raw.decode(), raw.decode()]


@pytest.mark.parametrize("length", ["１２", "-5", "12 ", "0x10"])
def test_odd_content_length_values_get_a_clear_400_not_a_crash(client, sim, student, length):
    """Values the fast path does not take (not plain ASCII digits) go the long way round and
    are answered as the body they make: empty or cut short, a 400 naming the body."""
    token = il_token(sim, student["id"])
    environ = EnvironBuilder(path="/v1/grade", method="POST",
                             data=b'{"assignmentID": "x", "percentage": 0.5}',
                             headers={**bearer(token), "Content-Type": "application/json"}
                             ).get_environ()
    environ["CONTENT_LENGTH"] = length  # the test client would put the true length back
    answer: list = []
    body = b"".join(client.application(environ, lambda status, headers, exc=None:
                                       answer.append(status)))
    assert answer == ["400 BAD REQUEST"]
    error = json.loads(body)
    assert error["message"] in ("Body is empty", "Body is not valid JSON")
    assert [e["field"] for e in error["errors"]] == ["(body)"]


def test_a_grade_over_the_limit_is_refused_on_its_declared_length(client, sim, student):
    token = il_token(sim, student["id"])
    resp = client.post("/v1/grade", data=b"{}" + b" " * (64 * 1024),
                       headers={**bearer(token), "Content-Type": "application/json"})
    assert_error(resp, 413, "Request body too large…", field="(body)")


# --- waitress connections --------------------------------------------------------------------

def _bare_channel(**attrs) -> QuietChannel:
    channel = object.__new__(QuietChannel)  # no socket: only the attributes writable() reads
    defaults = {"total_outbufs_len": 0, "requests": [], "will_close": False,
                "close_when_flushed": False, "outbuf_lock": threading.Condition()}
    for key, value in {**defaults, **attrs}.items():
        setattr(channel, key, value)
    return channel


def test_a_connection_is_not_writable_while_a_worker_holds_its_output():
    channel = _bare_channel(total_outbufs_len=100, requests=["running"])
    assert channel.writable()  # output waiting and nobody writing: flush it
    held = threading.Event()
    release = threading.Event()

    def worker():
        with channel.outbuf_lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert held.wait(10)
        assert not channel.writable()  # the worker is sending its own answer
        channel.will_close = True
        assert channel.writable()  # closing: waitress's own rule decides
    finally:
        release.set()
        t.join(10)
    channel.will_close = False
    assert channel.writable()
    assert not _bare_channel().writable()


@contextmanager
def _served_with_big_answer(size: int, server: str | None = None):
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    body = bytes(range(256)) * (size // 256)
    app.add_url_rule("/_sim/test-big", "test_big", lambda: (body, 200, {"Content-Type":
                                                                          "application/octet-stream"}))
    running = start_in_thread(app, threads=4, server=server)
    try:
        yield running, body
    finally:
        running.stop()


def _get_raw(port: int, path: str, pause: float = 0.0, host: str = "127.0.0.1") -> bytes:
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            chunk = sock.recv(16384)
            if not chunk:
                break
            chunks.append(chunk)
            if pause:
                time.sleep(pause)
        return b"".join(chunks)


@pytest.mark.parametrize("server", SERVERS)
def test_big_answers_reach_slow_readers_whole_while_others_are_served(server):
    with _served_with_big_answer(6 * 1024 * 1024, server) as (running, body):
        results: dict[int, bytes] = {}
        readers = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, _get_raw(int(running.port), "/_sim/test-big", pause=0.0005 if i == 0 else 0)))
            for i in range(3)]
        for r in readers:
            r.start()
        for _ in range(20):  # small requests go on while the big answers drain
            head = _get_raw(int(running.port), "/_sim/health")
            assert head.startswith(b"HTTP/1.1 200")
        for r in readers:
            r.join(60)
        for i in range(3):
            head, _, got = results[i].partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert got == body


def test_a_host_name_with_several_addresses_is_served_on_the_first(monkeypatch):
    """``localhost`` is 127.0.0.1 and ::1 on most machines: waitress would open a socket on
    each (a server without ``effective_port``); the simulator takes the first address."""
    both = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0))]
    monkeypatch.setattr(serving.socket, "getaddrinfo", lambda *a, **k: both)
    assert one_address("dual-stack.test") == "127.0.0.1"
    assert one_address("0.0.0.0") == "0.0.0.0" and one_address("") == ""


def test_a_host_that_does_not_resolve_is_left_to_waitress_to_refuse():
    assert one_address("no such host.invalid") == "no such host.invalid"


@pytest.mark.parametrize("server", SERVERS)
def test_serving_on_localhost_answers(server):
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t"}, environ={})
    running = start_in_thread(app, host="localhost", threads=2, server=server)
    try:
        if server == "waitress":
            assert running.server.channel_class is QuietChannel
        head = _get_raw(int(running.port), "/_sim/health", host="localhost")
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        running.stop()


@pytest.mark.parametrize("host, port, url", [
    ("0.0.0.0", 8080, "http://127.0.0.1:8080"), ("", 1, "http://127.0.0.1:1"),
    ("127.0.0.1", 5001, "http://127.0.0.1:5001"), ("::1", 9, "http://[::1]:9"),
    ("localhost", 80, "http://localhost:80"),
])
def test_a_server_url_is_where_a_local_client_reaches_it(host, port, url):
    assert serving.local_url(host, port) == url


# --- routing: a remembered match answers only what it matched --------------------------------

def test_a_remembered_route_answers_only_its_own_method_path_and_version(client, sim, student):
    auth = bearer(il_token(sim, student["id"]))
    for _ in range(2):  # the second time from what the first remembered
        v3 = client.get("/v3.0/me", headers=auth)
        v2 = client.get("/v2.1/me", headers=auth)
        assert v3.status_code == v2.status_code == 200
        assert v3.get_json()["links"][0]["uri"] == "/me"
        assert {link["uri"] for link in v3.get_json()["links"]} != \
            {link["uri"] for link in v2.get_json()["links"]}  # each answered as its version
        assert_error(client.post("/v3.0/me", headers=auth), 405,
                     "Method POST not allowed for /v3.0/me; use GET, HEAD, OPTIONS")
        one = client.get(f"/v3.0/users/{student['id']}", headers=auth)
        assert one.status_code == 200 and one.get_json()["data"]["id"] == student["id"]


def test_routing_stays_right_past_the_number_of_matches_remembered(client, sim, student):
    """Made-up paths past the bound (1,024) start the memory over; real ones still route."""
    auth = bearer(il_token(sim, student["id"]))
    first = client.get("/v3.0/users/made-up-0", headers=auth)
    for i in range(1100):
        assert client.get(f"/v3.0/users/made-up-{i}", headers=auth).status_code == first.status_code
    assert client.get("/v3.0/users/made-up-0", headers=auth).get_json() == first.get_json()
    assert client.get(f"/v3.0/users/{student['id']}", headers=auth).status_code == 200
    assert client.get("/v3.0/me", headers=auth).get_json()["data"]["id"] == student["id"]


# --- the clock's text: the second's part formatted once, the same text as formatting it whole --

def _iso_the_long_way(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


@pytest.mark.parametrize("times", [
    [1765000000.0, 1765000000.999, 1765000001.0, 1765000000.5],  # across a second and back
    [0.0, 0.001, 59.999, 60.0, 86399.999, 86400.0],                # the epoch, minute and day edges
    [1765000000.25, 1765000000.25, 1796536000.75, 1765000000.75],  # ten years on and back again
    [-1.5, -0.25, 1765000000.1],                                   # before the epoch: never cached
])
def test_clock_iso_is_the_same_text_as_formatting_the_whole_time(times):
    from simulator.clock import Clock

    clock = Clock()
    assert [clock.iso(t) for t in times] == [_iso_the_long_way(t) for t in times]


def test_clock_iso_follows_an_advance_at_once():
    """The cached second is the simulated one: an advance shows in the very next stamp."""
    from datetime import datetime

    from simulator.clock import Clock

    clock = Clock()

    def read(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()

    before = clock.iso()
    clock.advance(3600)
    after = clock.iso()
    assert 3600 <= read(after) - read(before) < 3605


def test_clock_iso_formats_each_second_once(monkeypatch):
    """Stamps within one second reuse its text: the date is formatted once per second."""
    from simulator import clock as clock_mod

    calls = []
    real = clock_mod.time.strftime
    monkeypatch.setattr(clock_mod.time, "strftime", lambda *a: calls.append(a) or real(*a))
    clock = clock_mod.Clock()
    stamps = [clock.iso(1765000000 + i / 1000) for i in range(1000)]
    assert len(calls) == 1 and stamps[-1] == "2025-12-06T05:46:40.999Z"
    clock.iso(1765000001.0)
    assert len(calls) == 2
