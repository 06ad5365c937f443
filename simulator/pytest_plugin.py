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
work the same against an in-process simulator and against ``--clever-sim-url``.
"""

from __future__ import annotations

import json
import os
import warnings
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

from .config import CONTROL_TOKEN_ENV
from .control_client import App, ControlAPIError, ControlClient

__all__ = ["App", "CleverSim", "ControlAPIError"]

_TOLERANCE = Decimal("0.000001")
_POINTS_TOLERANCE = Decimal("0.005")  # Schoology shows points with 2 decimals
_SHOWN = 10                   # lines of grades / similar requests in a failure message
_GENERIC_APP = {"name": "pytest partner", "client_id": "clever-sim-pytest",
                "client_secret": "clever-sim-pytest-secret",
                "redirect_uris": ["http://127.0.0.1:5001/clever/callback"]}
_SPEC_KEYS = ("name", "client_id", "client_secret", "redirect_uris", "assignments_url",
              "districts", "scopes")


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

class _Target:
    """One simulator: started here (``sim`` is its ``Simulator``) or reached at a URL."""

    def __init__(self, url: str, settings: dict, server: Any = None, sim: Any = None,
                 token: str | None = None):
        self.url = url.rstrip("/")
        self.settings = settings
        self.server = server
        self.sim = sim
        self.control = ControlClient(self.url, token)
        self.generated_apps: dict[str, str] = {}  # spec (JSON) -> client_id, for specs without one

    def reset(self) -> None:
        if self.sim is not None:
            self.sim.reset()
        else:
            self.control.reset()

    def default_app_spec(self) -> dict:
        """The roster's (first) demo app; with --clever-sim-url the first registered app."""
        if self.sim is not None:
            apps = self.sim.roster_apps()
            return dict(apps[0]) if apps else dict(_GENERIC_APP)
        apps = self.control.apps()
        if not apps:
            return dict(_GENERIC_APP)
        return {k: apps[0][k] for k in _SPEC_KEYS if apps[0].get(k) is not None}

    def stop(self) -> None:
        self.control.close()
        if self.server is not None:
            self.server.stop()


class _Servers:
    """The session's simulator: started on first use, restarted only when a test asks for
    other settings, always stopped at the end of the session."""

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
        self.current: _Target | None = None
        self.last_port: int | None = None  # a restart keeps the port: clever_sim_url stays valid
        self.failure: str | None = None
        self._warned = False

    def session_url(self) -> str:
        if self.url:
            return self.url.rstrip("/")
        if self.current is None:
            self.current = self._start({"DB": ":memory:", **self.cli})
        return self.current.url

    def target(self, overrides: dict | None) -> _Target:
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

    def _start(self, settings: dict) -> _Target:
        from .app import create_app
        from .config import ConfigError
        from .roster import RosterError
        from .serving import start_in_thread

        try:
            app = create_app(settings, environ={})
        except (ConfigError, RosterError) as exc:
            pytest.fail(f"clever_sim: cannot start the simulator with {settings}:\n{exc}",
                        pytrace=False)
        port = self.port or self.last_port or 0
        try:
            server = start_in_thread(app, "127.0.0.1", port)
        except OSError as exc:
            if self.port or not port:
                app.extensions["clever_sim"].close()
                pytest.fail(f"clever_sim: cannot listen on 127.0.0.1:{port}: "
                            f"{exc.strerror or exc} (--clever-sim-port)", pytrace=False)
            warnings.warn(f"clever_sim: port {port} was taken while the simulator restarted with "
                          "other settings; clever_sim_url changed", stacklevel=2)
            server = start_in_thread(app, "127.0.0.1", 0)
        self.last_port = server.port
        return _Target(server.url, settings, server, app.extensions["clever_sim"],
                       settings.get("CONTROL_TOKEN"))

    def _remote(self, settings: dict) -> _Target:
        if self.failure:
            pytest.fail(self.failure, pytrace=False)
        if self.current is None:
            target = _Target(self.url, settings, token=self.token)
            try:
                target.control.health()
            except ControlAPIError as exc:
                target.stop()
                self.failure = (f"clever_sim: no simulator answers at --clever-sim-url "
                                f"{self.url}: {exc}\nStart it first (clever-sim serve --port N) "
                                "or leave the option out to start one in-process.")
                pytest.fail(self.failure, pytrace=False)
            self.current = target
        target = self.current
        health = target.control.health()
        if "STRICT" in settings and bool(settings["STRICT"]) != bool(health.get("strict")):
            pytest.fail(f"clever_sim: this test asks for strict={settings['STRICT']} but the "
                        f"simulator at {self.url} runs with strict={health.get('strict')}; "
                        "restart it with(out) --strict", pytrace=False)
        ignored = sorted(set(settings) - {"DB", "STRICT"})
        if ignored and not self._warned:
            self._warned = True
            warnings.warn(f"clever_sim: settings {ignored} cannot be applied to the simulator at "
                          f"--clever-sim-url {self.url} (start it with them)", stacklevel=2)
        return target

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
def _clever_sim_target(_clever_sim_servers: _Servers, clever_sim_config: dict) -> _Target:
    return _clever_sim_servers.target(clever_sim_config)


@pytest.fixture
def clever_sim_app(_clever_sim_target: _Target) -> dict:
    """The app every test starts with (override to register yours): the roster's demo app."""
    return _clever_sim_target.default_app_spec()


@pytest.fixture
def clever_sim(_clever_sim_target: _Target, clever_sim_app: dict):
    """The session's simulator, reset for this test, with ``clever_sim_app`` registered."""
    target = _clever_sim_target
    target.reset()
    helper = CleverSim(target)
    helper._start(clever_sim_app)
    try:
        yield helper
    finally:
        helper._cleanup()


# --- the helper ----------------------------------------------------------------------------

def _id(person: Any) -> str:
    """A user id from an id or a persona/user dict."""
    if isinstance(person, dict):
        return person["id"]
    return person


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


class CleverSim:
    """What ``clever_sim`` gives a test: the simulator's URL, its app and helpers."""

    def __init__(self, target: _Target):
        self._target = target
        self._control = target.control
        self.url: str = target.url
        self.app: App | None = None
        self._created: list[str] = []
        self._patched: dict[str, dict] = {}

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

    def _start(self, spec: dict) -> None:
        if not isinstance(spec, dict) or not spec.get("redirect_uris"):
            pytest.fail("clever_sim_app must return a dict with at least redirect_uris "
                        f"(got {spec!r})", pytrace=False)
        spec = {k: v for k, v in spec.items()}
        if spec.get("client_id") is None:
            key = json.dumps(spec, sort_keys=True, default=str)
            known = self._target.generated_apps.get(key)
            view = self._control.app(known) if known else None
            if view is None:
                view = self._control.register_app(spec)
                self._target.generated_apps[key] = view["client_id"]
        else:
            view = self._control.app(spec["client_id"])
            if view is None:
                view = self._control.register_app(spec)
            elif any(view.get(k) != v for k, v in spec.items()):
                view = self._control.update_app(spec["client_id"], spec)
        self.app = App.from_view(view)

    def _cleanup(self) -> None:
        """Undo this test's app registrations (a reset keeps apps)."""
        for client_id in reversed(self._created):
            try:
                self._control.delete_app(client_id, ok=(200, 404))
            except ControlAPIError:  # the simulator is gone: nothing to undo
                pass
        for client_id, spec in self._patched.items():
            try:
                self._control.update_app(client_id, spec, ok=(200, 404))
            except ControlAPIError:
                pass

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
        existing = self._control.app(client_id) if client_id else None
        if existing is not None:
            if client_id not in self._patched and client_id not in self._created:
                self._patched[client_id] = {k: existing[k] for k in _SPEC_KEYS
                                            if k in existing and k != "client_id"}
            view = self._control.update_app(client_id, spec)
        else:
            view = self._control.register_app(spec)
            self._created.append(view["client_id"])
        return App.from_view(view)

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
        view = self._control.call("GET", f"/_sim/apps/{self._client(client_id)}")
        tokens = view.get("district_tokens") or {}
        district_id = district_id or (view.get("districts") or [None])[0]
        if district_id not in tokens:
            raise ControlAPIError("GET", f"/_sim/apps/{view['client_id']}", 200,
                                  f"the app has no district-app token for district {district_id!r} "
                                  f"(it has: {', '.join(tokens) or 'none'})")
        return tokens[district_id]

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
        grade = self._control.wait_for_grade(_id(user), assignment_id, timeout, client_id=client_id)
        if grade is None:
            raise AssertionError(self._explain(
                f"wait_for_grade: no grade for student {_id(user)} on assignment "
                f"{assignment_id!r} arrived within {timeout:g} s", _id(user), assignment_id, client_id))
        return grade

    def assert_grade(self, student: Any, assignment_id: str, *, lti: Any = None,
                     percentage: Any = None, points: Any = None, client_id: str | None = None,
                     timeout: float = 0) -> dict:
        """Assert the stored grade of ``student`` for ``assignment_id`` has one expected value:

        * ``lti`` — the LTI 1.1 score (0–1.0, what Clever passes to Schoology), ± 0.000001;
        * ``percentage`` — the fraction the partner sent (``percentage``, or
          ``scoreGiven/scoreMaximum`` before the 1.0 clamp), ± 0.000001;
        * ``points`` — the points the teacher's gradebook shows: LTI × the max points of
          the assignment linked in the student's section (``link()`` it first), ± 0.005.

        ``timeout`` > 0 waits that long for the grade to arrive. On failure the message lists
        the grades stored and the similar grade requests the simulator received.
        """
        __tracebackhide__ = True
        given = [(name, value) for name, value in (("lti", lti), ("percentage", percentage),
                                                   ("points", points)) if value is not None]
        if len(given) != 1:
            raise TypeError("assert_grade takes exactly one of lti=, percentage= or points=")
        name, expected_raw = given[0]
        expected = _dec(expected_raw)
        if expected is None:
            raise TypeError(f"assert_grade: {name}={expected_raw!r} is not a number")
        user_id = _id(student)
        if timeout:
            grade = self._control.wait_for_grade(user_id, assignment_id, timeout, client_id=client_id)
        else:
            found = self.grades(user_id=user_id, assignment_id=assignment_id, client_id=client_id)
            grade = found[-1] if found else None
        what = f"student {user_id} on assignment {assignment_id!r}"
        if grade is None:
            waited = f" within {timeout:g} s" if timeout else ""
            raise AssertionError(self._explain(
                f"assert_grade: expected {name} {_num(expected)} but no grade for {what} "
                f"arrived{waited}", user_id, assignment_id, client_id))
        got, detail = self._measure(name, grade, user_id)
        tolerance = _POINTS_TOLERANCE if name == "points" else _TOLERANCE
        if got is None or abs(got - expected) > tolerance:
            shown = "nothing" if got is None else _num(got)
            hint = ""
            if name == "percentage" and 1 < expected <= 100:
                hint = f"\n(percentage is Clever's 0–1.0 format: did you mean {_num(expected / 100)}?)"
            raise AssertionError(self._explain(
                f"assert_grade: {what}: expected {name} {_num(expected)}, got {shown} "
                f"({detail}){hint}", user_id, assignment_id, client_id, mismatch=grade))
        return grade

    def _measure(self, name: str, grade: dict, user_id: str) -> tuple[Decimal | None, str]:
        lti = _dec(grade.get("lti_score"))
        sent = _describe(grade)
        if name == "lti":
            return lti, sent
        if name == "percentage":
            if grade.get("format") == "percentage":
                return _dec(grade.get("percentage")), sent
            given, maximum = _dec(grade.get("scoreGiven")), _dec(grade.get("scoreMaximum"))
            if given is None or not maximum:
                return None, sent
            return given / maximum, sent
        max_points, why = self._max_points(grade, user_id)
        if max_points is None or lti is None:
            return None, f"{sent}; {why}"
        return lti * max_points, f"{sent}; LTI × max points {_num(max_points)}"

    def _max_points(self, grade: dict, user_id: str) -> tuple[Decimal | None, str]:
        links = self.links(client_id=grade.get("client_id"), assignment_id=grade["assignmentID"])
        if not links:
            return None, ("the assignment is not linked to any section, so the gradebook shows "
                          "no points: call clever_sim.link(section_id, assignment_id, max_points=…)")
        values = {str(link.get("max_points")) for link in links}
        if len(values) > 1:
            district = grade.get("district")
            mine = next((p for p in self.students(district) if p["id"] == user_id), None)
            sections = set(mine["sections"]) if mine else set()
            links = [link for link in links if link["section_id"] in sections]
            if not links:
                return None, "the assignment is not linked in any of the student's sections"
        return _dec(links[0].get("max_points")), ""

    # -- failure reports -------------------------------------------------------------------

    def _explain(self, headline: str, user_id: str, assignment_id: str, client_id: str | None,
                 mismatch: dict | None = None) -> str:
        lines = [headline]
        try:
            grades = self.grades()
            posts = self.journal(path="/v1/grade", method="POST", limit=1000)
        except ControlAPIError as exc:  # the report must not hide the assertion
            return f"{headline}\n(could not read what arrived: {exc})"
        posts = [p for p in posts if p.get("path") == "/v1/grade"]

        def grade_rank(g: dict) -> int:
            same_user, same_assignment = g.get("userID") == user_id, g.get("assignmentID") == assignment_id
            return 0 if same_user and same_assignment else 1 if same_user else 2 if same_assignment else 3

        ranked = sorted(grades, key=lambda g: (grade_rank(g), -(g.get("seq") or 0)))
        if ranked:
            lines.append(f"{len(grades)} grade(s) stored, closest first:")
            for g in ranked[:_SHOWN]:
                lines.append(f"  {_grade_line(g, user_id, assignment_id)}")
            if len(ranked) > _SHOWN:
                lines.append(f"  … and {len(ranked) - _SHOWN} more")
        else:
            lines.append("no grades stored at all.")

        def post_rank(e: dict) -> int | None:
            same_user, same_assignment = e.get("user_id") == user_id, e.get("assignment_id") == assignment_id
            if same_user and same_assignment:
                return 0
            if same_user:
                return 1
            if same_assignment:
                return 2
            if (e.get("status") or 0) >= 400:
                return 3
            return None

        similar = sorted(((r, e) for e in posts if (r := post_rank(e)) is not None),
                         key=lambda item: (item[0], -item[1]["id"]))
        if similar:
            lines.append(f"similar requests (POST /v1/grade received, closest first; "
                         f"{len(posts)} in all):")
            for rank, entry in similar[:_SHOWN]:
                lines.extend("  " + text for text in _request_lines(entry, rank, assignment_id))
            if len(similar) > _SHOWN:
                lines.append(f"  … and {len(similar) - _SHOWN} more")
        elif posts:
            lines.append(f"similar requests: none ({len(posts)} POST /v1/grade received, all "
                         "accepted for other students and assignments)")
        else:
            lines.append("similar requests: none — no POST /v1/grade reached the simulator "
                         f"(is your app's grades base URL {self.url}?)")
        return "\n".join(lines)

    # -- faults, journal, clock ------------------------------------------------------------

    def fault(self, path: str, status: int | None = None, count: int = 1,
              retry_after: int | None = None, latency_ms: int = 0, *, method: str | None = None,
              body: dict | None = None) -> dict:
        """Make the next ``count`` requests to ``path`` (``*`` allowed) fail with ``status``
        and/or wait ``latency_ms`` first."""
        return self._control.fault(path, status, count, retry_after, latency_ms, method=method,
                                   body=body)

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


def _describe(grade: dict) -> str:
    if grade.get("format") == "percentage":
        sent = f"sent percentage {grade.get('percentage')}"
    else:
        sent = f"sent scoreGiven {grade.get('scoreGiven')} / scoreMaximum {grade.get('scoreMaximum')}"
    return f"lti_score {grade.get('lti_score')}, {sent}, version {grade.get('version')}"


def _grade_line(g: dict, user_id: str, assignment_id: str) -> str:
    marks = []
    if g.get("userID") == user_id:
        marks.append("same student")
    if g.get("assignmentID") == assignment_id:
        marks.append("same assignment")
    mark = f"  ← {', '.join(marks)}" if marks else ""
    return (f"student {g.get('userID')} assignment {g.get('assignmentID')!r}: {_describe(g)} "
            f"(app {g.get('client_id')}){mark}")


_RANK_LABEL = {0: "same student, same assignment", 1: "same student, other assignment",
               2: "same assignment, other student", 3: "rejected"}


def _request_lines(entry: dict, rank: int, assignment_id: str) -> list[str]:
    status = entry.get("status")
    head = (f"#{entry.get('id')} POST /v1/grade → {status} [{_RANK_LABEL[rank]}] "
            f"student {entry.get('user_id') or '?'} assignment {entry.get('assignment_id')!r}")
    if entry.get("fault"):
        head += " (injected fault)"
    lines = [head]
    body = entry.get("request_body")
    if body:
        lines.append(f"    sent: {body[:300]}")
    answer = entry.get("response_body") or ""
    try:
        parsed = json.loads(answer) if answer else None
    except ValueError:
        parsed = None
    if isinstance(status, int) and status < 400 and isinstance(parsed, dict) and \
            isinstance(parsed.get("data"), dict):
        lines.append(f"    stored: lti_score {parsed['data'].get('lti_score')}")
    elif isinstance(parsed, dict) and parsed.get("message"):
        errors = "; ".join(f"{e.get('field')}: {e.get('problem')}" +
                           (f" ({e['hint']})" if e.get("hint") else "")
                           for e in parsed.get("errors") or [])
        lines.append(f"    error: {parsed['message']}" + (f" — {errors}" if errors else ""))
    elif entry.get("findings"):
        lines.append("    findings: " + "; ".join(entry["findings"]))
    return lines
