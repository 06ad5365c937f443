"""``create_app``: the one Flask app every command and test builds.

Cross-cutting request handling is wired here, in WSGI layers around Flask, outermost
first: the ``//`` path fix (``traffic.merge_slashes``), who may drive the control API
(``guard``), tenant dispatch (``tenants``), and the one pipeline every request takes
(``traffic.EmulatedTraffic``: fault injection, rate limit, the emulated JSON APIs' answers,
headers, the journal). Flask's error handlers turn errors in the views Flask serves into
the same answers (``traffic.error_parts``).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Mapping

from flask import Flask, Response, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from .clock import Clock
from .config import build_config
from . import pages, tenants, traffic
from .control import tenant_routes
from .errors import AuthorizeError, SimError
from .guard import ControlGuard, policy_from_config
from .sim import Simulator
from .web import MAX_BODY, MAX_SLOTS, PersonaSlots, base_root, csrf_token, exchange, unslotted_url_for

log = logging.getLogger("clever_sim")

# Flask-served blueprints whose requests are partner-facing (journaled, fault-injectable);
# the emulated JSON APIs (``web.JsonApi``: grades, data API) are too.
_EMULATED = {"oauth"}

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
    """WSGI, outermost: ``traffic.merge_slashes`` once, before any layer reads the path."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        traffic.merge_slashes(environ)
        return self.wsgi_app(environ, start_response)


def create_app(test_config: Mapping[str, Any] | None = None, *,
               config_file: str | None = None, environ: Mapping[str, str] | None = None,
               clock: Clock | None = None, tenant: str | None = None,
               settings: Mapping[str, Any] | None = None) -> Flask:
    """Build the simulator: defaults < ``config_file`` < ``CLEVER_SIM_*`` env < ``test_config``;
    or from ``settings``, a config ``build_config`` made already (``clever-sim serve``),
    taken as it is: no file or environment variable is read again.

    Without ``tenant`` this is the root app: the default tenant, which also serves
    ``/_sim/tenants`` and dispatches ``/t/{name}/…`` to tenant apps (``simulator.tenants``).
    """
    if settings is not None:
        if test_config is not None or config_file is not None or environ is not None:
            raise TypeError("create_app: give settings alone, or test_config/config_file/environ")
        cfg = dict(settings)
    else:
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

    from .clever.data_routes import api as data_api
    from .clever.grades_routes import api as grades_api
    from .clever.oauth_routes import bp as oauth_bp
    from .control.routes import bp as control_bp
    from .control.docs_routes import bp as docs_bp
    from .control.snapshot_routes import bp as snapshot_bp
    from .gradebook.routes import bp as gradebook_bp
    from .home.routes import bp as home_bp
    from .inspector.routes import bp as inspector_bp
    from .schoology.routes import bp as schoology_bp

    apis = (grades_api, data_api)
    for bp in (oauth_bp, *(a.blueprint for a in apis), control_bp, snapshot_bp, docs_bp,
               schoology_bp, gradebook_bp, inspector_bp, home_bp):
        app.register_blueprint(bp)
    app.context_processor(lambda: {"csrf_token": csrf_token})
    app.add_template_filter(pages.when, "when")
    app.add_template_filter(pages.isolate, "isolate")
    app.jinja_env.concat = pages.join_in_parts  # type: ignore[method-assign]  # memory: pages.py
    app.jinja_env.finalize = pages.visible  # a NUL is shown, not dropped by the browser
    app.add_template_global(unslotted_url_for, "unslotted_url_for")
    # a page's persona slot (/u/{n}/…, web.PersonaSlots) is read before the pipeline
    app.wsgi_app = PersonaSlots(traffic.EmulatedTraffic(app.wsgi_app, sim, app.url_map,
                                                        {a.name: a for a in apis}, _EMULATED,
                                                        pages.is_page_path))
    _install_error_handlers(app)
    if tenant is None:
        tenants.install(app, make_tenant_app)
        app.register_blueprint(tenant_routes.bp)
        # the control API's rules apply to every tenant's /t/{name}/_sim/ too; ``//`` is
        # merged once, outermost
        app.wsgi_app = _MergeSlashes(ControlGuard(app.wsgi_app, policy_from_config(cfg)))
    return app


def error_response(exc: SimError) -> Response:
    """A SimError as a Flask answer (``traffic.error_parts`` writes it)."""
    status, headers, body = traffic.error_parts(exc)
    return Response(body, status=status, headers=headers)


def _install_error_handlers(app: Flask) -> None:
    """Errors in the views Flask serves, as their answers (the findings go to the journal
    when the request is partner-facing)."""

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
        if exc.code == 404 and pages.is_page_path(request.path, request.environ.get("HTTP_ACCEPT")):
            return render_template("page_not_found.html", path=request.path,
                                   max_slots=MAX_SLOTS), 404
        return _sim_error(traffic.routing_error(exc, request.method, request.path))

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
