"""``create_app``: the one Flask app every command and test builds.

Cross-cutting request handling is wired here: who may drive the control API (``guard``),
the ``//`` path fix, ``POST /v1/grade`` served before Flask (``clever.grades_routes``), and
the hooks and error handlers through which every Flask-served request takes the steps in
``traffic`` (fault injection, rate limit, headers, the journal) and every error becomes its
answer (``error_response``).
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any, Mapping

from flask import Flask, Response, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from .clock import Clock
from .config import build_config
from . import pages, tenants, traffic
from .control import tenant_routes
from .errors import AuthorizeError, ConnectionDropped, SimError
from .guard import ControlGuard, policy_from_config
from .sim import Simulator
from .web import MAX_BODY, MAX_SLOTS, PersonaSlots, base_root, csrf_token, exchange, unslotted_url_for

log = logging.getLogger("clever_sim")

# Blueprints whose requests are partner-facing (journaled, fault-injectable, rate-limited).
# (``/v1/grade`` is served before Flask, by ``clever.grades_routes``, through the same steps.)
_EMULATED = {"oauth", "data_api"}
_RATE_LIMITED = {"data_api"}
_SLASHES = re.compile(r"/{2,}")

# API paths never use the browser session: skip loading and signing its cookie there.
# The browser session's cookie: a name of our own, so a partner app on the same host (cookies
# ignore ports) keeping Flask's default "session" can never overwrite it, nor we theirs.
SESSION_COOKIE = "clever_sim_session"

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
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["SESSION_COOKIE_NAME"] = cfg.get("SESSION_COOKIE_NAME") or SESSION_COOKIE
    if tenant is None:  # a tenant's cookie is scoped to its own /t/{name} prefix (tenants.py)
        app.config["SESSION_COOKIE_PATH"] = cfg.get("SESSION_COOKIE_PATH") or "/"
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.session_interface = _SessionOnlyForPages()
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.extensions["clever_sim"] = sim = Simulator(cfg, clock=clock)

    from .clever.data_routes import bp as data_bp
    from .clever.grades_routes import GradeEndpoint
    from .clever.oauth_routes import bp as oauth_bp
    from .control.routes import bp as control_bp
    from .control.docs_routes import bp as docs_bp
    from .control.snapshot_routes import bp as snapshot_bp
    from .gradebook.routes import bp as gradebook_bp
    from .home.routes import bp as home_bp
    from .inspector.routes import bp as inspector_bp
    from .schoology.routes import bp as schoology_bp

    for bp in (oauth_bp, data_bp, control_bp, snapshot_bp, docs_bp, schoology_bp,
               gradebook_bp, inspector_bp, home_bp):
        app.register_blueprint(bp)
    app.context_processor(lambda: {"csrf_token": csrf_token})
    app.add_template_filter(pages.when, "when")
    app.add_template_global(unslotted_url_for, "unslotted_url_for")
    # /v1/grade is answered before Flask (see grades_routes); a page's persona slot
    # (/u/{n}/…, web.PersonaSlots) is read before that, and ``//`` merged before all.
    app.wsgi_app = _MergeSlashes(PersonaSlots(GradeEndpoint(app.wsgi_app, sim)))

    _install_hooks(app)
    _install_error_handlers(app)
    if tenant is None:
        tenants.install(app, make_tenant_app)
        app.register_blueprint(tenant_routes.bp)
        # outermost: the control API's rules apply to every tenant's /t/{name}/_sim/ too
        app.wsgi_app = ControlGuard(app.wsgi_app, policy_from_config(cfg))
    return app


def _sim(app: Flask) -> Simulator:
    return app.extensions["clever_sim"]


def _is_emulated(req) -> bool:
    """Partner-facing requests, including unknown API paths (a wrong URL is worth
    journaling); a mistyped page URL or the browser's own /favicon.ico is not partner traffic."""
    blueprint = req.blueprint
    if blueprint in _EMULATED:
        return True
    return (blueprint is None and not req.path.startswith(("/_sim", "/static"))
            and not pages.is_page_path(req.path, req.environ.get("HTTP_ACCEPT")))


def _install_hooks(app: Flask) -> None:
    sim = _sim(app)

    @app.before_request
    def _start() -> None:
        # Runs on every request: the request is looked up once (each proxy access costs a
        # context-variable lookup), and whether it is emulated is decided once, here.
        req = request._get_current_object()
        ex = exchange()
        ex.emulated = emulated = _is_emulated(req)
        if not emulated or req.path.startswith("/_sim"):
            return
        rate_limited = req.blueprint in _RATE_LIMITED
        traffic.admit(sim, ex, req.method, req.path,
                      req.environ.get("HTTP_AUTHORIZATION", "") if rate_limited else None)

    @app.after_request
    def _finish(response: Response) -> Response:
        ex = exchange()
        headers = response.headers
        for key, value in traffic.extra_headers(ex, response.headers.get("Content-Type")):
            if key.startswith("X-RateLimit"):  # set nowhere else: added, not replaced
                headers.add(key, value)
            else:
                headers.setdefault(key, value)
        req = request._get_current_object()
        if ex.emulated is None:  # before_request did not run (the request failed first)
            ex.emulated = _is_emulated(req)
        if ex.emulated:
            body = None if response.is_streamed or response.direct_passthrough else response.get_data()
            traffic.journal(sim, ex, req.environ, req.method, req.path, response.status_code,
                            response.headers.to_wsgi_list(), body)
        return response


def error_response(exc: SimError) -> Response:
    """A SimError as a Flask answer (``traffic.error_parts`` writes it)."""
    status, headers, body = traffic.error_parts(exc)
    return Response(body, status=status, headers=headers)


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ConnectionDropped)
    def _dropped(exc: ConnectionDropped):  # journaled as 444; GradeEndpoint drops the connection
        return Response(b"", status=traffic.DROP_STATUS, headers={traffic.DROP_HEADER: "1"})

    @app.errorhandler(SimError)
    def _sim_error(exc: SimError):
        exchange().findings.extend(traffic.findings_of(exc))
        return error_response(exc)

    @app.errorhandler(AuthorizeError)
    def _authorize_error(exc: AuthorizeError):
        exchange().findings.append(f"{exc.title}: {exc.detail}")
        return render_template("authorize_error.html", error=exc), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code == 405:
            return _sim_error(traffic.method_not_allowed(
                request.method, request.path, getattr(exc, "valid_methods", None) or []))
        if exc.code == 404 and pages.is_page_path(request.path, request.environ.get("HTTP_ACCEPT")):
            return render_template("page_not_found.html", path=request.path,
                                   max_slots=MAX_SLOTS), 404
        if exc.code == 404:
            message = f"Not found: no endpoint at {request.path}"
        elif exc.code == 413:
            message = "Request body too large"
        else:
            message = exc.description or exc.name
        exchange().findings.append(message)
        response = jsonify({"message": message})
        response.status_code = exc.code or 500
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # pragma: no cover - a bug; tests assert it never happens
        log.exception("unexpected error on %s %s", request.method, request.path)
        finding, (status, headers, body) = traffic.bug_parts(exc)
        exchange().findings.append(finding)
        return Response(body, status=status, headers=headers)


def make_tenant_app(root_app: Flask, name: str, db_path: str) -> Flask:
    """A full simulator app with the root's settings and its own store, session cookie and clock."""
    cfg = dict(root_app.extensions["clever_sim"].cfg)
    cfg["DB"] = db_path
    app = create_app(cfg, environ={}, tenant=name)

    class _TenantSession(_SessionOnlyForPages):
        """Its own cookie, scoped to the tenant's prefix: logins never leak between tenants."""

        def get_cookie_name(self, app: Flask) -> str:
            return f"{app.config['SESSION_COOKIE_NAME']}-t-{name}"

        def get_cookie_path(self, app: Flask) -> str:
            return app.config["SESSION_COOKIE_PATH"] or base_root() or "/"  # not a /u/{n} slot

    app.session_interface = _TenantSession()
    return app
