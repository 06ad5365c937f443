"""LOGIN-010 (the client secret in a URL): which query parameters leak it, and a verdict
that holds however long the run: every request is read from the simulator's journal after
the check that caused it, and requests the journal dropped unread make it "could not
verify", never a pass. The partners that do and do not leak, in Python, Node and Java, are
rows of tests/test_contract_suite.py and tests/test_polyglot_partners.py.
"""

from __future__ import annotations

import httpx
import pytest

from contract_tests.checks import CHECKS
from contract_tests.config import load_config
from contract_tests.harness import Check
from contract_tests.secret_checks import from_another_app, leaks
from contract_tests.session import Contract
from simulator.app import create_app
from simulator.serving import start_in_thread
from test_contract_suite import write_toml

SECRET = "s3cret-value-42"
LOGIN_010 = next(c for c in CHECKS if c.id == "LOGIN-010")


@pytest.mark.parametrize("query, secret, names", [
    (f"client_secret={SECRET}", SECRET, ["client_secret"]),
    ("client_secret=another-secret", SECRET, ["client_secret"]),    # named so: a secret, whatever its value
    (f"Client-Secret={SECRET}&client_id=app", SECRET, ["Client-Secret"]),
    ("clientSecret=x", SECRET, ["clientSecret"]),
    (f"key={SECRET}", SECRET, ["key"]),                             # its value, under any name
    (f"auth=app%3A{SECRET}", SECRET, ["auth"]),                     # inside a longer value
    (f"a={SECRET}&b=2&c={SECRET}", SECRET, ["a", "c"]),
    ("secret=nonce-7f3a", SECRET, []),                              # named "secret", not the secret
    ("secret=", SECRET, []),
    ("client_secret=", SECRET, []),                                 # named so, but empty
    ("owner_type=district&district=4e71", SECRET, []),
    ("", SECRET, []),
    ("auth=app%3As3cret", "s3cret", ["auth"]),                      # six characters: found inside too
    ("note=xabcde", "abcde", []),                                   # a shorter secret must be the whole value
    ("note=abcde", "abcde", ["note"]),
])
def test_a_query_parameter_leaks_the_secret_only_by_its_value_or_a_client_secret_name(query, secret, names):
    assert leaks({"query": query}, secret) == names


@pytest.fixture
def small_journal(tmp_path):
    """A simulator whose journal holds 20 entries, and a Contract on it (no partner needed:
    the requests an app would make are sent from the test)."""
    app = create_app({"DB": ":memory:", "JOURNAL_CAP": 20}, environ={})
    server = start_in_thread(app)
    toml = write_toml(tmp_path / "partner.toml", "http://127.0.0.1:9", "leaky", secret=SECRET)
    contract = Contract(load_config(toml), server.url, owns_simulator=False)
    try:
        yield server.url, contract
    finally:
        contract.close()
        server.stop()


def _step(name: str, *requests: tuple[str, str]) -> Check:
    """A check that makes the given requests to Clever, as the app does during a real one."""
    def func(c: Contract) -> str:
        with httpx.Client(trust_env=False, timeout=10) as http:
            for method, path in requests:
                http.request(method, c.sim_url + path, auth=("leaky", "wrong"))
        return "sent"
    return Check(name, "TEST", "reported", name, "", "", func)


LEAK = ("POST", f"/oauth/tokens?client_id=leaky&client_secret={SECRET}")
EXCHANGE = ("POST", "/oauth/tokens")  # no secret in its URL


def test_a_leak_early_in_a_run_is_caught_after_the_journal_dropped_it(small_journal):
    """25 later requests push the leak out of a 20-entry journal: a single read at the end
    (the check before) saw only the clean ones and passed."""
    url, contract = small_journal
    contract.mark_start()
    contract.run(_step("TEST-1", LEAK))
    contract.run(_step("TEST-2", *[EXCHANGE] * 25))
    entries = httpx.get(url + "/_sim/journal", params={"limit": 100}, trust_env=False).json()["data"]
    assert not any("client_secret" in (e.get("query") or "") for e in entries)  # gone from the journal
    result = contract.run(LOGIN_010)
    assert result.outcome == "FAIL"
    assert result.reason == ("your app sent the client secret in the URL of POST /oauth/tokens (query "
                             "parameter client_secret), 1 time(s) in this run")
    assert SECRET not in result.details and "client_secret=<client_secret>" in result.details


@pytest.mark.parametrize("before", [0, 3], ids=["journal-empty-at-start", "journal-holding-entries"])
def test_requests_dropped_before_they_were_read_make_it_could_not_verify_never_pass(small_journal, before):
    url, contract = small_journal
    with httpx.Client(trust_env=False) as http:
        for _ in range(before):
            http.get(url + "/v3.0/me")
    contract.mark_start()
    contract.run(_step("TEST-1", LEAK, *[EXCHANGE] * 25))  # 26 requests, 20 kept: 6 lost unread
    result = contract.run(LOGIN_010)
    assert result.outcome == "FAIL"
    first = before + 1
    assert result.reason == (f"could not verify: 6 request(s) of this run had left the simulator's "
                             f"journal before the suite read them (entries {first}–{first + 5}); none of "
                             f"the 20 it read carried the secret")
    assert "journal_max_mb" in result.details


def test_a_run_whose_journal_kept_everything_passes(small_journal):
    url, contract = small_journal
    contract.mark_start()
    contract.run(_step("TEST-1", EXCHANGE, ("GET", "/v3.0/me?secret=nonce-1")))
    result = contract.run(LOGIN_010)
    assert (result.outcome, result.reason) == (
        "PASS", "2 request(s) to Clever, 1 to /oauth/tokens: no secret in a URL")


@pytest.mark.parametrize("entry, another", [
    ({"query": "client_id=other&client_secret=theirs"}, True),       # named in its query
    ({"query": "client_secret=theirs", "client_id": "other"}, True),  # noted by the simulator
    ({"query": "client_id=leaky&client_secret=x", "client_id": None}, False),
    ({"query": "client_secret=x", "client_id": "leaky"}, False),
    ({"query": "client_secret=x"}, False),                           # nobody named: judged as ours
    ({"query": "client_id=&client_secret=x"}, False),
    ({"query": "client_id=other&client_id=leaky"}, False),           # ours among them
    ({"query": None, "client_id": None}, False),
])
def test_a_request_is_another_apps_only_by_a_client_id_that_is_not_ours(entry, another):
    assert from_another_app(entry, "leaky") is another


def test_another_apps_leak_on_a_shared_simulator_is_not_this_apps(small_journal):
    """On a simulator several partners share, another app's client_secret in its own URL
    must not fail this app's run; this app's own leak beside it still does."""
    url, contract = small_journal
    theirs = ("POST", "/oauth/tokens?client_id=other-app&client_secret=their-secret")
    contract.mark_start()
    contract.run(_step("TEST-1", EXCHANGE, theirs))
    result = contract.run(LOGIN_010)
    assert (result.outcome, result.reason) == (
        "PASS", "1 request(s) to Clever, 1 to /oauth/tokens: no secret in a URL")
    contract.run(_step("TEST-2", theirs, LEAK))
    result = contract.run(LOGIN_010)
    assert result.outcome == "FAIL"
    assert result.reason == ("your app sent the client secret in the URL of POST /oauth/tokens (query "
                             "parameter client_secret), 1 time(s) in this run")


@pytest.fixture
def big_journal(tmp_path):
    """A simulator whose journal holds more than one read returns (10,000), and a Contract on it."""
    app = create_app({"DB": ":memory:", "JOURNAL_CAP": 30_000, "JOURNAL_MAX_MB": 256}, environ={})
    server = start_in_thread(app)
    toml = write_toml(tmp_path / "partner.toml", "http://127.0.0.1:9", "leaky", secret=SECRET)
    contract = Contract(load_config(toml), server.url, owns_simulator=False)
    try:
        yield app.extensions["clever_sim"], contract
    finally:
        contract.close()
        server.stop()


@pytest.mark.parametrize("leak_at, outcome, reason", [
    (None, "PASS", "12000 request(s) to Clever, 12000 to /oauth/tokens: no secret in a URL"),
    (0, "FAIL", "your app sent the client secret in the URL of POST /oauth/tokens (query parameter "
                "client_secret), 1 time(s) in this run"),  # older than the newest 10,000
    (11_999, "FAIL", "your app sent the client secret in the URL of POST /oauth/tokens (query "
                     "parameter client_secret), 1 time(s) in this run"),
], ids=["clean", "leak-oldest", "leak-newest"])
def test_login_010_sees_every_entry_of_a_journal_larger_than_one_read(big_journal, leak_at, outcome, reason):
    """12,000 requests in one check, kept by a journal_cap of 30,000: LOGIN-010 reads them
    all (a page at a time), never 'could not verify' for the 2,000 one read leaves out."""
    sim, contract = big_journal
    contract.mark_start()

    def burst(c: Contract) -> str:
        for i in range(12_000):  # written straight into the journal: as the requests would be
            sim.journal.add({"direction": "inbound", "method": "POST", "path": "/oauth/tokens",
                             "query": f"client_id=leaky&client_secret={SECRET}" if i == leak_at else "",
                             "status": 401, "client_id": "leaky"})
        return "sent"

    contract.run(Check("TEST-1", "TEST", "reported", "TEST-1", "", "", burst))
    assert len(contract.clever_requests) == 12_000 and contract.journal_gaps == []
    result = contract.run(LOGIN_010)
    assert (result.outcome, result.reason) == (outcome, reason)


def test_journal_since_pages_through_more_than_one_read(big_journal):
    sim, contract = big_journal
    mark = contract.sim.journal_mark()
    for i in range(10_500):
        sim.journal.add({"direction": "inbound", "method": "GET", "path": f"/v3.0/me/{i}",
                         "status": 200})
    entries = contract.sim.journal_since(mark, path="/v3.0/me/")
    assert [e["path"] for e in entries] == [f"/v3.0/me/{i}" for i in range(10_500)]
