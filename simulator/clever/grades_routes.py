"""Route of the grades endpoint ``POST /v1/grade``: parse, call domain, serialise.

Order (each step's errors before the next's): bearer token (401) → Content-Type (415)
→ body size (413) → Content-Encoding (415 unless identity or gzip; 400 bad gzip; 413 when
it inflates past the limit) → JSON (400) → the grade's rules (``grades.submit_grade``).
Other methods get 405 naming POST.

The endpoint partner CI hits hardest is served straight from WSGI (``GradeEndpoint``), not
through Flask: Flask's per-request machinery (contexts, request and response objects, hook
dispatch) cost more than checking and storing the grade itself, and halved the throughput.
It takes the same steps every Flask-served partner request takes, from ``traffic``: fault
injection, the rate limit, the error body, the headers and the journal entry.
"""

from __future__ import annotations

import logging
import zlib
from typing import Callable, Iterable

from .. import traffic
from ..errors import (BadRequest, ConnectionDropped, FieldProblem, PayloadTooLarge, SimError,
                      UnsupportedMediaType)
from ..sim import Simulator
from ..jsontext import dumps
from ..traffic import Exchange
from ..web import bearer_from, check_json_content_type, parse_json, read_body_from
from . import grades, tokens

log = logging.getLogger("clever_sim")

PATHS = ("/v1/grade", "/v1/grade/")  # the app's routes ignore one trailing slash
ROUTES = {("POST", "/v1/grade")}       # what is served here, outside Flask's url_map


class GradeEndpoint:
    """WSGI: ``/v1/grade`` (after ``//`` is merged) answered here; any other path goes on
    to ``app``, the Flask app's own WSGI callable."""

    def __init__(self, app: Callable, sim: Simulator):
        self.app = app
        self.sim = sim

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in PATHS:
            return self.app(environ, _dropping(start_response))
        s = self.sim
        ex = Exchange(emulated=True)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            if method != "POST":
                traffic.admit(s, ex, method, path, None)  # as Flask: faults, no rate count
                raise traffic.method_not_allowed(method, path, ["POST"])
            traffic.admit(s, ex, method, path, environ.get("HTTP_AUTHORIZATION", ""))
            status, body = 200, post_grade(s, ex, environ)
            headers = [("Content-Type", traffic.JSON_TYPE), ("Content-Length", str(len(body)))]
        except ConnectionDropped:
            traffic.journal(s, ex, environ, method, path, traffic.DROP_STATUS, [], b"")
            raise
        except SimError as exc:
            ex.findings.extend(traffic.findings_of(exc))
            status, headers, body = traffic.error_parts(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: answered like every other bug
            log.exception("unexpected error on %s %s", method, path)
            finding, (status, headers, body) = traffic.bug_parts(exc)
            ex.findings.append(finding)
        headers += traffic.extra_headers(ex, headers[0][1])
        traffic.journal(s, ex, environ, method, path, status, headers, body)
        start_response(traffic.status_line(status), headers)
        return [] if method == "HEAD" else [body]


def _dropping(start_response: Callable) -> Callable:
    """``start_response`` that turns a Flask answer marked DROP_HEADER into a dropped connection."""
    def start(status: str, headers: list, exc_info=None):
        if any(k == traffic.DROP_HEADER for k, _ in headers):
            raise ConnectionDropped()
        return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
    return start


def post_grade(s: Simulator, ex: Exchange, environ: dict) -> bytes:
    """Check, store and answer one grade POST."""
    generation = s.store.token_generation  # before the lookup: see Store.save_grade
    token = tokens.resolve(s, bearer_from(environ.get("HTTP_AUTHORIZATION")))
    ex.note(client_id=token["client_id"], token_kind=token["kind"], user_id=token.get("user_id"))
    check_json_content_type(environ.get("CONTENT_TYPE"))
    limit = s.cfg["GRADE_BODY_LIMIT"]
    ex.request_body = read_body_from(environ, limit)
    body = parse_json(decode_content(environ.get("HTTP_CONTENT_ENCODING"), ex.request_body, limit),
                      exact_numbers=True)
    if isinstance(body, dict):
        # Named now, so a rejected POST is still found by student and assignment: with a
        # district-app token the body's userID is the only place the student is named.
        if isinstance(body.get("assignmentID"), str):
            ex.note(assignment_id=body["assignmentID"][:grades.ASSIGNMENT_ID_MAX])
        if token.get("user_id") is None and isinstance(body.get("userID"), str):
            ex.note(user_id=body["userID"][:grades.ASSIGNMENT_ID_MAX])
    record, warnings = grades.submit_grade(s, token, body, generation)
    s.grades_changed()
    ex.note(client_id=record["client_id"], user_id=record["userID"],
            assignment_id=record["assignmentID"], token_kind=record["token_kind"])
    ex.findings.extend(warnings)
    return grade_response(record, warnings)


def decode_content(encoding: str | None, raw: bytes, limit: int) -> bytes:
    """The body as sent before ``Content-Encoding``: identity as is, gzip inflated (at most
    ``limit`` bytes, so a small bomb cannot grow large); any other coding is 415 naming it."""
    codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return raw
    if codings not in (["gzip"], ["x-gzip"]):
        raise UnsupportedMediaType("Unsupported Content-Encoding", [FieldProblem(
            "Content-Encoding", f"is {(encoding or '')[:60]!r}: the grades endpoint reads gzip or "
                                "an unencoded body", "send the JSON as is, or gzip it")])
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, limit + 1)
        complete = inflater.eof
    except zlib.error as exc:
        raise BadRequest("Body is not valid gzip", [FieldProblem(
            "Content-Encoding", f"says gzip, but the body does not inflate ({exc})",
            "gzip the whole JSON body, or drop the Content-Encoding header")]) from None
    if len(data) > limit:
        raise PayloadTooLarge(f"Request body too large once inflated (limit {limit} bytes)", [
            FieldProblem("(body)", f"inflates past {limit} bytes",
                         "send only the grade fields and a little context")])
    if not complete:
        raise BadRequest("Body is not valid gzip", [FieldProblem(
            "Content-Encoding", "says gzip, but the gzip stream is cut short",
            "send the whole gzip stream")])
    return data


def grade_response(record, warnings: list[str]) -> bytes:
    """``{"data": record, "warnings": [...]}`` as ``jsonify`` writes it, reusing the record's
    text from the store (``StoredRecord.json``) rather than serialising it a second time."""
    text = getattr(record, "json", None)
    if text is None:
        text = dumps(record)
    return ('{"data":' + text + ',"warnings":[' + ",".join(map(grades.json_string, warnings))
            + "]}\n").encode()
