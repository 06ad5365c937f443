"""Findings of a hostile-client audit over a running server (schemathesis with real tokens,
hand-made request tables, raw sockets): each case here failed before its fix.

Rows: the journal's byte bound counts the request line (long URLs); what waitress refuses
before the app is JSON naming the part, and a body of exactly the cap is taken; an unknown
tenant outside ASCII is named as typed; an injected fault is always a well-formed final answer.
"""

from __future__ import annotations

import json
import socket
from contextlib import closing

import httpx
import pytest

from simulator.app import create_app
from simulator.journal import Journal, RawEntry
from simulator.serving import start_in_thread
from simulator.tenants import close_app

from conftest import SERVERS

MIB = 1024 * 1024

# --- the journal's memory bound holds for long request lines --------------------------------

LONG = 60_000  # a URL this long passes waitress (its header cap is 256 KB) and granian


def _long_request(client, case: str, i: int):
    """One partner-facing request whose request line is ~LONG characters (journaled)."""
    if case == "query":
        return client.get(f"/v3.0/me?n={i}&pad=" + "q" * LONG)
    return client.get(f"/v3.0/users/{i}" + "p" * LONG)


@pytest.mark.parametrize("case", ["query", "path"])
def test_journal_byte_bound_holds_for_long_request_lines(case):
    """Before: path and query were not counted, so 1 MiB of journal held ~600
    entries of 200 KB URLs (120 MB, measured on a served simulator) from any client."""
    app = create_app({"DB": ":memory:", "SECRET_KEY": "t", "JOURNAL_MAX_MB": 1}, environ={})
    try:
        sim = app.extensions["clever_sim"]
        client = app.test_client()
        for i in range(40):
            assert _long_request(client, case, i).status_code in (401, 404)
        kept = sim.journal.raw()
        request_lines = sum(len(e["path"]) + len(e["query"]) for e in kept)
        assert request_lines <= sim.journal.bytes <= MIB
        assert len(kept) <= MIB // LONG and sim.journal.dropped == 40 - len(kept)
        assert kept[-1]["status"] in (401, 404)  # the newest is kept, readable
    finally:
        app.extensions["clever_sim"].close()


def test_journal_entry_size_counts_its_request_line():
    entry = RawEntry({"method": "GET", "path": "/p" * 1000, "query": "q=" + "x" * 5000},
                     [], None, [], None, 0.0, lambda t: "now")
    bare = RawEntry({"method": "GET", "path": "/p", "query": ""}, [], None, [], None, 0.0,
                    lambda t: "now")
    assert entry.size - bare.size == 2000 - 2 + 5002
    journal = Journal(cap=100, bytes_cap=entry.size * 3)
    for _ in range(10):
        journal.add(RawEntry(dict(entry.fields), [], None, [], None, 0.0, lambda t: "now"))
    assert len(journal) == 3 and journal.bytes <= entry.size * 3


# --- requests the server itself refuses answer in the simulator's JSON error shape -----------

def _exchange(port: int, request: bytes) -> tuple[bytes, dict, dict]:
    """(status line, headers, JSON body) of one raw request's answer. Read up to its
    Content-Length only: a server refusing a request it has not read whole closes with
    unread bytes, which resets the connection once the answer is out."""
    with closing(socket.create_connection(("127.0.0.1", port), timeout=10)) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        line, *fields = head.split(b"\r\n")
        headers = {k.decode().lower(): v.decode() for k, _, v in (f.partition(b": ") for f in fields)}
        while len(body) < int(headers["content-length"]):
            body += sock.recv(65536)
    return line, headers, json.loads(body)


@pytest.fixture(scope="module")
def waitress_port():
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server="waitress")
    yield running.port, running.max_body
    running.stop()
    close_app(app)


def _post(head: str, body: bytes = b"") -> bytes:
    return (f"POST /v1/grade HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"{head}\r\n").encode() + body


# (case, request given the body cap, status, message, field, problem given the body cap, hint)
WAITRESS_REFUSALS = [
    ("declared-over-cap", lambda cap: _post(f"Content-Length: {cap + 1}\r\n", b"{"), 413,
     "Request body too large", "(body)", lambda cap: f"is {cap + 1} bytes; this server accepts "
     f"at most {cap}", "send a smaller body"),
    ("chunked-over-cap", lambda cap: _post("Transfer-Encoding: chunked\r\n", b"".join(
        b"10000\r\n" + b" " * 0x10000 + b"\r\n" for _ in range(cap // 0x10000 + 1))), 413,
     "Request body too large", "(body)", lambda cap: f"is over {cap} bytes, the most this server "
     "accepts", "send a smaller body"),
    ("bad-chunk-size", lambda cap: _post("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
     400, "Bad request", "(request)", lambda cap: "Invalid chunk size",
     "send a well-formed HTTP/1.1 request"),
    ("negative-content-length", lambda cap: _post("Content-Length: -1\r\n", b"{}"), 400,
     "Bad request", "(request)", lambda cap: "Content-Length is invalid",
     "send a well-formed HTTP/1.1 request"),
    ("bare-cr-in-a-header", lambda cap: _post("X-Note: a\rb\r\nContent-Length: 2\r\n", b"{}"), 400,
     "Bad request", "(request)", lambda cap: 'Bare CR or LF found in header line "X-Note: a\rb"',
     "send a well-formed HTTP/1.1 request"),
    ("gzip-transfer-coding", lambda cap: _post("Transfer-Encoding: gzip\r\n"), 400,
     "Unsupported Transfer-Encoding", "Transfer-Encoding",
     lambda cap: "Transfer-Encoding requested is not supported",
     "send the body with Content-Length, or with Transfer-Encoding: chunked alone"),
    ("raw-utf8-in-the-path", lambda cap: "GET /t/\u2603/_sim/health HTTP/1.1\r\nHost: localhost\r\n"
     "\r\n".encode(), 400, "Bad request", "(request)", lambda cap: "Bad URI",
     "percent-encode what is not printable ASCII in the path and query (☃ is %E2%98%83)"),
    ("headers-over-cap", lambda cap: _post("X-Pad: " + "p" * 300_000 + "\r\nContent-Length: 2\r\n",
                                           b"{}"), 431,
     "Request headers too large", "(headers)", lambda cap: "are over 262144 bytes in all",
     "send fewer or shorter headers"),
]


@pytest.mark.parametrize("case,request_for,status,message,field,problem_for,hint", WAITRESS_REFUSALS,
                         ids=[c[0] for c in WAITRESS_REFUSALS])
def test_a_request_waitress_cannot_parse_gets_a_json_4xx_naming_the_part(
        waitress_port, case, request_for, status, message, field, problem_for, hint):
    """Before: waitress's own text/plain page ("Request Entity Too Large ... (generated by
    clever-sim)"), and a 501 for a transfer coding it cannot read."""
    port, cap = waitress_port
    line, headers, body = _exchange(port, request_for(cap))
    assert line.split(b" ", 2)[1] == str(status).encode(), line
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert body == {"message": message, "errors": [{"field": field, "problem": problem_for(cap),
                                                    "hint": hint}]}
    # and the server goes on answering
    assert _exchange(port, b"GET /_sim/health HTTP/1.1\r\nHost: localhost\r\n"
                           b"Connection: close\r\n\r\n")[2]["status"] == "ok"


@pytest.mark.parametrize("server", SERVERS)
def test_a_body_of_exactly_the_cap_reaches_the_app(server):
    """Before: waitress refused a body of exactly its cap (1 MiB) with 413, granian took it."""
    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=server)
    try:
        cap = running.max_body
        assert cap == app.config["MAX_CONTENT_LENGTH"]
        body = b'{"name": "cap-sized"}'.ljust(cap)  # JSON allows trailing whitespace
        resp = httpx.post(running.url + "/_sim/tenants", content=body, trust_env=False,
                          headers={"Content-Type": "application/json"}, timeout=30)
        assert resp.status_code == 201, resp.text
        over = httpx.post(running.url + "/_sim/tenants", content=body + b" ", trust_env=False,
                          headers={"Content-Type": "application/json"}, timeout=30)
        assert over.status_code == 413
        assert over.json()["errors"] == [{"field": "(body)", "problem": f"is {cap + 1} bytes; "
                                          f"this server accepts at most {cap}",
                                          "hint": "send a smaller body"}]
    finally:
        running.stop()
        close_app(app)


# --- a tenant name outside ASCII is named as typed, not as its UTF-8 bytes read as latin-1 ----

@pytest.mark.parametrize("raw,shown", [("%E2%98%83", "☃"), ("caf%C3%A9", "café"),
                                       ("%FF%FE", "\ufffd\ufffd"), ("a%00b", "a\x00b")],
                         ids=["snowman", "accent", "not-utf8", "nul"])
def test_an_unknown_tenant_outside_ascii_is_named_as_typed(client, raw, shown):
    """Before: /t/%E2%98%83/… answered "Unknown tenant 'â\\x98\\x83'" (both servers)."""
    body = client.get(f"/t/{raw}/_sim/health").get_json()
    assert body["message"] == f"Unknown tenant {shown!r}"
    assert body["errors"] == [{"field": "tenant", "problem": "must be 1–63 characters: lowercase "
                               "letters, digits and '-', starting with a letter or digit",
                               "hint": "tenant names look like ci-job-1234"}]


# --- an injected fault is always a well-formed final answer ------------------------------------



@pytest.mark.parametrize("status", [204, 205, 304])
def test_a_fault_with_a_no_body_status_answers_without_one_and_the_connection_goes_on(served, status):
    """Before: the answer declared the fault's JSON body (Content-Type, granian: Content-Length
    39) that a 204/304 cannot carry; a client trusting the length reads the next answer wrong."""
    with httpx.Client(base_url=served.url, trust_env=False, timeout=10) as http:
        assert http.post("/_sim/faults", json={"path": "/v3.0/me", "status": status,
                                               "retry_after": 7}).status_code == 201
        resp = http.get("/v3.0/me")
        assert (resp.status_code, resp.content) == (status, b"")
        assert resp.headers["Retry-After"] == "7" and "Content-Type" not in resp.headers
        assert resp.headers.get("Content-Length", "0") == "0"
        after = http.get("/v3.0/me")  # no fault left; the connection (waitress closes it
        # after any 204/304) or a new one reads the next answer whole
        assert after.status_code == 401 and after.json()["message"] == "No authorization provided"


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_a_fault_with_an_interim_status_is_refused_naming_it(client, status):
    """Before: accepted; then waitress sent "100 CONTINUE" and closed, granian a 500."""
    resp = client.post("/_sim/faults", json={"path": "/v3.0/me", "status": status})
    assert resp.status_code == 400
    assert resp.get_json() == {"message": "Invalid fault", "errors": [
        {"field": "status", "problem": "must be a whole number from 200 to 599"}]}
    assert client.get("/_sim/faults").get_json()["data"] == []
