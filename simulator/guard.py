"""Who may drive the simulator: the rules in front of the control API and the HTML forms.

The control API (``/_sim/…``, also under a tenant's ``/t/{name}/``) can rewrite every
piece of state and ``/_sim/snapshot`` holds client secrets, so only the local developer
or CI may use it, never a web page they happen to have open:

1. ``Host`` must be a loopback name (``localhost``, ``*.localhost``, ``127.x.x.x``,
   ``[::1]``) or one the server was told (``--allowed-host``; ``*`` allows any): a
   DNS-rebinding page reaches the server under its own name, so it is refused (403).
2. A state change from another origin is refused (403): ``Sec-Fetch-Site: cross-site``,
   or an ``Origin`` whose host and port differ from ``Host``.
3. With a control token set (``--control-token``), every control request but the
   health check and the API docs needs ``Authorization: Bearer {token}`` (401).
4. ``POST``/``PUT``/``PATCH`` need ``Content-Type: application/json`` (415), which no
   page can send to another origin without a CORS preflight the simulator never grants.

The emulated Clever API (``/oauth/tokens``, ``/v1/grade``, ``/v3.0/…``) is not guarded:
partners' apps call it from anywhere, under any host name. The fake Schoology, the fake
Clever login and the inspector are: their form posts take rule 2 (they also carry a
per-session CSRF token), and the inspector, whose journal shows tokens, takes rule 1.

No Flask here: ``ControlGuard`` is WSGI, in front of everything (tenant dispatch included).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from . import traffic
from .errors import FieldProblem, SimError, UnsupportedMediaType
from .web import check_json_content_type

_TENANT_PATH = re.compile(r"^/t/[^/]+(/.*)$")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Control paths a health probe or a developer's browser reads without the control token:
# no state changes, no secrets.
TOKEN_FREE = frozenset({"/_sim/health", "/_sim/docs", "/_sim/openapi.json"})
# Pages (fake Schoology, fake Clever login, portal, inspector) whose form posts change state.
FORM_PREFIXES = ("/schoology/", "/portal/", "/inspector", "/oauth/login", "/oauth/logout")
# Pages that show secrets (the journal holds tokens and client secrets): Host rule too.
SECRET_PAGES = ("/inspector",)
_GUARDED = ("/_sim", "/t/", "/schoology/", "/portal/", "/inspector", "/oauth/log")
TOKEN_HEADER_HINT = "send Authorization: Bearer {the --control-token / CLEVER_SIM_CONTROL_TOKEN value}"


class HostNotAllowed(SimError):
    """A control request under a host name the server was not told about."""

    status = 403
    message = "Host not allowed"


class CrossSiteRefused(SimError):
    """A state change sent by a page of another site."""

    status = 403
    message = "Cross-site request refused"


class ControlTokenRequired(SimError):
    """The server has a control token and this request does not carry it."""

    status = 401
    message = "Control token required"

    def __init__(self, message: str, errors: list[FieldProblem]):
        super().__init__(message, errors,
                         headers={"WWW-Authenticate": 'Bearer realm="clever-sim control API"'})


@dataclass(frozen=True)
class ControlPolicy:
    """The host names allowed besides loopback ones (``*``: any) and the control token."""

    allowed_hosts: frozenset[str] = frozenset()
    control_token: str | None = None

    @property
    def any_host(self) -> bool:
        return "*" in self.allowed_hosts


def policy_from_config(cfg: Mapping[str, Any]) -> ControlPolicy:
    """The policy of a built config (``ALLOWED_HOSTS``, ``CONTROL_TOKEN``)."""
    names = frozenset(filter(None, (host_name(h) if h != "*" else "*"
                                    for h in cfg.get("ALLOWED_HOSTS") or ())))
    return ControlPolicy(names, cfg.get("CONTROL_TOKEN") or None)


def host_name(value: str) -> str:
    """The lower-case name or address of a ``Host`` value, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """``localhost``, ``*.localhost`` (RFC 6761: always loopback), 127.0.0.0/8, ::1."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host: str | None, policy: ControlPolicy) -> bool:
    """Rule 1. No ``Host`` at all (HTTP/1.0 tools) is allowed: every browser sends one."""
    if not host:
        return True
    name = host_name(host)
    return policy.any_host or is_loopback_name(name) or name in policy.allowed_hosts


def _origin_host_port(origin: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.rstrip("."), port or (443 if parts.scheme == "https" else 80)


def _host_port(host: str, scheme: str) -> tuple[str, int]:
    name = host_name(host)
    tail = host.rsplit("]", 1)[-1] if host.startswith("[") else host
    port = tail.rsplit(":", 1)[1] if tail.count(":") == 1 else ""
    return name, int(port) if port.isdigit() else (443 if scheme == "https" else 80)


def same_origin(origin: str, host: str | None, scheme: str = "http") -> bool:
    """Whether an ``Origin`` header names this server (its host and port as in ``Host``)."""
    theirs = _origin_host_port(origin)
    return theirs is not None and bool(host) and theirs == _host_port(host, scheme)


def check_cross_site(environ: Mapping[str, Any]) -> None:
    """Rule 2 for a state-changing request."""
    fetch_site = environ.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
    if fetch_site == "cross-site":
        raise CrossSiteRefused("Cross-site request refused: a page of another site sent it", [
            FieldProblem("Sec-Fetch-Site", "is cross-site",
                         "drive the simulator from its own pages, a script, curl or CI; "
                         "web pages of other sites may not change its state")])
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None and not same_origin(origin, environ.get("HTTP_HOST"),
                                              environ.get("wsgi.url_scheme", "http")):
        raise CrossSiteRefused(f"Cross-site request refused: Origin {origin[:200]} is not "
                               "this server", [
            FieldProblem("Origin", f"is {origin[:200]}, not the simulator's own origin",
                         "send it from the simulator's own pages, or from a tool that sends "
                         "no Origin header (curl, CI, the pytest plugin)")])


def check_control(environ: Mapping[str, Any], path: str, policy: ControlPolicy) -> None:
    """Rules 1–4 for a control request (``path``: within its tenant, ``/_sim/…``)."""
    host = environ.get("HTTP_HOST")
    if not host_allowed(host, policy):
        raise HostNotAllowed(f"Host not allowed: {host_name(host)[:200]} is not a name this "
                             "simulator was told to answer to", [
            FieldProblem("Host", f"is {host[:200]}",
                         "reach the simulator as localhost or 127.0.0.1, or start it with "
                         f"--allowed-host {host_name(host)[:100]} (or CLEVER_SIM_ALLOWED_HOSTS)")])
    method = environ.get("REQUEST_METHOD", "GET").upper()
    if method not in SAFE_METHODS:
        check_cross_site(environ)
    if policy.control_token is not None and path not in TOKEN_FREE:
        sent = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = sent.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ControlTokenRequired("Control token required", [
                FieldProblem("Authorization", "is missing" if not sent else "is not a Bearer token",
                             TOKEN_HEADER_HINT)])
        if not hmac.compare_digest(value.strip().encode(), policy.control_token.encode()):
            raise ControlTokenRequired("Control token is wrong", [
                FieldProblem("Authorization", "does not carry this simulator's control token",
                             TOKEN_HEADER_HINT)])
    if method in BODY_METHODS:
        try:
            check_json_content_type(environ.get("CONTENT_TYPE"))
        except UnsupportedMediaType as exc:
            exc.errors = [FieldProblem("Content-Type", exc.errors[0].problem,
                                       "send the header Content-Type: application/json with a "
                                       "JSON body (an empty body is read as {}): the control "
                                       "API takes no form or text bodies")]
            raise


def control_path(path: str) -> str | None:
    """``/_sim/…`` for a control path (also under ``/t/{name}/``), else None."""
    path = _page_path(path)
    return path if path == "/_sim" or path.startswith("/_sim/") else None


def _page_path(path: str) -> str:
    """The path as the app routes it: a tenant's ``/t/{name}`` prefix removed (``//`` is
    merged before the guard runs, in ``app.create_app``)."""
    found = _TENANT_PATH.match(path)
    return found.group(1) if found else path


def check(environ: Mapping[str, Any], policy: ControlPolicy) -> None:
    """Every rule that applies to this request; raises the SimError to answer with."""
    path = environ.get("PATH_INFO", "") or ""
    if not path.startswith(_GUARDED):
        return  # the emulated Clever API, the login page, static files: for anyone
    control = control_path(path)
    if control is not None:
        check_control(environ, control, policy)
        return
    page = _page_path(path)
    if page.startswith(SECRET_PAGES) and not host_allowed(environ.get("HTTP_HOST"), policy):
        host = environ.get("HTTP_HOST", "")
        raise HostNotAllowed(f"Host not allowed: {host_name(host)[:200]} is not a name this "
                             "simulator was told to answer to", [
            FieldProblem("Host", f"is {host[:200]}",
                         "open the inspector as localhost or 127.0.0.1, or start the simulator "
                         f"with --allowed-host {host_name(host)[:100]}")])
    if page.startswith(FORM_PREFIXES) and \
            environ.get("REQUEST_METHOD", "GET").upper() not in SAFE_METHODS:
        check_cross_site(environ)


class ControlGuard:
    """WSGI: answers a request the rules refuse (JSON error body), passes the rest on."""

    def __init__(self, app: Callable, policy: ControlPolicy):
        self.app = app
        self.policy = policy

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            check(environ, self.policy)
        except SimError as exc:
            return traffic.answer_error(exc, environ, start_response)
        return self.app(environ, start_response)
