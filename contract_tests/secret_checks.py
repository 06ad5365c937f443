"""Credentials stay out of URLs: judged after every other check, over every request the app
made to Clever during the run (the code exchange, the district-app token listing, /me, the
grades). A client secret in a query string still works where the app also sends HTTP
Basic, so nothing else fails, but URLs end up in proxy, server and browser logs.

The requests are the journal entries the session read after each check
(``Contract.observe_journal``): the journal keeps only its newest entries, so a leak early
in a long run is still seen, and entries dropped before they were read make the check fail
as "could not verify", never pass.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from .harness import Fail, Skip, check, show_entry
from .login_checks import S_LOGIN
from .session import Contract

# Names that say "the client secret" whatever their value (compared without case, "-", "_").
SECRET_NAMES = ("clientsecret",)
# A secret this long found inside a longer value (``auth=id:secret``) is a leak; a shorter
# one must be the whole value, or any value holding its letters would be flagged.
CONTAINED_MIN = 6


def leaks(entry: dict, secret: str) -> list[str]:
    """The query parameters of one request that carry the client secret (names only): one
    whose value is (or, for a secret of CONTAINED_MIN characters or more, holds) the
    secret, or one named client_secret with any value; ``secret=<nonce>`` is not one."""
    pairs = parse_qsl(entry.get("query") or "", keep_blank_values=True)
    found = []
    for name, value in pairs:
        named = name.lower().replace("_", "").replace("-", "") in SECRET_NAMES and value
        held = bool(secret) and (value == secret or (len(secret) >= CONTAINED_MIN and secret in value))
        if named or held:
            found.append(name)
    return found


def from_another_app(entry: dict, client_id: str) -> bool:
    """Whether a request was another app's, on a simulator several apps share: the
    simulator noted another client_id for it, or its query names one. Such a request says
    nothing about this app (its own client_secret parameter is that app's leak)."""
    noted = entry.get("client_id")
    if noted and noted != client_id:
        return True
    named = [value for name, value in parse_qsl(entry.get("query") or "", keep_blank_values=True)
             if name == "client_id" and value]
    return bool(named) and client_id not in named


@check("LOGIN-010", "recommended", "The client secret never travels in a URL",
       seed=S_LOGIN,
       rule="in every request your app made to Clever during the run (code exchange, district-app "
            "token listing, /me, grades), no query parameter is client_secret or carries its value; "
            "requests of other apps on a shared simulator (another client_id) are not yours")
def secret_not_in_urls(c: Contract) -> str:
    c.observe_journal()
    entries = [e for e in c.clever_requests if not from_another_app(e, c.cfg.client_id)]
    token_calls = [e for e in entries if e.get("path") == "/oauth/tokens"]
    leaked = [(e, names) for e in entries if (names := leaks(e, c.cfg.client_secret))]
    if leaked:
        e, names = leaked[0]
        raise Fail(f"your app sent the client secret in the URL of {e.get('method')} {e.get('path')} "
                   f"(query parameter {names[0]}), {len(leaked)} time(s) in this run",
                   sent="the LOGIN and GRADE checks of this run (their requests to Clever are "
                        "read from the simulator's journal)",
                   got="\n".join(show_entry(x, bodies=False) for x, _ in leaked[:5]).replace(
                       c.cfg.client_secret, "<client_secret>"),
                   fix="send client_id:client_secret only as HTTP Basic (Authorization: Basic "
                       "base64(id:secret)) or in the form body of POST /oauth/tokens, never in a "
                       "query string: URLs are kept in proxy, server and browser logs")
    if c.journal_gaps:
        lost = sum(last - first + 1 for first, last in c.journal_gaps)
        ids = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in c.journal_gaps[:5])
        raise Fail(f"could not verify: {lost} request(s) of this run had left the simulator's journal "
                   f"before the suite read them (entries {ids}); none of the {len(entries)} it read "
                   f"carried the secret",
                   sent="the LOGIN and GRADE checks of this run (their requests to Clever are "
                        "read from the simulator's journal after each check)",
                   got=f"journal entries {ids} were already dropped: the journal keeps its newest "
                       f"entries only (journal_cap, journal_max_mb), and something made more "
                       f"requests than it holds between two reads",
                   fix="run the suite against a simulator nothing else uses at the same time, or "
                       "raise [simulator] journal_max_mb / journal_cap (CLEVER_SIM_JOURNAL_MAX_MB)")
    if not token_calls:
        raise Skip("not judged: your app made no request to /oauth/tokens in this run (it runs "
                   "with the LOGIN or GRADE checks; see LOGIN-001)")
    return f"{len(entries)} request(s) to Clever, {len(token_calls)} to /oauth/tokens: no secret in a URL"
