"""All SQL lives here: SQLite through the standard library, WAL, pooled connections.

Writes are serialised by a lock (cheaper than SQLite's sleeping busy handler under load)
and run in ``BEGIN IMMEDIATE`` transactions, or, for a grade written alone, as one statement
that commits as it ends (``Store._write_alone``), so a grade answered with 200 is committed.
``:memory:`` databases use one shared connection guarded by the same lock.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
import unicodedata
import weakref
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import limits
from .jsontext import dumps as _dumps
from .errors import DatabaseUnusable, FieldProblem, Revoked, ServiceUnavailable
from .ids import ROLES, legacy_role_ids, primary_role
from .models import App, AuthCode, Grade, GradeVersion, Link, Token

# The database layout's number, recorded in ``meta`` (``schema_version``) by every start; a
# start refuses a file whose number is higher, before it changes anything
# (``Store._refuse_foreign_file``): an older version's schema run on a newer layout undoes
# parts of it. Raise it whenever an older version running on the new layout would write
# wrong data (docs/internals.md, "Upgrades and downgrades"). 2: a new grade's first history
# row is appended by the ``grade_inserted`` trigger (a version before it, which wrote that
# row itself, recreates its own insert trigger beside it: two history rows per new grade).
# Versions before this check recorded "1" and read nothing.
_SCHEMA_VERSION = 2


def schema_sql() -> str:
    """The simulator's schema (tables and indexes) as SQL."""
    try:
        return resources.files("simulator").joinpath("schema.sql").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):  # pragma: no cover - odd installs
        return (Path(__file__).parent / "schema.sql").read_text(encoding="utf-8")




class Page:
    """One page of a list: the rows plus whether more exist before/after them."""

    def __init__(self, rows: list[dict], has_more: bool):
        self.rows = rows
        self.has_more = has_more


# Tables of a database that is not empty but was never the simulator's: refuse to add ours.
_FOREIGN_CHECK = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"


class HandleBudget:
    """How many SQLite connections the process keeps open, every store (tenant) together.

    Each open connection to a WAL database holds up to three file descriptors; with one
    per thread per tenant, a busy server ran out of them. Stores lease connections from
    their own pools; opening one more past ``limit`` first closes the longest-idle pooled
    connection of any store, else waits up to ``wait_s`` for one to be returned, else
    answers 503 (``ServiceUnavailable``). ``limit`` is set from the descriptor limit
    (``limits.bounds_for``) when the first store opens.
    """

    def __init__(self, limit: int | None = None, wait_s: float = 5.0):
        self._limit = limit
        self.wait_s = wait_s
        self.open = 0
        self.waiting = 0  # threads waiting in acquire()
        self._cond = threading.Condition()
        self._stores: "weakref.WeakSet[Store]" = weakref.WeakSet()

    @property
    def limit(self) -> int:
        """The given limit, else the one for the descriptor limit at first use."""
        if self._limit is None:
            self._limit = limits.current().sqlite_handles
        return self._limit

    def register(self, store: "Store") -> None:
        with self._cond:
            self._stores.add(store)

    def acquire(self, wait: bool = True) -> bool:
        """Count one more open connection; False if none may open within the wait."""
        deadline = time.monotonic() + (self.wait_s if wait else 0.0)
        while True:
            with self._cond:
                if self.open < self.limit:
                    self.open += 1
                    return True
                stores = list(self._stores)
            idle = [(s.idle_since(), s) for s in stores]
            idle = [(t, s) for t, s in idle if t is not None]
            if idle:
                min(idle, key=lambda pair: pair[0])[1].close_one_idle()  # releases one
                continue
            with self._cond:
                remaining = deadline - time.monotonic()
                if self.open < self.limit:
                    continue
                if remaining <= 0:
                    return False
                self.waiting += 1
                try:
                    self._cond.wait(min(remaining, 0.05))  # woken when one is returned
                finally:
                    self.waiting -= 1

    def release(self) -> None:
        with self._cond:
            self.open = max(0, self.open - 1)
            self._cond.notify()

    def returned(self) -> None:
        """A connection went back to a pool: a waiter may now close it and open its own."""
        if self.waiting:
            with self._cond:
                self._cond.notify()


BUDGET = HandleBudget()  # the process's; its limit is read when the first store opens
IDLE_PER_STORE = 32        # pooled connections a store keeps (the budget may close them)


class Store:
    """The simulator's state in one SQLite database."""

    def __init__(self, path: str, budget: HandleBudget | None = None):
        self.path = path
        self.memory = path == ":memory:"
        self._budget = budget or BUDGET
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._all: set[sqlite3.Connection] = set()
        self._idle: list[tuple[sqlite3.Connection, float]] = []  # pooled, newest last
        self._all_lock = threading.Lock()
        self._closed = False
        self._writes = 0  # transactions so far (the checkpointer runs only after new ones)
        self._shared: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None  # the grade writes' last (``_pop_idle``)
        # Read-through caches for the grade hot path; every write below keeps them true.
        self._tokens = ByteCache(_TOKENS_BYTES)
        # Revocation: every write that deletes tokens or codes bumps this generation, after
        # its COMMIT and before it lets go of the write lock, and empties the token cache,
        # under ``_token_lock``. A lookup fills the cache only if the generation it read
        # before its SELECT is still current (checked under the same lock), so a lookup that
        # raced a revocation can never put a revoked token back (``get_token``); a grade
        # write compares the generation its token was looked up under (``save_grade``).
        self._revocations = 0
        self._token_lock = threading.Lock()
        self._users = ByteCache(_USERS_BYTES)
        self._legacy: tuple[dict, dict, dict, dict] | None = None
        self._linked = ByteCache(_LINKED_BYTES)
        # Links, as revocation above: every write that adds or removes links bumps this
        # generation after its COMMIT and empties ``_linked`` (``_forget_links``); ``is_linked``
        # remembers an answer only if the generation it read before its SELECT is still current.
        # (Emptied inside the transaction alone, a lookup between that and the COMMIT read the
        # old links and remembered "not linked" for good: 170 of 300 links raced by lookups.)
        self._link_changes = 0
        self._link_lock = threading.Lock()
        # (client, student, assignment) -> (grade id, version, created) as last written here:
        # an overwrite builds its record from it and its UPDATE applies only where the row
        # still holds exactly that (``_write_grade``), so a stale entry costs a lookup, never
        # a wrong version. Saves the SELECT (a statement, a GIL hand-off) per overwrite.
        self._grade_keys = ByteCache(_GRADE_KEYS_BYTES)
        self._seq: int | None = None
        self._grade_count: int | None = None  # current grades, once counted
        self._roster_counts: dict[str, int] = {}
        self._pending: list[_GradeJob] = []  # grades waiting for the next group commit
        self._pending_lock = threading.Lock()
        self._leading = False  # a caller is writing queued grades, or about to (save_grade)
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if not self.memory:
            self._budget.register(self)
        try:
            self._create_schema()
        except (sqlite3.Error, OSError) as exc:
            self.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise DatabaseUnusable(f"cannot use {path!r} as the simulator's database: {reason}"
                                   f" (give --db a new file name, an existing clever-sim "
                                   f"database, or :memory:)") from None
        with self.transaction() as db:  # never a newer one's (refused above)
            db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       (str(_SCHEMA_VERSION),))
        if not self.memory:
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, daemon=True,
                                                  name="clever-sim-checkpoint")
            self._checkpointer.start()

    def _create_schema(self) -> None:
        """The tables, in a new file or a clever-sim database; never inside another file."""
        if not self.memory:
            if Path(self.path).is_dir():
                raise DatabaseUnusable(f"cannot use {self.path!r} as the simulator's database: "
                                       f"it is a directory (name a file in it, e.g. "
                                       f"{str(Path(self.path) / 'clever-sim.db')!r})")
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            if Path(self.path).is_file() and Path(self.path).stat().st_size:
                self._refuse_foreign_file()
        with self._write_lock, self._lease() as conn:
            _drop_old_roster_layout(conn)
            _drop_old_code_layout(conn)
            had_write_order = _has_table(conn, "grade_writes")
            # one transaction: the triggers it drops and creates again (a newer form, or an
            # older name) are never missing for another process writing grades meanwhile
            conn.executescript(f"BEGIN IMMEDIATE;\n{schema_sql()}\nCOMMIT;")
            if not had_write_order:
                _add_write_order(conn)

    def _refuse_foreign_file(self) -> None:
        """Look read-only first: turning on WAL would already rewrite a foreign file's header,
        and the schema would undo parts of a newer version's layout."""
        probe = sqlite3.connect(Path(self.path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            tables = [row[0] for row in probe.execute(_FOREIGN_CHECK)]
            row = probe.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
                if "meta" in tables else None
        finally:
            probe.close()
        if tables and "meta" not in tables:
            raise sqlite3.DatabaseError(
                f"it is another program's SQLite database (tables {', '.join(tables[:5])}), "
                f"not a clever-sim one; nothing was written to it")
        layout = _layout_number(row[0]) if row is not None else 0
        if layout > _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"a newer clever-sim wrote it (database layout {layout}; this version knows "
                f"up to {_SCHEMA_VERSION}): run that version or a later one on it; nothing "
                f"was written to it")

    # --- connections -------------------------------------------------------------------

    def _open(self, wait: bool = True) -> sqlite3.Connection:
        if not self.memory and not self._budget.acquire(wait):
            raise ServiceUnavailable("Too many open databases", [FieldProblem(
                "database", f"all {self._budget.limit} SQLite connections this process may "
                "hold are in use", "retry in a few seconds")])
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
            conn.row_factory = sqlite3.Row
            if not self.memory:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL: durable across process crashes
                # Checkpoints (copy the WAL into the database, fsync) run in the background
                # thread below, never inside a request's COMMIT while it holds the write lock.
                conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute("PRAGMA foreign_keys=ON")
            # Each pooled connection has its own page cache (2 MB by default): one bound on
            # them all, process-wide, beyond which SQLite recycles cache pages.
            conn.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_BYTES}")
        except BaseException:
            if not self.memory:
                self._budget.release()
            raise
        with self._all_lock:
            self._all.add(conn)
        return conn

    def _checkout(self, writer: bool = False) -> sqlite3.Connection:
        with self._all_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            conn = self._pop_idle(writer)
        if conn is None:
            conn = self._open()
        if writer:
            self._writer = conn
        return conn

    def _pop_idle(self, writer: bool) -> sqlite3.Connection | None:
        """An idle pooled connection (caller holds ``_all_lock``): for grade writes the one
        that wrote last, for anything else another one while there is one.

        A SQLite connection drops its whole page cache when it finds that another connection
        wrote since its last transaction, so grade writes hopping between pooled connections
        (a reader or the checkpointer took the last writer's) re-read every page they touch:
        measured ~20 us of CPU per grade with the writes spread over 4-16 connections."""
        idle = self._idle
        if not idle:
            return None
        pick = len(idle) - 1  # the most recently used
        for i in range(pick, -1, -1):
            if (idle[i][0] is self._writer) is writer:
                pick = i
                break
        return idle.pop(pick)[0]

    def _checkin(self, conn: sqlite3.Connection) -> None:
        with self._all_lock:
            pooled = not self._closed and conn in self._all and len(self._idle) < IDLE_PER_STORE
            if pooled:
                self._idle.append((conn, time.monotonic()))
        if pooled:
            self._budget.returned()
        else:
            self._discard(conn)

    def _discard(self, conn: sqlite3.Connection) -> None:
        """Close a connection and give its place in the budget back."""
        with self._all_lock:
            mine = conn in self._all
            self._all.discard(conn)
            if conn is self._writer:
                self._writer = None
        if mine:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover
                pass
            if not self.memory:
                self._budget.release()

    def idle_since(self) -> float | None:
        """When the longest-idle pooled connection was returned (None: no idle one)."""
        idle = self._idle
        try:
            return idle[0][1] if idle else None
        except IndexError:  # emptied meanwhile
            return None

    def close_one_idle(self) -> None:
        """Close the longest-idle pooled connection (the budget needs its place)."""
        with self._all_lock:
            if not self._idle:
                return
            conn = self._idle.pop(0)[0]
        self._discard(conn)

    @contextmanager
    def _lease(self, writer: bool = False) -> Iterator[sqlite3.Connection]:
        """This thread's connection for the block: the one it already holds (nested
        blocks, so reads inside a transaction see it), else one from the pool (``writer``:
        the grade writes' own, ``_pop_idle``), returned after. ``:memory:``: the one shared
        connection."""
        if self.memory:
            if self._shared is None:
                if self._closed:  # a closed store stays closed, never a fresh empty one
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                self._shared = self._open()
            yield self._shared
            return
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None:
            yield conn
            return
        conn = local.conn = self._checkout(writer)
        try:
            yield conn
        finally:
            local.conn = None
            if conn.in_transaction:  # pragma: no cover - a block left one open: never pool it
                self._discard(conn)
            else:
                self._checkin(conn)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads (WAL readers never block the writer)."""
        if self.memory:
            with self._write_lock, self._lease() as conn:
                yield conn
        else:
            with self._lease() as conn:
                yield conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One serialised write transaction; rolled back on any exception."""
        with self._write_lock, self._lease() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._writes += 1

    @contextmanager
    def revoking(self) -> Iterator[sqlite3.Connection]:
        """``transaction`` for writes that delete tokens or codes: once it has returned, no
        lookup answers with a deleted token, from the database or the cache."""
        with self._write_lock:
            with self.transaction() as conn:
                yield conn
            self._forget_tokens()

    def _forget_tokens(self) -> None:
        """After a revoking COMMIT, still under the write lock: a new generation, no cache."""
        with self._token_lock:
            self._revocations += 1
            self._tokens.clear()

    @property
    def token_generation(self) -> int:
        """Read it before looking a token up; ``save_grade`` refuses the grade if a
        revocation committed since and took the token with it."""
        return self._revocations

    def _checkpoint_loop(self) -> None:
        """Fold the WAL into the database every CHECKPOINT_EVERY_S after new writes, on a
        pooled connection: an idle store holds none."""
        done = self._writes
        while not self._closing.wait(CHECKPOINT_EVERY_S):
            if self._writes == done:
                continue
            done = self._writes
            self.checkpoint()

    def checkpoint(self) -> int | None:
        """One background checkpoint (PASSIVE: readers and writers go on; a busy moment is
        retried next time); the pages left in the WAL after it (None: not run).

        Under writes that never pause, a PASSIVE copy never catches up with them, so the log
        never started over: it grew by every grade's pages (290 MB in 6 s at one
        connection), each append growing the file. Past ``WAL_RESTART_FRAMES`` the few
        frames written during the copy are copied again with writes held (a pause of those
        frames only), so the next write starts the log over. The write lock is taken
        before a connection, as every writer takes them: none is held while waiting."""
        left = self._checkpoint_once()
        if left is not None and left[0] > WAL_RESTART_FRAMES:
            with self._write_lock:
                left = self._checkpoint_once()
        return None if left is None else left[0] - left[1]

    def _checkpoint_once(self) -> tuple[int, int] | None:
        """(pages in the WAL, pages copied) after one PASSIVE checkpoint on a pooled
        connection; None when none was free or it failed."""
        conn = None
        try:
            with self._all_lock:
                conn = self._pop_idle(writer=False)
            if conn is None:
                conn = self._open(wait=False)  # every one busy: ServiceUnavailable, next time
            _, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return log, copied
        except sqlite3.Error:
            return None
        except ServiceUnavailable:
            conn = None
            return None
        finally:
            if conn is not None:
                self._checkin(conn)

    def close(self) -> None:
        """Close every connection any thread opened; later use raises ProgrammingError."""
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join(5)
            self._checkpointer = None
        with self._all_lock:
            self._closed = True
            conns = list(self._all)
            self._idle.clear()
        for conn in conns:
            self._discard(conn)
        self._shared = None
        self._local = threading.local()

    # --- roster ------------------------------------------------------------------------

    def replace_roster(self, doc: dict, meta: dict[str, str] | None = None) -> None:
        """Swap the whole roster for ``doc`` (already validated) in one transaction.

        ``meta`` keys (the roster digest, its apps) are written in the same transaction, so
        a crash mid-load leaves the old roster and its digest, never a half-loaded one.
        """
        with self.replacing_roster() as db:
            self._replace_roster_in(db, doc, meta)

    @contextmanager
    def replacing_roster(self) -> Iterator[sqlite3.Connection]:
        """A transaction in which the caller rewrites the roster tables (a streamed load);
        once it commits, the caches are forgotten and the WAL folded back, in the same call,
        so the pair cannot be half done. An exception rolls the roster back whole."""
        with self.transaction() as db:
            yield db
        self._roster_replaced()

    @contextmanager
    def consistent_view(self) -> Iterator[None]:
        """Every read on this thread inside the block sees the same moment of every table
        (one read transaction; WAL readers never block the writer), e.g. a snapshot's."""
        with self.read() as db:
            began = not db.in_transaction
            if began:
                db.execute("BEGIN")
            try:
                yield
            finally:
                if began:
                    db.execute("COMMIT")

    @contextmanager
    def replacing_state(self, roster: dict, roster_meta: Callable[[], dict[str, str]]
                        ) -> Iterator["StateLoad"]:
        """Replace the whole state in one transaction: the roster (only when it differs from
        the stored one; ``roster_meta()`` gives the meta keys written with a new one), and,
        through the ``StateLoad`` this yields, every app, token, grade and link.

        Either all of it commits, then the caches are forgotten (inside the transaction,
        under the write lock) and, after a new roster, the WAL is folded back, or nothing
        does (an exception in the block rolls everything back): never a new roster with old
        grades, never a cache that remembers a state the database no longer holds.
        """
        with self.revoking() as db:  # old tokens and codes stop working once loaded
            # compared inside the transaction (reads on this thread use its connection), so
            # no other load can change the roster between the comparison and the writes
            old = self.roster_document() if self.roster_loaded() else None
            changed = old is None or {k: old.get(k, []) for k in roster} != roster
            del old
            if changed:
                self._replace_roster_in(db, roster, roster_meta())
            for sql in ("DELETE FROM grade_history", "DELETE FROM grades", "DELETE FROM grade_writes",
                        "DELETE FROM schoology_assignments", "DELETE FROM auth_codes",
                        "DELETE FROM tokens", "DELETE FROM apps"):
                db.execute(sql)
            yield StateLoad(db, changed)
            self.clear_caches()  # under the write lock: no grade write sees a stale cache
        self._forget_links()  # after the COMMIT: no lookup keeps the old links
        if changed:
            self._roster_replaced()

    def _replace_roster_in(self, db: sqlite3.Connection, doc: dict,
                           meta: dict[str, str] | None = None) -> None:
        """Swap the whole roster for ``doc`` (already validated) inside the caller's
        transaction ``db``, so other writes commit or roll back with it; the caller runs
        ``_roster_replaced()`` after COMMIT (``replace_roster``, ``replacing_state``).

        Rows go in with ``executemany``, a batch of records at a time (no second copy of
        the roster) and the secondary indexes are rebuilt once at the end (faster than row
        by row); DROP and CREATE INDEX and ANALYZE are transactional in SQLite, so a
        rollback undoes them.
        """
        if not db.in_transaction:  # autocommit would leave a half-replaced roster on a failure
            raise RuntimeError("_replace_roster_in runs inside Store.transaction()")
        dropped = clear_roster(db)
        for kind in ("districts", "schools", "terms", "users", "courses", "sections"):
            records = doc.get(kind, [])
            for start in range(0, len(records), ROSTER_BATCH):
                insert_roster_records(db, kind, records[start:start + ROSTER_BATCH])
        finish_roster(db, dropped, {kind: len(doc.get(kind, [])) for kind in _ROSTER_TABLES}, meta)

    def _roster_replaced(self) -> None:
        """What follows the COMMIT of ``_replace_roster_in``: forget the caches, let the
        document's strings go, and fold the big WAL back now (a checkpoint cannot run
        inside a transaction), not on some grade's commit."""
        self.clear_caches()
        fold.cache_clear()  # its keys are the document's strings: let the document go whole
        if not self.memory:
            with self._write_lock, self._lease() as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def get_meta(self, key: str) -> str | None:
        with self.read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row is not None else None

    def roster_ids(self, kind: str) -> list[str]:
        """Every id of one kind of roster record, in the roster file's order."""
        table = _ROSTER_TABLES[kind]
        with self.read() as db:
            return [r[0] for r in db.execute(f"SELECT id FROM {table} ORDER BY rowid")]

    def roster_document(self) -> dict:
        """The stored roster as one document, in the file's order (tests and tools only:
        it reads every record; request paths query what they need instead)."""
        out: dict[str, list] = {}
        with self.read() as db:
            for kind in ("districts", "schools", "terms", "users", "sections", "courses"):
                out[kind] = [json.loads(r[0]) for r in
                             db.execute(f"SELECT data FROM {_ROSTER_TABLES[kind]} ORDER BY rowid")]
            if not out["courses"]:
                del out["courses"]  # optional in a roster: a roster without them stays so
            row = db.execute("SELECT value FROM meta WHERE key = 'roster_apps'").fetchone()
        out["apps"] = json.loads(row[0]) if row is not None else []
        return out

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
        # A parsed record costs ~4× its JSON text (measured: dicts, lists, str objects).
        self._users.put(user_id, found, 4 * len(row["data"]) + 300)
        return found

    def list_records(self, kind: str, *, district_id: str | None = None, role: str | None = None,
                     limit: int = 100, starting_after: str | None = None,
                     ending_before: str | None = None, ids: list[str] | None = None,
                     by_legacy_id: bool = False) -> Page:
        """A page of roster records sorted by id, Clever-style cursor paging.

        ``role``: only users who hold it (among their roles); ``ids`` limits the page to
        those records (a related list: a section's students); ``by_legacy_id`` sorts and
        pages users by their v2 id in ``role`` (v2 lists of non-students).
        """
        table = _ROSTER_TABLES[kind]
        joins, join_params, where, params = [], [], [], []
        key = "t.id"
        if role is not None:
            # The role table leads: its key (role, district, user) is the page's order.
            joins.append("JOIN user_roles r ON r.user_id = t.id AND r.role = ?")
            join_params.append(role)
            key = "r.user_id"
            if district_id is not None:
                where.append("r.district_id = ?")
                params.append(district_id)
        elif district_id is not None:
            where.append("t.id = ?" if kind == "districts" else "t.district_id = ?")
            params.append(district_id)
        if by_legacy_id:
            joins.append("JOIN legacy_ids l ON l.user_id = t.id AND l.role = ?")
            join_params.append(role or "")
            key = "l.legacy_id"
        params = join_params + params
        if ids is not None:
            where.append("t.id IN (SELECT value FROM json_each(?))")
            params.append(_dumps(ids))
        if ending_before is not None:
            where.append(f"{key} < ?")
            params.append(ending_before)
            order = "DESC"
        else:
            if starting_after is not None:
                where.append(f"{key} > ?")
                params.append(starting_after)
            order = "ASC"
        sql = f"SELECT t.data FROM {table} t" + "".join(" " + j for j in joins)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {key} {order} LIMIT ?"
        with self.read() as db:
            rows = db.execute(sql, (*params, limit + 1)).fetchall()
        has_more = len(rows) > limit
        data = [json.loads(r["data"]) for r in rows[:limit]]
        if order == "DESC":
            data.reverse()
        return Page(data, has_more)

    def _legacy_maps(self) -> tuple[dict, dict, dict, dict]:
        found = self._legacy
        if found is None:
            with self.read() as db:
                rows = db.execute("SELECT user_id, role, legacy_id FROM legacy_ids").fetchall()
            by_role = {(u, r): l for u, r, l in rows}
            back = {l: (u, r) for u, r, l in rows}
            primary: dict[str, str] = {}
            for u, r, l in sorted(rows, key=lambda row: -ROLES.index(row[1])):
                primary[u] = l  # the earliest role in ROLES is written last
            found = self._legacy = (by_role, back, primary, {l: u for l, (u, _) in back.items()})
        return found

    def legacy_role_ids(self) -> tuple[dict[tuple[str, str], str], dict[str, tuple[str, str]]]:
        """({(v3 id, role): v2 id}, {v2 id: (v3 id, role)}) of every non-student role
        (cached until the roster changes)."""
        return self._legacy_maps()[:2]

    def legacy_ids(self) -> tuple[dict[str, str], dict[str, str]]:
        """(v3 id -> v2 id in the person's primary role, any v2 id -> v3 id) (cached)."""
        return self._legacy_maps()[2:]

    def school_user_ids(self, school_id: str) -> list[str]:
        """Ids of the users at a school (any of their schools)."""
        with self.read() as db:
            return [r[0] for r in db.execute(
                "SELECT DISTINCT user_id FROM school_people WHERE school_id = ?", (school_id,))]

    def section_ids_where(self, column: str, value: str) -> list[str]:
        """Ids of the sections whose ``school_id``, ``term_id`` or ``course`` is ``value``."""
        sql = {"school_id": "SELECT id FROM sections WHERE school_id = ?",
               "term_id": "SELECT id FROM sections WHERE json_extract(data, '$.term_id') = ?",
               "course": "SELECT id FROM sections WHERE json_extract(data, '$.course') = ?"}[column]
        with self.read() as db:
            return [r[0] for r in db.execute(sql, (value,))]

    def sections_of(self, section_ids: list[str]) -> list[dict]:
        """The sections with these ids."""
        with self.read() as db:
            return [json.loads(r[0]) for r in db.execute(
                "SELECT data FROM sections WHERE id IN (SELECT value FROM json_each(?))",
                (_dumps(section_ids),))]

    # --- people (persona pickers) -------------------------------------------------------

    def school_people(self, school_id: str, *, district_id: str | None = None,
                      limit: int = 200, offset: int = 0) -> Page:
        """People of one school ('' = without a school): teachers first, then by last and
        first name; rows are ``{id, district, role, name, title}``."""
        sql = ("SELECT p.user_id AS id, p.district_id AS district, p.role, p.name, p.title "
               "FROM school_people sp JOIN people p ON p.user_id = sp.user_id "
               "WHERE sp.school_id = ?")
        params: list = [school_id]
        if district_id is not None:
            sql += " AND p.district_id = ?"
            params.append(district_id)
        sql += " ORDER BY sp.rank, sp.sort_key, sp.user_id LIMIT ? OFFSET ?"
        with self.read() as db:
            rows = db.execute(sql, (*params, limit + 1, max(0, offset))).fetchall()
        return Page([dict(r) for r in rows[:limit]], len(rows) > limit)

    def search_people(self, text: str, *, district_id: str | None = None,
                      limit: int = 50) -> Page:
        """People whose name, email or id contains ``text`` (case/accent-insensitive),
        teachers first, then by name; rows as ``school_people``'s plus ``school``."""
        words = [w for w in fold(text).split() if w][:5]
        if not words:
            return Page([], False)
        where = " AND ".join("instr(search_key, ?) > 0" for _ in words)
        params: list = list(words)
        if district_id is not None:
            where += " AND district_id = ?"
            params.append(district_id)
        sql = (f"SELECT user_id AS id, district_id AS district, role, name, title, "
               f"school_id AS school FROM people WHERE {where} "
               f"ORDER BY role = 'student', sort_key, user_id LIMIT ?")
        with self.read() as db:
            rows = db.execute(sql, (*params, limit + 1)).fetchall()
        return Page([dict(r) for r in rows[:limit]], len(rows) > limit)

    def all_people(self, limit: int) -> list[dict] | None:
        """Everyone (rows as ``search_people``'s), or None when there are more than ``limit``."""
        with self.read() as db:
            rows = db.execute("SELECT user_id AS id, district_id AS district, role, name, title, "
                              "school_id AS school FROM people ORDER BY rowid LIMIT ?",
                              (limit + 1,)).fetchall()
        return None if len(rows) > limit else [dict(r) for r in rows]

    # Membership reads name their join order (CROSS JOIN: SQLite keeps it): from the ids
    # given, through section_members' integer keys, to the other side's ids; on a small
    # roster the planner would otherwise scan every section.
    def section_ids_of(self, user_ids: list[str]) -> dict[str, list[str]]:
        """Each user's section ids (sorted), for many users in one query."""
        out: dict[str, list[str]] = {u: [] for u in user_ids}
        with self.read() as db:
            for start in range(0, len(user_ids), 500):
                chunk = user_ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for user_id, section_id in db.execute(
                        f"SELECT DISTINCT u.id, s.id FROM users u CROSS JOIN section_members m "
                        f"ON m.user_n = u.n CROSS JOIN sections s ON s.n = m.section_n "
                        f"WHERE u.id IN ({marks}) ORDER BY u.id, s.id", chunk):
                    out[user_id].append(section_id)
        return out

    def list_user_section_ids(self, user_id: str, *, roster_order: bool = False) -> list[str]:
        """A user's section ids, sorted by id (or in the roster file's order)."""
        with self.read() as db:
            if roster_order:
                rows = db.execute("SELECT DISTINCT s.id AS section_id, s.n FROM users u "
                                  "CROSS JOIN section_members m ON m.user_n = u.n "
                                  "CROSS JOIN sections s ON s.n = m.section_n WHERE u.id = ? "
                                  "ORDER BY s.n", (user_id,)).fetchall()
            else:
                rows = db.execute("SELECT DISTINCT s.id AS section_id FROM users u "
                                  "CROSS JOIN section_members m ON m.user_n = u.n "
                                  "CROSS JOIN sections s ON s.n = m.section_n WHERE u.id = ? "
                                  "ORDER BY s.id", (user_id,)).fetchall()
        return [r["section_id"] for r in rows]

    # --- apps and tokens ---------------------------------------------------------------

    def upsert_app(self, app: App) -> None:
        """Insert or replace an app registration."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO apps(client_id, client_secret, name, redirect_uris, assignments_url, "
                "scopes, districts, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(client_id) DO UPDATE SET client_secret=excluded.client_secret, "
                "name=excluded.name, redirect_uris=excluded.redirect_uris, "
                "assignments_url=excluded.assignments_url, scopes=excluded.scopes, "
                "districts=excluded.districts",
                (app.client_id, app.client_secret, app.name, _dumps(app.redirect_uris),
                 app.assignments_url, _dumps(app.scopes), _dumps(app.districts), app.created))

    def get_app(self, client_id: str) -> App | None:
        with self.read() as db:
            row = db.execute("SELECT * FROM apps WHERE client_id = ?", (client_id,)).fetchone()
        return _app_row(row) if row else None

    def list_apps(self) -> list[App]:
        with self.read() as db:
            rows = db.execute("SELECT * FROM apps ORDER BY created, client_id").fetchall()
        return [_app_row(r) for r in rows]

    def delete_app(self, client_id: str) -> bool:
        """Delete an app with its tokens and codes; none of them works once this returns."""
        with self.revoking() as db:
            db.execute("DELETE FROM tokens WHERE client_id = ?", (client_id,))
            db.execute("DELETE FROM auth_codes WHERE client_id = ?", (client_id,))
            cur = db.execute("DELETE FROM apps WHERE client_id = ?", (client_id,))
        return cur.rowcount > 0

    def insert_token(self, token: Token, *, from_code: str | None = None) -> None:
        """Store a new token, in the same transaction as checking that its app (and the
        code it was exchanged for, ``from_code``) still exist: a token minted while its app
        is deleted or the simulator reset is refused (``Revoked``), never left working."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM apps WHERE client_id = ?",
                          (token.client_id,)).fetchone() is None:
                raise Revoked(f"app {token.client_id} was deleted")
            if from_code is not None and db.execute(
                    "SELECT 1 FROM auth_codes WHERE code = ?", (from_code,)).fetchone() is None:
                raise Revoked("the authorization code was revoked (app deleted or simulator reset)")
            db.execute(
                "INSERT INTO tokens(access_token, kind, id, client_id, district_id, user_id, scopes, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (token.access_token, token.kind, token.id, token.client_id,
                 token.district_id, token.user_id, _dumps(token.scopes), token.created))

    def get_token(self, access_token: str) -> Token | None:
        """A token by its value (cached: tokens never change, they are only deleted)."""
        found = self._tokens.get(access_token)
        if found is not None:
            return found
        generation = self._revocations  # before the SELECT: see ``__init__``
        with self.read() as db:
            row = db.execute("SELECT * FROM tokens WHERE access_token = ?",
                             (access_token,)).fetchone()
        if row is None:
            return None
        found = _token_row(row)
        with self._token_lock:
            if generation == self._revocations:  # no revocation since the SELECT began
                self._tokens.put(access_token, found, 1000 + 2 * len(access_token))
        return found

    def list_tokens(self) -> list[Token]:
        """Every token, district-app and il, oldest first (a snapshot's tokens)."""
        with self.read() as db:
            rows = db.execute("SELECT * FROM tokens ORDER BY created, rowid").fetchall()
        return [_token_row(r) for r in rows]

    def district_tokens(self, client_id: str, district_id: str | None = None) -> list[Token]:
        sql = "SELECT * FROM tokens WHERE client_id = ? AND kind = 'district'"
        params: list = [client_id]
        if district_id is not None:
            sql += " AND district_id = ?"
            params.append(district_id)
        with self.read() as db:
            rows = db.execute(sql + " ORDER BY created, id", params).fetchall()
        return [_token_row(r) for r in rows]

    def revoke_token(self, access_token: str, *, reissue: dict | None = None) -> Token | None:
        """Delete one token (None if there is none); once this returns it gets 401. A revoked
        district-app token is replaced by ``reissue`` (``access_token``, ``id``, ``created``)
        in the same transaction, so the district never lists no token."""
        with self.revoking() as db:
            row = db.execute("SELECT * FROM tokens WHERE access_token = ?",
                             (access_token,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM tokens WHERE access_token = ?", (access_token,))
            old = _token_row(row)
            if old.kind == "district" and reissue is not None:
                db.execute(
                    "INSERT INTO tokens(access_token, kind, id, client_id, district_id, user_id, "
                    "scopes, created) VALUES (?, 'district', ?, ?, ?, NULL, ?, ?)",
                    (reissue["access_token"], reissue["id"], old.client_id,
                     old.district_id, row["scopes"], reissue["created"]))
        return old

    def delete_district_tokens_not_in(self, client_id: str, district_ids: list[str]) -> None:
        with self.revoking() as db:
            marks = ",".join("?" * len(district_ids)) or "''"
            db.execute(f"DELETE FROM tokens WHERE client_id = ? AND kind = 'district' "
                       f"AND district_id NOT IN ({marks})", (client_id, *district_ids))

    # --- authorization codes -----------------------------------------------------------

    def insert_code(self, code: AuthCode, *, purge_expired_before: float | None = None) -> None:
        """Store a new code; in the same transaction delete codes that expired before
        ``purge_expired_before`` (used or not), so the table holds recent codes only."""
        with self.transaction() as db:
            if purge_expired_before is not None:
                db.execute("DELETE FROM auth_codes WHERE expires_at < ?", (purge_expired_before,))
            db.execute("INSERT INTO auth_codes(code, client_id, user_id, redirect_uri, "
                       "expires_at) VALUES (?, ?, ?, ?, ?)",
                       (code.code, code.client_id, code.user_id, code.redirect_uri,
                        code.expires_at))

    def redeem_code(self, code: str, now: float) -> tuple[AuthCode | None, bool]:
        """Mark a code used; return (code row or None, whether THIS call was first to use it)."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM auth_codes WHERE code = ?", (code,)).fetchone()
            if row is None:
                return None, False
            first = row["used_at"] is None
            if first:
                db.execute("UPDATE auth_codes SET used_at = ? WHERE code = ?", (now, code))
        return AuthCode(code=row["code"], client_id=row["client_id"], user_id=row["user_id"],
                        redirect_uri=row["redirect_uri"], expires_at=row["expires_at"],
                        used_at=row["used_at"]), first

    # --- grades ------------------------------------------------------------------------

    def save_grade(self, *, grade_id: str, client_id: str, user_id: str, assignment_id: str,
                   district_id: str, build_record, now_iso: str,
                   token: tuple[str, int] | None = None) -> Grade:
        """Overwrite the (app, student, assignment) grade and append its history, atomically.

        ``build_record(grade_id, version, created)`` returns the record to store, so the
        version number and first-seen time come from inside the same transaction.

        Group commit: concurrent calls queue; one of them at a time leads, writing every
        queued grade in one transaction and one COMMIT (a COMMIT costs more than a grade's
        statements), then wakes the callers it wrote for and hands the lead to the first
        caller queued meanwhile.  Each call returns only after the COMMIT that holds its
        grade, so a grade answered with 200 is durable; alone, a call is one transaction.
        The others wait on a lock of their own, not on the write lock: before, each woke in
        turn to take the write lock only to find its grade written, and the next batch
        waited behind that convoy (one wake-up and one GIL hand-off per grade, in series).

        ``token``: (access token, ``token_generation`` read before looking it up). When a
        revocation committed since, the token is looked for again inside the write
        transaction, and the grade is refused (``Revoked``) if it is gone.
        """
        job = _GradeJob((grade_id, client_id, user_id, assignment_id, district_id,
                         build_record, now_iso), token)
        with self._pending_lock:
            self._pending.append(job)
            follow, self._leading = self._leading, True
        if follow:
            job.turn.acquire()  # released once the grade is written, or to lead the next batch
        if not job.done:
            self._lead_group_commit(job)
        if job.error is not None:
            raise job.error
        return job.result

    def _lead_group_commit(self, mine: "_GradeJob") -> None:
        """Write every queued grade (``save_grade``), wake their callers, and hand the lead
        to the first one queued meanwhile (or give it up: the next caller leads)."""
        batch: list[_GradeJob] = []
        try:
            with self._write_lock:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._write_grades(batch)
        finally:
            with self._pending_lock:
                if not batch and mine in self._pending:  # interrupted before taking the queue
                    self._pending.remove(mine)
                successor = self._pending[0] if self._pending else None
                if successor is None:
                    self._leading = False
            if successor is not None:
                successor.turn.release()  # not done: it leads (first: the next COMMIT waits)
            for job in batch:
                job.turn.release()  # the leader's own too: nobody waits on it

    def _write_grades(self, batch: list["_GradeJob"]) -> None:
        """Write queued grades (caller holds the write lock): one alone in one autocommit
        statement when it can (``_write_alone``), else in one transaction; if a batch fails,
        it is rolled back and each grade is written on its own instead."""
        try:
            if len(batch) != 1 or not self._write_alone(batch[0]):
                self._write_in_transaction(batch)
        except Exception as exc:  # noqa: BLE001 - isolate the grade that failed
            if len(batch) == 1:
                batch[0].result, batch[0].error = None, exc
            else:
                for job in batch:
                    self._write_grades([job])
        except BaseException as exc:
            for job in batch:
                job.result, job.error = None, exc
        for job in batch:
            job.done = True

    def _write_in_transaction(self, batch: list["_GradeJob"]) -> None:
        """Every grade of ``batch`` in one BEGIN IMMEDIATE ... COMMIT; a revoked token's
        grade is refused inside it. Raises (all rolled back) if any grade fails."""
        with self._lease(writer=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                seq = self._current_seq(conn)
                new = 0
                for job in batch:
                    if job.token is not None and job.token[1] != self._revocations and \
                            conn.execute("SELECT 1 FROM tokens WHERE access_token = ?",
                                         (job.token[0],)).fetchone() is None:
                        job.result, job.error = None, Revoked("the token was revoked")
                        continue
                    job.result, seq, inserted = self._write_grade(conn, job.args, seq)
                    new += inserted
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._writes += 1
        self._seq = seq  # only after COMMIT: a rolled-back write leaves no gap or reuse
        if self._grade_count is not None:
            self._grade_count += new

    def _write_alone(self, job: "_GradeJob") -> bool:
        """Write one grade with no BEGIN or COMMIT: each ``execute`` is a call into SQLite
        that releases the GIL five times (a thread hand-off each, served), and a statement
        outside a transaction takes the write lock itself and commits as it ends, as
        durably as a COMMIT. A remembered key is one UPDATE that applies only where the row
        still holds what this store wrote (``_write_grade``); an unknown key one INSERT
        that does nothing where the key exists, then (another process's grade, or one this
        store forgot) a lookup and that same guarded UPDATE. Each applies only on top of
        the file's write order (``_ON_TOP``). The triggers append the history row and the
        write order (``schema.sql``). False, with nothing written, when that cannot apply:
        a revocation since the token was looked up (checked inside a transaction), a row
        changed meanwhile, another process's grades on top of the write order, a caller's
        transaction open on this thread; the caller then writes the grade in a transaction."""
        if job.token is not None and job.token[1] != self._revocations:
            return False
        grade_id, client_id, user_id, assignment_id, district_id, build_record, now_iso = job.args
        key = (client_id, user_id, assignment_id)
        with self._lease(writer=True) as conn:
            if conn.in_transaction:  # a caller's transaction: its COMMIT, not this statement's
                return False
            seq = self._current_seq(conn) + 1
            known = self._grade_keys.get(key)
            new = known is None
            if new:
                record = build_record(grade_id, 1, now_iso)
                text = _dumps(record)
                if conn.execute(_INSERT_NEW_GRADE, (grade_id, client_id, user_id, assignment_id,
                                                    district_id, 1, text, now_iso, now_iso, seq)
                                ).rowcount == 1:
                    written = (grade_id, 1, now_iso)
                else:  # the key exists: overwrite what is stored
                    new = False
                    known = conn.execute(_FIND_GRADE, key).fetchone()
                    if known is None:  # deleted meanwhile: the transaction inserts it
                        return False
            if not new:
                found_id, version, created = known
                record = build_record(found_id, version + 1, created)
                text = _dumps(record)
                if conn.execute(_UPDATE_KNOWN_GRADE, (version + 1, text, now_iso, seq, found_id,
                                                      version, created)).rowcount != 1:
                    self._grade_keys.pop(key)  # the transaction looks the row up
                    return False
                written = (found_id, version + 1, created)
        self._writes += 1
        self._seq = seq  # only once it committed: a failed statement leaves no gap or reuse
        if new and self._grade_count is not None:
            self._grade_count += 1
        self._grade_keys.put(key, written, _GRADE_KEY_ENTRY)
        found_id, version, created = written
        job.result = Grade(found_id, client_id, user_id, assignment_id, district_id, version,
                           seq, created, now_iso, record, text)
        return True

    def _current_seq(self, db: sqlite3.Connection) -> int:
        """The write order's end as this store last wrote or read it: each grade statement
        checks it is still the file's (``_ON_TOP``), another process may have moved it on."""
        if self._seq is None:
            self._seq = db.execute(_LAST_SEQ).fetchone()[0]
        return self._seq

    def _write_grade(self, db: sqlite3.Connection, args: tuple, seq: int
                     ) -> tuple[Grade, int, bool]:
        """Insert or overwrite one grade inside the caller's transaction.

        An overwrite whose (grade id, version, created) this store remembers builds its
        record from them and updates only a row that still holds exactly those (else, e.g.
        another process wrote meanwhile, it looks the row up as a new key does): the
        version stored is always the one read inside this transaction, plus one. The
        triggers append the history row and the write order (``schema.sql``)."""
        grade_id, client_id, user_id, assignment_id, district_id, build_record, now_iso = args
        key = (client_id, user_id, assignment_id)
        seq += 1
        known = self._grade_keys.get(key)
        if known is not None:
            found_id, version, created = known
            record = build_record(found_id, version + 1, created)
            text = _dumps(record)
            if db.execute(_UPDATE_KNOWN_GRADE, (version + 1, text, now_iso, seq, found_id,
                                                version, created)).rowcount == 1:
                self._grade_keys.put(key, (found_id, version + 1, created), _GRADE_KEY_ENTRY)
                return Grade(found_id, client_id, user_id, assignment_id, district_id,
                             version + 1, seq, created, now_iso, record, text), seq, False
        row = db.execute(_FIND_GRADE, key).fetchone()
        created = now_iso if row is None else row[2]
        if row is None:
            version = 1
            record = build_record(grade_id, version, now_iso)
            sql = _INSERT_NEW_GRADE
        else:
            grade_id, version = row[0], row[1] + 1
            record = build_record(grade_id, version, row[2])
            sql = _UPDATE_FOUND_GRADE
        text = _dumps(record)
        params = ((grade_id, client_id, user_id, assignment_id, district_id, version, text,
                   now_iso, now_iso, seq) if row is None else (version, text, now_iso, seq, grade_id))
        if db.execute(sql, params).rowcount != 1:
            # another process wrote a later seq: the file's end, read under this transaction's
            # write lock (nothing else writes until it ends), so the grade goes on top now
            seq = db.execute(_LAST_SEQ).fetchone()[0] + 1
            params = (*params[:9], seq) if row is None else (*params[:3], seq, grade_id)
            if db.execute(sql, params).rowcount != 1:  # on top now: only a grade id taken
                raise sqlite3.IntegrityError(f"UNIQUE constraint failed: grades.id ({grade_id})")
        # Remembered before COMMIT: a rollback leaves an entry no row matches, so the next
        # overwrite of this key looks it up again.
        self._grade_keys.put(key, (grade_id, version, created), _GRADE_KEY_ENTRY)
        # the record's text rides along: the endpoint answers with it, never serialising twice
        return Grade(grade_id, client_id, user_id, assignment_id, district_id, version, seq,
                     created, now_iso, record, text), seq, row is None

    def list_grades(self, *, client_id: str | None = None, user_id: str | None = None,
                    assignment_id: str | None = None, district_id: str | None = None,
                    after_seq: int | None = None, limit: int | None = 1000) -> list[Grade]:
        """Current grades matching every given filter, oldest write first (all: ``limit=None``).

        By student or assignment: their rows through that index, sorted. Otherwise in write
        order off ``grade_writes`` (no index on grades holds seq, see schema.sql), each
        grade at its current seq only."""
        where, params = [], []
        for col, val in (("client_id", client_id), ("user_id", user_id),
                         ("assignment_id", assignment_id), ("district_id", district_id)):
            if val is not None:
                where.append(f"g.{col} = ?")
                params.append(val)
        if user_id is None and assignment_id is None:
            where.insert(0, "w.seq > ?")
            params.insert(0, -1 if after_seq is None else after_seq)
            sql = (f"SELECT {_GRADE_COLUMNS} FROM grade_writes w CROSS JOIN grades g ON "
                   "g.id = w.grade_id AND g.seq = w.seq WHERE " + " AND ".join(where)
                   + " ORDER BY w.seq LIMIT ?")
        else:
            if after_seq is not None:
                where.append("g.seq > ?")
                params.append(after_seq)
            sql = (f"SELECT {_GRADE_COLUMNS} FROM grades g WHERE " + " AND ".join(where)
                   + " ORDER BY g.seq LIMIT ?")
        with self.read() as db:
            rows = db.execute(sql, (*params, -1 if limit is None else limit)).fetchall()
        return [Grade(*r[:9], json.loads(r[9]), r[9]) for r in rows]

    def all_grade_versions(self) -> list[GradeVersion]:
        """Every version of every grade, in write order (a snapshot's history)."""
        with self.read() as db:
            rows = db.execute("SELECT seq, grade_id, version, record, received_at "
                              "FROM grade_history ORDER BY seq").fetchall()
        return [GradeVersion(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def grade_history(self, grade_id: str, *, after_version: int = 0,
                      limit: int | None = None, newest: int | None = None) -> list[dict]:
        """A grade's versions, oldest first: all, ``limit`` after ``after_version`` (paging
        forward), or only the ``newest`` few (the cell page: memory stays bounded)."""
        with self.read() as db:
            if newest is not None:
                rows = db.execute("SELECT record FROM (SELECT version, record FROM grade_history "
                                  "WHERE grade_id = ? ORDER BY version DESC LIMIT ?) "
                                  "ORDER BY version", (grade_id, newest)).fetchall()
            else:
                rows = db.execute("SELECT record FROM grade_history WHERE grade_id = ? AND "
                                  "version > ? ORDER BY version LIMIT ?",
                                  (grade_id, after_version, -1 if limit is None else limit)
                                  ).fetchall()
        return [json.loads(r["record"]) for r in rows]

    def max_grade_seq(self) -> int:
        with self.read() as db:
            return db.execute(_LAST_SEQ).fetchone()[0]

    def count(self, table: str) -> int:
        """Rows in a table.  The grades count is kept in memory once read (health checks
        ask for it often; COUNT(*) walks a whole index of a million grades)."""
        if table not in _COUNTABLE:
            raise ValueError(table)
        if table == "grades" and self._grade_count is not None:
            return self._grade_count
        if table in _ROSTER_TABLES:  # the roster only changes as a whole: counted at load
            if not self._roster_counts:
                self._roster_counts.update(json.loads(self.get_meta("roster_counts") or "{}"))
            if table in self._roster_counts:
                return self._roster_counts[table]
        if table == "grades":
            with self._write_lock:  # no grade can land between the count and keeping it
                if self._grade_count is None:
                    with self.read() as db:
                        self._grade_count = db.execute("SELECT COUNT(*) FROM grades").fetchone()[0]
                return self._grade_count
        with self.read() as db:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    # --- Schoology assignments ---------------------------------------------------------

    def link_assignment(self, link: Link) -> Link:
        """Create (or update the settings of) a Schoology assignment for a partner assignment;
        an update keeps the existing assignment's id and creation time."""
        with self.transaction() as db:
            row = db.execute("SELECT id, created FROM schoology_assignments WHERE section_id = ? "
                             "AND client_id = ? AND assignment_id = ?",
                             (link.section_id, link.client_id, link.assignment_id)).fetchone()
            if row is not None:
                link = Link(row["id"], link.section_id, link.client_id, link.assignment_id,
                            row["created"], {**link.data, "id": row["id"], "created": row["created"]})
                db.execute("UPDATE schoology_assignments SET data = ? WHERE id = ?",
                           (_dumps(link.data), row["id"]))
            else:
                db.execute("INSERT INTO schoology_assignments(id, section_id, client_id, "
                           "assignment_id, data, created) VALUES (?, ?, ?, ?, ?, ?)",
                           (link.id, link.section_id, link.client_id, link.assignment_id,
                            _dumps(link.data), link.created))
        self._forget_links()  # every student's answer for the assignment
        return link

    def unlink_assignment(self, link_id: str) -> Link | None:
        """Remove a Schoology assignment (its grades stay: they show as not linked yet)."""
        with self.transaction() as db:
            row = db.execute(f"SELECT {_LINK_COLUMNS} FROM schoology_assignments WHERE id = ?",
                             (link_id,)).fetchone()
            if row is None:
                return None
            link = _link_row(row)
            db.execute("DELETE FROM schoology_assignments WHERE id = ?", (link_id,))
        self._forget_links()  # every student's answer for the assignment
        return link

    def list_links(self, *, section_id: str | None = None, client_id: str | None = None,
                   assignment_id: str | None = None, limit: int | None = None,
                   offset: int = 0) -> list[Link]:
        """Schoology assignments matching every given filter, oldest first (a page of
        ``limit`` from ``offset`` when given)."""
        where, params = [], []
        for col, val in (("section_id", section_id), ("client_id", client_id),
                         ("assignment_id", assignment_id)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        sql = f"SELECT {_LINK_COLUMNS} FROM schoology_assignments"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created, id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, max(0, offset)]
        with self.read() as db:
            rows = db.execute(sql, params).fetchall()
        return [_link_row(r) for r in rows]

    def is_linked(self, client_id: str, assignment_id: str, user_id: str) -> bool:
        """Whether a teacher linked this assignment in a section the student is enrolled in:
        one point query per (app, assignment, student), remembered. (It read every student of
        every section the assignment is linked in; linked across hundreds of sections, that
        set outgrew the cache, so alternating assignments ran it on every grade POST.)"""
        key = (client_id, assignment_id, user_id)
        linked = self._linked.get(key)
        if linked is None:
            generation = self._link_changes  # before the SELECT: see ``__init__``
            with self.read() as db:
                linked = db.execute(_IS_LINKED, key).fetchone() is not None
            with self._link_lock:
                if generation == self._link_changes:  # no link changed since the SELECT began
                    self._linked.put(key, linked,
                                     200 + len(client_id) + len(assignment_id) + len(user_id))
        return linked

    def _forget_links(self) -> None:
        """After a COMMIT that added or removed links: a new generation, nothing remembered."""
        with self._link_lock:
            self._link_changes += 1
            self._linked.clear()

    def clear_caches(self) -> None:
        """Forget every read-through cache and counter (after writing behind the store's
        back, e.g. a benchmark's bulk load; a state load runs it inside ``replacing_state``)."""
        with self._write_lock:
            self._forget_tokens()
            self._users.clear()
            self._legacy = None
            self._forget_links()
            self._grade_keys.clear()
            self._seq = None
            self._grade_count = None
            self._roster_counts.clear()

    # --- reset -------------------------------------------------------------------------

    def reset_activity(self) -> None:
        """Forget grades, links, codes and SSO tokens; keep roster, apps and district tokens."""
        with self.revoking() as db:
            for sql in ("DELETE FROM grade_history", "DELETE FROM grades", "DELETE FROM grade_writes",
                        "DELETE FROM schoology_assignments", "DELETE FROM auth_codes",
                        "DELETE FROM tokens WHERE kind = 'il'"):
                db.execute(sql)
            self.clear_caches()
        self._forget_links()  # after the COMMIT: no lookup keeps a deleted link

    # --- hooks for tests and tools: what they observe without reaching into the store ----

    def connection(self):  # -> a context manager of sqlite3.Connection
        """This thread's connection, held for the block, for tools and tests that ask SQLite
        itself (query plans, statement traces); writes go through the methods above."""
        return self._lease()

    @contextmanager
    def writes_held(self) -> Iterator[None]:
        """Hold the writer for the block: grade writes meanwhile queue (``queued_grades``)
        and go in one group commit once it ends."""
        with self._write_lock:
            yield

    @property
    def queued_grades(self) -> int:
        """Grades waiting for the next group commit."""
        with self._pending_lock:
            return len(self._pending)

    @property
    def caches(self) -> dict[str, "ByteCache"]:
        """The read-through caches by name; each holds at most ``max_bytes`` (settable)."""
        return {"tokens": self._tokens, "users": self._users, "linked": self._linked,
                "grade_keys": self._grade_keys}


class StateLoad:
    """The writes of ``Store.replacing_state``: each backend hands its part of a snapshot
    back through these, inside the one transaction (rows go in as given, ids and all)."""

    def __init__(self, db: sqlite3.Connection, roster_replaced: bool):
        self._db = db
        self.roster_replaced = roster_replaced  # False: the stored roster was the same

    def add_apps(self, apps: Iterable[App]) -> None:
        self._db.executemany(
            "INSERT INTO apps(client_id, client_secret, name, redirect_uris, assignments_url, "
            "scopes, districts, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((a.client_id, a.client_secret, a.name, _dumps(a.redirect_uris), a.assignments_url,
              _dumps(a.scopes), _dumps(a.districts), a.created) for a in apps))

    def add_tokens(self, tokens: Iterable[Token]) -> None:
        self._db.executemany(
            "INSERT INTO tokens(access_token, kind, id, client_id, district_id, user_id, "
            "scopes, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((t.access_token, t.kind, t.id, t.client_id, t.district_id, t.user_id,
              _dumps(t.scopes), t.created) for t in tokens))

    def add_grades(self, grades: Iterable[Grade]) -> None:
        """The grades as given; the history is the snapshot's own (``add_grade_versions``),
        so the rows the insert trigger appended for them are taken back (every one past
        the history's last row before the insert, whichever of the two came first)."""
        last = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM grade_history").fetchone()[0]
        self._db.executemany(_INSERT_GRADE, (
            (g.id, g.client_id, g.user_id, g.assignment_id, g.district_id, g.version,
             g.json, g.created, g.updated, g.seq) for g in grades))
        self._db.execute("DELETE FROM grade_history WHERE seq > ?", (last,))

    def add_grade_versions(self, versions: Iterable[GradeVersion]) -> None:
        self._db.executemany(
            "INSERT INTO grade_history(seq, grade_id, version, record, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            ((v.seq, v.grade_id, v.version, _dumps(v.record), v.received_at) for v in versions))

    def add_links(self, links: Iterable[Link]) -> None:
        self._db.executemany(
            "INSERT INTO schoology_assignments(id, section_id, client_id, assignment_id, "
            "data, created) VALUES (?, ?, ?, ?, ?, ?)",
            ((ln.id, ln.section_id, ln.client_id, ln.assignment_id, _dumps(ln.data), ln.created)
             for ln in links))


class _GradeJob:
    """One queued grade write and, once ``done``, its record or its error."""

    __slots__ = ("args", "token", "done", "result", "error", "turn")

    def __init__(self, args: tuple, token: tuple[str, int] | None = None):
        self.args = args
        self.token = token
        self.done = False
        self.turn = threading.Lock()  # held until the caller may go on (``save_grade``)
        self.turn.acquire()
        self.result: Grade | None = None
        self.error: BaseException | None = None


# SQLite's memory in all: 16 worker connections with 2 MB page caches each held ~17 MB
# under mixed load; past this bound SQLite recycles cache pages (the OS still caches the file).
# 4 MiB held ~1.2 MB more RSS than 2 MiB on the soak (bench/soak.py) for no CPU saved: the
# server's CPU per request of its mix was 1.94-2.00 ms at 4 MiB, 1.89-1.94 ms at 2.
SQLITE_HEAP_BYTES = 2 * 1024 * 1024
WAL_RESTART_FRAMES = 1024  # past this many pages (4 MiB) in the WAL, a checkpoint holds writes
CHECKPOINT_EVERY_S = 0.25  # background WAL checkpoints (the WAL stays a few MB under load)
# Bytes per read-through cache (estimated per entry when stored); a full cache is cleared
# whole, so memory stays flat whatever the roster's records or the tokens' count.
_TOKENS_BYTES = 4 * 1024 * 1024
_USERS_BYTES = 4 * 1024 * 1024
_LINKED_BYTES = 2 * 1024 * 1024
_GRADE_KEYS_BYTES = 1024 * 1024
_GRADE_KEY_ENTRY = 400  # bytes of one entry: three key strings, the id and times, the tuples


class ByteCache:
    """A dict bounded by the bytes its entries hold (``put`` says how many), not their count:
    one huge record cannot outweigh the bound, and full means cleared whole (cheap, and
    the next reads refill what is still used)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._data: dict = {}
        self._lock = threading.Lock()

    def get(self, key, default=None):
        return self._data.get(key, default)

    def put(self, key, value, size: int) -> None:
        """Keep ``value`` (``size``: an estimate of its bytes) unless it alone exceeds the bound."""
        if size > self.max_bytes:
            return
        with self._lock:
            if self.bytes + size > self.max_bytes:
                self._data = {}
                self.bytes = 0
            if key not in self._data:
                self.bytes += size
            self._data[key] = value

    def pop(self, key, default=None):
        return self._data.pop(key, default)  # its bytes stay counted until the next clear

    def clear(self) -> None:
        with self._lock:
            self._data = {}
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._data)

_ROSTER_TABLES = {"districts": "districts", "schools": "schools", "terms": "terms",
                  "users": "users", "sections": "sections", "courses": "courses"}
ROSTER_BATCH = 2000  # records stored per executemany round: bounds the rows held at once
_ROSTER_DATA_TABLES = ("districts", "schools", "terms", "users", "user_roles", "people",
                       "school_people", "sections", "section_members", "legacy_ids", "courses")


# A roster goes in as clear_roster, insert_roster_records (per kind, in any order, in batches
# if it streams), finish_roster, inside one transaction: a failure anywhere rolls it back.

def clear_roster(db: sqlite3.Connection) -> list[str]:
    """Empty the roster tables and drop their secondary indexes (rebuilt once by
    ``finish_roster``: faster than row by row); the SQL that recreates the indexes."""
    for table in _ROSTER_DATA_TABLES:
        db.execute(f"DELETE FROM {table}")
    return _drop_roster_indexes(db)


def insert_roster_records(db: sqlite3.Connection, kind: str, records: list[dict],
                          texts: list[str | None] | None = None) -> None:
    """Store validated roster records of one kind and the rows derived from them.
    ``texts[i]``, when given and not None, is record i's JSON text as read (stored as is
    instead of encoding the record again)."""
    def data(i: int, record: dict) -> str:
        text = texts[i] if texts is not None else None
        return text if text is not None else _dumps(record)

    if kind == "districts":
        db.executemany("INSERT INTO districts(id, data) VALUES (?, ?)",
                       [(d["id"], data(i, d)) for i, d in enumerate(records)])
    elif kind in ("schools", "terms", "courses"):
        db.executemany(f"INSERT INTO {kind}(id, district_id, data) VALUES (?, ?, ?)",
                       [(r["id"], r["district"], data(i, r)) for i, r in enumerate(records)])
    elif kind == "users":  # one pass over the records makes every table's rows
        users, roles, people, school_people, legacy = [], [], [], [], []
        for i, u in enumerate(records):
            user_id, district_id, held = u["id"], u["district"], u["roles"]
            person = person_row(u)
            users.append((user_id, district_id, person[2], data(i, u)))
            roles.extend((role, district_id, user_id) for role in held if role in ROLES)
            people.append((*person[:7], person[8][0]))
            school_people.extend((sid, person[7], person[5], user_id) for sid in person[8])
            legacy.extend((v2, user_id, role) for role, v2 in legacy_role_ids(u).items())
        db.executemany("INSERT INTO users(id, district_id, role, data) VALUES (?, ?, ?, ?)", users)
        db.executemany("INSERT INTO user_roles(role, district_id, user_id) VALUES (?, ?, ?)", roles)
        db.executemany("INSERT INTO people(user_id, district_id, role, name, title, sort_key, "
                       "search_key, school_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", people)
        db.executemany("INSERT OR IGNORE INTO school_people(school_id, rank, sort_key, user_id) "
                       "VALUES (?, ?, ?, ?)", school_people)
        db.executemany("INSERT INTO legacy_ids(legacy_id, user_id, role) VALUES (?, ?, ?)", legacy)
    elif kind == "sections":
        db.executemany("INSERT INTO sections(id, district_id, school_id, data) VALUES (?, ?, ?, ?)",
                       [(s["id"], s["district"], s["school"], data(i, s))
                        for i, s in enumerate(records)])
        # section_members: derived in SQL from the stored texts by finish_roster


# Every section's members, read by SQLite from the sections' stored JSON (the C JSON parser,
# no Python per membership) and keyed by the rowids of the section and the user. A member
# no user has is not stored, a repeated one once: a roster stored here was checked (the
# reference checks report both), and a streamed load that is not is rolled back.
_MEMBERS_SQL = [f"INSERT OR IGNORE INTO section_members(section_n, role, user_n) "
                f"SELECT s.n, '{role}', u.n FROM sections s, json_each(s.data, '$.{key}') j "
                f"JOIN users u ON u.id = j.value"
                for key, role in (("teachers", "teacher"), ("students", "student"))]


def finish_roster(db: sqlite3.Connection, dropped: list[str], counts: dict[str, int],
                  meta: dict[str, str] | None = None) -> None:
    """Store the memberships, rebuild the dropped indexes, record the counts and ``meta``
    (digest, apps), ANALYZE."""
    later = [sql for sql in dropped if " ON section_members" in sql]
    for sql in dropped:  # users_id and sections_id first: the memberships look ids up
        if sql not in later:
            db.execute(sql)
    for sql in _MEMBERS_SQL + later:
        db.execute(sql)
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('roster_loaded', '1')")
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('roster_counts', ?)",
               (_dumps({kind: counts.get(kind, 0) for kind in _ROSTER_TABLES}),))
    for key, value in (meta or {}).items():
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
    db.execute("ANALYZE")  # the planner's row counts: keeps it on the right indexes


@functools.lru_cache(maxsize=8192)  # names repeat a lot in a roster
def fold(text: str) -> str:
    """Text as a roster sorts and searches it: case- and accent-insensitive."""
    return _fold(text)


def _fold(text: str) -> str:
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


_RANK = {"teacher": 0, "student": 1}  # a school's people: teachers, students, then others


def person_row(user: dict) -> tuple:
    """(user_id, district_id, role, name, title, sort_key, search_key, rank, school ids)."""
    roles = user["roles"]
    role = primary_role(user)
    data = roles.get(role) or {}
    name = user.get("name") or {}
    first, last = name.get("first") or "", name.get("last") or ""
    user_id = user["id"]
    shown = f"{first} {last}" if first and last else (first or last or user_id)
    schools: list = []  # the primary role's first: the picker's group
    for r in (role, *roles):
        fields = roles.get(r)
        if isinstance(fields, dict):
            for sid in (fields.get("school"), *(fields.get("schools") or ())):
                if sid and sid not in schools:
                    schools.append(sid)
    middle = name.get("middle") or ""
    # Folded part by part, which equals folding the joined text (folding maps each
    # character alone, and the space between parts keeps NFKD's reordering of combining
    # marks inside a part): names repeat, so they come from ``fold``'s cache; the email
    # and the id are unique (cached, they would only churn) and nearly always ASCII.
    search = " ".join(fold(p) if i < 3 else (p.lower() if p.isascii() else _fold(p))
                      for i, p in enumerate((first, middle, last, user.get("email") or "", user_id))
                      if p and isinstance(p, str))
    title = data.get("title") if isinstance(data.get("title"), str) else None
    return (user_id, user["district"], role, shown, title,
            f"{fold(last)}\x00{fold(first)}", search, _RANK.get(role, 2),
            schools or [""])


_ROWID_NAMED = re.compile(r"\(\s*n\s+INTEGER\s+PRIMARY\s+KEY\b")  # users.n, sections.n


def _layout_number(value: object) -> int:
    """A ``schema_version`` as recorded ("1" before layouts were compared); 0 if unreadable."""
    try:
        return int(str(value))
    except ValueError:
        return 0


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def _add_write_order(conn: sqlite3.Connection) -> None:
    """Fill ``grade_writes`` from the grades of a database an older version wrote (it kept
    the write order in an index on ``grades.seq``, dropped by the schema): each grade at its
    seq, so listings after a seq and the next write's seq go on as before."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT OR REPLACE INTO grade_writes(seq, grade_id) SELECT seq, id FROM grades")
    conn.execute("COMMIT")


def _drop_old_code_layout(conn: sqlite3.Connection) -> None:
    """Drop an ``auth_codes`` table an older version wrote with a ``scopes`` column (never
    read: a code's token takes the app's scopes), so the schema creates it anew; its codes
    lived a minute at most, and neither a snapshot nor a restart is meant to keep them."""
    if any(row[1] == "scopes" for row in conn.execute("PRAGMA table_info(auth_codes)")):
        conn.execute("DROP TABLE auth_codes")  # its index goes with it


def _drop_old_roster_layout(conn: sqlite3.Connection) -> None:
    """Drop roster tables whose shape an older version wrote (users limited to student and
    teacher, one v2 id per person, memberships with a rowid or keyed by text ids, users and
    sections without ``n``, ids unique by a constraint), so the schema creates them anew; the roster (derived data,
    reloaded from its file) is marked unloaded with them."""
    old = [name for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
        "AND name IN ('users', 'legacy_ids', 'section_members', 'sections', 'people')")
        if (name in ("users", "sections") and (not _ROWID_NAMED.search(sql) or "UNIQUE" in sql))
        or (name == "people" and "PRIMARY KEY" in sql)
        or (name == "users" and "CHECK (role IN" in sql) or (name == "legacy_ids" and " role " not in sql)
        or (name == "section_members" and ("WITHOUT ROWID" not in sql or "user_n" not in sql))]
    if not old:
        return
    conn.execute("BEGIN IMMEDIATE")
    for name in old:
        conn.execute(f"DROP TABLE {name}")
    conn.execute("DELETE FROM meta WHERE key IN ('roster_loaded', 'roster_digest')")
    conn.execute("COMMIT")


def _drop_roster_indexes(db: sqlite3.Connection) -> list[str]:
    """Drop the roster tables' secondary indexes; return the SQL that recreates them."""
    marks = ",".join("?" * len(_ROSTER_DATA_TABLES))
    rows = db.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                      f"AND tbl_name IN ({marks})", _ROSTER_DATA_TABLES).fetchall()
    for name, _ in rows:
        db.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in rows]


# A grade's writes (``Store._write_alone``, ``Store._write_grade``); the triggers of
# ``grades`` append its history row and its place in the write order (schema.sql).
# Each one a grade POST runs applies only ON TOP of the write order (``_ON_TOP``: no seq at
# or above its own in the file, one seek to the end of ``grade_writes``), checked by SQLite
# under its write lock as the statement runs. The store keeps the order's end in memory
# (``Store._seq``) and another process writing the same file moves it on: a grade at a seq
# that process had given took its grade's place in the order (the trigger's INSERT OR
# REPLACE), one below its newest was passed over by ``after_seq`` readers. Where the check
# fails nothing is written, and the transaction reads the end again under its write lock.
# A new grade's INSERT does nothing where the grade (its (app, student, assignment), or its
# id) exists already, nor where its seq is not on top: it is NULL then, which the NOT NULL
# of ``grades.seq`` and OR IGNORE skip (the same check in an INSERT … SELECT … WHERE cost
# 5% more CPU per INSERT than VALUES: ``bench/seq_guard.py``). SQLite applies an outer OR
# IGNORE to the triggers' statements too (their INSERT OR REPLACE INTO grade_writes): on
# top, the grade's row there is new, so nothing is ignored.
# (``_INSERT_GRADE``: a snapshot load's rows, at the snapshot's own seqs, in any order.)
_INSERT_GRADE = ("INSERT INTO grades(id, client_id, user_id, assignment_id, district_id, version, "
                 "record, created, updated, seq) VALUES (?,?,?,?,?,?,?,?,?,?)")
_ON_TOP = "NOT EXISTS (SELECT 1 FROM grade_writes WHERE seq >= ?{n})"
_INSERT_NEW_GRADE = ("INSERT OR IGNORE INTO grades(id, client_id, user_id, assignment_id, "
                     "district_id, version, record, created, updated, seq) VALUES "
                     "(?1,?2,?3,?4,?5,?6,?7,?8,?9, CASE WHEN " + _ON_TOP.format(n=10)
                     + " THEN ?10 END)")
_FIND_GRADE = ("SELECT id, version, created FROM grades WHERE client_id = ? AND user_id = ? "
               "AND assignment_id = ?")
# Applies only where the row still holds the (id, version, created) the new record was built
# from: the version stored is the one read, plus one, whoever else writes the file.
_UPDATE_KNOWN_GRADE = ("UPDATE grades SET version = ?1, record = ?2, updated = ?3, seq = ?4 "
                       "WHERE id = ?5 AND version = ?6 AND created = ?7 AND " + _ON_TOP.format(n=4))
_UPDATE_FOUND_GRADE = ("UPDATE grades SET version = ?1, record = ?2, updated = ?3, seq = ?4 "
                       "WHERE id = ?5 AND " + _ON_TOP.format(n=4))
_LAST_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM grade_writes"
# ``Store.is_linked``: the student's few sections (``section_members_user``), each looked up in
# the links' own unique key (section_id, client_id, assignment_id).
_IS_LINKED = ("SELECT 1 FROM users u "
              "CROSS JOIN section_members m ON m.user_n = u.n AND m.role = 'student' "
              "CROSS JOIN sections s ON s.n = m.section_n "
              "CROSS JOIN schoology_assignments a ON a.section_id = s.id AND a.client_id = ?1 "
              "AND a.assignment_id = ?2 WHERE u.id = ?3 LIMIT 1")
_GRADE_COLUMNS = ("g.id, g.client_id, g.user_id, g.assignment_id, g.district_id, g.version, "
                  "g.seq, g.created, g.updated, g.record")
_COUNTABLE = {"grades", "grade_history", "users", "sections", "apps", "tokens", "auth_codes",
              "schoology_assignments", "districts"}


def _app_row(row: sqlite3.Row) -> App:
    return App(client_id=row["client_id"], client_secret=row["client_secret"], name=row["name"],
               redirect_uris=json.loads(row["redirect_uris"]),
               assignments_url=row["assignments_url"], scopes=json.loads(row["scopes"]),
               districts=json.loads(row["districts"]), created=row["created"])


def _token_row(row: sqlite3.Row) -> Token:
    return Token(access_token=row["access_token"], kind=row["kind"], id=row["id"],
                 client_id=row["client_id"], district_id=row["district_id"],
                 user_id=row["user_id"], scopes=json.loads(row["scopes"]), created=row["created"])


_LINK_COLUMNS = "id, section_id, client_id, assignment_id, created, data"


def _link_row(row: sqlite3.Row) -> Link:
    return Link(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))
