"""``clever-sim snapshot save|load FILE [--url URL | --db PATH]``.

Through a running simulator's control API (``--url``, default http://127.0.0.1:8080), or
directly against a database file (``--db``; stop the simulator that uses it first).
Every failure is one clear message and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

DEFAULT_URL = "http://127.0.0.1:8080"
_TIMEOUT_S = 120.0  # big snapshots take a while to check and write


class SnapshotFailed(click.ClickException):
    """A snapshot command that could not do its job (exit code 2)."""

    exit_code = 2


def _target(url: str | None, db: str | None) -> tuple[str | None, str | None]:
    if url and db:
        raise SnapshotFailed("give --url or --db, not both")
    if db:
        return None, db
    if url is not None and not url.lower().startswith(("http://", "https://")):
        # httpx's "missing an 'http://' or 'https://' protocol" read as "cannot reach"
        raise SnapshotFailed(f"--url {url!r} is not an http(s) URL, e.g. {DEFAULT_URL}")
    return (url or DEFAULT_URL).rstrip("/"), None


def _summary(c: dict) -> str:
    return (f"{c['apps']} app(s), {c['district_tokens']} district-app token(s), "
            f"{c['il_tokens']} il token(s), {c['grades']} grade(s) ({c['grade_history']} "
            f"version(s)), {c['schoology_assignments']} linked assignment(s), "
            f"{c['users']} user(s) in {c['districts']} district(s)")


def _problems_text(where: str, exc) -> str:
    if len(exc.problems) == 1 and not exc.more:  # e.g. missing, not JSON: one line
        p = exc.problems[0]
        return f"{where}: not a loadable snapshot: {p.path}: {p.message}; nothing was changed"
    lines = [f"{where}: not a loadable snapshot ({len(exc.problems) + exc.more} problem(s)); "
             "nothing was changed"]
    lines += [f"  {p.path}: {p.message}" for p in exc.problems]
    if exc.more:
        lines.append(f"  … and {exc.more} more")
    return "\n".join(lines)


def _http(method: str, url: str, token: str | None, headers: dict | None = None, **kwargs):
    import httpx

    from .config import control_headers

    try:
        return httpx.request(method, url, timeout=httpx.Timeout(_TIMEOUT_S, connect=5.0),
                             trust_env=False, headers={**(headers or {}), **control_headers(token)},
                             **kwargs)
    except httpx.TimeoutException:
        raise SnapshotFailed(f"the simulator at {url} did not answer within {_TIMEOUT_S:.0f} s") from None
    except httpx.TransportError as exc:
        base = url.rsplit("/_sim/", 1)[0]
        raise SnapshotFailed(f"cannot reach the simulator at {base}: {exc or type(exc).__name__} "
                             f"(is `clever-sim serve` running there? or use --db PATH)") from None


def _api_error(response, action: str) -> SnapshotFailed:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 404 and (not isinstance(body, dict) or "Not found" in str(body.get("message"))):
        return SnapshotFailed(f"{action}: the server at {response.request.url} has no snapshot "
                              "endpoint (HTTP 404): is it a clever-sim new enough for snapshots?")
    lines = [f"{action}: HTTP {response.status_code}"]
    if isinstance(body, dict):
        lines[0] += f": {body.get('message', '')}"
        errors = [e for e in body.get("errors", [])[:200] if isinstance(e, dict)]
        for e in errors:
            hint = f" ({e['hint']})" if e.get("hint") else ""
            lines.append(f"  {e.get('field')}: {e.get('problem')}{hint}")
        if len(errors) == 1:  # e.g. a missing control token: one line, as every other failure
            lines = [f"{lines[0]}; {lines[1].strip()}"]
    else:
        lines[0] += f": {response.text[:300]}"
    return SnapshotFailed("\n".join(lines))


def _open_db(db: str, *, must_exist: bool):
    from .snapshot import DatabaseState
    from .errors import DatabaseUnusable

    if must_exist and not Path(db).is_file():
        raise SnapshotFailed(f"no database at {db!r} (the simulator's --db file)")
    try:
        return DatabaseState(db)
    except DatabaseUnusable as exc:
        raise SnapshotFailed(str(exc)) from None
    except Exception as exc:  # sqlite3.DatabaseError and OSError: not a database, no access
        raise SnapshotFailed(f"cannot open the database {db!r}: {exc}") from None


control_token_option = click.option(
    "--control-token", default=None, metavar="TOKEN", envvar="CLEVER_SIM_CONTROL_TOKEN",
    help="The server's control token, when it has one (env CLEVER_SIM_CONTROL_TOKEN).")


@click.group()
def snapshot() -> None:
    """Save the simulator's whole state to a JSON file, or load one back.

    A snapshot holds the roster, apps (with secrets), district-app and il tokens, grades
    with their history, linked Schoology assignments and the clock offset; not auth
    codes, the request journal or injected faults.
    """


@snapshot.command("save")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--url", default=None, metavar="URL",
              help=f"A running simulator (default {DEFAULT_URL}).")
@click.option("--db", default=None, metavar="PATH",
              help="Read this database file directly instead (no simulator needed).")
@control_token_option
def save(file: str, url: str | None, db: str | None, control_token: str | None) -> None:
    """Write the whole state to FILE ('-' for standard output)."""
    from .snapshot import counts, export_state, write_snapshot_file

    url, db = _target(url, db)
    if db:
        state = _open_db(db, must_exist=True)
        try:
            if not state.clever.roster_loaded():
                raise SnapshotFailed(f"{db!r} holds no simulator state (no roster loaded)")
            doc = export_state(state)
        finally:
            state.close()
        source = db
    else:
        response = _http("GET", f"{url}/_sim/snapshot", control_token)
        if response.status_code != 200:
            raise _api_error(response, f"cannot save a snapshot from {url}")
        try:
            doc = response.json()
        except ValueError:
            raise SnapshotFailed(f"{url}/_sim/snapshot did not answer JSON") from None
        source = url
    if file == "-":
        with click.open_file("-", "w", encoding="utf-8") as stream:
            stream.write(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
            stream.flush()
        click.echo(f"snapshot of {source}: {_summary(counts(doc))}", err=True)
        return
    try:
        size = write_snapshot_file(doc, file)
    except OSError as exc:
        raise SnapshotFailed(f"cannot write {file!r}: {exc.strerror or exc}") from None
    click.echo(f"saved {source} to {file} ({size:,} bytes): {_summary(counts(doc))}")


@snapshot.command("load")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--url", default=None, metavar="URL",
              help=f"A running simulator (default {DEFAULT_URL}).")
@click.option("--db", default=None, metavar="PATH",
              help="Write into this database file directly (created when missing; stop the "
                   "simulator using it first).")
@control_token_option
def load(file: str, url: str | None, db: str | None, control_token: str | None) -> None:
    """Replace the whole state with FILE ('-' for standard input); a bad file changes nothing."""
    from .snapshot import (SnapshotError, check_snapshot, import_state, parse_snapshot_text,
                           read_snapshot_file)

    url, db = _target(url, db)
    try:
        if file == "-":
            with click.open_file("-", "r", encoding="utf-8-sig") as stream:
                doc = parse_snapshot_text(stream.read(), "standard input")
        else:
            doc = read_snapshot_file(file)
        check_snapshot(doc)  # before touching anything, also with --url
    except SnapshotError as exc:
        raise SnapshotFailed(_problems_text(file, exc)) from None
    if db:
        state = _open_db(db, must_exist=False)
        try:
            loaded = import_state(state, doc, checked=True)  # checked above: not twice
        finally:
            state.close()
        click.echo(f"loaded {file} into {db}: {_summary(loaded)}")
        _note_roster(loaded)
        return
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = _http("POST", f"{url}/_sim/snapshot", control_token, content=body,
                     headers={"Content-Type": "application/json"})
    if response.status_code != 200:
        if response.status_code == 413:
            raise SnapshotFailed(f"cannot load {file} into {url}: the simulator refused "
                                 f"{len(body):,} bytes as too large; stop it and use --db PATH")
        raise _api_error(response, f"cannot load {file} into {url}")
    loaded = response.json().get("counts", {})
    click.echo(f"loaded {file} into {url}: {_summary(loaded)}")
    _note_roster(loaded)


def _note_roster(loaded: dict) -> None:
    """Say, only when the load changed the roster, that a restart reloads the configured one."""
    if loaded.get("roster_replaced"):
        click.echo("note: the roster was replaced by the snapshot's; `clever-sim serve` "
                   "reloads its configured roster at start-up when that differs, so serve "
                   "this database with the roster the snapshot was made with (--roster)",
                   err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(snapshot())
