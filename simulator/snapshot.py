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
    """The whole state of ``sim`` (a ``Simulator`` or a ``DatabaseState``) as one document.

    Every table is read in one read transaction, so the document is consistent even while
    grades keep arriving.
    """
    store: Store = sim.store
    with store.read() as db:
        in_tx = db.in_transaction
        if not in_tx:
            db.execute("BEGIN")  # one consistent view of every table (WAL readers never block)
        try:
            roster: dict[str, Any] = {}
            for kind in _ROSTER_KINDS:
                roster[kind] = [json.loads(r[0]) for r in
                                db.execute(f"SELECT data FROM {kind} ORDER BY rowid")]
            row = db.execute("SELECT value FROM meta WHERE key = 'roster_apps'").fetchone()
            roster["apps"] = json.loads(row[0]) if row is not None else []
            courses = [json.loads(r[0]) for r in db.execute("SELECT data FROM courses ORDER BY rowid")]
            if courses:  # optional in a roster: only carried when there are some
                roster["courses"] = courses
            apps = []
            for r in db.execute("SELECT client_id, client_secret, name, redirect_uris, "
                                "assignments_url, scopes, districts, created FROM apps "
                                "ORDER BY created, client_id"):
                apps.append({"client_id": r[0], "client_secret": r[1], "name": r[2],
                             "redirect_uris": json.loads(r[3]), "assignments_url": r[4],
                             "scopes": json.loads(r[5]), "districts": json.loads(r[6]),
                             "created": r[7]})
            tokens = [{"access_token": r[0], "kind": r[1], "id": r[2], "client_id": r[3],
                       "district_id": r[4], "user_id": r[5], "scopes": json.loads(r[6]),
                       "created": r[7]}
                      for r in db.execute("SELECT access_token, kind, id, client_id, district_id, "
                                          "user_id, scopes, created FROM tokens "
                                          "ORDER BY created, rowid")]
            grades = [{"id": r[0], "client_id": r[1], "user_id": r[2], "assignment_id": r[3],
                       "district_id": r[4], "version": r[5], "record": json.loads(r[6]),
                       "created": r[7], "updated": r[8], "seq": r[9]}
                      for r in db.execute("SELECT id, client_id, user_id, assignment_id, "
                                          "district_id, version, record, created, updated, seq "
                                          "FROM grades ORDER BY seq")]
            history = [{"seq": r[0], "grade_id": r[1], "version": r[2],
                        "record": json.loads(r[3]), "received_at": r[4]}
                       for r in db.execute("SELECT seq, grade_id, version, record, received_at "
                                           "FROM grade_history ORDER BY seq")]
            links = [{"id": r[0], "section_id": r[1], "client_id": r[2], "assignment_id": r[3],
                      "data": json.loads(r[4]), "created": r[5]}
                     for r in db.execute("SELECT id, section_id, client_id, assignment_id, data, "
                                         "created FROM schoology_assignments "
                                         "ORDER BY created, id")]
        finally:
            if not in_tx:
                db.execute("COMMIT")
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": _now_iso(),
        "roster": roster,
        "apps": apps,
        "tokens": tokens,
        "grades": grades,
        "grade_history": history,
        "schoology_assignments": links,
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
    this very document (the CLI does, before it opens the database). Then one transaction
    replaces the roster (through ``Store.replace_roster_in``, only when it differs from the
    stored one) and the apps, tokens, grades, history and links: should anything fail, or
    the process die, before its COMMIT, the previous state stays whole (never a new roster
    with old grades).
    """
    if not checked:
        check_snapshot(doc)
    store: Store = sim.store
    roster = _roster_of(doc)
    with store.revoking() as db:  # old tokens and codes stop working once loaded
        # compared inside the transaction (reads on this thread use its connection), so
        # no other load can change the roster between the comparison and the writes
        old_roster = store.roster_document() if store.roster_loaded() else None
        roster_changed = old_roster is None or {k: old_roster.get(k, []) for k in roster} != roster
        del old_roster
        if roster_changed:
            digest = hashlib.sha256(json.dumps(roster, sort_keys=True).encode()).hexdigest()
            store.replace_roster_in(db, roster, {
                "roster_digest": f"snapshot:{digest}",  # never a roster file's digest: `serve`
                "roster_apps": dumps(roster["apps"])})  # with a roster setting reloads its roster
        for sql in ("DELETE FROM grade_history", "DELETE FROM grades",
                    "DELETE FROM schoology_assignments", "DELETE FROM auth_codes",
                    "DELETE FROM tokens", "DELETE FROM apps"):
            db.execute(sql)
        db.executemany(
            "INSERT INTO apps(client_id, client_secret, name, redirect_uris, assignments_url, "
            "scopes, districts, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((a["client_id"], a["client_secret"], a["name"], dumps(a["redirect_uris"]),
              a.get("assignments_url"), dumps(a["scopes"]), dumps(a["districts"]),
              a["created"]) for a in doc["apps"]))
        db.executemany(
            "INSERT INTO tokens(access_token, kind, id, client_id, district_id, user_id, "
            "scopes, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((t["access_token"], t["kind"], t["id"], t["client_id"], t["district_id"],
              t["user_id"], dumps(t["scopes"]), t["created"]) for t in doc["tokens"]))
        db.executemany(
            "INSERT INTO grades(id, client_id, user_id, assignment_id, district_id, version, "
            "record, created, updated, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((g["id"], g["client_id"], g["user_id"], g["assignment_id"], g["district_id"],
              g["version"], dumps(g["record"]), g["created"], g["updated"], g["seq"])
             for g in doc["grades"]))
        db.executemany(
            "INSERT INTO grade_history(seq, grade_id, version, record, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            ((h["seq"], h["grade_id"], h["version"], dumps(h["record"]), h["received_at"])
             for h in doc["grade_history"]))
        db.executemany(
            "INSERT INTO schoology_assignments(id, section_id, client_id, assignment_id, "
            "data, created) VALUES (?, ?, ?, ?, ?, ?)",
            ((s["id"], s["section_id"], s["client_id"], s["assignment_id"], dumps(s["data"]),
              s["created"]) for s in doc["schoology_assignments"]))
        store.clear_caches()  # under the write lock: no grade write sees a stale cache
    if roster_changed:
        store.roster_replaced()  # after COMMIT: caches again, the WAL checkpoint
    _after_load(sim, float(doc.get("clock_offset_s", 0)))
    return {**counts(doc), "roster_replaced": roster_changed}


def _after_load(sim: Any, offset: float) -> None:
    """Runtime state that follows the loaded one: clock, district list, journal, waiters."""
    sim.clock.reset()  # a Simulator's and a DatabaseState's
    if offset:
        sim.clock.advance(offset)
    reload_district_ids = getattr(sim, "reload_district_ids", None)
    if callable(reload_district_ids):  # a Simulator keeps the district ids of its roster
        reload_district_ids()
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
