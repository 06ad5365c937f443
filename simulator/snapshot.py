"""Snapshots: the simulator's whole state as one versioned JSON document, and back again.

No Flask here: the control API (``control/snapshot_routes.py``) and the CLI
(``snapshot_cli.py``) call ``export_state`` and ``import_state``.

A snapshot holds the roster, every app registration (with its secret), every token
(district-app and il), the current grades, their whole history, the Schoology assignment
links and the clock offset. It does **not** hold authorization codes (single use, 60 s),
the request journal, injected faults or rate-limit counters: those are runtime, and
loading a snapshot clears them (and the codes).

``import_state`` checks the whole document before it writes anything — format and
version, every type, and every reference (a grade's student is in the roster, a token's
app is in the snapshot, …) — and reports every problem with its JSON path
(``$.grades[3].user_id``). A refused snapshot changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from . import jsontext
from .apps import normalize_app
from .clock import MAX_OFFSET_S, Clock
from .errors import BadRequest
from .roster import _short, validate_roster
from .jsontext import dumps
from .store import Store

FORMAT = "clever-sim-snapshot"
VERSION = 1
MAX_PROBLEMS = 200  # reported at most; the rest are counted

_ROSTER_KINDS = ("districts", "schools", "terms", "users", "sections")
_TOP_REQUIRED = ("format", "version", "roster", "apps", "tokens", "grades", "grade_history",
                 "schoology_assignments")
_TOP_OPTIONAL = ("created", "clock_offset_s")
_APP_KEYS = {"client_id", "client_secret", "name", "redirect_uris", "assignments_url", "scopes",
             "districts", "created"}
_TOKEN_KEYS = {"access_token", "kind", "id", "client_id", "district_id", "user_id", "scopes",
               "created"}
_GRADE_KEYS = {"id", "client_id", "user_id", "assignment_id", "district_id", "version", "record",
               "created", "updated", "seq"}
_HISTORY_KEYS = {"seq", "grade_id", "version", "record", "received_at"}
_LINK_KEYS = {"id", "section_id", "client_id", "assignment_id", "data", "created"}
_MAX_INT = 2 ** 62


class SnapshotProblem(NamedTuple):
    """One problem in a snapshot: the JSON path of the offending value and what is wrong."""

    path: str
    message: str


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


# --- validation --------------------------------------------------------------------------

def _path(base: str, *parts: Any) -> str:
    out = base
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class _Checker:
    """Collects problems (at most MAX_PROBLEMS are kept; the rest are counted)."""

    def __init__(self) -> None:
        self.problems: list[SnapshotProblem] = []
        self.more = 0

    def add(self, path: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(SnapshotProblem(path, message))
        else:
            self.more += 1

    # typed field checks: each returns whether the value is usable
    def string(self, obj: dict, key: str, where: str, *, nullable: bool = False,
               max_len: int = 100_000) -> bool:
        value = obj.get(key)
        if value is None and nullable:
            return True
        if not isinstance(value, str) or not value:
            self.add(_path(where, key), f"must be a non-empty string, not {_kind(value)}")
            return False
        if len(value) > max_len:
            self.add(_path(where, key), f"is longer than {max_len} characters")
            return False
        return True

    def integer(self, obj: dict, key: str, where: str, lo: int = 1) -> bool:
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= _MAX_INT:
            self.add(_path(where, key), f"must be a whole number ≥ {lo}, not {_kind(value)}")
            return False
        return True

    def obj(self, obj: dict, key: str, where: str) -> bool:
        if not isinstance(obj.get(key), dict):
            self.add(_path(where, key), f"must be a JSON object, not {_kind(obj.get(key))}")
            return False
        return True

    def str_list(self, obj: dict, key: str, where: str) -> bool:
        value = obj.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.add(_path(where, key), f"must be a list of non-empty strings, not {_kind(value)}")
            return False
        return True

    def record(self, item: Any, where: str, keys: set[str], required: set[str]) -> bool:
        """``item`` is an object with every required key and no unknown one."""
        if not isinstance(item, dict):
            self.add(where, f"must be a JSON object, not {_kind(item)}")
            return False
        for key in sorted(required - set(item)):
            self.add(_path(where, key), "is missing")
        for key in sorted(set(item) - keys):
            self.add(_path(where, key), "unknown key (known: " + ", ".join(sorted(keys)) + ")")
        return required <= set(item)

    def same(self, record: dict, key: str, want: Any, where: str, column: str) -> None:
        if key in record and record[key] != want:
            self.add(_path(where, key), f"is {_short(record[key])} but {column} is {_short(want)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return "an empty string" if not value else f"the string {_short(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def validate_snapshot(doc: Any) -> list[SnapshotProblem]:
    """The problems of a snapshot document, at most MAX_PROBLEMS (empty: it can be loaded)."""
    problems, _ = _validate(doc)
    return problems


def check_snapshot(doc: Any) -> dict:
    """``doc`` when it can be loaded; SnapshotError listing its problems otherwise."""
    problems, more = _validate(doc)
    if problems:
        raise SnapshotError(problems, more)
    return doc


def _validate(doc: Any) -> tuple[list[SnapshotProblem], int]:
    c = _Checker()
    if not isinstance(doc, dict):
        c.add("$", f"a snapshot must be a JSON object, not {_kind(doc)}")
        return c.problems, c.more
    if doc.get("format") != FORMAT:
        c.add("$.format", f"must be {FORMAT!r}, not {_kind(doc.get('format'))} "
                          "(is this a clever-sim snapshot?)")
        return c.problems, c.more  # nothing else is worth reading
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        c.add("$.version", f"must be a whole number, not {_kind(version)}")
        return c.problems, c.more
    if version != VERSION:
        newer = " (written by a newer clever-sim: upgrade this one)" if version > VERSION else ""
        c.add("$.version", f"is {version}; this clever-sim reads version {VERSION}{newer}")
        return c.problems, c.more
    for key in _TOP_REQUIRED:
        if key not in doc:
            c.add(f"$.{key}", "is missing")
    for key in sorted(set(doc) - set(_TOP_REQUIRED) - set(_TOP_OPTIONAL)):
        c.add(f"$.{key}", "unknown key (known: " + ", ".join(_TOP_REQUIRED + _TOP_OPTIONAL) + ")")
    if "created" in doc and not isinstance(doc["created"], str):
        c.add("$.created", f"must be a string (an ISO time), not {_kind(doc['created'])}")
    offset = doc.get("clock_offset_s", 0)
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or \
            not math.isfinite(offset) or not 0 <= offset <= MAX_OFFSET_S:
        c.add("$.clock_offset_s", f"must be a number of seconds from 0 to {MAX_OFFSET_S}, "
                                  f"not {_kind(offset)}")

    # The roster: its own schema and references (paths re-rooted under $.roster).
    roster = doc.get("roster")
    roster_ok = False
    if "roster" in doc:
        if not isinstance(roster, dict):
            c.add("$.roster", f"must be a JSON object (a roster document), not {_kind(roster)}")
        else:
            found = validate_roster(roster)
            for problem in found:
                c.add("$.roster" + problem.path[1:], problem.message)
            roster_ok = not found
    districts: set[str] = set()
    users: dict[str, dict] = {}
    sections: set[str] = set()
    if roster_ok:
        districts = {d["id"] for d in roster["districts"]}
        users = {u["id"]: u for u in roster["users"]}
        sections = {s["id"] for s in roster["sections"]}

    lists = {}
    for key in _TOP_REQUIRED[3:]:
        value = doc.get(key)
        if key in doc and not isinstance(value, list):
            c.add(f"$.{key}", f"must be an array, not {_kind(value)}")
        lists[key] = value if isinstance(value, list) else []

    # Apps: the same rules as a registration, plus unique client ids.
    app_districts: dict[str, set[str]] = {}
    for i, app in enumerate(lists["apps"]):
        where = f"$.apps[{i}]"
        if not c.record(app, where, _APP_KEYS, _APP_KEYS - {"assignments_url"}):
            continue
        ok = all([c.string(app, "client_id", where, max_len=200),
                  c.string(app, "client_secret", where, max_len=200),
                  c.string(app, "created", where)])
        if not ok:
            continue
        if app["client_id"] in app_districts:
            c.add(_path(where, "client_id"), f"{app['client_id']!r} appears twice")
            continue
        own = app.get("districts")
        known = sorted(districts) if roster_ok else \
            [d for d in own if isinstance(d, str)] if isinstance(own, list) else []
        try:
            normalize_app({k: app[k] for k in _APP_KEYS - {"created"} if k in app}, known,
                          None, app["created"])
        except BadRequest as exc:
            for e in exc.errors:
                c.add(_path(where, e.field), e.problem)
            continue
        app_districts[app["client_id"]] = set(app["districts"])
    apps_ok = len(app_districts) == len(lists["apps"])

    # Tokens: their app, district and (il tokens) user exist and agree.
    seen_tokens: set[str] = set()
    for i, tok in enumerate(lists["tokens"]):
        where = f"$.tokens[{i}]"
        if not c.record(tok, where, _TOKEN_KEYS, _TOKEN_KEYS):
            continue
        ok = all([c.string(tok, "access_token", where, max_len=200), c.string(tok, "id", where),
                  c.string(tok, "client_id", where), c.string(tok, "district_id", where),
                  c.string(tok, "user_id", where, nullable=True), c.str_list(tok, "scopes", where),
                  c.string(tok, "created", where)])
        if tok.get("kind") not in ("il", "district"):
            c.add(_path(where, "kind"), f"must be \"il\" or \"district\", not {_kind(tok.get('kind'))}")
            ok = False
        if not ok:
            continue
        if tok["access_token"] in seen_tokens:
            c.add(_path(where, "access_token"), "appears twice")
        seen_tokens.add(tok["access_token"])
        if apps_ok and tok["client_id"] not in app_districts:
            c.add(_path(where, "client_id"), f"no app {tok['client_id']!r} in $.apps")
        if roster_ok and tok["district_id"] not in districts:
            c.add(_path(where, "district_id"), f"no district {tok['district_id']!r} in $.roster.districts")
        if tok["kind"] == "district":
            if tok["user_id"] is not None:
                c.add(_path(where, "user_id"), "must be null for a district-app token")
            elif apps_ok and roster_ok and tok["client_id"] in app_districts and \
                    tok["district_id"] in districts and \
                    tok["district_id"] not in app_districts[tok["client_id"]]:
                c.add(_path(where, "district_id"), f"the app {tok['client_id']!r} is not connected "
                                                   f"to district {tok['district_id']!r}")
        elif tok["user_id"] is None:
            c.add(_path(where, "user_id"), "is required for an il token (whose token it is)")
        elif roster_ok:
            user = users.get(tok["user_id"])
            if user is None:
                c.add(_path(where, "user_id"), f"no user {tok['user_id']!r} in $.roster.users")
            elif user["district"] != tok["district_id"]:
                c.add(_path(where, "district_id"), f"is {tok['district_id']!r} but the user's "
                                                   f"district is {user['district']!r}")

    # Grades: one per (app, student, assignment); the student and app exist.
    grade_versions: dict[str, int] = {}
    seen_seq: set[int] = set()
    seen_keys: set[tuple[str, str, str]] = set()
    for i, grade in enumerate(lists["grades"]):
        where = f"$.grades[{i}]"
        if not c.record(grade, where, _GRADE_KEYS, _GRADE_KEYS):
            continue
        ok = all([c.string(grade, "id", where), c.string(grade, "client_id", where),
                  c.string(grade, "user_id", where), c.string(grade, "assignment_id", where, max_len=256),
                  c.string(grade, "district_id", where), c.integer(grade, "version", where),
                  c.obj(grade, "record", where), c.string(grade, "created", where),
                  c.string(grade, "updated", where), c.integer(grade, "seq", where)])
        if not ok:
            continue
        if grade["id"] in grade_versions:
            c.add(_path(where, "id"), f"grade id {grade['id']!r} appears twice")
            continue
        grade_versions[grade["id"]] = grade["version"]
        if grade["seq"] in seen_seq:
            c.add(_path(where, "seq"), f"seq {grade['seq']} appears twice")
        seen_seq.add(grade["seq"])
        key = (grade["client_id"], grade["user_id"], grade["assignment_id"])
        if key in seen_keys:
            c.add(where, "a second grade for the same app, student and assignment "
                         "(there is one current grade per triple; older ones go in grade_history)")
        seen_keys.add(key)
        if apps_ok and grade["client_id"] not in app_districts:
            c.add(_path(where, "client_id"), f"no app {grade['client_id']!r} in $.apps")
        if roster_ok:
            user = users.get(grade["user_id"])
            if user is None:
                c.add(_path(where, "user_id"), f"no user {grade['user_id']!r} in $.roster.users")
            elif "student" not in user["roles"]:
                c.add(_path(where, "user_id"), f"{grade['user_id']!r} is not a student")
            elif user["district"] != grade["district_id"]:
                c.add(_path(where, "district_id"), f"is {grade['district_id']!r} but the student's "
                                                   f"district is {user['district']!r}")
        rec = grade["record"]
        rwhere = _path(where, "record")
        c.same(rec, "id", grade["id"], rwhere, "the grade's id")
        c.same(rec, "userID", grade["user_id"], rwhere, "the grade's user_id")
        c.same(rec, "assignmentID", grade["assignment_id"], rwhere, "the grade's assignment_id")
        c.same(rec, "client_id", grade["client_id"], rwhere, "the grade's client_id")
        c.same(rec, "version", grade["version"], rwhere, "the grade's version")

    # History: every version belongs to a grade in the snapshot.
    seen_hist_seq: set[int] = set()
    seen_versions: set[tuple[str, int]] = set()
    for i, entry in enumerate(lists["grade_history"]):
        where = f"$.grade_history[{i}]"
        if not c.record(entry, where, _HISTORY_KEYS, _HISTORY_KEYS):
            continue
        ok = all([c.integer(entry, "seq", where), c.string(entry, "grade_id", where),
                  c.integer(entry, "version", where), c.obj(entry, "record", where),
                  c.string(entry, "received_at", where)])
        if not ok:
            continue
        if entry["seq"] in seen_hist_seq:
            c.add(_path(where, "seq"), f"seq {entry['seq']} appears twice")
        seen_hist_seq.add(entry["seq"])
        current = grade_versions.get(entry["grade_id"])
        if current is None:
            c.add(_path(where, "grade_id"), f"no grade {entry['grade_id']!r} in $.grades")
        elif entry["version"] > current:
            c.add(_path(where, "version"), f"is {entry['version']} but the grade's current "
                                           f"version is {current}")
        if (entry["grade_id"], entry["version"]) in seen_versions:
            c.add(_path(where, "version"), f"version {entry['version']} of grade "
                                           f"{entry['grade_id']!r} appears twice")
        seen_versions.add((entry["grade_id"], entry["version"]))
        rwhere = _path(where, "record")
        c.same(entry["record"], "id", entry["grade_id"], rwhere, "the entry's grade_id")
        c.same(entry["record"], "version", entry["version"], rwhere, "the entry's version")

    # Schoology assignments: a section of the roster, an app of the snapshot.
    seen_links: set[str] = set()
    seen_link_keys: set[tuple[str, str, str]] = set()
    for i, link in enumerate(lists["schoology_assignments"]):
        where = f"$.schoology_assignments[{i}]"
        if not c.record(link, where, _LINK_KEYS, _LINK_KEYS):
            continue
        ok = all([c.string(link, "id", where), c.string(link, "section_id", where),
                  c.string(link, "client_id", where), c.string(link, "assignment_id", where, max_len=256),
                  c.obj(link, "data", where), c.string(link, "created", where)])
        if not ok:
            continue
        if link["id"] in seen_links:
            c.add(_path(where, "id"), f"link id {link['id']!r} appears twice")
        seen_links.add(link["id"])
        key = (link["section_id"], link["client_id"], link["assignment_id"])
        if key in seen_link_keys:
            c.add(where, "a second link of the same assignment in the same section for the same app")
        seen_link_keys.add(key)
        if roster_ok and link["section_id"] not in sections:
            c.add(_path(where, "section_id"), f"no section {link['section_id']!r} in $.roster.sections")
        if apps_ok and link["client_id"] not in app_districts:
            c.add(_path(where, "client_id"), f"no app {link['client_id']!r} in $.apps")
        dwhere = _path(where, "data")
        for key_name in ("id", "section_id", "client_id", "assignment_id"):
            c.same(link["data"], key_name, link[key_name], dwhere, f"the link's {key_name}")
    return c.problems, c.more


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
