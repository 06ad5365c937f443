"""Seed Step 2: a Schoology link logs the student in and lands on the assignment.

Each check follows a launch URL exactly as Clever produces it (``POST /_sim/codes`` gives
the code and ``redirect_uri?code=…&scopes=…&state=assignment:{id}``) in a fresh cookie
jar, following redirects only while they stay on the app's host, then reads the
simulator's journal for what the app did with the code.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from .harness import (Browse, Fail, LoginRun, SimError, Skip, browse, check, clip, form_or_json, jdump,
                      landing_id, lost_session_note, request_json, show_calls, show_entry,
                      strict_cookie_note)
from .session import Contract

S_LINK = ("The links embedded in Schoology will act as Log in with Clever buttons, redirecting the "
          "student to your app\u2019s primary redirect URI and including the assignment ID in the "
          "state parameter")
S_LOGIN = "Your app will log the user in, acquiring the student\u2019s Clever ID"
S_LAND = ("Your app will log the user in, acquiring the student\u2019s Clever ID, and redirect them "
          "to the appropriate assignment.")
S_IDS = "Assignment IDs can be in any format you choose"

WEIRD_ID = "Unit 3:Quiz 1/2 & 3 50%25"   # needs percent-encoding: space, slash, "&" (splits a
#   decoded query string) and a literal "%25" (decoded twice it becomes "%": the id changes);
#   a ":" (state.split(":")[1] keeps "Unit 3") and capitals (a lower-cased id is another id)


def _exchange_fix(c: Contract) -> str:
    return (f"exchange the code once, server-side: POST {c.sim_url}/oauth/tokens with "
            f"grant_type=authorization_code, code=<the code from the query string> and "
            f"redirect_uri={c.cfg.redirect_uri} (exactly the primary redirect URI), "
            f"authenticating with HTTP Basic {c.cfg.client_id}:<client_secret>")


def id_mistake(found: str | None, expected: str, visit: Browse | None = None) -> str:
    """Why a landing page carries ``found`` instead of ``expected``, when it is a known
    mistake (the state's prefix kept, the id percent-decoded twice or never, the id put in
    the Location without percent-encoding); else ""."""
    if found is None or found == expected:
        return ""
    if found == "assignment:" + expected or found.startswith("assignment:"):
        return (" (the id still starts with \"assignment:\": that prefix belongs to state, the id "
                "is only what follows it)")
    raw = [h.location for h in (visit.hops if visit else []) if h.location and expected in h.location]
    if raw and (" " in raw[0] or "%" in expected):
        return (f" (your app put the id into the Location header as is — {raw[0]!r} — without "
                f"percent-encoding it, so its \"%25\" reads as \"%\" and its \"/\", \"&\" or "
                f"spaces change the URL; encode the id as a path segment or query value: "
                f"uri_escape / encodeURIComponent / URLEncoder.encode)")
    if unquote(found) == expected:
        return (" (the id is still percent-encoded: your app took state from the raw query string "
                "without decoding it (then encoded it again for the URL); decode each query "
                "parameter once, or use your framework's parsed query)")
    if found == unquote(expected):
        return (" (the id was percent-decoded twice: your framework already decoded the state "
                "parameter once; do not decode it again)")
    if found != expected and found == expected.lower():
        return " (the id was lower-cased: ids are case-sensitive, \"Quiz1\" and \"quiz1\" are two assignments)"
    if ":" in expected and found == expected.split(":")[0]:
        return (" (the id was cut at its own \":\": split state at the first colon only, "
                "state.slice(\"assignment:\".length) / state.split(\":\", 1)[1], never split(\":\")[1])")
    return ""


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
        first = run.visit.hops[0] if run.visit.hops else None
        refused = ""
        reached = None   # whether a plain login (no state) reached /oauth/tokens
        if first is not None and 400 <= first.status < 500 and not tried:
            c.doing("opening a plain login (no state) to see whether your app reaches Clever at all")
            try:
                plain = c.login(c.fresh_student())
                reached = any(e.get("path") == "/oauth/tokens" for e in plain.entries)
            except SimError:
                reached = True   # not known: keep the launch-specific explanation
        if reached is False:
            refused = (f" (the callback answered HTTP {first.status} and no request reached Clever, "
                       f"not even for a plain login without state: your app's HTTP client failed "
                       f"before sending — a line break in a header value (Perl's "
                       f"encode_base64(\"id:secret\") ends with \"\\n\" unless its second argument "
                       f"is ''; base64 encoders that wrap long lines), or a Clever base URL that does "
                       f"not point at the simulator; see your app's log)")
        elif reached:
            refused = (f" (the callback answered HTTP {first.status} without trying: if your app "
                       f"checks state against a value it issued itself (CSRF protection for its "
                       f"own login button), a Schoology launch fails it: Clever sends "
                       f"state={run.state}, which your app never issued; treat a state that "
                       f"starts with \"assignment:\" as a launch, not as your login's nonce)")
        raise Fail("your app never exchanged the code at POST /oauth/tokens" + refused,
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
    if strict_cookie_note(visit):
        fix = ("set your session cookie with SameSite=Lax (or SameSite=None; Secure when your app "
               "runs in an iframe): browsers withhold a Strict cookie for the whole launch and "
               "refuse a None cookie without Secure, so the student arrives logged out")
    lost = "" if strict_cookie_note(visit) else lost_session_note(visit)
    if lost:
        fix = ("keep the session the callback creates where every later request finds it: a "
               "session cookie with Path=/ (a cookie without Path belongs to the callback's "
               "directory only), and sessions stored where every process of your server reads "
               "them (a database, a file, a signed cookie), not in one process's memory")
    found = landing_id(pattern, visit.landing_url or "")
    if found != expected:
        raise Fail(f"landed on {visit.landing_url}, not the assignment page {want}"
                   + (id_mistake(found, expected, visit) or strict_cookie_note(visit) or lost),
                   sent=run.url, got=visit.describe(), fix=fix)
    status = visit.final.status
    if not 200 <= status < 300:
        raise Fail(f"the assignment page {visit.landing_url} answered HTTP {status}"
                   + (strict_cookie_note(visit) or lost),
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
    if visit.dropped():
        raise Fail(f"sent no answer to a login link with an invalid code: {visit.dropped()}", sent=url,
                   got=f"{visit.describe()}\nrequests your app made to Clever:\n{show_calls(entries)}",
                   fix="when the exchange answers 400 invalid_grant, show a \"login failed, start "
                       "again from Schoology\" page (4xx); catch every error of a request so that "
                       "it becomes an answer, never the end of the connection or of the server")
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
    dropped = first.visit.dropped() or visit.dropped()
    if dropped:
        raise Fail(f"sent no answer to a launch link: {dropped}", sent=sent,
                   got=f"first visit:\n{first.visit.describe()}\nsecond visit:\n{visit.describe()}",
                   fix="answer a used code with a \"login failed, start again from Schoology\" page "
                       "(4xx); catch every error of a request so that it becomes an answer, never "
                       "the end of the connection or of the server")
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
                   f"mis-decoded" + id_mistake(found, WEIRD_ID, visit), sent=run.url, got=visit.describe(),
                   fix="take everything after \"assignment:\" in the decoded state, and "
                       "percent-encode the id when you build the page URL (encodeURIComponent / "
                       "urllib.parse.quote(id, safe=''))")
    where = "its assignment page" if found else "a page that is not an assignment page"
    return f"landed on {where} {visit.landing_url} ({visit.final.status})"


# --- LOGIN-009: hostile launch links ---------------------------------------------------------

ATTACKER = "evil.invalid"      # .invalid never resolves (RFC 2606): nothing leaves the machine
ACTIONABLE = ("a 2xx or 4xx HTML page with some text, reached without leaving the app's origin "
              "(same-origin redirects are followed)")


@dataclass(frozen=True)
class Hostile:
    """One crafted launch link: its ``state`` (None: absent) and ``code`` ("valid": a
    fresh code; None: absent; else sent as is), and the markup it must not reflect."""

    name: str
    state: str | None
    code: str | None = "valid"
    markup: str | None = None      # found verbatim in an HTML answer = reflected unescaped


def hostile_inputs(nonce: str, assignment_id: str) -> list[Hostile]:
    """The crafted links of LOGIN-009 (``nonce`` makes every payload unique to this run)."""
    script = f"<script>xss{nonce}</script>"
    img = f"\"><img src=x onerror=alert('{nonce}')>"
    js = f"javascript:alert('{nonce}')"
    evil = f"https://{ATTACKER}/{nonce}"
    launch = f"assignment:{assignment_id}"
    return [
        Hostile("unknown assignment id", f"assignment:nosuch{nonce}"),
        Hostile("assignment id with a <script> element", f"assignment:{script}", markup=script),
        Hostile("assignment id breaking out of an HTML attribute", f"assignment:{img}",
                markup=img[2:]),
        Hostile("absolute URL after assignment:", f"assignment:{evil}"),
        Hostile("protocol-relative URL after assignment:", f"assignment://{ATTACKER}/{nonce}"),
        Hostile("backslash URL after assignment:", f"assignment:/\\{ATTACKER}/{nonce}"),
        Hostile("javascript: URL after assignment:", f"assignment:{js}"),
        Hostile("absolute URL as the whole state", evil),
        Hostile("protocol-relative URL as the whole state", f"//{ATTACKER}/{nonce}"),
        Hostile("javascript: URL as the whole state", js),
        Hostile("markup as the whole state", script, markup=script),
        Hostile("very long assignment id (2,000 characters)", "assignment:" + "x" * 2000),
        Hostile("percent-encoded markup in the id (decoded twice it is a <script>)",
                "assignment:" + script.replace("<", "%3C").replace(">", "%3E").replace("/", "%2F"),
                markup=script),
        Hostile("non-ASCII assignment id", f"assignment:\u00e9l\u00e8ve-\u65e5\u672c-\U0001f600-{nonce}"),
        Hostile("CR/LF in the assignment id (header injection)",
                f"assignment:x{nonce}\r\nSet-Cookie: injected=1"),
        Hostile("empty assignment id", "assignment:"),
        Hostile("empty state", ""),
        Hostile("no code", launch, code=None),
        Hostile("empty code", launch, code=""),
        Hostile("garbage code carrying markup", launch, code=script, markup=script),
        Hostile("very long garbage code (2,000 characters)", launch, code="c" * 2000),
    ]


def _hostile_url(c: Contract, case: Hostile, code: str | None) -> str:
    params = {} if code is None else {"code": code}
    params["scopes"] = " ".join(c.app_view.get("scopes") or [])
    if case.state is not None:
        params["state"] = case.state
    sep = "&" if urlsplit(c.cfg.redirect_uri).query else "?"
    return c.cfg.redirect_uri + sep + urlencode(params)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def hostile_problem(case: Hostile, visit: Browse, origin: tuple[str, str]) -> str | None:
    """What is wrong with the app's answer to one crafted link, in words (None: fine)."""
    if visit.error:
        return f"no usable answer: {visit.error}"
    bad = visit.server_error()
    if bad is not None:
        return f"HTTP {bad.status} (a server error) at {bad.url}"
    for hop in visit.hops:
        if hop.location is None:
            continue
        target = urljoin(hop.url, hop.location.strip())
        if _origin(target) != origin:
            return f"redirected outside the app's origin, to {hop.location!r}"
    for hop in visit.hops:
        html = "html" in hop.content_type.lower() or not hop.content_type
        if case.markup and html and case.markup in hop.body:
            return f"reflected the markup {case.markup!r} unescaped in an HTML answer ({hop.url})"
        if html and re.search(r"(?i)(href|src|action|formaction)\s*=\s*[\"']?\s*javascript:",
                              hop.body) and "javascript:" in (case.state or ""):
            return f"put a javascript: URL in a link or form of the page ({hop.url})"
    final = visit.final
    if final is None:
        return "no answer"
    if final.location is not None or not (200 <= final.status < 300 or 400 <= final.status < 500):
        return f"ended on HTTP {final.status} without a page to land on"
    if "html" not in final.content_type.lower():
        return (f"ended on HTTP {final.status} with Content-Type "
                f"{final.content_type or '(none)'}, not an HTML page a student can read")
    text = re.sub(r"(?s)<(script|style)\b.*?</\1>|<[^>]+>", " ", final.body)
    if not text.strip():
        return f"ended on HTTP {final.status} with an empty page"
    return None


@check("LOGIN-009", "required", "Hostile launch links: no 5xx, no reflected markup, no open redirect",
       seed=f"{S_LINK} \u2026 {S_LOGIN}",
       rule="crafted state/code values (unknown ids, HTML/JS markup, absolute, protocol-relative "
            "and javascript: URLs, very long, percent-encoded, non-ASCII, CR/LF and empty values; "
            "a missing or garbage code) → every answer below 500, no payload markup verbatim in "
            "HTML, no redirect to another origin, and the student ends on " + ACTIONABLE)
def login_hostile_links(c: Contract) -> str:
    try:
        aid = c.assignment_ids()[0]
    except Skip:
        aid = "nosuch"
    cases = hostile_inputs(secrets.token_hex(4), aid)
    student = c.fresh_student()
    origin = _origin(c.cfg.redirect_uri)
    urls = []
    for case in cases:
        code = c.mint_code(student)["code"] if case.code == "valid" else case.code
        urls.append(_hostile_url(c, case, code))
    c.doing(f"following {len(urls)} crafted launch links")
    with ThreadPoolExecutor(max_workers=8) as pool:
        visits = list(pool.map(lambda u: browse(u, c.partner_host,
                                                timeout=max(10.0, c.cfg.assignments_timeout_s)), urls))
    failed = [(case, url, visit, problem) for case, url, visit in zip(cases, urls, visits)
              if (problem := hostile_problem(case, visit, origin))]
    if failed:
        case, url, visit, problem = failed[0]
        others = "".join(f"\n- {f[0].name}: {f[3]}" for f in failed[1:])
        raise Fail(f"crafted launch link ({case.name}): {problem}"
                   + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""),
                   sent=clip(url, 600) + f"\n(state = {clip(jdump(case.state), 300)}, code = "
                                         f"{'a fresh valid code' if case.code == 'valid' else clip(jdump(case.code), 200)})",
                   got=visit.describe() + _page_excerpt(visit)
                       + (f"\nother crafted links that failed:{others}" if others else ""),
                   fix="treat state and code as untrusted text: take the id after \"assignment:\", "
                       "look it up among your assignments and redirect only to your own path "
                       "(/assignments/ + percent-encoded id, never a URL taken from state); "
                       "HTML-escape anything you echo; answer a bad or missing code with a 4xx "
                       "\"start again from Schoology\" page, never a 5xx")
    landed = sorted({v.final.status for v in visits if v.final is not None})
    return f"{len(cases)} crafted links: no 5xx, nothing reflected, no off-origin redirect " \
           f"(final statuses {', '.join(map(str, landed))})"


def _page_excerpt(visit: Browse) -> str:
    final = visit.final
    if final is None or final.location or final.status >= 400:
        return ""  # describe() already shows error pages
    return "\n  page: " + clip(" ".join(final.body.split()), 400)


# --- LOGIN-011: a second student in the same browser ----------------------------------------

@check("LOGIN-011", "required", "A launch in a browser where another student is logged in logs in the new student",
       seed=S_LAND,
       rule="student A launches an assignment; then, in the same browser (A's session cookie "
            "still there), student B follows a launch link for another assignment → the app "
            "exchanges B's code, calls /me with B's token and lands on B's assignment")
def login_shared_browser(c: Contract) -> str:
    ids = c.assignment_ids()
    first_id, second_id = ids[0], ids[1] if len(ids) > 1 else ids[0]
    a, b = c.fresh_student(), c.fresh_student()
    c.doing(f"launching {first_id!r} as student {a['id']}")
    first = c.login(a, assignment_id=first_id)
    if first.token() is None or first.visit.cookies is None:
        raise Skip("not judged: the first student's launch logged nobody in (see LOGIN-001)")
    if not [e for e in first.me_calls(first.token()) if e.get("status") == 200]:
        raise Skip("not judged: your app does not ask /me who logged in (see LOGIN-002)")
    pattern = c.cfg.landing_url_pattern
    lands = bool(pattern) and landing_id(pattern, first.visit.landing_url or "") == first_id \
        and not first.visit.left_host
    c.doing(f"launching {second_id!r} as student {b['id']} in the same browser")
    second = c.login(b, assignment_id=second_id, cookies=first.visit.cookies)
    visit = second.visit
    sent = (f"{first.url}\n(student {a['id']} launched {first_id!r}; your app set "
            f"{', '.join(sorted({k.name for k in first.visit.cookies})) or 'no cookie'}), then in the same "
            f"browser:\n{second.url}\n(student {b['id']}, {second.state})")
    got = f"{visit.describe()}\nrequests your app made to Clever the second time:\n{second.partner_calls()}"
    fix = ("on every callback with a code, exchange that code and replace the session with the "
           "student /me names, even when the browser is already logged in: Chromebooks and lab "
           "computers are shared, and a student left logged in would otherwise be the one who "
           "works, and is graded, in the next student's place")
    bad = visit.server_error()
    if bad is not None:
        raise Fail(f"{bad.url} answered HTTP {bad.status} to a launch in a browser where another "
                   f"student was logged in", sent=sent, got=got, fix=fix)
    if not second.exchanges():
        raise Fail(f"your app never exchanged student {b['id']}'s code: the browser was still logged "
                   f"in as student {a['id']}, so {b['id']} works (and is graded) as {a['id']}",
                   sent=sent, got=got, fix=fix)
    token = second.token()
    if token is None:
        raise Fail(f"Clever refused the exchange of student {b['id']}'s code: "
                   f"{_error_of(second.exchanges()[0])}", sent=sent,
                   got="\n".join(show_entry(e) for e in second.exchanges()), fix=_exchange_fix(c))
    if not [e for e in second.me_calls(token) if e.get("status") == 200]:
        raise Fail(f"your app exchanged student {b['id']}'s code but never asked /me who that is: "
                   f"the browser keeps the session of student {a['id']}", sent=sent, got=got, fix=fix)
    if lands:
        found = None if visit.left_host or visit.error else landing_id(pattern, visit.landing_url or "")
        if found != second_id:
            raise Fail(f"student {b['id']} landed on {visit.landing_url}, not the assignment page "
                       f"{pattern.replace('{assignment_id}', second_id)}"
                       + (f" (the page of the previous launch, {first_id!r})" if found == first_id
                          and first_id != second_id else ""),
                       sent=sent, got=got,
                       fix="redirect to the assignment in this callback's state, not one kept in "
                           "the session from an earlier launch")
    landed = (f"landed on {visit.landing_url}" if lands else
              "the landing page was not judged (" + ("see LOGIN-003" if pattern else
                                                     "no landing_url_pattern") + ")")
    return f"student {b['id']} logged in over {a['id']}'s session; {landed}"


S_AFTER = "Grades appear in Schoology after the student finishes the assignment"


@check("LOGIN-012", "recommended", "A launch alone sends no grade",
       seed=f"{S_AFTER} \u2026 {S_LAND}",
       rule="a student follows a launch link and finishes nothing → the app sends no POST /v1/grade "
            "(watched for settle_s after the launch)")
def login_no_grade_on_launch(c: Contract) -> str:
    ids = c.assignment_ids()
    student = c.fresh_student()
    run = c.login(student, assignment_id=ids[0])
    if run.token() is None:
        raise Skip("not judged: the launch logged nobody in (see LOGIN-001)")
    c.doing("watching for grade POSTs after a launch")
    time.sleep(c.cfg.settle_s)
    posts = [e for e in c.sim.journal_since(run.mark, path="/v1/grade")
             if e.get("method") == "POST" and e.get("client_id") in (None, c.cfg.client_id)]
    if posts:
        body = request_json(posts[0])
        body = body if isinstance(body, dict) else {}
        score = {k: body[k] for k in ("percentage", "scoreGiven", "scoreMaximum") if k in body}
        raise Fail(f"your app sent {len(posts)} grade POST(s) when student {student['id']} only opened "
                   f"{ids[0]!r} ({jdump(score) if score else 'no score'}): Schoology shows that grade "
                   f"before the student has done anything, and a 0 reads as a failing grade",
                   sent=f"{run.url}\n(a Schoology launch; no completion)",
                   got=run.visit.describe() + "\n" + "\n".join(show_entry(e) for e in posts),
                   fix="send a grade only when the student finishes (your completion), never on "
                       "launch or on a \"started\" event; an assignment not yet done has no grade "
                       "in Schoology, which is what the teacher should see")
    return f"no grade POST within {c.cfg.settle_s:g} s of the launch"
