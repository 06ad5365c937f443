"""Snapshots: the simulator's whole state as one versioned JSON document, and back again.

No Flask here: the control API (``control/snapshot_routes.py``) and the CLI
(``snapshot_cli.py``) call ``export_state`` and ``import_state``.

A snapshot holds the roster, every app registration (with its secret), every token
(district-app and il), the current grades, their whole history, the Schoology assignment
links and the clock offset. It does **not** hold authorization codes (single use, 60 s),
the request journal, injected faults or rate-limit counters: those are runtime, and
loading a snapshot clears them (and the codes).

``import_state`` checks the whole document before it writes anything — against
``schemas/snapshot.schema.json``, the format's definition, then every reference (a grade's
student is in the roster, a token's app is in the snapshot, …: ``snapshot_schema.py``) —
and reports every problem with its JSON path (``$.grades[3].user_id``). A refused snapshot
changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from . import jsontext, snapshot_schema
from .clock import Clock
from .jsontext import dumps
from .clever.backend import CleverBackend
from .schoology.backend import SchoologyBackend
from .snapshot_schema import FORMAT, MAX_PROBLEMS, VERSION, SnapshotProblem
from .store import Store

__all__ = ["FORMAT", "MAX_PROBLEMS", "VERSION", "DatabaseState", "SnapshotError",
           "SnapshotProblem", "check_snapshot", "counts", "export_state", "import_state",
           "parse_snapshot_text", "read_snapshot_file", "validate_snapshot", "write_snapshot_file"]

_ROSTER_KINDS = ("districts", "schools", "terms", "users", "sections")


class SnapshotError(Exception):
    """A snapshot that cannot be loaded; ``problems`` lists what is wrong (nothing was changed)."""

    def __init__(self, problems: Iterable[SnapshotProblem], more: int = 0):
        self.problems: list[SnapshotProblem] = list(problems)
        self.more = more
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{p.path}: {p.message}" for p in self.problems]
        if self.more:
            lines.append(f"… and {self.more} more problem(s)")
        return "\n".join(lines)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- export ------------------------------------------------------------------------------

def export_state(sim: Any) -> dict:
    """The whole state of ``sim`` (a ``Simulator`` or a ``DatabaseState``) as one document:
    each backend's part, all read in one consistent view, so the document holds together
    even while grades keep arriving."""
    with sim.clever.consistent_view():
        clever = sim.clever.export_state()
        schoology = sim.schoology.export_state()
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": _now_iso(),
        **clever,
        **schoology,
        "clock_offset_s": float(sim.clock.offset),
    }


def counts(doc: dict) -> dict:
    """How much a (valid) snapshot holds, for messages and the control API's answer."""
    roster = doc.get("roster") or {}
    tokens = doc.get("tokens") or []
    return {
        "districts": len(roster.get("districts") or []),
        "users": len(roster.get("users") or []),
        "sections": len(roster.get("sections") or []),
        "apps": len(doc.get("apps") or []),
        "district_tokens": sum(1 for t in tokens if t.get("kind") == "district"),
        "il_tokens": sum(1 for t in tokens if t.get("kind") == "il"),
        "grades": len(doc.get("grades") or []),
        "grade_history": len(doc.get("grade_history") or []),
        "schoology_assignments": len(doc.get("schoology_assignments") or []),
    }


# --- validation (schemas/snapshot.schema.json and snapshot_schema.py) ----------------

def validate_snapshot(doc: Any) -> list[SnapshotProblem]:
    """The problems of a snapshot document, at most MAX_PROBLEMS (empty: it can be loaded)."""
    problems, _ = snapshot_schema.validate(doc)
    return problems


def check_snapshot(doc: Any) -> dict:
    """``doc`` when it can be loaded; SnapshotError listing its problems otherwise."""
    problems, more = snapshot_schema.validate(doc)
    if problems:
        raise SnapshotError(problems, more)
    return doc


# --- import ------------------------------------------------------------------------------

def _roster_of(doc: dict) -> dict:
    roster = doc["roster"]
    out = {k: roster.get(k, []) for k in (*_ROSTER_KINDS, "apps")}
    if roster.get("courses"):
        out["courses"] = roster["courses"]
    return out


def import_state(sim: Any, doc: Any, *, checked: bool = False) -> dict:
    """Replace the whole state of ``sim`` with the snapshot ``doc``; return what was loaded.

    The document is checked completely first (``SnapshotError`` lists every problem and
    nothing changes) unless ``checked`` says the caller has just run ``check_snapshot`` on
    this very document (the CLI does, before it opens the database). Then each backend hands
    its part back inside one transaction (``CleverBackend.replacing_state``), which also
    replaces the roster when it differs from the stored one: should anything fail, or the
    process die, before its COMMIT, the previous state stays whole (never a new roster with
    old grades).
    """
    if not checked:
        check_snapshot(doc)
    roster = _roster_of(doc)

    def roster_meta() -> dict[str, str]:
        digest = hashlib.sha256(json.dumps(roster, sort_keys=True).encode()).hexdigest()
        return {"roster_digest": f"snapshot:{digest}",  # never a roster file's digest: `serve`
                "roster_apps": dumps(roster["apps"])}  # with a roster setting reloads its roster

    with sim.clever.replacing_state(roster, roster_meta) as load:  # old tokens and codes stop working
        sim.clever.load_state(load, doc)
        sim.schoology.load_state(load, doc)
    _after_load(sim, float(doc.get("clock_offset_s", 0)))
    return {**counts(doc), "roster_replaced": load.roster_replaced}


def _after_load(sim: Any, offset: float) -> None:
    """Runtime state that follows the loaded one: clock, journal, faults, waiters."""
    sim.clock.reset()  # a Simulator's and a DatabaseState's
    if offset:
        sim.clock.advance(offset)
    for part in ("journal", "faults", "rate"):
        runtime = getattr(sim, part, None)
        if runtime is not None:
            runtime.clear()
    notify = getattr(sim, "grades_changed", None)
    if callable(notify):
        notify()


# --- files and databases (the CLI) -------------------------------------------------------

class DatabaseState:
    """A simulator database opened without a running simulator (``snapshot … --db``).

    Nothing is loaded or registered on open: the roster stays as stored. A database does
    not keep the clock offset (it lives in the running process), so exports say 0.
    """

    def __init__(self, path: str):
        self.store = Store(path)
        self.clock = Clock()
        self.clever = CleverBackend(self.store, self.clock)
        self.schoology = SchoologyBackend(self.store, self.clever)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "DatabaseState":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def parse_snapshot_text(text: str, source: str = "snapshot") -> Any:
    """JSON text → document; SnapshotError (at ``$``, with line and column) when not JSON."""
    try:
        return jsontext.loads(text)
    except jsontext.JSONTextError as exc:
        raise SnapshotError([SnapshotProblem(exc.path(), f"{source} is not valid JSON: "
                                             f"{exc.problem}")]) from None


def read_snapshot_file(path: str | os.PathLike) -> Any:
    """A snapshot file's document (not yet validated); SnapshotError when unreadable."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise SnapshotError([SnapshotProblem("$", f"no such file: {str(p)!r}")]) from None
    except OSError as exc:
        raise SnapshotError([SnapshotProblem("$", f"cannot read {str(p)!r}: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SnapshotError([SnapshotProblem("$", f"{str(p)!r} is not UTF-8 text (byte {exc.start})")]) from None
    return parse_snapshot_text(text, repr(str(p)))


def write_snapshot_file(doc: dict, path: str | os.PathLike) -> int:
    """Write ``doc`` (indented JSON) atomically: a crash never leaves half a file. → bytes."""
    p = Path(path)
    data = (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent or "."))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return len(data)
