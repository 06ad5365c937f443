"""The simulator inside another program — a test session of any runner, ``clever-sim demo``,
the contract runner: started on 127.0.0.1 (port 0: a free one) or reached at a URL, driven
through a ``ControlClient``, stopped cleanly. No pytest here: the pytest plugin's fixtures
are thin glue over these, and a unittest suite or a script uses them the same way.

    from simulator.embedded import start_simulator
    from simulator.control_client import ControlClient

    server = start_simulator({"STRICT": True})       # create_app settings
    try:
        with ControlClient(server.url) as sim:
            ...
    finally:
        server.stop()                                 # the server, then the store
"""

from __future__ import annotations

import json
import os
import warnings
from typing import TYPE_CHECKING, Any, Mapping

from .control_client import App, ControlAPIError, ControlClient

if TYPE_CHECKING:
    from .serving import RunningServer

__all__ = ["AppRegistrations", "PortUnavailable", "SimulatorUnavailable", "Target",
           "bind_simulator", "start_simulator"]

GENERIC_APP = {"name": "pytest partner", "client_id": "clever-sim-pytest",
               "client_secret": "clever-sim-pytest-secret",
               "redirect_uris": ["http://127.0.0.1:5001/clever/callback"]}
SPEC_KEYS = ("name", "client_id", "client_secret", "redirect_uris", "assignments_url",
             "districts", "scopes")


class SimulatorUnavailable(Exception):
    """The simulator cannot be started or used as asked; the message says why and the fix."""


class PortUnavailable(SimulatorUnavailable):
    """The port asked for is taken (or not allowed)."""


def bind_simulator(settings: Mapping[str, Any], host: str = "127.0.0.1", port: int = 0, *,
                   environ: Mapping[str, str] | None = None, config_file: str | None = None,
                   server: str | None = None, built: bool = False) -> RunningServer:
    """A simulator built from ``settings`` (``create_app``'s; ``built``: a whole config
    ``build_config`` made already, taken as it is, no file or variable read again) with its
    socket bound but not serving yet (``.start()`` serves): a caller can set things up
    before the first request.

    ``ConfigError``/``RosterError`` from the settings and ``OSError`` from the port
    propagate. The port is bound before the app is built, so a taken one refuses the start
    before a database is opened or its roster replaced; nothing is left open after either,
    and a refused start on a new database leaves no file (``Simulator.abandon``).
    """
    from .app import create_app
    from .serving import ServerUnavailable, bind, choose_server, listen

    from_env = os.environ.get("CLEVER_SIM_SERVER") if server is None else None
    try:
        kind = choose_server(server or from_env or "waitress")
    except ServerUnavailable as exc:
        if from_env:  # nobody typed a --server: name the variable that asked for it
            raise ServerUnavailable(f"CLEVER_SIM_SERVER={from_env!r}: {exc}") from None
        raise
    sock = listen(host, port, kind)
    try:
        app = (create_app(settings=settings) if built else
               create_app(dict(settings), config_file=config_file, environ=environ))
        try:
            return bind(app, host, port, server=kind, sock=sock)
        except BaseException:
            app.extensions["clever_sim"].abandon()  # a database it made for this start goes too
            raise
    except BaseException:
        sock.close()
        raise


def start_simulator(settings: Mapping[str, Any] | None = None, host: str = "127.0.0.1",
                    port: int = 0, *, environ: Mapping[str, str] | None = None,
                    config_file: str | None = None, server: str | None = None) -> RunningServer:
    """``bind_simulator`` (default: an in-memory store) and serve it in a daemon thread;
    ``stop()`` the result when done."""
    return bind_simulator({"DB": ":memory:"} if settings is None else settings, host, port,
                          environ=environ, config_file=config_file, server=server).start()


class Target:
    """One simulator a test run uses: started here (``sim`` is its ``Simulator``) or
    reached at a URL; ``control`` is its control-API client either way."""

    def __init__(self, url: str, settings: dict, server: RunningServer | None = None,
                 token: str | None = None):
        self.url = url.rstrip("/")
        self.settings = settings
        self.server = server
        self.sim = server.app.extensions["clever_sim"] if server is not None else None
        self.control = ControlClient(self.url, token)
        self.generated_apps: dict[str, str] = {}  # spec (JSON) -> client_id, for specs without one

    @classmethod
    def start(cls, settings: dict, port: int = 0, *, keep_port: int | None = None) -> "Target":
        """A simulator started in this process on 127.0.0.1 with ``settings`` (environment
        variables ignored) on ``port``, else ``keep_port`` (a restart keeps its URL where it
        can: warns when that port was taken meanwhile), else a free port."""
        from .config import ConfigError
        from .roster import RosterError
        from .serving import ServerUnavailable

        wanted = port or keep_port or 0
        try:
            try:
                server = start_simulator(settings, "127.0.0.1", wanted, environ={})
            except OSError:
                if port or not wanted:
                    raise
                warnings.warn(f"port {wanted} was taken while the simulator restarted with other "
                              "settings: its URL changed", stacklevel=2)
                server = start_simulator(settings, "127.0.0.1", 0, environ={})
        except (ConfigError, RosterError) as exc:
            raise SimulatorUnavailable(f"cannot start the simulator with {settings}:\n{exc}") from None
        except ServerUnavailable as exc:  # CLEVER_SIM_SERVER names no server that runs here
            raise SimulatorUnavailable(f"cannot start the simulator: {exc}") from None
        except OSError as exc:
            raise PortUnavailable(f"cannot listen on 127.0.0.1:{wanted}: "
                                  f"{exc.strerror or exc}") from None
        return cls(server.url, settings, server, settings.get("CONTROL_TOKEN"))

    @classmethod
    def connect(cls, url: str, settings: dict, token: str | None = None) -> "Target":
        """The simulator already running at ``url``; ``ControlAPIError`` when none answers."""
        target = cls(url, settings, token=token)
        try:
            target.control.health()
        except ControlAPIError:
            target.stop()
            raise
        return target

    def unapplied(self, settings: Mapping[str, Any]) -> list[str]:
        """The settings a simulator reached at a URL cannot take (sorted); a strict setting it
        does not run with is a ``SimulatorUnavailable`` (restarting it is the fix)."""
        health = self.control.health()
        if "STRICT" in settings and bool(settings["STRICT"]) != bool(health.get("strict")):
            raise SimulatorUnavailable(
                f"this test asks for strict={settings['STRICT']} but the simulator at {self.url} "
                f"runs with strict={health.get('strict')}; restart it with(out) --strict")
        return sorted(set(settings) - {"DB", "STRICT"})

    def reset(self) -> None:
        """Forget grades, links, codes, il tokens, journal, faults, clock (keeps apps)."""
        if self.sim is not None:
            self.sim.reset()
        else:
            self.control.reset()

    def default_app_spec(self) -> dict:
        """The roster's (first) demo app; for a simulator reached at a URL its first app."""
        if self.sim is not None:
            apps = self.sim.roster_apps()
            return dict(apps[0]) if apps else dict(GENERIC_APP)
        apps = self.control.apps()
        if not apps:
            return dict(GENERIC_APP)
        return {k: apps[0][k] for k in SPEC_KEYS if apps[0].get(k) is not None}

    def stop(self) -> None:
        """Close the client; a simulator started here stops (server, then store)."""
        self.control.close()
        if self.server is not None:
            self.server.stop()


class AppRegistrations:
    """The apps one test uses: its starting app made to match a spec, and every app it
    registers or changes besides put back when it ends (a reset keeps apps)."""

    def __init__(self, target: Target):
        self.target = target
        self.control = target.control
        self.created: list[str] = []
        self.patched: dict[str, dict] = {}  # client_id -> its registration before the test

    def ensure(self, spec: dict) -> App:
        """The app ``spec`` describes, registered or updated to match (a spec without a
        ``client_id`` gets the same generated app all session). ``ValueError`` for a spec
        without ``redirect_uris``."""
        if not isinstance(spec, dict) or not spec.get("redirect_uris"):
            raise ValueError(f"an app needs at least redirect_uris (got {spec!r})")
        spec = dict(spec)
        if spec.get("client_id") is None:
            key = json.dumps(spec, sort_keys=True, default=str)
            known = self.target.generated_apps.get(key)
            view = self.control.app(known) if known else None
            if view is None:
                view = self.control.register_app(spec)
                self.target.generated_apps[key] = view["client_id"]
        else:
            view = self.control.app(spec["client_id"])
            if view is None:
                view = self.control.register_app(spec)
            elif any(view.get(k) != v for k, v in spec.items()):
                view = self.control.update_app(spec["client_id"], spec)
        return App.from_view(view)

    def register(self, spec: dict) -> App:
        """Register an app, or update the one with ``spec["client_id"]``; undone by ``undo()``."""
        client_id = spec.get("client_id")
        existing = self.control.app(client_id) if client_id else None
        if existing is None:
            view = self.control.register_app(spec)
            self.created.append(view["client_id"])
            return App.from_view(view)
        if client_id not in self.patched and client_id not in self.created:
            self.patched[client_id] = {k: existing[k] for k in SPEC_KEYS
                                       if k in existing and k != "client_id"}
        return App.from_view(self.control.update_app(client_id, spec))

    def undo(self) -> None:
        """Delete the apps registered, restore the apps changed (a simulator gone: nothing to undo)."""
        for client_id in reversed(self.created):
            try:
                self.control.delete_app(client_id, ok=(200, 404))
            except ControlAPIError:
                pass
        for client_id, spec in self.patched.items():
            try:
                self.control.update_app(client_id, spec, ok=(200, 404))
            except ControlAPIError:
                pass
