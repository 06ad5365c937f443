"""The one pipeline every request goes through (``EmulatedTraffic``), and its steps: fault
injection, Clever's rate limit, the security and rate headers, the error body, the journal.

No Flask here: the pipeline is WSGI in front of the Flask app and routes each request once
with the app's ``url_map``. The emulated JSON APIs' views (``web.JsonApi``: ``/v1/grade``,
the data API) are answered here, without Flask's per-request machinery; the other
partner-facing requests (OAuth pages, unknown API paths) pass through Flask and come back
for their headers and journal entry; pages and the control API get the security headers.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, Iterable, Mapping

from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as RoutedToOtherMethods
from werkzeug.exceptions import NotFound as RoutedNowhere
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import Map
from werkzeug.wrappers import Request

from .errors import (ConnectionDropped, InjectedFault, MethodNotAllowed, NotFound,
                     PayloadTooLarge, RateLimited, SimError)
from .journal import RawEntry
from .sim import Simulator
from .jsontext import dumps

# Pages (Schoology, gradebook, inspector, login) show partner-supplied text: escaping is the
# first defence, this policy the second. No form-action: a student's "Open" form redirects on
# to the partner's origin, which Chrome would block under form-action 'self'.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

# A dropped connection is journaled as 444 (nginx's "closed without a response").
DROP_STATUS = 444
EXCHANGE_KEY = "clever_sim.exchange"  # the request's Exchange, in its WSGI environ
# Matched paths remembered (``EmulatedTraffic._route``): at most this many, each at most this
# long (~0.5 MB at worst), so no stream of made-up paths grows memory.
MATCHED_MAX = 1024
MATCHED_PATH_MAX = 256
_SLASHES = re.compile(r"/{2,}")
log = logging.getLogger("clever_sim")

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"  # what Flask labels a body-less answer (Clever's 429)
NO_BODY = frozenset({204, 205, 304})  # statuses whose answer has no body (RFC 9110 §15.3.5, §15.4.5)


class Exchange:
    """What the simulator learns about one request while serving it, for its journal entry."""

    __slots__ = ("started", "fault", "rate", "findings", "meta", "request_body")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.fault = None               # the injected fault this request took, if any
        self.rate: tuple[int, int, int] | None = None  # (limit, remaining, reset) once counted
        self.findings: list[str] = []   # plain-words problems for the inspector
        self.meta: dict[str, Any] = {}  # client_id, user_id, assignment_id, token_kind
        self.request_body: bytes | None = None  # once read

    def note(self, **meta: Any) -> None:
        """Attach facts to the journal entry (None values are left out)."""
        for key, value in meta.items():
            if value is not None:
                self.meta[key] = value


def admit(sim: Simulator, exchange: Exchange, method: str, path: str,
          auth_header: str | None) -> None:
    """Take a matching injected fault (sleep, or raise it), then count the request against
    its bearer token's rate limit when ``auth_header`` is given (``None``: not limited)."""
    fault = sim.faults.take(method, path)
    if fault is not None:
        exchange.fault = fault
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        if fault.drop:
            raise ConnectionDropped()
        if fault.status:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            raise InjectedFault(fault.status, fault.body, headers)
    if auth_header is not None:
        auth = auth_header.split()
        key = auth[-1] if auth else "(anonymous)"
        now = sim.clock.now()
        limit, remaining, reset = sim.rate.hit(key, now)
        exchange.rate = (limit, max(remaining, 0), reset)
        if remaining < 0 and sim.cfg["RATE_LIMIT"]:
            raise RateLimited(headers={"Retry-After": str(max(1, int(reset - now)))})


def finish_headers(headers: list[tuple[str, str]],
                   rate: tuple[int, int, int] | None = None) -> list[tuple[str, str]]:
    """``headers`` with what every answer gets on top of its own: nosniff, the page CSP on
    HTML (each unless the answer set its own), and Clever's ``X-RateLimit-*`` once the
    request was counted (``rate``)."""
    names = {k.lower(): v for k, v in headers}
    if "x-content-type-options" not in names:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if names.get("content-type", "").startswith("text/html") \
            and "content-security-policy" not in names:
        headers.append(("Content-Security-Policy", PAGE_CSP))
    if rate is not None:
        headers += [("X-RateLimit-Limit", str(rate[0])), ("X-RateLimit-Remaining", str(rate[1])),
                    ("X-RateLimit-Reset", str(rate[2])), ("X-RateLimit-Bucket", "bearer")]
    return headers


def error_parts(exc: SimError) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the answer to ``exc``: the canonical JSON error body
    (written as ``flask.jsonify`` writes it), or Clever's empty 429."""
    if exc.status in NO_BODY:  # an injected 204/205/304: HTTP allows no body at all
        headers = [("Content-Length", "0")] if exc.status == 205 else []
        return exc.status, headers + list(exc.headers.items()), b""
    if isinstance(exc, RateLimited):
        body, content_type = b"", HTML_TYPE
    else:
        body, content_type = (dumps(exc.body()) + "\n").encode(), JSON_TYPE
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    headers += exc.headers.items()
    return exc.status, headers, body


def method_not_allowed(method: str, path: str, allowed: Iterable[str]) -> MethodNotAllowed:
    """405 naming the methods the path takes (in ``Allow`` too)."""
    allowed = list(allowed)
    listed = ", ".join(sorted(allowed))
    return MethodNotAllowed(f"Method {method} not allowed for {path}"
                            + (f"; use {listed}" if listed else ""),
                            headers={"Allow": ", ".join(allowed)} if allowed else None)


def routing_error(exc: HTTPException, method: str, path: str) -> SimError:
    """A werkzeug HTTP error (no route, another method, a body over Flask's cap) as the
    SimError answered in its place."""
    if isinstance(exc, RoutedToOtherMethods) or exc.code == 405:
        return method_not_allowed(method, path, getattr(exc, "valid_methods", None) or [])
    if isinstance(exc, RoutedNowhere) or exc.code == 404:
        return NotFound(f"Not found: no endpoint at {path}")
    if exc.code == 413:
        return PayloadTooLarge("Request body too large")
    error = SimError(exc.description or exc.name)
    error.status = exc.code or 500
    return error


def answer_error(exc: SimError, environ: dict, start_response: Callable) -> list[bytes]:
    """Answer ``exc`` straight from WSGI (a request refused before any app serves it)."""
    status, headers, body = error_parts(exc)
    start_response(status_line(status), finish_headers(headers))
    return [] if environ.get("REQUEST_METHOD", "GET").upper() == "HEAD" else [body]


def bug_parts(exc: Exception) -> tuple[str, tuple[int, list[tuple[str, str]], bytes]]:
    """(finding, answer) for an exception no rule raised: a simulator bug, answered with a
    500 that asks for a report (tests assert it never happens)."""
    body = (dumps({"message": f"Internal simulator error ({type(exc).__name__}); "
                               "please report it with the request that caused it"}) + "\n").encode()
    return (f"simulator bug: {type(exc).__name__}: {exc}",
            (500, [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body)))], body))


def status_line(status: int) -> str:
    """``404 NOT FOUND``: the status line werkzeug writes."""
    return f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}"


def findings_of(exc: SimError) -> list[str]:
    """What an error tells the inspector (an injected fault is the test's doing: nothing)."""
    return [] if isinstance(exc, InjectedFault) else exc.findings()


def journal(sim: Simulator, exchange: Exchange, environ: dict, method: str, path: str,
            status: int, response_headers: Iterable[tuple[str, str]],
            response_body: bytes | None) -> None:
    """Record one partner-facing request, its answer and what the simulator found wrong.

    Runs on every partner request, so it only captures raw facts; ``RawEntry`` formats
    them when the inspector or control API reads the journal.
    """
    fault = exchange.fault
    fields = {
        "direction": "inbound",
        "method": method,
        "path": path,
        "query": environ.get("QUERY_STRING", ""),
        "status": status,
        "duration_ms": round((time.perf_counter() - exchange.started) * 1000, 2),
        "findings": tuple(exchange.findings),
        "fault": fault.as_dict() if fault is not None else None,
        **exchange.meta,
    }
    # Tuples of strings, not lists: the garbage collector stops tracking them, so 10,000
    # journal entries do not lengthen its full passes.
    headers = tuple([(k, v) for k, v in environ.items()
                     if k[:5] == "HTTP_" or k == "CONTENT_TYPE" or k == "CONTENT_LENGTH"])
    sim.journal.add(RawEntry(fields, headers, exchange.request_body, tuple(response_headers),
                             response_body, sim.clock.now(), sim.clock.iso))


# --- the pipeline ----------------------------------------------------------------------------

class Call:
    """One request to an emulated JSON API view (``web.JsonApi``): what the view may read."""

    __slots__ = ("sim", "exchange", "environ", "method", "path")

    def __init__(self, sim: Simulator, exchange: Exchange, environ: dict, method: str, path: str):
        self.sim = sim
        self.exchange = exchange
        self.environ = environ
        self.method = method
        self.path = path

    def header(self, wsgi_name: str) -> str | None:
        """A request header by its WSGI name (``HTTP_AUTHORIZATION``, ``CONTENT_TYPE``)."""
        return self.environ.get(wsgi_name)

    def query(self) -> tuple[dict[str, str], str]:
        """The query parameters (first value of each, as Flask's ``request.args`` reads
        them) and the raw query string."""
        raw = self.environ.get("QUERY_STRING", "")
        return (Request(self.environ).args.to_dict(flat=True),
                raw.encode("latin-1").decode("utf-8", errors="replace"))


def merge_slashes(environ: dict) -> None:
    """Route ``//v2.1/students`` as ``/v2.1/students``, as Clever does (clients build URLs so):
    done once, in front of everything (``app.create_app``)."""
    path = environ.get("PATH_INFO", "")
    if "//" in path:
        environ["PATH_INFO"] = _SLASHES.sub("/", path)


class EmulatedTraffic:
    """WSGI in front of the Flask app: every request's one pipeline (see the module's doc).

    Partner-facing requests (``emulated`` blueprints' routes, and API paths nobody routes)
    take, in order: fault injection and the rate limit (``admit``), the answer (a JSON API
    view called here, or Flask), any error as its SimError's answer, the security and rate
    headers, the journal entry. The rest go to Flask with only the security headers added.
    """

    def __init__(self, flask_wsgi: Callable, sim: Simulator, url_map: Map,
                 apis: Mapping[str, Any], emulated: Iterable[str],
                 is_page_path: Callable[[str, str | None], bool]):
        self.flask_wsgi = flask_wsgi
        self.sim = sim
        self.url_map = url_map
        self.apis = dict(apis)            # blueprint name -> web.JsonApi
        self.emulated = frozenset(emulated) | frozenset(self.apis)
        self.is_page_path = is_page_path
        self._adapter = None
        # (method, path) -> (rule, args, blueprint)
        self._matched: dict[tuple[str, str], tuple[Any, dict, str | None]] = {}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = "/" + environ.get("PATH_INFO", "").encode("latin-1").decode(errors="replace").lstrip("/")
        if path.startswith(("/_sim", "/static")):  # never partner traffic
            return self.flask_wsgi(environ, _finishing(start_response))
        found = self._matched.get((method, path))
        if found is not None:
            (rule, args, blueprint), error = found, None
        else:
            rule, args, blueprint, error = self._route(method, path)
        if blueprint is not None and blueprint not in self.emulated \
                or blueprint is None and (error is None or self.is_page_path(path, environ.get("HTTP_ACCEPT"))):
            return self.flask_wsgi(environ, _finishing(start_response))
        return self._serve(environ, start_response, method, path, rule, args, error)

    def _route(self, method: str, path: str) -> tuple[Any, dict, str | None, HTTPException | None]:
        """(rule, arguments, blueprint, routing error) of a request, from the app's url_map;
        a match is remembered (``_matched``: the rules never change once serving), so
        ``/v1/grade`` and ``/v3.0/me`` skip werkzeug's matcher after their first request."""
        if self._adapter is None:  # every route is registered by the first request
            self._adapter = self.url_map.bind("clever-sim")
        try:
            rule, args = self._adapter.match(path, method, return_rule=True)
        except HTTPException as exc:  # no route, or another method's: Flask's blueprint None
            return None, {}, None, exc
        blueprint = rule.endpoint.rpartition(".")[0] or None
        if len(path) <= MATCHED_PATH_MAX:
            if len(self._matched) >= MATCHED_MAX:  # full: start over (ids crawled once each)
                self._matched = {}
            self._matched[(method, path)] = (rule, args, blueprint)  # args: only unpacked (**args)
        return rule, args, blueprint, None

    def _serve(self, environ: dict, start_response: Callable, method: str, path: str,
               rule: Any, args: dict, error: HTTPException | None) -> Iterable[bytes]:
        s = self.sim
        ex = environ[EXCHANGE_KEY] = Exchange()
        api = self.apis.get(rule.endpoint.rpartition(".")[0]) if rule is not None else None
        line = None
        try:
            admit(s, ex, method, path, environ.get("HTTP_AUTHORIZATION", "")
                  if api is not None and api.rate_limited else None)
            if error is not None:
                raise routing_error(error, method, path)
            if api is None:  # a route Flask serves (OAuth's pages and forms)
                line, headers, body = _through(self.flask_wsgi, environ)
                status = int(line.split(None, 1)[0])
            elif method == "OPTIONS" and getattr(rule, "provide_automatic_options", False):
                status, body = 200, b""  # a browser's preflight, answered as Flask would
                headers = [("Content-Type", HTML_TYPE), ("Content-Length", "0"),
                           ("Allow", ", ".join(self._adapter.allowed_methods(path)))]
            else:
                status, body = 200, api.answer(api.views[rule.endpoint](
                    Call(s, ex, environ, method, path), **args))
                headers = [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body)))]
        except ConnectionDropped:
            journal(s, ex, environ, method, path, DROP_STATUS, [], b"")
            raise
        except SimError as exc:
            ex.findings.extend(findings_of(exc))
            status, headers, body = error_parts(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: a JSON 500 that asks for a report
            log.exception("unexpected error on %s %s", method, path)
            finding, (status, headers, body) = bug_parts(exc)
            ex.findings.append(finding)
        if api is not None:
            api.decorate(headers)
        finish_headers(headers, ex.rate)
        journal(s, ex, environ, method, path, status, headers, body)
        start_response(line or status_line(status), headers)
        return [] if method == "HEAD" else [body]


def _finishing(start_response: Callable) -> Callable:
    """``start_response`` that adds the security headers (``finish_headers``)."""
    def start(status: str, headers: list, exc_info=None):
        return start_response(status, finish_headers(headers), exc_info)
    return start


def _through(wsgi: Callable, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of a WSGI app's answer, read whole."""
    got: list = []

    def start(status: str, headers: list, exc_info=None):
        got[:] = [status, list(headers)]
        return _no_write

    chunks = wsgi(environ, start)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return got[0], got[1], body


def _no_write(data: bytes) -> None:  # pragma: no cover - Flask never uses write()
    raise RuntimeError("the legacy WSGI write() is not supported on emulated paths")
