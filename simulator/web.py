"""Request helpers shared by every blueprint: the current simulator, bodies, bearer tokens,
and ``JsonApi``, the routes of an emulated JSON API served by the pipeline (``traffic``)."""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import parse_qsl

import secrets

from flask import Blueprint, current_app, request, session, url_for
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_content_length, get_input_stream

from . import jsontext, limits
from .errors import (BadRequest, FieldProblem, NoAuthorization, NotFound, PayloadTooLarge,
                     ServiceUnavailable, SimError, UnsupportedMediaType)
from .numbers import whole_number
from .sim import Simulator
from .jsontext import dumps as _dumps
from .traffic import EXCHANGE_KEY, JSON_TYPE, Exchange

JSON_TYPES = ("application/json",)
MAX_BODY = 1024 * 1024  # no request body is read past this (the app's MAX_CONTENT_LENGTH)


def sim() -> Simulator:
    """The simulator behind the current app."""
    return current_app.extensions["clever_sim"]


def exchange() -> Exchange:
    """This request's ``traffic.Exchange`` (what its journal entry will say): the pipeline's
    for a partner-facing request, else made on first use."""
    environ = request.environ
    found = environ.get(EXCHANGE_KEY)
    if found is None:
        found = environ[EXCHANGE_KEY] = Exchange()
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


class JsonApi:
    """The routes of one emulated JSON API: rules in the app's ``url_map`` (``blueprint``),
    answered by the pipeline (``traffic.EmulatedTraffic``) straight from WSGI, without Flask's
    per-request machinery.

    A view takes a ``traffic.Call`` and the rule's arguments and returns its 200 answer's
    JSON: an object, or the JSON text itself as bytes; any other answer is a ``SimError``.
    ``headers`` are set on every answer of the API, errors included (unless the answer has
    its own), and ``content_type`` replaces ``application/json``.
    """

    def __init__(self, name: str, *, rate_limited: bool = False, preflight: bool = True,
                 headers: dict[str, str] | None = None, content_type: str = JSON_TYPE):
        self.name = name
        self.blueprint = Blueprint(name, __name__)
        self.views: dict[str, Callable[..., Any]] = {}
        self.rate_limited = rate_limited  # counted against the bearer token's rate limit
        self.preflight = preflight        # OPTIONS answered 200 with Allow, as Flask does
        self.headers = list((headers or {}).items())
        self.content_type = content_type

    def route(self, rule: str, methods: tuple[str, ...] = ("GET",)) -> Callable:
        """Register a view for ``rule`` (stack several for one view)."""
        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            self.blueprint.add_url_rule(rule, view.__name__, None, methods=list(methods),
                                        provide_automatic_options=None if self.preflight else False)
            self.views[f"{self.name}.{view.__name__}"] = view
            return view
        return register

    @staticmethod
    def answer(result: Any) -> bytes:
        """A view's result as the body ``flask.jsonify`` would write."""
        if isinstance(result, bytes):
            return result
        return (_dumps(result) + "\n").encode()

    def decorate(self, headers: list[tuple[str, str]]) -> None:
        """Add the API's headers to an answer's, in place."""
        if self.content_type != JSON_TYPE:
            for i, (key, value) in enumerate(headers):
                if key == "Content-Type" and value == JSON_TYPE:
                    headers[i] = (key, self.content_type)
        if self.headers:
            have = {k.lower() for k, _ in headers}
            headers += [(k, v) for k, v in self.headers if k.lower() not in have]


def admit_wait() -> Callable[[], bool]:
    """Admit a long wait (a long-poll, a live stream) or answer 503: the server runs a
    capped number at once (``serving``). Returns a callable saying whether the wait should
    end (its client has gone, or the server is stopping)."""
    cap = request.environ.get(limits.WAIT_REFUSED)
    if cap is not None:
        raise ServiceUnavailable("Too many waiting requests", [FieldProblem(
            "wait", f"{cap} long-polls and live gradebook streams are running on this server, "
            "its limit", f"retry after {WAIT_RETRY_AFTER_S} seconds, or poll without waiting")],
            retry_after=WAIT_RETRY_AFTER_S)
    return request.environ.get(limits.CLIENT_GONE) or _never


def _never() -> bool:
    return False


def wait_cut_short(tenant_deleted: bool) -> SimError:
    """What a long-poll that found nothing answers when it ended early, not ``timed_out`` (a
    client reading that would conclude no grade came): its tenant was deleted, or
    (``admit_wait``'s callable said so) the server is stopping; a client that left reads
    nothing either way."""
    if tenant_deleted:
        return NotFound("Tenant deleted", [FieldProblem(
            "tenant", "was deleted while this request waited",
            "create it again with POST /_sim/tenants")])
    return ServiceUnavailable("Service unavailable", [FieldProblem(
        "(server)", "the simulator is stopping",
        f"retry after {WAIT_RETRY_AFTER_S} seconds, once it runs again")],
        retry_after=WAIT_RETRY_AFTER_S)


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
    try:
        data = get_input_stream(environ, max_content_length=max_content_length).read(limit + 1)
    except ClientDisconnected:  # werkzeug: the input ended before the declared length
        raise BadRequest("Request body shorter than its Content-Length",
                         [FieldProblem("Content-Length", f"declares {length} bytes, but the body "
                                       "ended before them", "send exactly Content-Length bytes, or "
                                       "leave the header out and use chunked encoding")]) from None
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
                             [FieldProblem("(body)", f"is {jsontext.kind(doc)}",
                                           "send a JSON object")])
        return doc
    raw = read_body(64 * 1024)
    pairs = parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    return dict(pairs)


_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


def bearer_token() -> str:
    """The bearer token of this request, or 401 "No authorization provided"."""
    return bearer_from(request.environ.get("HTTP_AUTHORIZATION"))


EMPTY_AUTHORIZATION_HINT = ("send Authorization: Bearer {token} (granian, the server of --server "
                            "granian, empties a header whose value is not plain ASCII)")


def bearer_from(header: str | None) -> str:
    """``bearer_token`` for an Authorization header's value."""
    if header is None:
        raise NoAuthorization(errors=[FieldProblem("Authorization", "header is missing",
                                                   "send Authorization: Bearer {token}")])
    if not header.strip():  # sent empty, or emptied by granian: never "missing"
        raise NoAuthorization(errors=[FieldProblem("Authorization", "is empty",
                                                   EMPTY_AUTHORIZATION_HINT)])
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


# --- personas: several logins in one browser, one per URL slot (Google's /u/N/) ----------

SESSION_USER = "clever_user_id"  # before persona slots: the browser's one login (read as slot 0)
SESSION_PERSONAS = "personas"    # slot → user id (None: an empty slot), in the signed cookie
MAX_SLOTS = 10
SLOT_ENV = "clever_sim.slot"           # the slot a /u/{n}/… URL named (absent: slot 0, implied)
BASE_ROOT_ENV = "clever_sim.base_root"  # the script root without /u/{n} (a tenant's /t/{name})
_SLOT_PATH = re.compile(r"^/u/(0|[1-9][0-9]?)(/.*)?$")
# Pages (and what they link to) a slot prefix may stand before; never the control API (its
# guard looks at the path) nor the partner-facing API.
SLOT_PAGES = ("/schoology", "/portal", "/inspector", "/oauth/authorize", "/oauth/login",
              "/oauth/logout", "/oauth/whoami", "/static")


class PersonaSlots:
    """WSGI: ``/u/{n}/schoology/…`` is ``/schoology/…`` as the persona in slot ``n`` of this
    browser's session. The prefix moves into SCRIPT_NAME, so every ``url_for`` link, form
    and redirect of that page keeps it: a tab stays its persona whatever other tabs do."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        environ[BASE_ROOT_ENV] = environ.get("SCRIPT_NAME", "")
        path = environ.get("PATH_INFO", "")
        if path.startswith("/u/"):
            m = _SLOT_PATH.match(path)
            rest = m.group(2) if m else None
            if m and rest and int(m.group(1)) < MAX_SLOTS and any(
                    rest == p or rest.startswith(p + "/") for p in SLOT_PAGES):
                environ[SLOT_ENV] = int(m.group(1))
                environ["SCRIPT_NAME"] = environ[BASE_ROOT_ENV] + f"/u/{m.group(1)}"
                environ["PATH_INFO"] = rest
        return self.wsgi_app(environ, start_response)


def base_root() -> str:
    """The script root without a persona slot: ``""``, or a tenant's ``/t/{name}``."""
    return request.environ.get(BASE_ROOT_ENV, request.script_root)


def current_slot() -> int:
    """The persona slot this request's URL names (0 when it names none)."""
    return request.environ.get(SLOT_ENV, 0)


def slot_named() -> bool:
    """Whether the URL named a slot (``/u/{n}/``), rather than implying slot 0."""
    return SLOT_ENV in request.environ


def slot_root(slot: int, *, explicit: bool = False) -> str:
    """Where slot ``slot``'s pages live: ``/u/{n}`` under the base root (slot 0: the base
    root itself, unless ``explicit``: the authorize hop must not fall to the chooser)."""
    return base_root() + (f"/u/{slot}" if slot or explicit else "")


def in_slot(path: str, slot: int | None, *, explicit: bool = False) -> str:
    """``path`` (a page path, with or without this request's script root or a slot prefix)
    as a URL of slot ``slot`` (None: no slot, e.g. the API docs, which need no persona)."""
    root = base_root()
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):] or "/"
    m = _SLOT_PATH.match(path)
    if m and m.group(2):
        path = m.group(2)
    return (root if slot is None else slot_root(slot, explicit=explicit)) + path


def unslotted_url_for(endpoint: str, **values: Any) -> str:
    """``url_for`` without this tab's slot: pages that need no persona (the API docs)."""
    return url_in_slot(None, endpoint, **values)


def url_in_slot(slot: int | None, endpoint: str, *, explicit: bool = False,
                **values: Any) -> str:
    """``url_for`` as seen from slot ``slot`` instead of this request's."""
    return in_slot(url_for(endpoint, **values), slot, explicit=explicit)


def signed_in() -> list[str | None]:
    """This browser's personas, by slot (an old single-login cookie is slot 0)."""
    found = session.get(SESSION_PERSONAS)
    if isinstance(found, list):
        return [u if isinstance(u, str) and u else None for u in found[:MAX_SLOTS]]
    legacy = session.get(SESSION_USER)
    return [legacy] if isinstance(legacy, str) and legacy else []


def current_user_id() -> str | None:
    """Who this tab is: the persona in the URL's slot (None: nobody signed in there)."""
    slots = signed_in()
    slot = current_slot()
    return slots[slot] if slot < len(slots) else None


def sign_in(user_id: str, slot: int) -> None:
    """Put ``user_id`` in ``slot`` of this browser (other slots, other tabs, unchanged)."""
    slots = signed_in()
    slots.extend([None] * (slot + 1 - len(slots)))
    slots[slot] = user_id
    session[SESSION_PERSONAS] = slots
    session.pop(SESSION_USER, None)


def sign_out(slot: int) -> None:
    """Empty ``slot`` (the other slots keep their numbers, so other tabs' URLs hold)."""
    slots = signed_in()
    if slot < len(slots):
        slots[slot] = None
    while slots and slots[-1] is None:
        slots.pop()
    session[SESSION_PERSONAS] = slots
    session.pop(SESSION_USER, None)


def slot_for(user_id: str) -> int | None:
    """A slot for ``user_id``: the one already holding them, else the first free one
    (None when all ``MAX_SLOTS`` hold someone else)."""
    slots = signed_in()
    if user_id in slots:
        return slots.index(user_id)
    free = [i for i, u in enumerate(slots) if u is None]
    if free:
        return free[0]
    return len(slots) if len(slots) < MAX_SLOTS else None


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
                                       "open the page with the form again and submit it from there")])


def login_cookie(app, user_id: str) -> dict[str, str]:
    """The session cookie of a browser logged in as ``user_id`` ({name: value}): for
    scripts and benchmarks that read a teacher's pages (the gradebook) over HTTP."""
    value = app.session_interface.get_signing_serializer(app).dumps({SESSION_PERSONAS: [user_id]})
    return {app.config["SESSION_COOKIE_NAME"]: value}
