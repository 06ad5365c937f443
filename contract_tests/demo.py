"""``clever-sim demo``: the simulator and the reference partner in one process, ready to click.

``start_demo`` binds both servers (the simulator on ``serving.choose_server``'s pick, the
partner on waitress; port 0 picks free ports), makes sure the
simulator's registration of the demo app points at the partner's real port, serves both
in daemon threads and returns a ``Demo``; ``run_demo`` is the command: it prints where to
click and waits for Ctrl+C/SIGTERM.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

import click

from simulator.embedded import bind_simulator
from simulator.models import App
from simulator.serving import RunningServer, describe_server

DEMO_CLIENT_ID = "b4fd885bda79813831c3"
DEMO_CLIENT_SECRET = "da526e74a665e82ccb6ae91b4bf56e28e5cea3bc"
DEMO_APP_NAME = "Demo Partner (reference)"
DEMO_TEACHER = ("Rebecca", "Alvarez")


@dataclass
class Demo:
    """Both running servers; ``stop()`` closes them (partner first) and the simulator's store."""

    sim: RunningServer
    partner: Any  # contract_tests.reference_partner.PartnerServer
    client_id: str
    requested_server: str = "waitress"  # what --server asked for: the banner says why not granian only for auto

    @property
    def sim_url(self) -> str:
        return self.sim.url

    @property
    def partner_url(self) -> str:
        return self.partner.url

    @property
    def simulator(self):
        return self.sim.app.extensions["clever_sim"]

    def stop(self) -> None:
        try:
            self.partner.stop()  # first: its pooled connections to the simulator close too
        finally:
            self.sim.stop()


class DemoPortBusy(OSError):
    """A port one of the demo's two servers could not listen on, and which server and flag it was."""

    def __init__(self, server: str, flag: str, host: str, port: int, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.server, self.flag, self.host, self.port = server, flag, host, port

    def __str__(self) -> str:
        return (f"cannot listen on {self.host}:{self.port} for {self.server}: {self.strerror} "
                f"(choose another port with {self.flag}, or 0 for any free one)")


_PORT_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def _demo_spec(partner_url: str, port: int) -> dict[str, Any]:
    """Where the demo app points: the partner's callback (primary, then its ``localhost``
    twin) and its assignments list."""
    return {"redirect_uris": [f"{partner_url}/clever/callback",
                              f"http://localhost:{port}/clever/callback"],
            "assignments_url": f"{partner_url}/clever/assignments"}


def ensure_registration(sim, partner_url: str, port: int) -> bool:
    """Make the demo app's primary redirect URI and assignments URL point at the partner.

    The default fixture registers it for 127.0.0.1:5001, so with that port nothing
    changes; for another port (or a roster without the app) it is (re-)registered through
    ``CleverBackend.register_app`` like any app. Returns whether the registration changed.
    """
    existing = sim.clever.app(DEMO_CLIENT_ID)
    spec = _demo_spec(partner_url, port)
    if existing is not None and existing.primary_redirect_uri == spec["redirect_uris"][0] \
            and existing.assignments_url == spec["assignments_url"]:
        return False
    if existing is None:
        spec.update(name=DEMO_APP_NAME, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)
    sim.clever.register_app(spec, existing)
    return True


def start_demo(sim_port: int = 8080, partner_port: int = 5001, db: str | None = ":memory:", *,
               host: str = "127.0.0.1", environ: Mapping[str, str] | None = None,
               server: str | None = None, settings: Mapping[str, Any] | None = None) -> Demo:
    """Start the simulator and the reference partner; both listen on ``host``.

    ``settings``: the simulator's whole config, built already (``clever-sim demo``: read
    once), instead of ``db`` and ``environ``.

    ``environ`` is passed to ``create_app`` (None: the process environment, so
    ``CLEVER_SIM_*`` settings apply). Raises OSError when a port is taken, with nothing
    left running and no database file this start made left behind.
    """
    from simulator.serving import listen

    from .reference_partner import bind_partner, create_partner_app

    # Both ports before the simulator is built: a taken one refuses the start before the
    # database is opened or its roster replaced.
    try:
        partner_sock = listen(host, partner_port)
    except OSError as exc:
        if exc.errno in _PORT_ERRORS:
            raise DemoPortBusy("the reference partner", "--partner-port", host, partner_port,
                               exc) from exc
        raise
    try:
        sim_server = (bind_simulator(settings, host, sim_port, server=server, built=True)
                      if settings is not None else
                      bind_simulator({"DB": db} if db else {}, host, sim_port, environ=environ,
                                     server=server))
    except BaseException as exc:
        partner_sock.close()
        if isinstance(exc, OSError) and exc.errno in _PORT_ERRORS:
            raise DemoPortBusy("the simulator", "--port", host, sim_port, exc) from exc
        raise
    sim = sim_server.app.extensions["clever_sim"]
    existing = sim.clever.app(DEMO_CLIENT_ID)
    client_id, client_secret = ((existing.client_id, existing.client_secret) if existing
                                else (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    partner_app = create_partner_app({
        "CLEVER_URL": sim_server.url, "API_URL": sim_server.url, "GRADES_URL": sim_server.url,
        "CLIENT_ID": client_id, "CLIENT_SECRET": client_secret,
    })
    try:
        partner_server = bind_partner(partner_app, host, partner_port, sock=partner_sock)
    except BaseException:
        partner_sock.close()
        partner_app.extensions["reference_partner"].close()
        sim_server.stop()
        sim.abandon()  # a database this start made goes (only one it made: Simulator.abandon)
        raise

    ensure_registration(sim, partner_server.url, partner_server.port)
    sim_server.start()
    partner_server.start()
    return Demo(sim_server, partner_server, client_id,
                requested_server=server or os.environ.get("CLEVER_SIM_SERVER") or "waitress")


# --- what the command prints -----------------------------------------------------------------

def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for these characters)."""
    return json.dumps(value, ensure_ascii=False)


def partner_command(sim_port: int, partner_port: int) -> str:
    """The ``clever-sim demo`` flags that give these ports (none for the defaults)."""
    flags = "" if sim_port == 8080 else f" --port {sim_port}"
    return flags + ("" if partner_port == 5001 else f" --partner-port {partner_port}")


def partner_config(sim_port: int = 8080, partner_port: int = 5001, *,
                   registered: App | None = None, host: str = "127.0.0.1") -> str:
    """The reference partner's ``partner.toml`` as ``clever-sim demo`` runs it on these ports:
    the demo app's credentials (``registered``: the roster's demo app, if it has one), the
    URLs the demo registers, the partner's completion hook and assignment page."""
    name = registered.name if registered else DEMO_APP_NAME
    secret = registered.client_secret if registered else DEMO_CLIENT_SECRET
    partner_url = f"http://{host}:{partner_port}"
    spec = _demo_spec(partner_url, partner_port)
    sim_url = f"http://{host}:{sim_port}"
    return "\n".join([
        f"# The reference partner of `clever-sim demo{partner_command(sim_port, partner_port)}` "
        f"(simulator {sim_url}, partner {partner_url}).",
        f"# With the demo running: clever-sim contract --config partner.toml --sim-url {sim_url}",
        "[app]",
        f"name = {_toml_string(name)}",
        f"client_id = {_toml_string(DEMO_CLIENT_ID)}",
        f"client_secret = {_toml_string(secret)}",
        "redirect_uris = [" + ", ".join(map(_toml_string, spec["redirect_uris"])) + "]",
        f"assignments_url = {_toml_string(spec['assignments_url'])}",
        "",
        "[contract]",
        f"complete_assignment_hook = {_toml_string(partner_url + '/test-hooks/complete')}",
        'landing_url_pattern = "/assignments/{assignment_id}"',
        "grade_timeout_s = 10",
        ""])


def _name(user: dict) -> str:
    return f"{user['name']['first']} {user['name']['last']}"


def _walkthrough_people(sim, districts: list[str]) -> tuple[str, str | None, str | None]:
    """(teacher name, section name, a student's name) for the steps; the fixture's
    Rebecca Alvarez when she is there, else the first teacher with a section (store
    queries: a few rows, whatever the roster's size)."""
    clever = sim.clever

    def user(user_id: str | None) -> dict | None:
        found = clever.user(user_id) if user_id else None
        return found[1] if found else None

    def first_section(teacher_id: str) -> dict | None:
        for section_id in clever.user_section_ids(teacher_id, roster_order=True):
            section = clever.record("sections", section_id)
            if section and section.get("district") in districts and section.get("teacher") == teacher_id:
                return section
        return None

    candidates = [p["id"] for p in clever.search_people(" ".join(DEMO_TEACHER), limit=5).rows
                  if p["role"] == "teacher"]
    for district_id in districts:
        candidates += [t["id"] for t in clever.records("users", district_id=district_id,
                                                            role="teacher", limit=50).rows]
    for teacher_id in dict.fromkeys(candidates):
        teacher = user(teacher_id)
        section = first_section(teacher_id) if teacher else None
        if section is not None:
            student = next((u for u in map(user, section.get("students", [])[:20]) if u), None)
            return _name(teacher), section.get("name"), (_name(student) if student else None)
    teacher = next((user(t) for t in candidates if user(t)), None)
    return (_name(teacher) if teacher else "any teacher"), None, None


def walkthrough(demo: Demo) -> str:
    """The banner: where things run and the three steps to click through."""
    sim, sim_url, partner_url = demo.simulator, demo.sim_url, demo.partner_url
    app = sim.clever.app(demo.client_id)
    teacher, section, student = _walkthrough_people(sim, app.districts)
    in_section = f' (e.g. "{section}")' if section else ""
    student_hint = f' such as "{student}"' if student else ""
    first = next(iter(demo.partner.app.extensions["reference_partner"].assignments))
    shortcut = f"{sim_url}/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": app.client_id,
        "redirect_uri": app.primary_redirect_uri, "state": f"assignment:{first}"})
    return "\n".join([
        "Clever Grade Passback Simulator: demo",
        f"  Simulator (Clever + Schoology): {sim_url}   on {describe_server(demo.sim.kind, demo.requested_server)}",
        f"  Reference partner app:          {partner_url}",
        f"  App: {app.name}   client_id {app.client_id}",
        f"  redirect URI {app.primary_redirect_uri}   assignments {app.assignments_url}",
        "",
        "Click through it in 3 steps:",
        f"  1. Teacher: open {sim_url}/schoology, pick teacher \"{teacher}\", open a section"
        f"{in_section}, Add Materials -> Clever app -> {app.name}, pick an assignment and "
        "enable grading.",
        f"  2. Student: in a new tab of the same browser open {sim_url}/schoology, pick a "
        f"student in that section{student_hint} and click \"Sign in as another persona\" (the "
        "tab moves to /u/1/, the teacher's tab stays the teacher's); open the assignment "
        "(you land in the partner app), answer the questions and Turn in.",
        f"  3. Gradebook: open the section's gradebook from {sim_url}/schoology "
        f"(start at {sim_url}/schoology/gradebook) to see the grade, its LTI score and history; "
        "left open in the teacher's tab, its cell, total and class average update live.",
        "",
        f"Shortcut without Schoology (student login with an assignment): {shortcut}",
        f"Every request, with findings: {sim_url}/inspector   Grades as JSON: {sim_url}/_sim/grades",
        f"Start page (links, base URLs, credentials): {sim_url}/",
        "Contract suite against the reference partner (in another terminal):",
        f"  clever-sim demo --print-partner-config{partner_command(demo.sim.port, demo.partner.port)}"
        " > partner.toml",
        f"  clever-sim contract --config partner.toml --sim-url {sim_url}",
        "Ctrl+C stops.",
    ])


def run_demo(sim_port: int, partner_port: int, db: str | None,
             echo: Callable[[str], None] = print, server: str | None = None) -> None:
    """The ``clever-sim demo`` command: start, print the walkthrough, wait for Ctrl+C/SIGTERM."""
    import click

    from simulator.config import ConfigError, build_config
    from simulator.roster import RosterError

    try:
        settings = build_config(overrides={"DB": db} if db else {})
        # refused (a busy port, an [app] the roster refutes): no file left (start_demo)
        demo = start_demo(sim_port, partner_port, db, server=server,
                          settings=settings)  # the config as read once
    except DemoPortBusy as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1 (ports {sim_port} and "
                                   f"{partner_port}): {exc.strerror or exc}") from None
    except ConfigError as exc:
        raise click.ClickException(f"config: {exc}") from None
    except RosterError as exc:
        raise click.ClickException(exc.one_line()) from None
    stopped = threading.Event()

    def _stop(signum, frame):  # SIGTERM from a terminal or CI: stop like Ctrl+C
        stopped.set()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        echo(walkthrough(demo))
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        demo.stop()
        echo("Stopped.")


@click.command()
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              envvar="CLEVER_SIM_PORT", help="Simulator port (0 picks a free one).")
@click.option("--partner-port", default=5001, show_default=True, type=click.IntRange(0, 65535),
              envvar="CLEVER_SIM_PARTNER_PORT",
              help="Reference partner port; the demo app's redirect URI follows it.")
@click.option("--db", default=":memory:", show_default=True,
              help="SQLite file, or :memory: for a throwaway state.")
@click.option("--server", "server", default="waitress", show_default=True, envvar="CLEVER_SIM_SERVER",
              type=click.Choice(["auto", "granian", "waitress"]),
              help="The simulator's WSGI server (as for `serve`).")
@click.option("--print-partner-config", is_flag=True,
              help="Print the reference partner's partner.toml for `clever-sim contract` "
                   "(for the demo on these ports) and exit.")
def demo(port: int, partner_port: int, db: str, server: str, print_partner_config: bool) -> None:
    """Run the simulator and the reference partner together and print a 3-step walkthrough."""
    from simulator.cli import _build

    if port == partner_port != 0:  # else the partner's bind fails as if another program held it
        raise click.BadParameter(f"is {port}, the same as --port: the simulator and the reference "
                                 "partner need a port each (or 0 for any free one)",
                                 param_hint="'--partner-port'")
    if print_partner_config:
        if 0 in (port, partner_port):
            raise click.UsageError("--print-partner-config needs the demo's real ports, not 0")
        sim = _build(None, {"DB": ":memory:"}).extensions["clever_sim"]  # the roster's demo app
        try:
            registered = sim.clever.app(DEMO_CLIENT_ID)
        finally:
            sim.close()
        click.echo(partner_config(port, partner_port, registered=registered), nl=False)
        return
    from simulator.serving import ServerUnavailable, choose_server

    try:
        choose_server(server)
    except ServerUnavailable as exc:
        raise click.BadParameter(str(exc), param_hint="'--server'") from None
    run_demo(port, partner_port, db, echo=lambda text: click.echo(text) or sys.stdout.flush(),
             server=server)
