"""pytest plugin: an emulated Clever for your app's tests, in the style of moto and
pytest-httpserver.

    def test_grade_passback(clever_sim, my_app):
        student = clever_sim.students()[0]
        my_app.get(clever_sim.launch_url(student["id"], "quiz1"))   # Schoology launch
        ...                                                         # the student finishes
        clever_sim.assert_grade(student, "quiz1", lti=0.8)

One simulator per test session (in this process, on 127.0.0.1, a free port unless
``--clever-sim-port``), stopped when the session ends and reset before every test that
uses ``clever_sim``. Point your app's three Clever base URLs at ``clever_sim.url``.

Configure it with fixtures (override them in a conftest or a test module):

* ``clever_sim_config`` → dict of ``create_app`` settings, e.g. ``{"STRICT": True}``
  (a module asking for other settings gets its own simulator: the current one is stopped);
* ``clever_sim_app`` → the app registration every test starts with (default: the roster's
  demo app), e.g. ``{"name": "Mathly", "client_id": "mathly-dev", "client_secret": "…",
  "redirect_uris": ["http://127.0.0.1:5001/clever/callback"]}``;

or on the command line: ``--clever-sim-strict``, ``--clever-sim-roster PATH``,
``--clever-sim-port N``, ``--clever-sim-url URL`` (use a simulator that is already
running, e.g. ``clever-sim serve`` in CI; it is reset through ``POST /_sim/reset``),
``--clever-sim-control-token TOKEN`` (or env ``CLEVER_SIM_CONTROL_TOKEN``: the control token
of that running simulator, when it was started with one).
Command-line options win over ``clever_sim_config``.

Every helper talks to the control API over HTTP (``/_sim/…``, with timeouts), so they
work the same against an in-process simulator and against ``--clever-sim-url``. This module
is options, fixtures and glue: the helpers are ``control_client.ControlClient``, the grade
assertions ``grade_check``, the simulator's start/stop and app bookkeeping ``embedded``, all
usable without pytest.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from . import grade_check
from .config import CONTROL_TOKEN_ENV
from .control_client import App, ControlAPIError
from .embedded import AppRegistrations, PortUnavailable, SimulatorUnavailable, Target
from .grade_check import user_id as _id

__all__ = ["App", "CleverSim", "ControlAPIError"]


# --- options -----------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clever-sim", "Clever Grade Passback Simulator (clever_sim fixture)")
    group.addoption("--clever-sim-strict", action="store_true", default=False,
                    help="run the simulator in strict mode (every grade warning is a 400)")
    group.addoption("--clever-sim-roster", default=None, metavar="PATH",
                    help="roster fixture JSON for the simulator (default: the packaged one)")
    group.addoption("--clever-sim-port", default=0, type=int, metavar="N",
                    help="serve the simulator on 127.0.0.1:N (default 0: any free port)")
    group.addoption("--clever-sim-url", default=None, metavar="URL",
                    help="use the simulator already running at URL instead of starting one "
                         "(reset before each test through POST /_sim/reset)")
    group.addoption("--clever-sim-control-token", default=None, metavar="TOKEN",
                    help="the control token of the simulator at --clever-sim-url, if it has "
                         "one (default: env CLEVER_SIM_CONTROL_TOKEN)")


# --- the simulator for this session ------------------------------------------------------

class _Servers:
    """The session's simulator (``embedded.Target``) as the options ask: started on first
    use, restarted only when a test asks for other settings, stopped at the session's end;
    failures become test errors that name the option to change."""

    def __init__(self, config: pytest.Config):
        self.url = config.getoption("--clever-sim-url")
        self.port = config.getoption("--clever-sim-port")
        self.token = (config.getoption("--clever-sim-control-token")
                      or os.environ.get(CONTROL_TOKEN_ENV) or None)
        self.cli: dict[str, Any] = {}
        if config.getoption("--clever-sim-strict"):
            self.cli["STRICT"] = True
        if config.getoption("--clever-sim-roster"):
            roster = Path(config.invocation_params.dir, config.getoption("--clever-sim-roster"))
            self.cli["ROSTER"] = str(roster.resolve())
        self.current: Target | None = None
        self.last_port: int | None = None  # a restart keeps the port: clever_sim_url stays valid
        self.failure: str | None = None
        self._warned = False

    def session_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        if self.current is None:
            self.current = self._start({"DB": ":memory:", **self.cli})
        return self.current.url

    def target(self, overrides: dict | None) -> Target:
        if overrides is not None and not isinstance(overrides, dict):
            pytest.fail(f"clever_sim_config must return a dict of settings, not "
                        f"{type(overrides).__name__}", pytrace=False)
        settings = {"DB": ":memory:", **(overrides or {}), **self.cli}
        if self.url:
            return self._remote(settings)
        if self.current is not None and self.current.settings == settings:
            return self.current
        self.close()
        self.current = self._start(settings)
        return self.current

    def _start(self, settings: dict) -> Target:
        # pytest.fail after the except block: raised inside it, pytest printed the cause
        # again under "During handling of the above exception, another exception occurred"
        try:
            target = Target.start(settings, self.port, keep_port=self.last_port)
        except PortUnavailable as exc:
            failure = f"clever_sim: {exc} (--clever-sim-port)"
        except SimulatorUnavailable as exc:
            failure = f"clever_sim: {exc}"
        else:
            self.last_port = target.server.port
            return target
        pytest.fail(failure, pytrace=False)

    def _remote(self, settings: dict) -> Target:
        if self.failure:
            pytest.fail(self.failure, pytrace=False)
        if self.current is None:
            try:
                self.current = Target.connect(self.url, settings, self.token)
            except ControlAPIError as exc:
                self.failure = (f"clever_sim: no simulator answers at --clever-sim-url "
                                f"{self.url}: {exc}\nStart it first (clever-sim serve --port N) "
                                "or leave the option out to start one in-process.")
            if self.failure:
                pytest.fail(self.failure, pytrace=False)
        failure = None
        try:
            ignored = self.current.unapplied(settings)
        except SimulatorUnavailable as exc:
            failure = f"clever_sim: {exc}"
        if failure:
            pytest.fail(failure, pytrace=False)
        if ignored and not self._warned:
            self._warned = True
            warnings.warn(f"clever_sim: settings {ignored} cannot be applied to the simulator at "
                          f"--clever-sim-url {self.url} (start it with them)", stacklevel=2)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            current, self.current = self.current, None
            current.stop()


@pytest.fixture(scope="session")
def _clever_sim_servers(pytestconfig: pytest.Config):
    servers = _Servers(pytestconfig)
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="session")
def clever_sim_url(_clever_sim_servers: _Servers) -> str:
    """The simulator's base URL, for session-scoped fixtures (your app's three Clever base
    URLs). It stays the same all session, also when a module asks for other settings."""
    return _clever_sim_servers.session_url()


@pytest.fixture
def clever_sim_config() -> dict:
    """Settings for ``create_app`` (override to change them, e.g. ``{"STRICT": True}``)."""
    return {}


@pytest.fixture
def _clever_sim_target(_clever_sim_servers: _Servers, clever_sim_config: dict) -> Target:
    return _clever_sim_servers.target(clever_sim_config)


@pytest.fixture
def clever_sim_app(_clever_sim_target: Target) -> dict:
    """The app every test starts with (override to register yours): the roster's demo app."""
    return _clever_sim_target.default_app_spec()


@pytest.fixture
def clever_sim(_clever_sim_target: Target, clever_sim_app: dict):
    """The session's simulator, reset for this test, with ``clever_sim_app`` registered."""
    _clever_sim_target.reset()
    helper = CleverSim(_clever_sim_target)
    try:
        helper.app = helper._apps.ensure(clever_sim_app)
    except ValueError:
        pytest.fail("clever_sim_app must return a dict with at least redirect_uris "
                    f"(got {clever_sim_app!r})", pytrace=False)
    try:
        yield helper
    finally:
        helper._apps.undo()


# --- the helper ----------------------------------------------------------------------------

class CleverSim:
    """What ``clever_sim`` gives a test: the simulator's URL, its app and helpers (each a
    call of ``ControlClient``, ``grade_check`` or ``embedded``, with ids or persona dicts)."""

    def __init__(self, target: Target):
        self._target = target
        self._control = target.control
        self._apps = AppRegistrations(target)
        self.url: str = target.url
        self.app: App | None = None

    # -- the app ---------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self.app.client_id

    @property
    def client_secret(self) -> str:
        return self.app.client_secret

    @property
    def simulator(self) -> Any:
        """The in-process ``Simulator`` (None with ``--clever-sim-url``)."""
        return self._target.sim

    def register_app(self, name: str = "Partner app", redirect_uris: list[str] | None = None,
                     assignments_url: str | None = None, client_id: str | None = None,
                     client_secret: str | None = None, **more: Any) -> App:
        """Register another app (or update one, given its ``client_id``) for this test only.

        ``more`` may hold ``districts`` and ``scopes``. Undone when the test ends.
        """
        spec: dict[str, Any] = {"name": name, "redirect_uris": redirect_uris, **more}
        for key, value in (("assignments_url", assignments_url), ("client_id", client_id),
                           ("client_secret", client_secret)):
            if value is not None:
                spec[key] = value
        return self._apps.register(spec)

    def _client(self, client_id: str | None) -> str:
        return client_id or self.client_id

    # -- people ----------------------------------------------------------------------------

    def students(self, district: str | None = None) -> list[dict]:
        """Students (``{"id", "name", "district", "sections", "role"}``), of one district or all."""
        return self._control.personas("student", district)

    def teachers(self, district: str | None = None) -> list[dict]:
        """Teachers, shaped like ``students()``."""
        return self._control.personas("teacher", district)

    # -- logging in ------------------------------------------------------------------------

    def mint_code(self, user: Any, *, assignment_id: str | None = None, state: str | None = None,
                  redirect_uri: str | None = None, client_id: str | None = None) -> dict:
        """A fresh code: ``{"code", "redirect_url", "state", "expires_in"}`` (POST /_sim/codes)."""
        return self._control.mint_code(self._client(client_id), _id(user), assignment_id=assignment_id,
                                       state=state, redirect_uri=redirect_uri)

    def launch_url(self, student: Any, assignment_id: str, *, client_id: str | None = None) -> str:
        """The exact URL a Schoology assignment link sends the browser to: the primary
        redirect URI with a fresh ``code``, ``scopes`` and ``state=assignment:{id}``."""
        return self.mint_code(student, assignment_id=assignment_id, client_id=client_id)["redirect_url"]

    def login_url(self, user: Any, *, client_id: str | None = None) -> str:
        """A Clever-initiated login (portal tile): fresh code, no ``state``."""
        return self.mint_code(user, client_id=client_id)["redirect_url"]

    def il_token(self, user: Any, *, client_id: str | None = None) -> str:
        """An SSO (il) token for a persona, as if they had just logged in."""
        return self._control.il_token(self._client(client_id), _id(user))

    def district_token(self, district_id: str | None = None, *, client_id: str | None = None) -> str:
        """The app's district-app token for a district (default: the app's first district)."""
        return self._control.district_token(self._client(client_id), district_id)

    # -- Schoology -------------------------------------------------------------------------

    def link(self, section_id: str, assignment_id: str, max_points: float = 100, *,
             client_id: str | None = None, **settings: Any) -> dict:
        """Add the assignment to a section as a teacher would (POST /_sim/links); ``settings``:
        name, description, standards, grading_enabled, grading_type, grading_category,
        grading_period, due_date."""
        return self._control.link(section_id, self._client(client_id), assignment_id,
                                  max_points=max_points, **settings)

    def links(self, **filters: Any) -> list[dict]:
        return self._control.links(**filters)

    # -- grades ----------------------------------------------------------------------------

    def grades(self, **filters: Any) -> list[dict]:
        """Current grades, oldest write first; filters: client_id, user_id, assignment_id,
        district_id, after_seq."""
        if "user_id" in filters:
            filters["user_id"] = _id(filters["user_id"])
        return self._control.grades(**filters)

    def grade_history(self, grade_id: str) -> list[dict]:
        return self._control.grade_history(grade_id)

    def lti(self, grade: Any) -> dict:
        """A grade's LTI 1.1 ``replaceResult`` XML and LTI 1.3 AGS score for each Schoology
        assignment it is passed back to (``GET /_sim/grades/{id}/lti``); a grade or its id."""
        grade_id = grade.get("id") if isinstance(grade, dict) else grade
        return self._control.lti(grade_id)

    def wait_for_grade(self, user: Any, assignment_id: str, timeout: float = 10, *,
                       client_id: str | None = None) -> dict:
        """The grade of ``user`` for ``assignment_id`` once it is stored (long-poll); an
        AssertionError listing what did arrive when none comes within ``timeout`` seconds."""
        __tracebackhide__ = True  # failures point at the test's line, not at the plugin
        return grade_check.wait_for_grade(self._control, user, assignment_id, timeout,
                                          client_id=client_id)

    def assert_grade(self, student: Any, assignment_id: str, *, lti: Any = None,
                     percentage: Any = None, points: Any = None, client_id: str | None = None,
                     timeout: float = 0) -> dict:
        """Assert the stored grade of ``student`` for ``assignment_id`` has one expected value
        (``lti``, ``percentage`` or ``points``; ``grade_check.assert_grade`` says how each is
        measured). On failure the message lists the grades stored and the similar grade
        requests the simulator received."""
        __tracebackhide__ = True
        return grade_check.assert_grade(self._control, student, assignment_id, lti=lti,
                                        percentage=percentage, points=points,
                                        client_id=client_id, timeout=timeout)

# -- faults, journal, clock ------------------------------------------------------------

    def fault(self, path: str, status: int | None = None, count: int = 1,
              retry_after: int | None = None, latency_ms: int = 0, *, method: str | None = None,
              body: dict | None = None, drop: bool = False) -> dict:
        """Make the next ``count`` requests to ``path`` (``*`` allowed) fail with ``status``
        and/or wait ``latency_ms`` first, or (``drop``) close the connection unanswered."""
        return self._control.fault(path, status, count, retry_after, latency_ms, method=method,
                                   body=body, drop=drop)

    def journal(self, **filters: Any) -> list[dict]:
        """Requests your app made (newest first); filters: path (substring), method, status,
        user_id, assignment_id, client_id, direction, after_id, limit (default 1000)."""
        filters.setdefault("limit", 1000)
        if "user_id" in filters:
            filters["user_id"] = _id(filters["user_id"])
        return self._control.journal(**filters)

    def advance_clock(self, seconds: float) -> float:
        """Move simulated time forward (codes expire after 60 s); returns the total offset."""
        return self._control.advance_clock(seconds)

    def reset(self) -> None:
        """Forget grades, links, codes, il tokens, journal, faults, clock (done before each test)."""
        self._target.reset()
