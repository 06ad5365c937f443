"""Tenants: isolated simulators under ``/t/{name}/`` so parallel CI jobs can share one server.

The root app (what ``create_app`` returns) is the default tenant. ``install`` puts a
``TenantDispatcher`` in front of its ``wsgi_app``: a request whose path starts with
``/t/{name}/`` goes to that tenant's own Flask app with ``SCRIPT_NAME`` extended by
``/t/{name}`` and the prefix stripped from ``PATH_INFO``, so every emulated and control
path works unchanged under the prefix and every ``url_for`` link and redirect carries it.

A tenant is a full ``create_app`` with the root's settings (roster, strict mode, rate
limits, the ``[app]`` of the config) but its own store (``:memory:`` when the root's is,
else a file beside the root's database), journal, faults, clock and caches. Tenants are
created, listed and deleted through ``/_sim/tenants`` on the root app
(``control.tenant_routes``); they live as long as the process.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path
from typing import Callable

from flask import Flask
from werkzeug.wsgi import ClosingIterator

from . import limits, traffic
from .config import ConfigError, resolve_db_path
from .errors import BadRequest, Conflict, FieldProblem, NotFound, ServiceUnavailable

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
NAME_RULE = ("must be 1–63 characters: lowercase letters, digits and '-', "
             "starting with a letter or digit")
DEFAULT_LIMIT = limits.MAX_TENANTS  # per process (each holds a roster copy); fewer if few fds
DRAIN_S = 2.0             # how long DELETE waits for the tenant's in-flight requests
PREFIX = "/t/"
EXTENSION = "clever_sim_tenants"
log = logging.getLogger("clever_sim")


def check_name(name: object) -> str:
    """The tenant name from a request body, or a 400 naming ``name``."""
    if name is None:
        raise BadRequest("Invalid tenant", [FieldProblem(
            "name", "is required", 'send {"name": "ci-job-1234"}')])
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = name if isinstance(name, str) else json.dumps(name)
        raise BadRequest("Invalid tenant", [FieldProblem(
            "name", f"{shown[:80]!r} is not a valid tenant name: {NAME_RULE}",
            "e.g. ci-job-1234 (it becomes the path prefix /t/ci-job-1234/)")])
    return name


class Tenant:
    """One tenant: its Flask app, and a count of requests in flight (for a clean delete).

    Requests are counted while the tenant's app handles them (long-polls included); a
    live gradebook stream keeps running after that and ends quietly when the store closes.
    """

    def __init__(self, name: str, app: Flask, db_path: str, created: str,
                 on_closed: Callable[["Tenant"], None] | None = None):
        self.name = name
        self.app = app
        self.db_path = db_path
        self.created = created
        self._on_closed = on_closed
        self._active = 0
        self._retired = False
        self._closed = False
        self._cond = threading.Condition()

    @property
    def sim(self):
        return self.app.extensions["clever_sim"]

    @property
    def closed(self) -> bool:
        return self._closed

    def enter(self) -> bool:
        with self._cond:
            if self._retired:
                return False
            self._active += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._active -= 1
            last = self._retired and self._active <= 0 and not self._closed
            if last:
                self._closed = True
            self._cond.notify_all()
        if last:
            self._close()

    def retire(self, wait_s: float) -> bool:
        """Refuse new requests and close the store once those in flight are done.

        Waits up to ``wait_s`` for them; if some are still running (a long-poll), the last
        one to finish closes the store. Returns whether the store is closed now.
        """
        with self._cond:
            self._retired = True
        self.sim.retire()  # long-polls and live streams end now, not after minutes
        with self._cond:
            self._cond.wait_for(lambda: self._active <= 0, timeout=wait_s)
            mine = self._active <= 0 and not self._closed
            if mine:
                self._closed = True
        if mine:
            self._close()
        return self._closed

    def _close(self) -> None:
        try:
            self.sim.close()
            _remove_db_files(self.db_path)
        finally:
            if self._on_closed is not None:
                self._on_closed(self)

    def view(self, url_root: str) -> dict:
        s = self.sim
        return {"name": self.name, "created": self.created,
                "path": PREFIX + self.name,
                "base_url": url_root.rstrip("/") + PREFIX + self.name,
                "db": self.db_path,
                "counts": {"apps": s.clever.app_count(), "grades": s.clever.grade_count(),
                           "assignments": s.schoology.link_count(),
                           "journal": len(s.journal), "faults": len(s.faults.list())}}


def tenant_db_path(root_cfg: dict, name: str) -> str:
    """``:memory:`` beside an in-memory root; else ``<root db dir>/<root db stem>.tenants/<name>.db``
    (per root database, so two servers sharing a data directory never share tenants)."""
    root = resolve_db_path(root_cfg)
    if root == ":memory:" or root.startswith("file::memory:"):
        return ":memory:"
    db = Path(root)
    return str(db.parent / f"{db.stem}.tenants" / f"{name}.db")


def _remove_db_files(path: str) -> None:
    if path == ":memory:":
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            Path(path + suffix).unlink()
        except FileNotFoundError:
            pass


class Tenants:
    """The registry of one root app's tenants (``app.extensions["clever_sim_tenants"]``)."""

    def __init__(self, root_app: Flask, factory: Callable[[Flask, str, str], Flask],
                 limit: int | None = None):
        self.root_app = root_app
        self.factory = factory
        if limit is None:
            limit = root_app.config.get("TENANT_LIMIT") or min(DEFAULT_LIMIT,
                                                                limits.current().tenants)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigError(f"tenant_limit must be a whole number ≥ 0, not {limit!r}")
        self.limit = limit
        self._tenants: dict[str, Tenant] = {}
        self._retiring: dict[str, Tenant] = {}  # deleted, closing once their requests end
        self._lock = threading.Lock()          # the two dicts
        self._changes = threading.Lock()       # create/delete, one at a time (files, limit)

    @property
    def root_sim(self):
        return self.root_app.extensions["clever_sim"]

    def get(self, name: str) -> Tenant | None:
        return self._tenants.get(name)

    def list(self) -> list[Tenant]:
        with self._lock:
            return sorted(self._tenants.values(), key=lambda t: t.name)

    def __len__(self) -> int:
        return len(self._tenants)

    def create(self, name: object) -> Tenant:
        name = check_name(name)
        with self._changes:
            if name in self._tenants:
                raise Conflict("Tenant already exists", [FieldProblem(
                    "name", f"{name!r} is taken",
                    f"reset it with POST /t/{name}/_sim/reset, or DELETE /_sim/tenants/{name} first")])
            if name in self._retiring:
                raise Conflict("Tenant is still being deleted", [FieldProblem(
                    "name", f"{name!r} was deleted but requests to it are still running "
                    "(a long-poll, e.g. /_sim/grades/wait)",
                    "retry when they end, or pick another name")])
            if len(self._tenants) + len(self._retiring) >= self.limit:
                raise ServiceUnavailable("Too many tenants", [FieldProblem(
                    "tenants", f"{len(self._tenants) + len(self._retiring)} tenants exist "
                    f"(deleted ones count until their requests end); this server's limit is "
                    f"{self.limit}", "delete finished ones with DELETE /_sim/tenants/{name}, "
                    "or retry when other jobs have")], retry_after=10)
            db_path = tenant_db_path(self.root_sim.cfg, name)
            _remove_db_files(db_path)  # a tenant starts clean, even over a previous run's file
            app = self.factory(self.root_app, name, db_path)
            tenant = Tenant(name, app, db_path, self.root_sim.clock.iso(), self._forget)
            with self._lock:
                self._tenants[name] = tenant
            return tenant

    def delete(self, name: str) -> bool:
        """Remove a tenant: new requests get 404 at once; its store closes and its database
        file goes when the requests in flight end. Returns whether that is done already."""
        with self._changes:
            with self._lock:
                tenant = self._tenants.pop(name, None)
                if tenant is None:
                    raise unknown_tenant(name)
                self._retiring[name] = tenant
        return tenant.retire(DRAIN_S)

    def _forget(self, tenant: Tenant) -> None:
        with self._lock:
            if self._retiring.get(tenant.name) is tenant:
                del self._retiring[tenant.name]

    def close_all(self) -> None:
        """Close every tenant's store (server shutdown); live tenants keep their files."""
        with self._lock:
            live = list(self._tenants.values())
            retiring = list(self._retiring.values())
        for tenant in live + retiring:
            try:
                tenant.sim.close()
                if tenant in retiring:
                    _remove_db_files(tenant.db_path)
            except Exception:  # noqa: BLE001 - keep closing the others
                log.debug("closing tenant %s failed", tenant.name, exc_info=True)


def unknown_tenant(name: str) -> NotFound:
    if not name:
        return NotFound("No tenant in the path", [FieldProblem(
            "tenant", "the path names no tenant", "use /t/{name}/… with a tenant you created")])
    return NotFound(f"Unknown tenant {name[:80]!r}", [FieldProblem(
        "tenant", "no tenant has this name" if NAME_RE.fullmatch(name) else NAME_RULE,
        f'create it with POST /_sim/tenants {{"name": "{name[:80]}"}}'
        if NAME_RE.fullmatch(name) else "tenant names look like ci-job-1234")])


class TenantDispatcher:
    """WSGI: ``/t/{name}/…`` to that tenant's app (prefix moved to ``SCRIPT_NAME``), the rest
    to root (``//`` is merged before this, in ``app.create_app``)."""

    def __init__(self, root_wsgi: Callable, tenants: Tenants):
        self.root_wsgi = root_wsgi
        self.tenants = tenants

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or ""
        if not (path == "/t" or path.startswith(PREFIX)):
            return self.root_wsgi(environ, start_response)
        name, _, rest = path[len(PREFIX):].partition("/")
        tenant = self.tenants.get(name) if NAME_RE.fullmatch(name) else None
        if tenant is None or not tenant.enter():
            # PATH_INFO is the URL's bytes as latin-1 (WSGI): name the tenant as it was typed
            shown = name.encode("latin-1", "replace").decode("utf-8", "replace")
            return traffic.answer_error(unknown_tenant(shown), environ, start_response)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "").rstrip("/") + PREFIX + name
        environ["PATH_INFO"] = "/" + rest
        try:
            body = tenant.app(environ, start_response)
        except BaseException:
            tenant.leave()
            raise
        if not environ.get(limits.STREAMED):
            tenant.leave()
            return body
        # A live stream is in flight until the server closes its body, not when the app
        # returns: it runs after that, and a DELETE closed its store under it (SIGSEGV on
        # an in-memory store, tests/test_abuse_regress.py).
        return ClosingIterator(body, _once(tenant.leave))


def _once(call: Callable[[], None]) -> Callable[[], None]:
    """``call``, run at most once however often the result is called."""
    done = threading.Lock()

    def run() -> None:
        if done.acquire(blocking=False):
            call()
    return run


def install(app: Flask, factory: Callable[[Flask, str, str], Flask]) -> Tenants:
    """Make ``app`` the root of a tenant tree (registry and dispatcher); ``factory(root, name,
    db_path)`` builds a tenant's app. The ``/_sim/tenants`` routes are registered by the caller."""
    tenants = Tenants(app, factory)
    app.extensions[EXTENSION] = tenants
    app.wsgi_app = TenantDispatcher(app.wsgi_app, tenants)
    return tenants


def close_app(app: Flask) -> None:
    """Close a root app's tenants, then its own store (what a server does when it stops)."""
    tenants = app.extensions.get(EXTENSION)
    if tenants is not None:
        tenants.close_all()
    app.extensions["clever_sim"].close()
