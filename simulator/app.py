"""``create_app``: the one Flask app every command and test builds.

Cross-cutting request handling lives here and nowhere else: the journal, fault
injection, rate-limit headers, the ``//`` path fix, and turning every error into its
response (``error_response``).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any, Mapping

from flask import Flask, Response, g, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from .clock import Clock
from .config import build_config
from .errors import AuthorizeError, InjectedFault, RateLimited, SimError
from .journal import RawEntry
from .sim import Simulator
from .web import csrf_token

log = logging.getLogger("clever_sim")

# Blueprints whose requests are partner-facing (journaled, fault-injectable, rate-limited).
_EMULATED = {"oauth", "data_api", "grades"}
_RATE_LIMITED = {"data_api", "grades"}
_SLASHES = re.compile(r"/{2,}")


# Pages (Schoology, gradebook, inspector, login) show partner-supplied text: escaping is the
# first defence, this policy the second. No form-action: a student's "Open" form redirects on
# to the partner's origin, which Chrome would block under form-action 'self'.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

# API paths never use the browser session: skip loading and signing its cookie there.
_SESSIONLESS = ("/v1/", "/v2.", "/v3.", "/me", "/_sim/", "/oauth/tokens", "/oauth/tokeninfo")


class _SessionOnlyForPages(SecureCookieSessionInterface):
    """The signed-cookie session, opened only for pages that use it (login, Schoology)."""

    def open_session(self, app, request):
        if request.path.startswith(_SESSIONLESS):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        if request.path.startswith(_SESSIONLESS):
            return None
        return super().save_session(app, session, response)


class _MergeSlashes:
    """Clever tolerates ``//v2.1/students/…`` (clients build URLs so); route it as one slash."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = _SLASHES.sub("/", path)
        return self.wsgi_app(environ, start_response)


def create_app(test_config: Mapping[str, Any] | None = None, *,
               config_file: str | None = None, environ: Mapping[str, str] | None = None,
               clock: Clock | None = None, tenant: str | None = None) -> Flask:
    """Build the simulator: defaults < ``config_file`` < ``CLEVER_SIM_*`` env < ``test_config``.

    Without ``tenant`` this is the root app: the default tenant, which also serves
    ``/_sim/tenants`` and dispatches ``/t/{name}/…`` to tenant apps (``simulator.tenants``).
    """
    cfg = build_config(config_file, environ, test_config)
    app = Flask(__name__)
    app.config.update(cfg)
    app.config["SECRET_KEY"] = cfg["SECRET_KEY"] or secrets.token_hex(32)
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.session_interface = _SessionOnlyForPages()
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.wsgi_app = _MergeSlashes(app.wsgi_app)

    app.extensions["clever_sim"] = Simulator(cfg, clock=clock)

    from .clever.data_routes import bp as data_bp
    from .clever.grades_routes import bp as grades_bp
    from .clever.oauth_routes import bp as oauth_bp
    from .control.routes import bp as control_bp
    from .control.docs_routes import bp as docs_bp
    from .control.snapshot_routes import bp as snapshot_bp
    from .gradebook.routes import bp as gradebook_bp
    from .inspector.routes import bp as inspector_bp
    from .schoology.routes import bp as schoology_bp

    for bp in (oauth_bp, data_bp, grades_bp, control_bp, snapshot_bp, docs_bp, schoology_bp,
               gradebook_bp, inspector_bp):
        app.register_blueprint(bp)
    app.context_processor(lambda: {"csrf_token": csrf_token})

    _install_hooks(app)
    _install_error_handlers(app)
    if tenant is None:
        from .tenants import install as install_tenants

        install_tenants(app)
    return app


def _sim(app: Flask) -> Simulator:
    return app.extensions["clever_sim"]


def _is_emulated(req) -> bool:
    """Partner-facing requests, including unknown paths (a wrong URL is worth journaling)."""
    blueprint = req.blueprint
    if blueprint in _EMULATED:
        return True
    return blueprint is None and not req.path.startswith(("/_sim", "/static"))


def _install_hooks(app: Flask) -> None:
    sim = _sim(app)

    @app.before_request
    def _start() -> None:
        # Runs on every request: the request and g are looked up once (each proxy access
        # costs a context-variable lookup), and whether the request is emulated is decided
        # once, here, for the after-request hook too.
        req = request._get_current_object()
        ctx = g._get_current_object()
        ctx.started = time.perf_counter()
        ctx.emulated = emulated = _is_emulated(req)
        if not emulated or req.path.startswith("/_sim"):
            return
        fault = sim.faults.take(req.method, req.path)
        if fault is not None:
            ctx.fault = fault
            if fault.latency_ms:
                time.sleep(fault.latency_ms / 1000)
            if fault.status:
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                raise InjectedFault(fault.status, fault.body, headers)
        if req.blueprint in _RATE_LIMITED:
            auth = req.environ.get("HTTP_AUTHORIZATION", "").split()
            key = auth[-1] if auth else "(anonymous)"
            now = sim.clock.now()
            limit, remaining, reset = sim.rate.hit(key, now)
            ctx.rate = (limit, max(remaining, 0), reset)
            if remaining < 0 and sim.cfg["RATE_LIMIT"]:
                raise RateLimited(headers={"Retry-After": str(max(1, int(reset - now)))})

    @app.after_request
    def _finish(response: Response) -> Response:
        ctx = g._get_current_object()
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", PAGE_CSP)
        rate = getattr(ctx, "rate", None)
        if rate is not None:  # set nowhere else: added, not replaced
            headers.add("X-RateLimit-Limit", str(rate[0]))
            headers.add("X-RateLimit-Remaining", str(rate[1]))
            headers.add("X-RateLimit-Reset", str(rate[2]))
            headers.add("X-RateLimit-Bucket", "bearer")
        emulated = getattr(ctx, "emulated", None)
        if emulated is None:  # before_request did not run (the request failed first)
            emulated = _is_emulated(request._get_current_object())
        if emulated:
            _journal(sim, ctx, response)
        return response


def _journal(sim: Simulator, ctx, response: Response) -> None:
    """Record one partner-facing request, its answer and what the simulator found wrong.

    Runs on every partner request, so it only captures raw facts; ``RawEntry`` formats
    them when the inspector or control API reads the journal.
    """
    req = request._get_current_object()
    environ = req.environ
    fault = getattr(ctx, "fault", None)
    fields = {
        "direction": "inbound",
        "method": req.method,
        "path": req.path,
        "query": environ.get("QUERY_STRING", ""),
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - getattr(ctx, "started", time.perf_counter()))
                             * 1000, 2),
        "findings": tuple(getattr(ctx, "findings", ())),
        "fault": fault.as_dict() if fault is not None else None,
        **getattr(ctx, "journal_meta", {}),
    }
    # Tuples of strings, not lists: the garbage collector stops tracking them, so 10,000
    # journal entries do not lengthen its full passes.
    headers = tuple((k, v) for k, v in environ.items()
                    if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH"))
    body = None if response.is_streamed or response.direct_passthrough else response.get_data()
    sim.journal.add(RawEntry(fields, headers, getattr(req, "_cached_data", None),
                             tuple(response.headers.to_wsgi_list()), body, sim.clock.now(),
                             sim.clock.iso))


def error_response(exc: SimError) -> Response:
    """The one place a SimError becomes an HTTP answer."""
    if isinstance(exc, RateLimited):
        response = Response(b"", status=429)  # Clever answers 429 with an empty body
    else:
        response = jsonify(exc.body())
        response.status_code = exc.status
    for key, value in exc.headers.items():
        response.headers[key] = value
    return response


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(SimError)
    def _sim_error(exc: SimError):
        if not isinstance(exc, InjectedFault):
            g.setdefault("findings", []).extend(exc.findings())
        return error_response(exc)

    @app.errorhandler(AuthorizeError)
    def _authorize_error(exc: AuthorizeError):
        g.setdefault("findings", []).append(f"{exc.title}: {exc.detail}")
        return render_template("authorize_error.html", error=exc), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code == 404:
            message = f"Not found: no endpoint at {request.path}"
        elif exc.code == 405:
            allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or []))
            message = f"Method {request.method} not allowed for {request.path}" + \
                      (f"; use {allowed}" if allowed else "")
        elif exc.code == 413:
            message = "Request body too large"
        else:
            message = exc.description or exc.name
        g.setdefault("findings", []).append(message)
        response = jsonify({"message": message})
        response.status_code = exc.code or 500
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # pragma: no cover - a bug; tests assert it never happens
        log.exception("unexpected error on %s %s", request.method, request.path)
        g.setdefault("findings", []).append(f"simulator bug: {type(exc).__name__}: {exc}")
        response = jsonify({"message": f"Internal simulator error ({type(exc).__name__}); "
                                       "please report it with the request that caused it"})
        response.status_code = 500
        return response
