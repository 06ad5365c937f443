"""The suite's building blocks: check registration and outcomes, the simulator's control
API, a partner "browser", and the observations checks share (a fetch of the assignments
list, a login through the callback, a completion through the hook).

Checks (``assignments_checks``, ``login_checks``, ``grade_checks``) are plain functions
``fn(contract) -> str``: they return a one-line reason when the partner passes, raise
``Fail`` (summary + what was sent, what came back, how to fix it) or ``Skip``. The
session they run in is ``session.Contract``. Nothing here knows pytest;
``conftest.py``/``test_contract.py`` and ``runner.py`` drive the checks.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from http.cookiejar import CookieJar, DefaultCookiePolicy
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import parse_qsl, unquote, unquote_plus, urljoin, urlsplit

import httpx

from simulator import httpclient
from simulator.control_client import ControlAPIError, ControlClient

from .config import PLACEHOLDER

if TYPE_CHECKING:
    from .session import Contract

LEVELS = ("required", "recommended", "reported")
BARS = ("required", "recommended")          # --level: which failures fail the run
DOCS_HOOK = "docs/contract-tests.md, section \"The completion hook\""
USER_AGENT = "clever-sim-contract/1.0"
CONTROL_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
JOURNAL_PAGE = 10_000                        # the most one journal read returns
CLIP = 1200                                  # characters of a body shown in a message


# --- outcomes ------------------------------------------------------------------------------

class Fail(Exception):
    """The partner broke the check's rule: ``summary`` is one line, the rest explains."""

    def __init__(self, summary: str, *, sent: str | None = None, got: str | None = None,
                 fix: str | None = None, note: str | None = None):
        super().__init__(summary)
        self.summary = summary
        self.sections = [(k, v) for k, v in (("Sent", sent), ("Got", got), ("Note", note),
                                             ("Fix", fix)) if v]

    def details(self) -> str:
        return "\n".join(f"{name}:\n{_indent(text)}" for name, text in self.sections)


class Skip(Exception):
    """The check cannot be judged (no hook configured, an upstream check failed, …)."""


class SetupProblem(Exception):
    """The suite cannot start: simulator or partner unreachable, registration refused."""


@dataclass(frozen=True)
class Check:
    id: str
    area: str
    level: str
    title: str
    seed: str            # the seed sentence(s) the check enforces, quoted verbatim
    rule: str            # one line for the checks table (docs/contract-tests.md): what passes
    func: Callable[["Contract"], str] = field(compare=False, repr=False)


REGISTRY: list[Check] = []


def check(id: str, level: str, title: str, *, seed: str, rule: str):
    """Register a check function under a stable id."""
    assert level in LEVELS, level

    def deco(fn: Callable[["Contract"], str]) -> Callable[["Contract"], str]:
        assert all(c.id != id for c in REGISTRY), id
        REGISTRY.append(Check(id, id.split("-")[0], level, title, seed, rule, fn))
        return fn
    return deco


@dataclass
class CheckResult:
    id: str
    title: str
    level: str
    outcome: str          # PASS | FAIL | SKIP
    reason: str           # one line
    details: str = ""     # the full explanation (failures)
    seed: str = ""
    duration_s: float = 0.0
    counted: bool = False  # a FAIL that fails the run at the chosen --level
    sections: list = field(default_factory=list)  # a FAIL's (name, text): Sent, Got, Note, Fix

    def explanation(self) -> str:
        parts = [f"{self.id} ({self.level}) {self.title}: {self.outcome}", self.reason]
        if self.details:
            parts.append(self.details)
        if self.seed:
            parts.append(f"Seed rule: \u201c{self.seed}\u201d")
        return "\n".join(parts)


def counts(level: str, bar: str) -> bool:
    """Whether a failure of a ``level`` check fails the run at ``--level bar``."""
    if level == "required":
        return True
    return level == "recommended" and bar == "recommended"


# --- text helpers -------------------------------------------------------------------------

def _indent(text: str, by: str = "  ") -> str:
    return "\n".join(by + line if line else line for line in text.splitlines())


def clip(text: Any, limit: int = CLIP) -> str:
    if text is None:
        return "(none)"
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"


def one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def jdump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def show_entry(e: dict, *, bodies: bool = True) -> str:
    """One journal entry as 'POST /v1/grade → 400' plus its bodies."""
    line = f"{e.get('method')} {e.get('path')}{'?' + e['query'] if e.get('query') else ''}" \
           f" → {e.get('status')}"
    if e.get("fault"):
        line += " (fault injected by the suite)"
    if not bodies:
        return line
    out = [line]
    ctype = (e.get("request_headers") or {}).get("Content-Type")
    if e.get("method") in ("POST", "PUT", "PATCH"):
        out.append(f"  Content-Type: {ctype or '(none)'}")
        out.append("  request body: " + clip(e.get("request_body") if e.get("request_body") is not None
                                             else "(not read by Clever)", 600))
    if e.get("response_body"):
        out.append("  response: " + clip(e["response_body"].strip(), 600))
    return "\n".join(out)


def show_calls(entries: Iterable[dict]) -> str:
    """The requests an app made to Clever, one line each (no bodies), or "(none)"."""
    return "\n".join(show_entry(e, bodies=False) for e in entries) or "(none)"


def entry_time(e: dict) -> float:
    """The journal entry's time (``2026-11-28T04:19:28.724Z``) as epoch seconds."""
    return datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()


def request_json(e: dict) -> Any:
    try:
        return json.loads(e.get("request_body") or "")
    except ValueError:
        return None


def form_or_json(e: dict) -> dict:
    """An OAuth request's body (JSON or form) merged over its query string."""
    out = dict(parse_qsl(e.get("query") or "", keep_blank_values=True))
    body = e.get("request_body") or ""
    doc = request_json(e)
    if isinstance(doc, dict):
        out.update({k: v for k, v in doc.items() if isinstance(v, str)})
    elif body:
        out.update(dict(parse_qsl(body, keep_blank_values=True)))
    return out


def bearer_of(e: dict) -> str | None:
    auth = (e.get("request_headers") or {}).get("Authorization") or ""
    parts = auth.split()
    return parts[1] if len(parts) == 2 and parts[0].lower() == "bearer" else None


def me_calls(entries: Iterable[dict], token: str | None) -> list[dict]:
    """Calls to /me (any version) made with ``token``."""
    return [e for e in entries if str(e.get("path", "")).rstrip("/").endswith("/me")
            and bearer_of(e) == token]


def media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def as_fraction(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


# --- HTTP ---------------------------------------------------------------------------------

def client(**kwargs: Any) -> httpx.Client:
    """A fresh httpx client (its own cookie jar), never through an environment proxy.

    Clients share one SSL context: building one per client costs ~30 ms of CPU, and the
    suite makes dozens of short-lived clients (one per browser visit, fetch, hook call).
    """
    kwargs.setdefault("headers", {"User-Agent": USER_AGENT})
    return httpclient.client(**kwargs)


# --- the simulator's control API -----------------------------------------------------------

class SimError(Exception):
    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class SimClient(ControlClient):
    """The simulator's control client as the suite uses it: every call has a timeout, and a
    refusal or an unreachable simulator becomes ``SimError`` (said in one line by the runner)."""

    def __init__(self, base_url: str, control_token: str | None = None):
        super().__init__(base_url, control_token, timeout=CONTROL_TIMEOUT)
        self.base_url = self.url
        self.http.headers["User-Agent"] = USER_AGENT

    def call(self, method: str, path: str, *, ok: Iterable[int] = (200, 201), json: Any = None,
             params: dict | None = None, timeout: float | None = None) -> Any:
        try:
            return super().call(method, path, json_body=json, params=params, timeout=timeout, ok=ok)
        except ControlAPIError as exc:
            if exc.status == 0:  # no answer at all: the message says why
                raise SimError(f"{exc.body} ({method} {path})") from None
            message = exc.body.get("message") if isinstance(exc.body, dict) else None
            raise SimError(f"simulator answered {method} {path} with {exc.status}: "
                           f"{message or clip(str(exc.body), 300)}", exc.status, exc.body) from None

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call("POST", path, json=body if body is not None else {}, **kw)

    # journal --------------------------------------------------------------------------
    def journal_mark(self) -> int:
        data = self.get("/_sim/journal", params={"limit": 1})["data"]
        return data[0]["id"] if data else 0

    def journal_since(self, after_id: int, **filters: Any) -> list[dict]:
        """Every journal entry after ``after_id`` matching ``filters``, oldest first: read a
        page at a time (a read returns at most 10,000), so a simulator whose journal_cap is
        above that never hides the oldest of them."""
        return self.journal_pages(after_id, **filters)[0]

    def journal_pages(self, after_id: int, **filters: Any) -> tuple[list[dict], dict]:
        """(``journal_since``'s entries, the first page's answer: ``dropped`` and the rest)."""
        params = {k: v for k, v in filters.items() if v is not None}
        entries: list[dict] = []
        first: dict | None = None
        while True:
            page = self.get("/_sim/journal", params={**params, "after_id": after_id,
                                                      "limit": JOURNAL_PAGE, "order": "oldest"})
            first = page if first is None else first
            # sorted: a simulator from before ``order`` answers newest first
            data = sorted((e for e in page["data"] if e["id"] > after_id), key=lambda e: e["id"])
            entries.extend(data)
            if len(page["data"]) < JOURNAL_PAGE or not data:
                return entries, first
            after_id = data[-1]["id"]

    # grades ---------------------------------------------------------------------------
    def grades(self, **filters: Any) -> list[dict]:
        return self.get("/_sim/grades", params={k: v for k, v in filters.items() if v is not None})["data"]


# --- the partner, seen from a browser -------------------------------------------------------

@dataclass
class Hop:
    url: str
    status: int
    location: str | None
    content_type: str
    body: str
    sent_cookies: str = ""                                   # the Cookie header the browser sent
    set_cookies: list[str] = field(default_factory=list)     # the answer's Set-Cookie headers


@dataclass
class Browse:
    """A browser visit that follows redirects only within the partner's host."""

    start: str
    hops: list[Hop] = field(default_factory=list)
    landing_url: str | None = None        # last URL reached (or the off-host redirect target)
    left_host: bool = False
    error: str | None = None
    cookies: CookieJar | None = None   # the jar afterwards: a later visit in the same browser

    @property
    def final(self) -> Hop | None:
        return self.hops[-1] if self.hops else None

    def server_error(self) -> Hop | None:
        return next((h for h in self.hops if h.status >= 500), None)

    def dropped(self) -> str:
        """Why the app gave no HTTP answer at all (a closed or refused connection), else ""."""
        if not self.error or self.error.startswith(("no answer within", "more than")):
            return ""
        if "ConnectError" in self.error:
            return (f"{self.error} — your app is no longer listening: did an earlier request end "
                    f"the process (an uncaught exception or die() in a single-process server)?")
        return f"{self.error} — your app closed the connection without an answer"

    def describe(self) -> str:
        lines = [f"GET {self.start}"]
        for h in self.hops:
            where = f" → Location: {h.location}" if h.location else ""
            lines.append(f"  {h.status} {h.url}{where}")
        if self.left_host:
            lines.append(f"  (not followed: {self.landing_url} is outside your app's host)")
        if self.error:
            lines.append(f"  error: {self.error}")
        final = self.final
        if final is not None and not final.location and final.status >= 400:
            lines.append("  page: " + clip(" ".join(final.body.split()), 400))
        return "\n".join(lines)


class BrowserCookiePolicy(DefaultCookiePolicy):
    """Python's cookie rules, plus three of a browser's, for navigations that another site
    started (every visit of the suite: a launch comes from Schoology through Clever):

    - ``Secure`` cookies also go to loopback hosts over http (W3C Secure Contexts:
      http://localhost and 127.0.0.0/8 are "potentially trustworthy"), so an app whose
      session cookie is ``Secure; SameSite=None`` (an LTI app in an iframe) works in CI;
    - ``SameSite=Strict`` cookies are never sent, not even on the app's own redirects: the
      navigation was started by another site, so browsers withhold them for the whole
      redirect chain (a Strict session cookie set by the callback is not there on the
      assignment page, and the student lands logged out);
    - a ``SameSite=None`` cookie without ``Secure`` is not stored (Chrome and Edge since
      version 80): its name is kept in ``rejected`` to say so.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rejected: list[str] = []

    def set_ok(self, cookie: Any, request: Any) -> bool:
        samesite = str(cookie.get_nonstandard_attr("SameSite", "") or "").strip().lower()
        if samesite == "none" and not cookie.secure:
            self.rejected.append(cookie.name)
            return False
        return super().set_ok(cookie, request)

    def return_ok(self, cookie: Any, request: Any) -> bool:
        if samesite_strict(cookie):
            return False
        return super().return_ok(cookie, request)

    def return_ok_secure(self, cookie: Any, request: Any) -> bool:
        if cookie.secure and request.type == "http" and is_loopback(urlsplit(request.get_full_url()).hostname):
            return True
        return super().return_ok_secure(cookie, request)


def samesite_strict(cookie: Any) -> bool:
    """Whether a stored cookie was set with ``SameSite=Strict``."""
    return str(cookie.get_nonstandard_attr("SameSite", "") or "").strip().lower() == "strict"


def strict_cookie_note(visit: Browse) -> str:
    """Why a student may land logged out: the app's ``SameSite=Strict`` cookies, or its
    ``SameSite=None`` cookies without ``Secure`` ("" if none)."""
    jar = visit.cookies
    names = sorted({k.name for k in (jar or []) if samesite_strict(k)})
    if names:
        return (f" (your app's cookie {', '.join(names)} is SameSite=Strict: a launch is a "
                f"navigation another site started, so browsers do not send it, not even on your "
                f"own redirect after the callback; use SameSite=Lax, or None with Secure)")
    policy = getattr(jar, "_policy", None)   # CookieJar has no public getter for its policy
    rejected = sorted(set(getattr(policy, "rejected", [])))
    if rejected:
        return (f" (your app's cookie {', '.join(rejected)} is SameSite=None without Secure: "
                f"Chrome and Edge refuse to store it; add Secure, or use SameSite=Lax)")
    return ""


def lost_session_note(visit: Browse) -> str:
    """Why a student who was just logged in by the callback arrives logged out, when the hops
    show it: a session cookie the browser scoped to the callback's directory (no Path), or one
    sent back and not recognised (the session lived in another process's memory); else ""."""
    for i, hop in enumerate(visit.hops[:-1]):
        if not hop.set_cookies:
            continue
        nxt = visit.hops[i + 1]
        for header in hop.set_cookies:
            name = header.split("=", 1)[0].strip()
            attrs = [a.strip().lower() for a in header.split(";")[1:]]
            sent = any(c.split("=", 1)[0].strip() == name for c in nxt.sent_cookies.split(";"))
            if not sent and not any(a.startswith("path=") for a in attrs):
                where = urlsplit(hop.url).path.rsplit("/", 1)[0] or "/"
                return (f" (your app's cookie {name} was set by {urlsplit(hop.url).path} without "
                        f"Path=, so browsers keep it for {where}/ only (RFC 6265, section 5.1.4) and "
                        f"did not send it to {urlsplit(nxt.url).path}: add Path=/)")
            if sent and nxt.location:
                return (f" (the browser sent back the cookie {name} your app had just set, yet "
                        f"{urlsplit(nxt.url).path} redirected to {nxt.location}: your app did not find "
                        f"that session — kept in the memory of one process while another answered "
                        f"(a forking or multi-process server), or stored under another key)")
    return ""


def is_loopback(host: str | None) -> bool:
    """localhost (and its subdomains), 127.0.0.0/8 or ::1."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def browse(url: str, host: str, timeout: float, max_hops: int = 10,
           cookies: CookieJar | None = None) -> Browse:
    """GET ``url`` in a fresh cookie jar (or ``cookies``, the jar an earlier visit left: the
    same browser again), following redirects while they stay on ``host``."""
    visit = Browse(url)
    jar = cookies if cookies is not None else CookieJar(policy=BrowserCookiePolicy())
    visit.cookies = jar
    # The jar is kept here, not by the client: httpx copies a client's jar into one with
    # Python's default policy for every request, which never sends a Secure cookie over http.
    store = httpx.Cookies(jar)
    with client(timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)), follow_redirects=False,
                headers={"User-Agent": USER_AGENT + " (browser)",
                         "Accept": "text/html,application/xhtml+xml,*/*"}) as browser:
        current = url
        for _ in range(max_hops):
            try:
                request = browser.build_request("GET", current)
                request.headers.pop("Cookie", None)
                store.set_cookie_header(request)
                resp = browser.send(request)
                store.extract_cookies(resp)
            except httpx.TimeoutException:
                visit.error = f"no answer within {timeout:g} s"
                visit.landing_url = current
                return visit
            except httpx.HTTPError as exc:
                visit.error = f"{type(exc).__name__}: {exc}"
                visit.landing_url = current
                return visit
            location = resp.headers.get("location") if resp.is_redirect else None
            visit.hops.append(Hop(current, resp.status_code, location,
                                  resp.headers.get("content-type", ""), resp.text[:4000],
                                  request.headers.get("cookie", ""),
                                  resp.headers.get_list("set-cookie")))
            if not location:
                visit.landing_url = current
                return visit
            target = urljoin(current, location)
            if urlsplit(target).netloc.lower() != host.lower():
                visit.left_host, visit.landing_url = True, target
                return visit
            current = target
        visit.error = f"more than {max_hops} redirects"
        visit.landing_url = current
        return visit


def landing_id(pattern: str, url: str) -> str | None:
    """The ``{assignment_id}`` a landing URL carries under ``pattern``, percent-decoded;
    None when the URL is not a page of that pattern.

    A pattern starting with http(s) is matched against the whole URL; otherwise against
    the path, plus the query when the pattern has one. The path is percent-decoded with
    ``unquote`` (``%2F`` → ``/``), the query with ``unquote_plus`` (``+`` → space).
    """
    parts = urlsplit(url)
    decoded_path = unquote(parts.path)
    decoded_query = unquote_plus(parts.query)
    if re.match(r"https?://", pattern):
        subject = f"{parts.scheme}://{parts.netloc}{decoded_path}"
        if "?" in pattern:
            subject += "?" + decoded_query
    else:
        subject = decoded_path + ("?" + decoded_query if "?" in pattern else "")
    before, after = pattern.split(PLACEHOLDER)
    regex = "^" + re.escape(before) + "(?P<id>.+?)" + re.escape(after) + "/?$"
    if "?" in pattern and not after:  # a query parameter: stop at the next one
        regex = "^" + re.escape(before) + "(?P<id>[^&]+)(&.*)?$"
    m = re.match(regex, subject, re.DOTALL)
    return m.group("id") if m else None


# --- observations the checks share --------------------------------------------------------

@dataclass
class Fetch:
    """One GET of the partner's assignments URL."""

    request: str
    status: int | None = None
    content_type: str = ""
    text: str = ""
    doc: Any = None
    json_error: str | None = None
    error: str | None = None
    seconds: float = 0.0
    mark: int = 0              # journal mark taken before the call
    token: str | None = None
    bom: bool = False          # the body starts with a UTF-8 byte order mark
    raw: bytes = b""           # the body's bytes as they arrived
    headers: dict[str, str] = field(default_factory=dict)   # response headers, names lower-cased
    http_version: str = ""     # "HTTP/1.1", "HTTP/1.0"

    @property
    def readable(self) -> bool:
        """The URL answered 200 with a JSON body."""
        return not self.error and self.status == 200 and self.json_error is None

    def assignments(self) -> list:
        """The body's "assignments" array ([] when it has none)."""
        items = self.doc.get("assignments") if isinstance(self.doc, dict) else None
        return items if isinstance(items, list) else []

    def ids(self) -> list[str]:
        """The string ids in the list, in order, repeats kept."""
        return [a["id"] for a in self.assignments() if isinstance(a, dict) and isinstance(a.get("id"), str)]

    def got(self) -> str:
        if self.error:
            return self.error
        return f"HTTP {self.status} ({self.content_type or 'no Content-Type'}) after " \
               f"{self.seconds:.2f} s\n{clip(self.text)}"


@dataclass
class LoginRun:
    """A Schoology launch (or login) through the partner's callback, with the journal."""

    student: dict
    state: str | None
    code: str
    url: str
    mark: int
    visit: Browse
    entries: list[dict]

    def exchanges(self) -> list[dict]:
        """POST /oauth/tokens requests that carried this run's code."""
        return [e for e in self.entries if e.get("path") == "/oauth/tokens"
                and e.get("method") == "POST" and form_or_json(e).get("code") == self.code]

    def token(self) -> str | None:
        for e in self.exchanges():
            if e.get("status") == 200:
                try:
                    return json.loads(e.get("response_body") or "").get("access_token")
                except (ValueError, AttributeError):
                    return None
        return None

    def me_calls(self, token: str) -> list[dict]:
        return me_calls(self.entries, token)

    def partner_calls(self) -> str:
        return show_calls(self.entries)


GRADE_PATHS = ("/v1/grade", "/v1/grade/")   # the simulator routes both; GRADE-001 names the slash


@dataclass
class CompletionRun:
    """One completion driven through the hook, and what reached Clever afterwards."""

    student: dict
    assignment_id: str
    score: float
    hook: str
    hook_body: dict
    mark: int
    seq_mark: int
    hook_status: int | None = None
    hook_text: str = ""
    hook_error: str | None = None
    hook_seconds: float = 0.0
    grade: dict | None = None
    entries: list[dict] = field(default_factory=list)
    client_id: str = ""

    @property
    def posts(self) -> list[dict]:
        """Grade POSTs of this app (or with a token Clever could not attribute), not faulted."""
        return [e for e in self._grade_posts() if not e.get("fault")]

    @property
    def faulted(self) -> list[dict]:
        return [e for e in self._grade_posts() if e.get("fault")]

    def _grade_posts(self) -> list[dict]:
        return [e for e in self.entries if e.get("path") in GRADE_PATHS and e.get("method") == "POST"
                and (e.get("client_id") in (None, self.client_id) or e.get("fault"))]

    def sent(self) -> str:
        return f"POST {self.hook}\n{jdump(self.hook_body)}"

    def hook_answer(self) -> str:
        if self.hook_error:
            return f"your hook: {self.hook_error}"
        return f"your hook answered HTTP {self.hook_status} after {self.hook_seconds:.2f} s: " \
               f"{clip(self.hook_text, 400)}"

    def describe(self) -> str:
        """The hook's answer and every grade POST that reached Clever, with Clever's answers."""
        lines = [self.hook_answer()]
        grade_posts = self._grade_posts()
        if grade_posts:
            lines.append(f"{len(grade_posts)} grade POST(s) reached Clever:")
            lines += [_indent(show_entry(e)) for e in grade_posts]
        else:
            lines.append("no POST /v1/grade reached Clever from your app")
            if self.entries:
                lines.append("other requests your app made meanwhile:")
                lines += ["  " + show_entry(e, bodies=False) for e in self.entries[:15]]
        return "\n".join(lines)


def new_nonce() -> str:
    return secrets.token_hex(6)
