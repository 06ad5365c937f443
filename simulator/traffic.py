"""What every partner-facing request goes through, whoever serves it: fault injection,
Clever's rate limit, the security and rate headers, the error body, and the journal entry.

No Flask here: ``app``'s request hooks call these for the Flask-served endpoints, and
``clever.grades_routes`` calls them for ``/v1/grade``, which is served straight from WSGI.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from werkzeug.http import HTTP_STATUS_CODES

from .errors import ConnectionDropped, InjectedFault, MethodNotAllowed, RateLimited, SimError
from .journal import RawEntry
from .sim import Simulator
from .jsontext import dumps

# Pages (Schoology, gradebook, inspector, login) show partner-supplied text: escaping is the
# first defence, this policy the second. No form-action: a student's "Open" form redirects on
# to the partner's origin, which Chrome would block under form-action 'self'.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

# A dropped connection is journaled as 444 (nginx's "closed without a response"); the
# Flask-served paths mark their placeholder answer with DROP_HEADER so the WSGI layer
# raises ConnectionDropped instead of sending it (see grades_routes.GradeEndpoint).
DROP_STATUS = 444
DROP_HEADER = "X-Clever-Sim-Drop"

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"  # what Flask labels a body-less answer (Clever's 429)


class Exchange:
    """What the simulator learns about one request while serving it, for its journal entry."""

    __slots__ = ("started", "emulated", "fault", "rate", "findings", "meta", "request_body")

    def __init__(self, emulated: bool | None = None) -> None:
        self.started = time.perf_counter()
        self.emulated = emulated        # partner-facing (journaled); None: not decided yet
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


def extra_headers(exchange: Exchange, content_type: str | None) -> list[tuple[str, str]]:
    """Headers every answer gets on top of its own: nosniff, the page CSP on HTML, and
    Clever's ``X-RateLimit-*`` once the request was counted."""
    out = [("X-Content-Type-Options", "nosniff")]
    if content_type is not None and content_type.startswith("text/html"):
        out.append(("Content-Security-Policy", PAGE_CSP))
    rate = exchange.rate
    if rate is not None:
        out += [("X-RateLimit-Limit", str(rate[0])), ("X-RateLimit-Remaining", str(rate[1])),
                ("X-RateLimit-Reset", str(rate[2])), ("X-RateLimit-Bucket", "bearer")]
    return out


def error_parts(exc: SimError) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the answer to ``exc``: the canonical JSON error body
    (written as ``flask.jsonify`` writes it), or Clever's empty 429."""
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
    headers = tuple((k, v) for k, v in environ.items()
                    if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH"))
    sim.journal.add(RawEntry(fields, headers, exchange.request_body, tuple(response_headers),
                             response_body, sim.clock.now(), sim.clock.iso))
