"""Credentials stay out of URLs: judged after every other check, over every request the app
made to Clever during the run (the code exchange, the district-app token listing, /me, the
grades). A client secret in a query string still works where the app also sends HTTP
Basic, so nothing else fails, but URLs end up in proxy, server and browser logs.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from .harness import Fail, Skip, check, show_entry
from .login_checks import S_LOGIN
from .session import Contract

SECRET_KEYS = ("client_secret", "clientsecret", "secret")


def leaks(entry: dict, secret: str) -> list[str]:
    """The query parameters of one request that carry the client secret (names only)."""
    pairs = parse_qsl(entry.get("query") or "", keep_blank_values=True)
    return [k for k, v in pairs if k.lower() in SECRET_KEYS or (v and v == secret)]


@check("LOGIN-010", "recommended", "The client secret never travels in a URL",
       seed=S_LOGIN,
       rule="in every request your app made to Clever during the run (code exchange, district-app "
            "token listing, /me, grades), no query parameter is client_secret or carries its value")
def secret_not_in_urls(c: Contract) -> str:
    entries = [e for e in c.sim.journal_since(c.start_mark)
               if not str(e.get("path", "")).startswith("/_sim")]
    token_calls = [e for e in entries if e.get("path") == "/oauth/tokens"]
    if not token_calls:
        raise Skip("not judged: your app made no request to /oauth/tokens in this run (it runs "
                   "with the LOGIN or GRADE checks; see LOGIN-001)")
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
    return f"{len(entries)} request(s) to Clever, {len(token_calls)} to /oauth/tokens: no secret in a URL"
