"""Seed Step 2: a Schoology link logs the student in and lands on the assignment.

Each check follows a launch URL exactly as Clever produces it (``POST /_sim/codes`` gives
the code and ``redirect_uri?code=…&scopes=…&state=assignment:{id}``) in a fresh cookie
jar, following redirects only while they stay on the app's host, then reads the
simulator's journal for what the app did with the code.
"""

from __future__ import annotations

import json
import secrets

from .harness import (Fail, LoginRun, Skip, check, clip, form_or_json, jdump, landing_id, show_calls,
                      show_entry)
from .session import Contract

S_LINK = ("The links embedded in Schoology will act as Log in with Clever buttons, redirecting the "
          "student to your app\u2019s primary redirect URI and including the assignment ID in the "
          "state parameter")
S_LOGIN = "Your app will log the user in, acquiring the student\u2019s Clever ID"
S_LAND = ("Your app will log the user in, acquiring the student\u2019s Clever ID, and redirect them "
          "to the appropriate assignment.")
S_IDS = "Assignment IDs can be in any format you choose"

WEIRD_ID = "unit 3/quiz 1"    # needs percent-encoding: a space and a slash


def _exchange_fix(c: Contract) -> str:
    return (f"exchange the code once, server-side: POST {c.sim_url}/oauth/tokens with "
            f"grant_type=authorization_code, code=<the code from the query string> and "
            f"redirect_uri={c.cfg.redirect_uri} (exactly the primary redirect URI), "
            f"authenticating with HTTP Basic {c.cfg.client_id}:<client_secret>")


def launch(c: Contract) -> LoginRun:
    """The shared Schoology launch of LOGIN-001..003: a student, the first listed assignment."""
    ids = c.assignment_ids()
    return c.memo("launch", lambda: c.login(c.fresh_student(), assignment_id=ids[0]))


def _error_of(e: dict) -> str:
    try:
        body = json.loads(e.get("response_body") or "")
    except ValueError:
        return clip(e.get("response_body"), 200)
    if isinstance(body, dict):
        return body.get("error_description") or body.get("message") or body.get("error") or jdump(body)
    return jdump(body)


@check("LOGIN-001", "required", "Launch link: the code is exchanged exactly once, correctly",
       seed=f"{S_LINK} \u2026 {S_LOGIN}",
       rule="following redirect_uri?code=…&state=assignment:{id}, the app POSTs the code to "
            "/oauth/tokens once, with valid client credentials and the same redirect_uri → 200")
def login_exchange(c: Contract) -> str:
    run = launch(c)
    exchanges = run.exchanges()
    sent = f"{run.visit.describe()}\n(a Schoology launch for student {run.student['id']}, {run.state})"
    if not exchanges:
        tried = [e for e in run.entries if e.get("path") == "/oauth/tokens"]
        raise Fail("your app never exchanged the code at POST /oauth/tokens",
                   sent=sent, got="requests your app made to Clever:\n" + run.partner_calls()
                   + ("" if not tried else "\n(token requests without this code: "
                      + "; ".join(f"{json.dumps(form_or_json(e))[:200]}" for e in tried) + ")"),
                   fix=_exchange_fix(c))
    if len(exchanges) > 1:
        raise Fail(f"your app exchanged the same code {len(exchanges)} times",
                   sent=sent, got="\n".join(show_entry(e) for e in exchanges),
                   fix="exchange each code exactly once: codes are single-use (a second exchange "
                       "is refused with invalid_grant); do not retry the exchange, and make sure "
                       "the callback is not handled twice")
    e = exchanges[0]
    if e.get("status") != 200:
        error = _error_of(e)
        if "redirect_uri" in error:
            hint = f"send redirect_uri={c.cfg.redirect_uri}, byte for byte the URI the code was issued for"
        elif e.get("status") == 401 or "client" in error.lower():
            hint = (f"authenticate with the app's credentials from {c.cfg.path}: HTTP Basic "
                    f"base64({c.cfg.client_id}:<client_secret>), or client_id and client_secret in "
                    f"the body")
        else:
            hint = _exchange_fix(c)
        raise Fail(f"Clever refused the code exchange: {error}", sent=sent, got=show_entry(e),
                   fix=hint)
    how = "HTTP Basic" if (e.get("request_headers") or {}).get("Authorization", "").lower().startswith("basic") \
        else "credentials in the body"
    return f"exchanged the code once ({how}, redirect_uri {form_or_json(e).get('redirect_uri')}) → 200"


@check("LOGIN-002", "required", "Launch link: the student is identified with /me",
       seed=S_LOGIN,
       rule="the app calls GET /me (any version) with the token that code exchange returned")
def login_me(c: Contract) -> str:
    run = launch(c)
    token = run.token()
    if token is None:
        raise Skip("not judged: there was no successful code exchange to follow (see LOGIN-001)")
    calls = run.me_calls(token)
    ok = [e for e in calls if e.get("status") == 200]
    if not ok:
        raise Fail("your app never asked Clever who logged in: no GET /me with the token from the "
                   "code exchange",
                   sent=run.visit.describe(),
                   got=f"token issued: {token}\nrequests your app made to Clever:\n{run.partner_calls()}",
                   fix=f"after the exchange, GET {c.sim_url}/v3.0/me with Authorization: Bearer "
                       f"<access_token> and log in data.id (the student's Clever ID, in "
                       f"data.district's district); never assume who the user is")
    return f"GET {ok[0]['path']} with the new token → 200 (student {run.student['id']})"


@check("LOGIN-003", "required", "Launch link: the student lands on that assignment",
       seed=S_LAND,
       rule="the redirects end on landing_url_pattern with the state's assignment id "
            "(compared percent-decoded), answering 2xx")
def login_landing(c: Contract) -> str:
    pattern = c.cfg.landing_url_pattern
    if not pattern:
        raise Skip(f"not judged: set [contract].landing_url_pattern in {c.cfg.path} to your "
                   f"assignment page, e.g. \"/assignments/{{assignment_id}}\"")
    run = launch(c)
    if run.token() is None:
        raise Skip("not judged: there was no successful code exchange, so nobody was logged in "
                   "(see LOGIN-001)")
    expected = run.state.split(":", 1)[1]
    visit = run.visit
    want = pattern.replace("{assignment_id}", expected)
    fix = ("read the state parameter of the callback; when it starts with \"assignment:\", "
           "redirect the logged-in student to the page of the id after the colon "
           "(percent-encode the id when you put it in the URL)")
    if visit.error:
        raise Fail(f"the launch did not finish: {visit.error}", sent=run.url, got=visit.describe(), fix=fix)
    if visit.left_host:
        raise Fail(f"the launch left your app for {visit.landing_url}, not the assignment page {want}",
                   sent=run.url, got=visit.describe(), fix=fix)
    found = landing_id(pattern, visit.landing_url or "")
    if found != expected:
        raise Fail(f"landed on {visit.landing_url}, not the assignment page {want}",
                   sent=run.url, got=visit.describe(), fix=fix)
    status = visit.final.status
    if not 200 <= status < 300:
        raise Fail(f"the assignment page {visit.landing_url} answered HTTP {status}",
                   sent=run.url, got=visit.describe(),
                   fix="show the assignment to the student who just logged in (the session cookie "
                       "set by the callback must be accepted on the next page)")
    return f"landed on {visit.landing_url} ({status})"


@check("LOGIN-004", "required", "Plain login (no state) works",
       seed=f"{S_LINK} \u2026 {S_LOGIN}",
       rule="redirect_uri?code=…&scopes=… without state → one successful exchange, the redirects "
            "end on a 2xx page of the app, no 5xx")
def login_plain(c: Contract) -> str:
    student = c.fresh_student()
    run = c.login(student)
    visit = run.visit
    bad = visit.server_error()
    if bad is not None:
        raise Fail(f"{bad.url} answered HTTP {bad.status} to a plain login", sent=run.url,
                   got=visit.describe() + "\n" + run.partner_calls(),
                   fix="a callback without state is Clever's ordinary Instant Login: log the "
                       "student in and show your home page or dashboard")
    if run.token() is None:
        detail = "\n".join(show_entry(e) for e in run.exchanges()) or run.partner_calls()
        raise Fail("no successful code exchange for a plain login", sent=run.url,
                   got=f"{visit.describe()}\n{detail}", fix=_exchange_fix(c))
    if visit.error or visit.left_host:
        raise Fail(f"the login did not end on a page of your app ({visit.error or visit.landing_url})",
                   sent=run.url, got=visit.describe(),
                   fix="after logging the student in, redirect to a page of your app")
    status = visit.final.status
    if not 200 <= status < 300:
        raise Fail(f"the login ended on {visit.landing_url} with HTTP {status}", sent=run.url,
                   got=visit.describe(), fix="land the logged-in student on a page that answers 200")
    return f"logged in and landed on {visit.landing_url} ({status})"


def _logged_in_after(c: Contract, run_entries: list[dict], student_id: str | None) -> list[dict]:
    """Signs somebody was logged in: successful exchanges, or successful il-token calls."""
    out = []
    for e in run_entries:
        if e.get("path") == "/oauth/tokens" and e.get("method") == "POST" and e.get("status") == 200:
            out.append(e)
        elif e.get("token_kind") == "il" and e.get("status") == 200 and \
                e.get("client_id") == c.cfg.client_id and (student_id is None or e.get("user_id") == student_id):
            out.append(e)
    return out


@check("LOGIN-005", "required", "An invalid code logs nobody in and is not a 5xx",
       seed=S_LOGIN,
       rule="redirect_uri?code=<unknown>&state=assignment:{id} → no successful exchange, no "
            "/me as anyone, an answer below 500")
def login_invalid_code(c: Contract) -> str:
    try:
        state = "assignment:" + c.assignment_ids()[0]
    except Skip:
        state = None
    url = c.forged_login_url(secrets.token_hex(10), state)
    mark = c.sim.journal_mark()
    visit = c.visit(url)
    entries = c.sim.journal_since(mark)
    bad = visit.server_error()
    if bad is not None:
        raise Fail(f"answered HTTP {bad.status} to a login link with an invalid code", sent=url,
                   got=f"{visit.describe()}\nrequests your app made to Clever:\n{show_calls(entries)}",
                   fix="when the exchange answers 400 invalid_grant, show a \"login failed, start "
                       "again from Schoology\" page (4xx), not a server error")
    logged = _logged_in_after(c, entries, None)
    if logged:
        raise Fail("somebody was logged in from a link with an invalid code", sent=url,
                   got="\n".join(show_entry(e) for e in logged),
                   fix="log a user in only with the token Clever returns for this code, and only "
                       "when the exchange succeeded")
    final = visit.final
    return f"refused: {final.status if final else visit.error} at {visit.landing_url}, nobody logged in"


@check("LOGIN-006", "required", "A reused code logs nobody in and is not a 5xx",
       seed=S_LOGIN,
       rule="opening the same launch link a second time (new browser) → no second successful "
            "exchange, no data-API call as the student, an answer below 500")
def login_reused_code(c: Contract) -> str:
    student = c.fresh_student()
    try:
        first = c.login(student, assignment_id=c.assignment_ids()[0])
    except Skip:
        first = c.login(student)
    second = c.login(student, url=first.url, code=first.code)
    visit = second.visit
    sent = f"{first.url}\n(opened once — see the first visit below — then again in a new browser)"
    bad = visit.server_error()
    if bad is not None:
        raise Fail(f"answered HTTP {bad.status} when a used launch link was opened again", sent=sent,
                   got=f"first visit:\n{first.visit.describe()}\nsecond visit:\n{visit.describe()}\n"
                       f"requests your app made to Clever the second time:\n{second.partner_calls()}",
                   fix="students double-click links and reload pages: when Clever answers "
                       "invalid_grant (\"already used\"), show a page telling them to start again "
                       "from Schoology (4xx), not a server error")
    logged = _logged_in_after(c, second.entries, student["id"])
    if logged:
        raise Fail("the used code logged the student in again", sent=sent,
                   got="\n".join(show_entry(e) for e in logged),
                   fix="never keep tokens by code: a replayed link must not open a session")
    final = visit.final
    return f"second use refused: {final.status if final else visit.error}, nobody logged in"


def _launch_finished(run: LoginRun, what: str, *, fix: str) -> None:
    """Fail when the launch for ``what`` hit a 5xx or did not finish (LOGIN-007, LOGIN-008)."""
    visit = run.visit
    bad = visit.server_error()
    if bad is not None or visit.error:
        raise Fail(f"a launch for {what} "
                   f"{'answered HTTP ' + str(bad.status) if bad else 'failed: ' + str(visit.error)}",
                   sent=run.url, got=visit.describe(), fix=fix)


@check("LOGIN-007", "recommended", "A launch for an unknown assignment is not a 5xx",
       seed=f"{S_LINK}",
       rule="state=assignment:<an id not in the list> → every answer below 500")
def login_unknown_assignment(c: Contract) -> str:
    unknown = "nosuch" + secrets.token_hex(4)
    run = c.login(c.fresh_student(), assignment_id=unknown)
    _launch_finished(run, f"the unknown assignment {unknown!r}",
                     fix="a teacher may link an assignment you later remove: log the student in "
                         "and show a \"not found\" page or the dashboard (4xx or 2xx), not a "
                         "server error")
    return f"landed on {run.visit.landing_url} ({run.visit.final.status})"


@check("LOGIN-008", "recommended", "Assignment ids that need percent-encoding survive the launch",
       seed=f"{S_IDS} \u2026 {S_LINK}",
       rule=f"state=assignment:{WEIRD_ID} → every answer below 500; if the landing URL is an "
            f"assignment page (landing_url_pattern), it carries exactly {WEIRD_ID!r}")
def login_percent_encoding(c: Contract) -> str:
    run = c.login(c.fresh_student(), assignment_id=WEIRD_ID)
    _launch_finished(run, f"the assignment id {WEIRD_ID!r}",
                     fix="decode the state parameter once (your framework's query parsing does it) "
                         "and treat everything after \"assignment:\" as the id")
    visit = run.visit
    pattern = c.cfg.landing_url_pattern
    found = landing_id(pattern, visit.landing_url or "") if pattern and not visit.left_host else None
    if found is not None and found != WEIRD_ID:
        raise Fail(f"landed on the assignment page of {found!r}, not {WEIRD_ID!r}: the id was cut or "
                   f"mis-decoded", sent=run.url, got=visit.describe(),
                   fix="take everything after \"assignment:\" in the decoded state, and "
                       "percent-encode the id when you build the page URL (encodeURIComponent / "
                       "urllib.parse.quote(id, safe=''))")
    where = "its assignment page" if found else "a page that is not an assignment page"
    return f"landed on {where} {visit.landing_url} ({visit.final.status})"
