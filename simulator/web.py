"""Request helpers shared by every blueprint: the current simulator, bodies, bearer tokens."""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import parse_qsl

import secrets

from flask import current_app, g, request, session
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_content_length, get_input_stream

from . import jsontext, limits
from .errors import (BadRequest, FieldProblem, NoAuthorization, PayloadTooLarge,
                     ServiceUnavailable, UnsupportedMediaType)
from .numbers import whole_number
from .sim import Simulator
from .traffic import Exchange

JSON_TYPES = ("application/json",)
MAX_BODY = 1024 * 1024  # no request body is read past this (the app's MAX_CONTENT_LENGTH)


def sim() -> Simulator:
    """The simulator behind the current app."""
    return current_app.extensions["clever_sim"]


def exchange() -> Exchange:
    """This request's ``traffic.Exchange`` (what its journal entry will say), made on first use."""
    ctx = g._get_current_object()  # one context lookup, not one per access
    found = getattr(ctx, "exchange", None)
    if found is None:
        found = ctx.exchange = Exchange()
    return found


def note(**meta: Any) -> None:
    """Attach facts (client_id, user_id, assignment_id, token_kind) to this request's journal entry."""
    exchange().note(**meta)


def add_findings(findings: list[str]) -> None:
    """Plain-words findings for the inspector (warnings, rule breaks)."""
    if findings:
        exchange().findings.extend(findings)


def _declared_too_large(length: int | str, limit: int) -> PayloadTooLarge:
    length = str(length) if len(str(length)) <= 20 else f"a {len(str(length))}-digit number of"
    return PayloadTooLarge(f"Request body too large: {length} bytes (limit {limit})",
                           [FieldProblem("(body)", f"is {length} bytes; the limit is {limit}",
                                         "send only the grade fields and a little context")])


def admit_wait() -> Callable[[], bool]:
    """Admit a long wait (a long-poll, a live stream) or answer 503: the server runs a
    capped number at once (``serving.WaitDispatcher``). Returns a callable saying whether
    the client has gone (waitress notices a closed connection), so the wait can end."""
    cap = request.environ.get(limits.WAIT_REFUSED)
    if cap is not None:
        raise ServiceUnavailable("Too many waiting requests", [FieldProblem(
            "wait", f"{cap} long-polls and live gradebook streams are running on this server, "
            "its limit", f"retry after {WAIT_RETRY_AFTER_S} seconds, or poll without waiting")],
            retry_after=WAIT_RETRY_AFTER_S)
    return request.environ.get("waitress.client_disconnected") or _never


def _never() -> bool:
    return False


WAIT_RETRY_AFTER_S = 5


def read_body(limit: int) -> bytes:
    """The raw body, refused with 413 before reading more than ``limit`` bytes."""
    req = request._get_current_object()
    data = exchange().request_body = read_body_from(req.environ, limit, req.max_content_length)
    return data


def read_body_from(environ: dict, limit: int, max_content_length: int | None = None) -> bytes:
    """``read_body`` for a WSGI environ (``max_content_length``: werkzeug's cap on the
    stream, as ``Request.stream`` applies it; None: ``limit`` alone bounds the read)."""
    declared = environ.get("CONTENT_LENGTH", "")
    if declared.isascii() and declared.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ:
        # The usual case, read straight from the server's input: no stream wrapper needed,
        # since the server hands over exactly the declared bytes.
        length = whole_number(declared, 0, limit)
        if length is None:  # over the limit (however many digits it has)
            raise _declared_too_large(declared.lstrip("0"), limit)
        return environ["wsgi.input"].read(length) if length else b""
    length = get_content_length(environ)
    if length is not None and length > limit:
        raise _declared_too_large(length, limit)
    data = get_input_stream(environ, max_content_length=max_content_length).read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"Request body too large (limit {limit} bytes)",
                              [FieldProblem("(body)", f"is over {limit} bytes",
                                            "send only the grade fields and a little context")])
    return data


def parse_json(raw: bytes, *, exact_numbers: bool = False) -> Any:
    """Strict JSON (``jsontext``: UTF-8, finite numbers of sane length, bounded nesting, no
    lone surrogates); every failure is a clear 400 naming where it was found."""
    try:
        return jsontext.decode(raw, exact_numbers=exact_numbers)
    except jsontext.JSONTextError as exc:
        raise BadRequest(exc.summary, [FieldProblem(exc.dotted(), exc.problem, exc.hint)]) from None


def query_int(name: str, default: int | None, lo: int, hi: int, *,
              message: str = "Invalid filter", hint: str | None = None,
              problems: list[FieldProblem] | None = None) -> int | None:
    """A whole-number query parameter in ``lo..hi`` (``default`` when absent), else a 400
    naming it (or, given ``problems``, the problem added there and ``default`` returned):
    the one place query strings become ints (any number of digits is safe)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    value = whole_number(raw, lo, hi)
    if value is None:
        problem = FieldProblem(name, f"must be a whole number from {lo} to {hi}", hint)
        if problems is None:
            raise BadRequest(message, [problem])
        problems.append(problem)
        return default
    return value


def require_json_content_type() -> None:
    """415 unless the request says ``Content-Type: application/json``."""
    check_json_content_type(request.environ.get("CONTENT_TYPE"))


def check_json_content_type(content_type: str | None) -> None:
    """``require_json_content_type`` for a Content-Type header's value."""
    if content_type == "application/json":  # as nearly every client sends it
        return
    if parse_options_header(content_type)[0].lower() not in JSON_TYPES:
        got = content_type or "none"
        raise UnsupportedMediaType(
            f"Content-Type must be application/json (got {got})",
            [FieldProblem("Content-Type", f"is {got}", "send the header Content-Type: application/json")])


def form_or_json() -> dict[str, Any]:
    """A body sent as JSON or as a form, as a flat dict of strings (OAuth endpoints take both)."""
    if request.mimetype in JSON_TYPES:
        raw = read_body(64 * 1024)
        if not raw.strip():
            return {}
        doc = parse_json(raw)
        if not isinstance(doc, dict):
            raise BadRequest("Body must be a JSON object",
                             [FieldProblem("(body)", f"is a JSON {type(doc).__name__}",
                                           "send a JSON object")])
        return doc
    raw = read_body(64 * 1024)
    pairs = parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    return dict(pairs)


_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


def bearer_token() -> str:
    """The bearer token of this request, or 401 "No authorization provided"."""
    return bearer_from(request.environ.get("HTTP_AUTHORIZATION"))


def bearer_from(header: str | None) -> str:
    """``bearer_token`` for an Authorization header's value."""
    if header is None or not header.strip():
        raise NoAuthorization(errors=[FieldProblem("Authorization", "header is missing",
                                                   "send Authorization: Bearer {token}")])
    match = _BEARER.match(header)
    if not match:
        raise NoAuthorization(errors=[FieldProblem("Authorization", "is not a Bearer token",
                                                   "send Authorization: Bearer {token}")])
    return match.group(1)


# --- browser sessions (fake Clever login, Schoology pages) ------------------------------

_NOT_IN_A_LOCAL_URL = re.compile(r"[\x00-\x20\x7f\\]")  # controls (CR/LF), space, backslash


def local_path(target: str | None, fallback: str) -> str:
    """``target`` when it is a path on this server (``/…``), else ``fallback``: a redirect
    built from a form field never leaves the simulator (no scheme such as ``https:`` or
    ``javascript:``, no ``//host``, no backslash, no CR/LF to split the header)."""
    if (not target or not target.startswith("/") or target.startswith("//")
            or _NOT_IN_A_LOCAL_URL.search(target)):
        return fallback
    return target


def local_query(query: str | None) -> str | None:
    """A query string to put after a path of ours, or None when it is empty or holds
    characters that cannot be in one (CR/LF would split the Location header)."""
    if not query or _NOT_IN_A_LOCAL_URL.search(query) or "#" in query:
        return None
    return query


SESSION_USER = "clever_user_id"  # who is logged into the fake Clever (and Schoology) here


def csrf_token() -> str:
    """The per-session token every state-changing form carries (checked by ``check_csrf``)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    """Reject a form POST whose ``csrf`` field does not match the session's token."""
    sent = request.form.get("csrf", "")
    expected = session.get("csrf", "")
    if not sent or not secrets.compare_digest(sent.encode(), expected.encode()):
        raise BadRequest("Form expired or forged (CSRF check failed)",
                         [FieldProblem("csrf", "does not match this browser session",
                                       "reload the page and submit the form again")])


def login_cookie(app, user_id: str) -> dict[str, str]:
    """The session cookie of a browser logged in as ``user_id`` ({name: value}): for
    scripts and benchmarks that read a teacher's pages (the gradebook) over HTTP."""
    value = app.session_interface.get_signing_serializer(app).dumps({SESSION_USER: user_id})
    return {app.config["SESSION_COOKIE_NAME"]: value}
