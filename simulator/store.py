"""All SQL lives here: SQLite through the standard library, WAL, one connection per thread.

Writes are serialised by a lock (cheaper than SQLite's sleeping busy handler under load)
and run in ``BEGIN IMMEDIATE`` transactions, so a grade answered with 200 is committed.
``:memory:`` databases use one shared connection guarded by the same lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

_SCHEMA_VERSION = "1"


def _schema_sql() -> str:
    try:
        return resources.files("simulator").joinpath("schema.sql").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):  # pragma: no cover - odd installs
        return (Path(__file__).parent / "schema.sql").read_text(encoding="utf-8")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Page:
    """One page of a list: the rows plus whether more exist before/after them."""

    def __init__(self, rows: list[dict], has_more: bool):
        self.rows = rows
        self.has_more = has_more


class Store:
    """The simulator's state in one SQLite database."""

    def __init__(self, path: str):
        self.path = path
        self.memory = path == ":memory:"
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._shared: sqlite3.Connection | None = None
        # Read-through caches for the grade hot path; every write below keeps them true.
        self._tokens: dict[str, dict] = {}
        self._users: dict[str, tuple[str, dict]] = {}
        self._linked: dict[tuple[str, str], frozenset[str]] = {}
        self._seq: int | None = None
        if not self.memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            self._conn().executescript(_schema_sql())  # runs in its own transaction
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                       (_SCHEMA_VERSION,))

    # --- connections -------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30)
        conn.row_factory = sqlite3.Row
        if not self.memory:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL: durable across process crashes
        conn.execute("PRAGMA foreign_keys=ON")
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self.memory:
            if self._shared is None:
                self._shared = self._open()
            return self._shared
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads (WAL readers never block the writer)."""
        if self.memory:
            with self._write_lock:
                yield self._conn()
        else:
            yield self._conn()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One serialised write transaction; rolled back on any exception."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection any thread opened."""
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:  # pragma: no cover
                    pass
            self._all.clear()
        self._shared = None
        self._local = threading.local()

    # --- roster ------------------------------------------------------------------------

    def replace_roster(self, doc: dict) -> None:
        """Swap the whole roster for ``doc`` (already validated) in one transaction."""
        with self.transaction() as db:
            for table in ("districts", "schools", "terms", "users", "sections", "section_members"):
                db.execute(f"DELETE FROM {table}")
            db.executemany("INSERT INTO districts(id, data) VALUES (?, ?)",
                           [(d["id"], _dumps(d)) for d in doc.get("districts", [])])
            db.executemany("INSERT INTO schools(id, district_id, data) VALUES (?, ?, ?)",
                           [(s["id"], s["district"], _dumps(s)) for s in doc.get("schools", [])])
            db.executemany("INSERT INTO terms(id, district_id, data) VALUES (?, ?, ?)",
                           [(t["id"], t["district"], _dumps(t)) for t in doc.get("terms", [])])
            db.executemany(
                "INSERT INTO users(id, district_id, role, data) VALUES (?, ?, ?, ?)",
                [(u["id"], u["district"], "student" if "student" in u["roles"] else "teacher", _dumps(u))
                 for u in doc.get("users", [])])
            db.executemany("INSERT INTO sections(id, district_id, school_id, data) VALUES (?, ?, ?, ?)",
                           [(s["id"], s["district"], s["school"], _dumps(s)) for s in doc.get("sections", [])])
            members = []
            for s in doc.get("sections", []):
                members += [(s["id"], t, "teacher") for t in dict.fromkeys(s.get("teachers", []))]
                members += [(s["id"], st, "student") for st in dict.fromkeys(s.get("students", []))]
            db.executemany("INSERT INTO section_members(section_id, user_id, role) VALUES (?, ?, ?)",
                           members)
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('roster_loaded', '1')")
        self._users.clear()
        self._linked.clear()

    def roster_loaded(self) -> bool:
        with self.read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'roster_loaded'").fetchone()
        return row is not None

    def get_record(self, kind: str, record_id: str) -> dict | None:
        """A roster record (districts, schools, terms, users, sections) by id, or None."""
        table = _ROSTER_TABLES[kind]
        with self.read() as db:
            row = db.execute(f"SELECT data FROM {table} WHERE id = ?", (record_id,)).fetchone()
        return json.loads(row["data"]) if row else None

    def get_user(self, user_id: str) -> tuple[str, dict] | None:
        """(role, record) of a user, or None (cached: the roster only changes as a whole)."""
        found = self._users.get(user_id)
        if found is not None:
            return found
        with self.read() as db:
            row = db.execute("SELECT role, data FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            return None
        found = (row["role"], json.loads(row["data"]))
        if len(self._users) >= _CACHE_MAX:
            self._users.clear()
        self._users[user_id] = found
        return found

    def list_records(self, kind: str, *, district_id: str | None = None, role: str | None = None,
                     limit: int = 100, starting_after: str | None = None,
                     ending_before: str | None = None) -> Page:
        """A page of roster records sorted by id, Clever-style cursor paging."""
        table = _ROSTER_TABLES[kind]
        where, params = [], []
        if district_id is not None:
            where.append("id = ?" if kind == "districts" else "district_id = ?")
            params.append(district_id)
        if role is not None:
            where.append("role = ?")
            params.append(role)
        if ending_before is not None:
            where.append("id < ?")
            params.append(ending_before)
            order = "DESC"
        else:
            if starting_after is not None:
                where.append("id > ?")
                params.append(starting_after)
            order = "ASC"
        sql = f"SELECT data FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY id {order} LIMIT ?"
        with self.read() as db:
            rows = db.execute(sql, (*params, limit + 1)).fetchall()
        has_more = len(rows) > limit
        data = [json.loads(r["data"]) for r in rows[:limit]]
        if order == "DESC":
            data.reverse()
        return Page(data, has_more)

    def list_user_section_ids(self, user_id: str) -> list[str]:
        with self.read() as db:
            rows = db.execute("SELECT DISTINCT section_id FROM section_members WHERE user_id = ? "
                              "ORDER BY section_id", (user_id,)).fetchall()
        return [r["section_id"] for r in rows]

    # --- apps and tokens ---------------------------------------------------------------

    def upsert_app(self, app: dict) -> None:
        """Insert or replace an app registration."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO apps(client_id, client_secret, name, redirect_uris, assignments_url, "
                "scopes, districts, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(client_id) DO UPDATE SET client_secret=excluded.client_secret, "
                "name=excluded.name, redirect_uris=excluded.redirect_uris, "
                "assignments_url=excluded.assignments_url, scopes=excluded.scopes, "
                "districts=excluded.districts",
                (app["client_id"], app["client_secret"], app["name"], _dumps(app["redirect_uris"]),
                 app.get("assignments_url"), _dumps(app["scopes"]), _dumps(app["districts"]),
                 app["created"]))

    def get_app(self, client_id: str) -> dict | None:
        with self.read() as db:
            row = db.execute("SELECT * FROM apps WHERE client_id = ?", (client_id,)).fetchone()
        return _app_row(row) if row else None

    def list_apps(self) -> list[dict]:
        with self.read() as db:
            rows = db.execute("SELECT * FROM apps ORDER BY created, client_id").fetchall()
        return [_app_row(r) for r in rows]

    def delete_app(self, client_id: str) -> bool:
        with self.transaction() as db:
            db.execute("DELETE FROM tokens WHERE client_id = ?", (client_id,))
            db.execute("DELETE FROM auth_codes WHERE client_id = ?", (client_id,))
            cur = db.execute("DELETE FROM apps WHERE client_id = ?", (client_id,))
            self._tokens.clear()
        return cur.rowcount > 0

    def insert_token(self, token: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO tokens(access_token, kind, id, client_id, district_id, user_id, scopes, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (token["access_token"], token["kind"], token["id"], token["client_id"],
                 token["district_id"], token.get("user_id"), _dumps(token["scopes"]),
                 token["created"]))

    def get_token(self, access_token: str) -> dict | None:
        """A token by its value (cached: tokens never change, they are only deleted)."""
        found = self._tokens.get(access_token)
        if found is not None:
            return found
        with self.read() as db:
            row = db.execute("SELECT * FROM tokens WHERE access_token = ?",
                             (access_token,)).fetchone()
        if row is None:
            return None
        if len(self._tokens) >= _CACHE_MAX:
            self._tokens.clear()
        found = self._tokens[access_token] = _token_row(row)
        return found

    def district_tokens(self, client_id: str, district_id: str | None = None) -> list[dict]:
        sql = "SELECT * FROM tokens WHERE client_id = ? AND kind = 'district'"
        params: list = [client_id]
        if district_id is not None:
            sql += " AND district_id = ?"
            params.append(district_id)
        with self.read() as db:
            rows = db.execute(sql + " ORDER BY created, id", params).fetchall()
        return [_token_row(r) for r in rows]

    def delete_district_tokens_not_in(self, client_id: str, district_ids: list[str]) -> None:
        with self.transaction() as db:
            marks = ",".join("?" * len(district_ids)) or "''"
            db.execute(f"DELETE FROM tokens WHERE client_id = ? AND kind = 'district' "
                       f"AND district_id NOT IN ({marks})", (client_id, *district_ids))
            self._tokens.clear()

    # --- authorization codes -----------------------------------------------------------

    def insert_code(self, code: dict) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO auth_codes(code, client_id, user_id, redirect_uri, scopes, "
                       "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (code["code"], code["client_id"], code["user_id"], code["redirect_uri"],
                        _dumps(code["scopes"]), code["expires_at"]))

    def redeem_code(self, code: str, now: float) -> tuple[dict | None, bool]:
        """Mark a code used; return (code row or None, whether THIS call was first to use it)."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM auth_codes WHERE code = ?", (code,)).fetchone()
            if row is None:
                return None, False
            first = row["used_at"] is None
            if first:
                db.execute("UPDATE auth_codes SET used_at = ? WHERE code = ?", (now, code))
        out = dict(row)
        out["scopes"] = json.loads(out["scopes"])
        return out, first

    # --- grades ------------------------------------------------------------------------

    def save_grade(self, *, grade_id: str, client_id: str, user_id: str, assignment_id: str,
                   district_id: str, build_record, now_iso: str) -> dict:
        """Overwrite the (app, student, assignment) grade and append its history, atomically.

        ``build_record(version, created)`` returns the record to store, so the version
        number and first-seen time come from inside the same transaction.
        """
        with self.transaction() as db:
            row = db.execute("SELECT id, version, created FROM grades WHERE client_id = ? AND "
                             "user_id = ? AND assignment_id = ?",
                             (client_id, user_id, assignment_id)).fetchone()
            if self._seq is None:
                self._seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM grades").fetchone()[0]
            seq = self._seq + 1
            if row is None:
                record = build_record(grade_id, 1, now_iso)
                text = _dumps(record)
                db.execute("INSERT INTO grades(id, client_id, user_id, assignment_id, district_id, "
                           "version, record, created, updated, seq) VALUES (?,?,?,?,?,?,?,?,?,?)",
                           (grade_id, client_id, user_id, assignment_id, district_id, 1,
                            text, now_iso, now_iso, seq))
            else:
                grade_id = row["id"]
                record = build_record(grade_id, row["version"] + 1, row["created"])
                text = _dumps(record)
                db.execute("UPDATE grades SET version = ?, record = ?, updated = ?, seq = ? "
                           "WHERE id = ?", (record["version"], text, now_iso, seq, grade_id))
            db.execute("INSERT INTO grade_history(grade_id, version, record, received_at) "
                       "VALUES (?, ?, ?, ?)", (grade_id, record["version"], text, now_iso))
        self._seq = seq  # only after COMMIT: a rolled-back write leaves no gap or reuse
        return record

    def list_grades(self, *, client_id: str | None = None, user_id: str | None = None,
                    assignment_id: str | None = None, district_id: str | None = None,
                    after_seq: int | None = None, limit: int = 1000) -> list[dict]:
        """Current grades matching every given filter, oldest write first."""
        where, params = [], []
        for col, val in (("client_id", client_id), ("user_id", user_id),
                         ("assignment_id", assignment_id), ("district_id", district_id)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if after_seq is not None:
            where.append("seq > ?")
            params.append(after_seq)
        sql = "SELECT record, seq FROM grades"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq LIMIT ?"
        with self.read() as db:
            rows = db.execute(sql, (*params, limit)).fetchall()
        out = []
        for r in rows:
            rec = json.loads(r["record"])
            rec["seq"] = r["seq"]
            out.append(rec)
        return out

    def grade_history(self, grade_id: str) -> list[dict]:
        with self.read() as db:
            rows = db.execute("SELECT record FROM grade_history WHERE grade_id = ? ORDER BY seq",
                              (grade_id,)).fetchall()
        return [json.loads(r["record"]) for r in rows]

    def max_grade_seq(self) -> int:
        with self.read() as db:
            return db.execute("SELECT COALESCE(MAX(seq), 0) FROM grades").fetchone()[0]

    def count(self, table: str) -> int:
        if table not in _COUNTABLE:
            raise ValueError(table)
        with self.read() as db:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    # --- Schoology assignments ---------------------------------------------------------

    def link_assignment(self, link: dict) -> dict:
        """Create (or update the settings of) a Schoology assignment for a partner assignment."""
        with self.transaction() as db:
            row = db.execute("SELECT id, created FROM schoology_assignments WHERE section_id = ? "
                             "AND client_id = ? AND assignment_id = ?",
                             (link["section_id"], link["client_id"], link["assignment_id"])).fetchone()
            if row is not None:
                link = {**link, "id": row["id"], "created": row["created"]}
                db.execute("UPDATE schoology_assignments SET data = ? WHERE id = ?",
                           (_dumps(link), row["id"]))
            else:
                db.execute("INSERT INTO schoology_assignments(id, section_id, client_id, "
                           "assignment_id, data, created) VALUES (?, ?, ?, ?, ?, ?)",
                           (link["id"], link["section_id"], link["client_id"],
                            link["assignment_id"], _dumps(link), link["created"]))
            self._linked.pop((link["client_id"], link["assignment_id"]), None)
        return link

    def list_links(self, *, section_id: str | None = None, client_id: str | None = None,
                   assignment_id: str | None = None) -> list[dict]:
        where, params = [], []
        for col, val in (("section_id", section_id), ("client_id", client_id),
                         ("assignment_id", assignment_id)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        sql = "SELECT data FROM schoology_assignments"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.read() as db:
            rows = db.execute(sql + " ORDER BY created, id", params).fetchall()
        return [json.loads(r["data"]) for r in rows]

    def is_linked(self, client_id: str, assignment_id: str, user_id: str) -> bool:
        """Whether a teacher linked this assignment in a section the student is enrolled in."""
        key = (client_id, assignment_id)
        students = self._linked.get(key)
        if students is None:
            with self.read() as db:
                rows = db.execute(
                    "SELECT DISTINCT m.user_id FROM schoology_assignments a JOIN section_members m "
                    "ON m.section_id = a.section_id AND m.role = 'student' "
                    "WHERE a.client_id = ? AND a.assignment_id = ?", key).fetchall()
            students = frozenset(r[0] for r in rows)
            if len(self._linked) >= _CACHE_MAX:
                self._linked.clear()
            self._linked[key] = students
        return user_id in students

    # --- reset -------------------------------------------------------------------------

    def reset_activity(self) -> None:
        """Forget grades, links, codes and SSO tokens; keep roster, apps and district tokens."""
        with self.transaction() as db:
            for sql in ("DELETE FROM grade_history", "DELETE FROM grades",
                        "DELETE FROM schoology_assignments", "DELETE FROM auth_codes",
                        "DELETE FROM tokens WHERE kind = 'il'"):
                db.execute(sql)
            self._tokens.clear()
            self._linked.clear()
            self._seq = None


_CACHE_MAX = 100_000  # entries per cache; cleared whole when full, so memory stays flat

_ROSTER_TABLES = {"districts": "districts", "schools": "schools", "terms": "terms",
                  "users": "users", "sections": "sections"}
_COUNTABLE = {"grades", "grade_history", "users", "sections", "apps", "tokens", "auth_codes",
              "schoology_assignments", "districts"}


def _app_row(row: sqlite3.Row) -> dict:
    out = dict(row)
    for key in ("redirect_uris", "scopes", "districts"):
        out[key] = json.loads(out[key])
    return out


def _token_row(row: sqlite3.Row) -> dict:
    out = dict(row)
    out["scopes"] = json.loads(out["scopes"])
    return out
