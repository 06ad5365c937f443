"""Findings of a hostile-client audit over a running server (schemathesis with real tokens,
hand-made request tables, raw sockets): each case here failed before its fix.

Rows: the journal's byte bound counts the request line (long URLs); ...
"""

from __future__ import annotations

import pytest

from simulator.app import create_app
from simulator.journal import Journal, RawEntry

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
