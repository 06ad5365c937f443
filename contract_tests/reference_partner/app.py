"""The reference partner: what a partner's app does on its side of Clever grade passback.

The steps of Clever's grade passback guide, as this app implements them (one module per
concern, each small enough to copy):

- ``content.py``: the quizzes (questions, score formats; the assignments list's items);
- ``clever.py``: Clever's OAuth client (code exchange, ``/v3.0/me``, district-app tokens);
- ``transport.py``: one pooled HTTP client and the retry policy (429/5xx/network errors,
  ``Retry-After``, a doubling backoff);
- ``grades.py``: the grade POST and sending it, with one token refresh after a 401;
- ``state.py``: the app's memory (logins, attempts, completions);
- ``routes.py``: every page and endpoint, in the guide's order (assignments API, login callback,
  activity and submit, the contract suite's ``POST /test-hooks/complete``);
- this module: ``create_partner_app(config)`` and serving it on waitress.

It knows nothing about the simulator: only Clever's three base URLs and its credentials.
All state is in memory (one process); the il token never leaves the server (the signed
session cookie holds a login id, not the token).
"""

from __future__ import annotations

import secrets
import socket
import threading
from dataclasses import dataclass
from typing import Any, Mapping

from flask import Flask

from .content import DEFAULT_ASSIGNMENTS, Assignment, Question, load_assignments
from .partner import EXTENSION, Partner
from .routes import bp
from .transport import CleverError, retry_delay

REQUIRED_CONFIG = ("CLEVER_URL", "API_URL", "GRADES_URL", "CLIENT_ID", "CLIENT_SECRET")


def create_partner_app(config: Mapping[str, Any]) -> Flask:
    """Build the reference partner.

    Keys: ``CLEVER_URL``, ``API_URL``, ``GRADES_URL`` (stand-ins for https://clever.com,
    https://api.clever.com, https://grades-api.beta.clever.com), ``CLIENT_ID``,
    ``CLIENT_SECRET``, ``REDIRECT_URI`` (this app's callback as registered with Clever;
    ``bind_partner`` fills it in from the bound port when absent), ``SECRET_KEY``
    (random when absent), optional ``ASSIGNMENTS`` (see ``load_assignments``) and
    ``TEST_HOOKS`` (default true: serve ``POST /test-hooks/complete``).
    """
    missing = [k for k in REQUIRED_CONFIG if not isinstance(config.get(k), str) or not config[k]]
    if missing:
        raise ValueError("reference partner config is missing " + ", ".join(missing))
    app = Flask(__name__)
    app.config.update({k: v for k, v in config.items()})
    app.config["SECRET_KEY"] = config.get("SECRET_KEY") or secrets.token_hex(32)
    app.config.setdefault("REDIRECT_URI", None)
    app.config.setdefault("TEST_HOOKS", True)
    # The simulator runs on the same host (other port) and cookies ignore ports: use a
    # cookie name of our own so the two apps never overwrite each other's session.
    app.config.setdefault("SESSION_COOKIE_NAME", "partner_session")
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.url_map.merge_slashes = False  # assignment ids may contain "//"
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.extensions[EXTENSION] = Partner.build(app.config,
                                              load_assignments(config.get("ASSIGNMENTS")))
    app.register_blueprint(bp)
    return app


# --- serving on waitress -------------------------------------------------------------------

@dataclass
class PartnerServer:
    """A bound waitress server for the partner; ``start()`` serves it in a daemon thread."""

    app: Flask
    server: Any
    host: str
    port: int
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        from simulator.serving import local_url

        return local_url(self.host, self.port)

    def start(self) -> "PartnerServer":
        self.thread = threading.Thread(target=self.server.run, name="reference-partner",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        from simulator.serving import stop_waitress

        stop_waitress(self.server, self.thread)
        self.app.extensions[EXTENSION].close()


def bind_partner(app: Flask, host: str = "127.0.0.1", port: int = 5001,
                 threads: int = 8, sock: socket.socket | None = None) -> PartnerServer:
    """Bind the listening socket now (port 0 picks one; ``sock``: one bound already, which
    the server then owns); REDIRECT_URI defaults to it."""
    from waitress.server import create_server

    where = {"sockets": [sock]} if sock is not None else {"host": host, "port": port}
    server = create_server(app, **where, threads=threads, ident="reference-partner",
                           channel_timeout=30, clear_untrusted_proxy_headers=True)
    running = PartnerServer(app, server, host, server.effective_port)
    if not app.config.get("REDIRECT_URI"):
        app.config["REDIRECT_URI"] = f"{running.url}/clever/callback"
    return running


__all__ = ["Assignment", "CleverError", "DEFAULT_ASSIGNMENTS", "Partner", "PartnerServer",
           "Question", "bind_partner", "create_partner_app", "load_assignments", "retry_delay"]
