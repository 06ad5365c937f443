"""``clever-sim``: every command builds the same app through ``create_app``."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import signal
import sys
import time
from contextlib import contextmanager, suppress
from typing import Iterator

import click

from . import __version__
from .config import BaseUrls, ConfigError, build_config
from .roster import RosterError, load_roster


BAD_INPUT = 2  # every input a command cannot use; 1 stays "the check/validation failed"
INTERRUPTED = 130  # Ctrl+C (128 + SIGINT) outside serve/demo, as `contract` answers it
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


class CleverSimCLI(click.Group):
    """The one place that turns any failure into one plain line on stderr and exit 2.

    click prints usage errors over several lines and lets other exceptions out as
    tracebacks; here each becomes ``clever-sim <command>: <what is wrong>``. Set
    CLEVER_SIM_TRACEBACK=1 to see the traceback of an unexpected error.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.Abort:  # Ctrl+C: neither a failed check (1) nor bad input (2)
            click.echo("Aborted!", err=True)
            sys.exit(INTERRUPTED)
        except _NO_ARGS_IS_HELP as exc:  # bare `clever-sim`: the help itself
            click.echo(exc.format_message(), err=True)
            sys.exit(BAD_INPUT)
        except Exception as exc:  # noqa: BLE001 - the point: no traceback, ever
            if os.environ.get("CLEVER_SIM_TRACEBACK") == "1":
                raise
            path = self._path(argv)
            click.echo(f"{path}: {describe_failure(exc, path)}", err=True)
            sys.exit(BAD_INPUT)
        sys.exit(code if isinstance(code, int) else 0)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command, the ones loaded on demand included (``--help`` lists them)."""
        return sorted(set(self.commands) | set(_LAZY_COMMANDS) | set(_plugin_commands()))

    def get_command(self, ctx: click.Context | None, name: str) -> click.Command | None:
        """The command ``name``, importing it on first use: ``serve`` never pays for the
        contract checks' imports (httpx, rich) or the snapshot tools'."""
        command = self.commands.get(name)
        if command is None:
            command = _load_command(name)
            if command is not None:
                self.add_command(command, name)
        return command

    def _path(self, argv: list[str]) -> str:
        """``clever-sim snapshot load``: the command the arguments name."""
        words, cmd = ["clever-sim"], self
        for arg in argv:
            sub = cmd.get_command(None, arg) if isinstance(cmd, click.Group) else None
            if sub is None:
                if arg.startswith("-"):
                    continue
                break
            words.append(arg)
            cmd = sub
        return " ".join(words)


def _from_environment(exc: click.UsageError) -> str:
    """Name the variable a bad value came from: "Invalid value for '--port'" alone sent
    people looking for a --port they never typed (CLEVER_SIM_PORT=abc)."""
    from click.core import ParameterSource

    param, ctx = getattr(exc, "param", None), exc.ctx
    if param is None or ctx is None or param.name is None or not param.envvar:
        return ""
    if ctx.get_parameter_source(param.name) is not ParameterSource.ENVIRONMENT:
        return ""
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
    name = next((n for n in names if n in os.environ), names[0])
    return f" (from the environment: {name}={os.environ.get(name, '')!r})"


def listen_failure(address: str, exc: BaseException) -> str:
    """Why a port could not be bound, with the fix ("Address already in use" alone left
    people guessing what to change)."""
    reason = getattr(exc, "strerror", None) or str(exc)
    if getattr(exc, "errno", None) == errno.EADDRINUSE:
        reason += " (choose another port with --port, or 0 for any free one)"
    elif getattr(exc, "errno", None) == errno.EADDRNOTAVAIL:
        reason += " (no interface of this machine has that address: use --host 127.0.0.1, or 0.0.0.0 for all)"
    return f"cannot listen on {address}: {reason}"


def describe_failure(exc: BaseException, path: str = "clever-sim") -> str:
    """One line saying what went wrong and, where known, how to fix it; ``path`` is the
    command the arguments named, for usage errors click raises without a context
    (``serve --port`` with no value pointed at 'clever-sim --help')."""
    from .errors import DatabaseUnusable

    if isinstance(exc, click.UsageError):
        where = exc.ctx.command_path if exc.ctx is not None else path
        text = f"{exc.format_message()}{_from_environment(exc)} (see '{where} --help')"
    elif isinstance(exc, click.ClickException):
        text = exc.format_message()
    elif isinstance(exc, ConfigError):
        text = f"config: {exc}"
    elif isinstance(exc, RosterError):
        text = exc.one_line()
    elif isinstance(exc, DatabaseUnusable):
        text = str(exc)
    elif isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename else ""
        text = f"{name}{exc.strerror or exc}"
    else:
        text = (f"internal error: {type(exc).__name__}: {exc} (please report it; "
                f"CLEVER_SIM_TRACEBACK=1 shows where)")
    return text


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def listen_host(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--host: an IP address or a host name, checked before any lookup (no DNS for typos)."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.split(".")
    if len(value) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels) \
            and not labels[-1].isdigit():
        return value
    hint = " (give the port with --port)" if ":" in value and "//" not in value else ""
    raise click.BadParameter(f"{value!r} is not an IP address or host name, e.g. 127.0.0.1 or "
                             f"0.0.0.0{hint}", ctx=ctx, param=param)


def _build(config: str | None, overrides: dict):
    """The app ``serve`` runs; ConfigError, RosterError, DatabaseUnusable reach CleverSimCLI."""
    from .app import create_app

    return create_app(_given(overrides), config_file=config)


def _given(overrides: dict) -> dict:
    """The settings a command's flags gave (a flag left out is None: config and env decide)."""
    return {k: v for k, v in overrides.items() if v is not None}


@contextmanager
def removed_on_failure(app) -> Iterator[None]:
    """When the block fails (the server cannot be made), ``app`` is closed and what its start
    made for a new database goes: the file, its -wal and -shm, the folders and the roster
    cache entry its simulator made itself (``Simulator.abandon``), never a file that existed
    or that another process made meanwhile. (A start refused inside ``create_app``, e.g. an
    [app] naming a district the roster lacks, has removed them there already.)"""
    try:
        yield
    except BaseException:
        from .tenants import close_app

        with suppress(Exception):  # best effort: the command's own error is the one to report
            close_app(app)  # its tenants, then its store
        with suppress(Exception):
            app.extensions["clever_sim"].abandon()
        raise


def banner(app, url: str) -> str:
    """What `serve` prints: the three base URLs and every app's credentials."""
    sim = app.extensions["clever_sim"]
    lines = [f"Clever Grade Passback Simulator {__version__} on {url}",
             "Point your app's Clever base URLs at the simulator:", *BaseUrls(url).lines(), ""]
    names = {i: (sim.clever.record("districts", i) or {}).get("name", i) for i in sim.district_ids}
    for registered in sim.clever.apps():
        view = sim.clever.app_view(registered)
        lines += [f"App: {view['name']}",
                  f"  client_id:     {view['client_id']}",
                  f"  client_secret: {view['client_secret']}",
                  f"  redirect URIs: {', '.join(view['redirect_uris'])} (first = primary)"]
        if view["assignments_url"]:
            lines.append(f"  assignments:   {view['assignments_url']}")
        for district_id, token in view["district_tokens"].items():
            lines.append(f"  district-app token for {names.get(district_id, district_id)}: {token}")
        lines.append("")
    lines += [f"Start page (links, base URLs, credentials): {url}/",
              f"Control API: {url}/_sim/health   Log in as anyone: {url}/oauth/whoami",
              f"Database: {sim.db_path}{'   strict mode: on' if sim.cfg['STRICT'] else ''}"]
    return "\n".join(lines)


def exposure_notice(app, host: str, port: int) -> str:
    """What `serve` adds when it listens beyond loopback: the real addresses, and a warning
    that anyone who reaches them can drive the simulator (unless a control token is set)."""
    from .guard import is_loopback_name
    from .serving import WILDCARDS, local_url, machine_addresses

    if host not in WILDCARDS and is_loopback_name(host.strip("[]").lower()):
        return ""
    addresses = machine_addresses(host)
    where = f"all addresses ({host or '0.0.0.0'}:{port})" if host in WILDCARDS else f"{host}:{port}"
    urls = ", ".join(local_url(a, port) for a in addresses) or "this machine's addresses"
    lines = [f"Listening on {where}; other machines reach it at: {urls}"]
    if app.config.get("CONTROL_TOKEN"):
        lines.append("Control API: needs Authorization: Bearer {control token} (set).")
    else:
        lines.append("WARNING: anyone who can reach this port can drive the control API (reset, "
                     "faults, apps, snapshots with client secrets). On a shared network, start "
                     "it with --control-token TOKEN (or CLEVER_SIM_CONTROL_TOKEN).")
    names = ["localhost", "127.0.0.1"] + [h for h in app.config.get("ALLOWED_HOSTS", [])
                                          if h not in ("localhost", "127.0.0.1")]
    more = "" if "*" in names else " (add more with --allowed-host NAME)"
    lines.append("Control API host names: " + ", ".join(dict.fromkeys(names)) + more)
    return "\n".join(lines)


def serve_allowed_hosts(configured: list[str], flags: tuple[str, ...],
                        host: str) -> list[str] | None:
    """The control API's host names for `serve`: ``configured`` (the config's and env's),
    then ``--allowed-host``, then the addresses it listens on (an address cannot be
    DNS-rebound); None: the configured ones alone."""
    from .serving import machine_addresses

    if not flags and host == "127.0.0.1":
        return None
    return list(dict.fromkeys([*configured, *flags, *machine_addresses(host)]))


@click.group(cls=CleverSimCLI)
@click.version_option(__version__, prog_name="clever-sim")
def main() -> None:
    """Clever Grade Passback Simulator: emulated Clever + fake Schoology for partner apps."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="CLEVER_SIM_HOST",
              callback=listen_host, help="Address to listen on (0.0.0.0 inside containers; also CLEVER_SIM_HOST).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              envvar="CLEVER_SIM_PORT", help="Port (0 picks a free one; also CLEVER_SIM_PORT).")
@click.option("--db", default=None, help="SQLite file, or :memory: for a throwaway state "
              "(also CLEVER_SIM_DB). Default: .clever-sim/clever-sim.db")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False),
              help="Partner TOML file ([app], [contract], [simulator]; also CLEVER_SIM_CONFIG).")
@click.option("--roster", default=None, type=click.Path(dir_okay=False),
              help="Roster fixture JSON (default: the packaged demo districts; also CLEVER_SIM_ROSTER).")
@click.option("--roster-cache", default=None, type=click.Path(file_okay=False),
              envvar="CLEVER_SIM_ROSTER_CACHE",
              help="Directory of ready databases keyed by the roster's digest: a new --db "
                   "starts from a copy instead of loading a big roster again (CI caches, images; also "
                   "CLEVER_SIM_ROSTER_CACHE).")
@click.option("--strict", is_flag=True, default=None, help="Turn every grade warning into a 400 (also CLEVER_SIM_STRICT=true).")
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 512),
              help="Threads for requests (long-polls and live streams get their own).")
@click.option("--server", "server", default="waitress", show_default=True, envvar="CLEVER_SIM_SERVER",
              type=click.Choice(["auto", "granian", "waitress"]),
              help="WSGI server: waitress keeps every guarantee (a drop fault closes the "
                   "connection unanswered); granian (Rust HTTP) is faster for load tests but "
                   "answers a drop fault with a cut-off 502; auto: granian where it installs (also "
                   "CLEVER_SIM_SERVER).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A host name the control API (/_sim/) answers under besides localhost, "
                   "127.x and [::1], e.g. clever-sim in Docker; repeatable; '*' allows any "
                   "(also CLEVER_SIM_ALLOWED_HOSTS, comma-separated).")
@click.option("--control-token", default=None, metavar="TOKEN",
              help="Require Authorization: Bearer TOKEN on the control API (/_sim/), for "
                   "shared deployments (also CLEVER_SIM_CONTROL_TOKEN).")
def serve(host: str, port: int, db: str | None, config: str | None, roster: str | None,
          roster_cache: str | None, strict: bool | None, threads: int, server: str,
          allowed_hosts: tuple[str, ...], control_token: str | None) -> None:
    """Serve the simulator on a production WSGI server (waitress; granian with --server).

    Each setting is taken from its flag, else its CLEVER_SIM_* variable, else the [simulator]
    table of --config, else its default (docs/running.md, "Configuration").
    """
    from .heap import fix_mmap_threshold, start_trimmer
    from .limits import raise_fd_limit
    from .app import create_app
    from .config import with_changes
    from .serving import (ServerUnavailable, bind, choose_server, describe_server,
                          freeze_startup_objects, limit_malloc_arenas, listen, tune_interpreter)

    started = time.perf_counter()
    try:
        kind = choose_server(server)
    except ServerUnavailable as exc:
        raise click.BadParameter(str(exc), param_hint="'--server'") from None
    raise_fd_limit()  # before any store opens: the bounds (limits.bounds_for) follow it
    limit_malloc_arenas()  # these three change the whole interpreter: only in `serve`
    tune_interpreter()
    overrides = {"DB": db, "ROSTER": roster, "ROSTER_CACHE": roster_cache, "STRICT": strict,
                 "CONTROL_TOKEN": control_token}
    # The config is built once, here (the TOML file read once), and handed to create_app.
    settings = build_config(config, overrides=_given(overrides))  # a bad one: nothing made yet
    hosts = serve_allowed_hosts(settings["ALLOWED_HOSTS"], allowed_hosts, host)
    if hosts is not None:
        settings = with_changes(settings, ALLOWED_HOSTS=hosts)
    # The port first: a busy one refuses the start before the database is opened or its
    # roster replaced (a refused start changes nothing).
    try:
        sock = listen(host, port, kind)
    except (OSError, ValueError) as exc:  # in use, not ours, not an address
        raise click.ClickException(listen_failure(f"{host}:{port}", exc)) from None
    try:
        app = create_app(settings=settings)  # refused: what it made is removed (Simulator.abandon)
        with removed_on_failure(app):
            running = bind(app, host, port, threads, server=kind, sock=sock)
    except BaseException:
        sock.close()
        raise
    click.echo(banner(app, running.url))
    notice = exposure_notice(app, host, running.port)
    if notice:
        click.echo(notice)
    click.echo(f"Server: {describe_server(kind, server)}, {threads} threads")
    click.echo(f"Ready in {time.perf_counter() - started:.2f} s. Ctrl+C stops.")
    sys.stdout.flush()
    freeze_startup_objects()
    fix_mmap_threshold()  # memory stays flat under load (simulator/heap.py); not during the load
    trimmer = start_trimmer()

    def _stop(signum, frame):  # SIGTERM from CI/docker: close cleanly, keep the database
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    # The server runs in a thread and this one waits for Ctrl+C/SIGTERM: a stop then ends
    # live gradebook streams with their last chunk before the server closes (run here, the
    # server's loop had already ended when the signal reached us, and every open stream was
    # cut mid-response: the browser logged ERR_INCOMPLETE_CHUNKED_ENCODING).
    running.start()
    try:
        while running.thread.is_alive():
            running.thread.join(0.5)  # a timeout: Ctrl+C gets through on Windows too
    except KeyboardInterrupt:
        pass
    finally:
        if trimmer is not None:
            trimmer.set()
        running.stop()  # streams ended, the server stopped, every tenant's store then the root's
        click.echo("Stopped.")


@main.group()
def fixtures() -> None:
    """Roster fixtures: check them before you serve them."""


@fixtures.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def fixtures_validate(file: str) -> None:
    """Report every problem in a roster fixture, each with its JSON path: exit 1 when it
    has any, 2 when the file is not a JSON document at all (input, as for every command)."""
    from .roster import check_roster, parse_roster_bytes, read_roster_bytes

    try:
        doc = parse_roster_bytes(read_roster_bytes(file), file)
    except RosterError as exc:  # unreadable, not UTF-8, not JSON, a key twice in one object
        first = exc.problems[0]
        more = f" (and {len(exc.problems) - 1} more problem(s))" if len(exc.problems) > 1 else ""
        where = "" if first.path == "$" else f"{first.path}: "
        raise click.ClickException(f"{where}{first.message}{more}") from None
    try:
        check_roster(doc)
    except RosterError as exc:
        click.echo(f"{file}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem.path}: {problem.message}", err=True)
        sys.exit(1)
    counts = ", ".join(f"{len(doc.get(k, []))} {k}" for k in
                       ("districts", "schools", "terms", "users", "sections", "apps"))
    click.echo(f"{file}: valid ({counts})")


@fixtures.command("generate")
@click.option("--schools", type=click.IntRange(1, None), default=None,
              help="Schools (default 3; with --sandbox 239).")
@click.option("--teachers", type=click.IntRange(0, None), default=None,
              help="Teachers (default 30; with --sandbox 8,400).")
@click.option("--students", type=click.IntRange(0, None), default=None,
              help="Students (default 300; with --sandbox 56,600).")
@click.option("--sections", type=click.IntRange(0, None), default=None,
              help="Sections (default 60; with --sandbox 20,000).")
@click.option("--enrollments", type=click.IntRange(0, None), default=None,
              help="Student enrollments in all (default: about 8 per student).")
@click.option("--districts", type=click.IntRange(1, None), default=1, show_default=True,
              help="Districts; they take the schools in turn (at most --schools).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same seed and counts, same file (byte for byte).")
@click.option("--sandbox", is_flag=True,
              help="Clever's sandbox district: 239 schools, 8,400 teachers, 56,600 students, "
                   "20,000 sections, ~460,000 enrollments (flags override).")
@click.option("--no-app", is_flag=True, help="Leave out the demo partner app registration.")
@click.option("--plain", is_flag=True,
              help="Only teachers and students, each with an email, every student in a section "
                   "(default: also staff, a district admin, contacts, teachers who are staff or "
                   "at two schools, students without email or section).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write here instead of stdout.")
def fixtures_generate(schools, teachers, students, sections, enrollments, districts, seed,
                      sandbox, no_app, plain, output) -> None:
    """Print a large, valid roster (deterministic for a seed), e.g. Clever's sandbox size:

    clever-sim fixtures generate --schools 239 --teachers 8400 --students 56600 --sections 20000 --seed 1 > big.json
    """
    from .roster_gen import SANDBOX, GenerateError, generate_roster, write_roster

    sizes = dict(SANDBOX) if sandbox else {"schools": 3, "teachers": 30, "students": 300,
                                           "sections": 60, "enrollments": None}
    for key, value in (("schools", schools), ("teachers", teachers), ("students", students),
                       ("sections", sections), ("enrollments", enrollments)):
        if value is not None:
            sizes[key] = value
    if sandbox and students is not None and enrollments is None:
        sizes["enrollments"] = None  # follow the student count
    try:
        doc = generate_roster(seed=seed, districts=districts, with_app=not no_app,
                              varied=not plain, **sizes)
    except GenerateError as exc:
        raise click.UsageError(str(exc)) from None
    if output:
        with open(output, "w", encoding="utf-8", newline="\n") as fh:
            write_roster(doc, fh)
    else:  # UTF-8 whatever the locale (names are not all ASCII)
        import io

        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:
            write_roster(doc, sys.stdout)
        else:
            stream = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")
            write_roster(doc, stream)
            stream.flush()
            stream.detach()
    enrolled = sum(len(s["students"]) for s in doc["sections"])
    others = len(doc["users"]) - sizes["teachers"] - sizes["students"]
    click.echo(f"generated {len(doc['districts'])} districts, {len(doc['schools'])} schools, "
               f"{sizes['teachers']} teachers, {sizes['students']} students"
               + (f", {others} staff, admins and contacts" if others else "")
               + f", {len(doc['sections'])} sections, {enrolled} enrollments (seed {seed})", err=True)


@fixtures.command("cache")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--roster-cache", required=True, type=click.Path(file_okay=False),
              envvar="CLEVER_SIM_ROSTER_CACHE",
              help="The directory `serve --roster-cache` (or CLEVER_SIM_ROSTER_CACHE) reads.")
def fixtures_cache(file: str, roster_cache: str) -> None:
    """Load a roster into the roster cache once (a CI cache step, an image build), so a new
    --db served with this roster and cache starts from a copy instead of loading it."""
    import shutil
    import tempfile

    from .tenants import close_app

    scratch = tempfile.mkdtemp(prefix="clever-sim-cache-")
    try:  # a throwaway database: loading the roster into a new file fills the cache
        app = _build(None, {"DB": os.path.join(scratch, "fill.db"), "ROSTER": file,
                            "ROSTER_CACHE": roster_cache})
        entry = app.extensions["clever_sim"].roster_cache_entry()
        close_app(app)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if entry is None or not entry.is_file():
        raise click.ClickException(f"could not write the roster cache in {roster_cache!r} "
                                   f"(is it a writable directory?)")
    click.echo(f"{file}: cached as {entry} ({entry.stat().st_size / 2**20:.1f} MB); "
               f"`serve --roster {file} --roster-cache {roster_cache}` on a new --db starts "
               f"from a copy")


@fixtures.command("show-default")
def fixtures_show_default() -> None:
    """Print the packaged default roster (a starting point for your own)."""
    from .roster import default_roster_path

    click.echo(json.dumps(load_roster(default_roster_path()), indent=2, ensure_ascii=False))


COMMANDS = "clever_sim.commands"  # entry-point group: commands other packages add (contract, demo)
# Built-in commands imported on first use (module, attribute).
_LAZY_COMMANDS = {"snapshot": ("simulator.snapshot_cli", "snapshot")}


def _plugin_commands() -> dict:
    """Every command installed under ``COMMANDS`` (as Flask's ``flask.commands``), by name:
    the contract checks plug in here, so ``simulator`` never imports them."""
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=COMMANDS)}


def _load_command(name: str) -> click.Command | None:
    """Import the built-in or plug-in command ``name``; None when there is no such command."""
    if name in _LAZY_COMMANDS:
        import importlib

        module, attribute = _LAZY_COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)
    entry = _plugin_commands().get(name)
    return entry.load() if entry is not None else None


if __name__ == "__main__":  # pragma: no cover
    main()
