"""The simulator's runtime: store, clock, journal, faults, rate limits, grade notifications.

One ``Simulator`` per Flask app (kept in ``app.extensions["clever_sim"]``); nothing here
imports Flask, so domain code and tools can use it directly.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterator

from .apps import normalize_app
from .clever.backend import CleverBackend
from .clock import Clock
from .config import ConfigError, app_problems, resolve_db_path
from .errors import SimError
from .faults import Faults
from .journal import Journal
from .ratelimit import RateLimiter
from .roster import (NotStreamable, RosterStream, default_roster_path, file_digest, load_roster,
                     load_roster_file)
from .roster_cache import RosterCache, place_new_file
from .schoology.backend import SchoologyBackend
from .store import (ROSTER_BATCH, Store, clear_roster, finish_roster, fold, insert_roster_records,
                    schema_sql)


# Part of every roster digest: bump it when the stored layout of a roster changes
# (tables, derived rows), so databases written by an older loader are reloaded once.
_DIGEST_SALT = b"clever-sim roster layout 6\n"  # 6: section_members keyed by users.n and
# sections.n, ids unique by indexes built after the load (5: section_members WITHOUT ROWID;
# 4: user_roles, a v2 id per role; 3: legacy_ids, courses)
_SALT_TAG = hashlib.sha256(_DIGEST_SALT).hexdigest()[:16]


def _file_stamp(path: str | os.PathLike) -> str | None:
    """What tells one version of a file from another without reading it (as git's index
    does): device, inode, size, and the modification and change times in ns; None when it
    cannot be stat'ed. Nothing can set the change time back, so a copy that keeps the
    size and mtime (``cp -p``, ``rsync -t``, a restored cache) still differs. Not on
    Windows, where ``st_ctime`` is the creation time (tools copy it): None, the digest."""
    if os.name == "nt":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _missing_folders(path: str) -> list[Path]:
    """The folders above the file ``path`` that do not exist yet, deepest first."""
    target = Path(path)
    return [p for p in (target.parent, *target.parent.parents) if not p.exists()]


def _created_here(path: str) -> bool:
    """Create the new, empty database file ``path`` (and its folders) unless it exists:
    True when this call made it. A refused start removes the file only then, never one
    another process made after this start looked; False too when it cannot be made (the
    store then says why)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))  # as SQLite would
    except OSError:  # FileExistsError: that process's database, checked and loaded like any
        return False
    return True


def _release_memory() -> None:
    """Give the freed roster document back to the OS (glibc keeps freed heap otherwise)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory is reused by the process
        pass


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a roster load, then restore it.

    A load makes millions of short-lived, acyclic dicts and lists (freed by reference
    counting) while it keeps ~80 MB of ids and references alive; every generation-2
    collection walks all of those again: a third of an uncached sandbox start's CPU
    (bench/README.md). Nothing in the load is freed only by the collector."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _stream_roster(db: sqlite3.Connection, source: str | os.PathLike, stamp: str | None) -> str:
    """Store the roster file inside the transaction ``db``, a batch of checked records at a
    time (``roster.RosterStream``): the whole document is never held. Its digest;
    ``NotStreamable`` (the caller rolls back) when the stream does not prove it valid."""
    with _collector_paused():
        return _stream_roster_in(db, source, stamp)


def _stream_roster_in(db: sqlite3.Connection, source: str | os.PathLike, stamp: str | None) -> str:
    stream = RosterStream(source, salt=_DIGEST_SALT, batch=ROSTER_BATCH)
    try:
        dropped = clear_roster(db)
        for kind, records, texts in stream.batches():
            insert_roster_records(db, kind, records, texts)
        stream.finish()
        digest = stream.digest or ""
        meta = {"roster_digest": digest,
                "roster_apps": json.dumps(stream.apps, ensure_ascii=False)}
        if stamp is not None:
            meta["roster_file_stamp"] = f"{digest} {stamp}"
        finish_roster(db, dropped, stream.counts, meta)
    except sqlite3.IntegrityError:  # e.g. an id twice: the whole load names it
        raise NotStreamable("a constraint failed") from None
    fold.cache_clear()  # its keys are the records' names: let their memory go too
    if stream.counts.get("users", 0) > 5_000:
        _release_memory()
    return digest


def _stored_apps(db: sqlite3.Connection) -> list[dict]:
    """The roster's app registrations a roster load stored (its ``roster_apps`` meta) in
    the transaction ``db``."""
    row = db.execute("SELECT value FROM meta WHERE key = 'roster_apps'").fetchone()
    return json.loads(row[0]) if row and row[0] else []


_ASIDE = re.compile(r"\.[0-9a-f]{12}\.(loading|part)")  # after the database's file name
STALE_ASIDE_S = 60.0  # a live load writes its file every batch; a crashed one stops


def remove_stale_asides(path: str | os.PathLike, now: float | None = None) -> list[str]:
    """Delete the files a first start that crashed left next to the database ``path``
    (``<db>.<hex>.loading``, a roster cache copy ``<db>.<hex>.part``); their names.

    A file counts as left behind when no SQLite connection holds a write lock on it and
    it has not been written for ``STALE_ASIDE_S``: a load in progress in another process
    holds its lock from its first batch to its COMMIT, and writes the file all along."""
    target = Path(path)
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    prefix = target.name
    for name in names:
        if not (name.startswith(prefix) and _ASIDE.fullmatch(name, len(prefix))):
            continue
        aside = target.parent / name
        try:
            if now - aside.stat().st_mtime < STALE_ASIDE_S or _write_locked(aside):
                continue
            aside.unlink()
        except OSError:
            continue
        removed.append(name)
    return removed


def _write_locked(path: Path) -> bool:
    """Whether a connection (of any process) is writing the SQLite file ``path``."""
    try:
        probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    except sqlite3.Error:
        return False
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    except sqlite3.Error:
        return False
    finally:
        probe.close()


class Simulator:
    """Everything one running simulator knows."""

    def __init__(self, cfg: dict[str, Any], clock: Clock | None = None):
        self.cfg = cfg
        self.retired = False  # its tenant was deleted: waits end at once (``retire``)
        self.clock = clock or Clock()
        path = resolve_db_path(cfg)
        # A new database file is created only once its roster has loaded: bad input writes
        # nothing. A roster cache may supply that file ready-made (then it is a restart).
        if path != ":memory:":
            remove_stale_asides(path)
        fresh = path != ":memory:" and not Path(path).exists()
        # What this start made for a new database (its file and the folders missing now, a
        # roster cache entry): a refused start removes them again, on every path.
        self._made: list[Path] = []
        missing = _missing_folders(path) if fresh else []
        target = Path(path)
        database = [target, target.with_name(target.name + "-wal"),
                    target.with_name(target.name + "-shm"), *missing]
        try:
            cache, cache_key = self._roster_cache(path) if fresh else (None, None)
            if cache is not None and cache_key is not None and cache.restore(cache_key, path):
                fresh = False
                self._made = database
            elif fresh and target.exists():  # another process made it meanwhile: theirs, as is
                fresh = False
            stamp = self._roster_stamp()  # before any read: a file changed meanwhile differs next time
            streamed = self._stream_into_new_file(path, stamp) if fresh else None
            fresh = fresh and (streamed is not None or not Path(path).exists())  # made meanwhile?
            self._roster_read = self._read_roster(None) if fresh and streamed is None else None
            if fresh and streamed is None:  # the file is made here, now that the roster is read
                fresh = _created_here(path)  # False: another process made it meanwhile
                self._made = database if fresh else missing  # (its folders: only while empty)
            elif fresh:  # linked into place by this start, never over another one's file
                self._made = database
            self.store = Store(path)
            self.clever = CleverBackend(self.store, self.clock)
            self.schoology = SchoologyBackend(self.store, self.clever)
            self.journal = Journal(cfg["JOURNAL_CAP"], cfg["JOURNAL_MAX_MB"] * 1024 * 1024)
            self.faults = Faults()
            self.rate = RateLimiter(cfg["RATE_LIMIT_PER_MIN"])
            self._grades_changed = threading.Condition()
            self._waiters = 0  # threads inside wait_for (changed under _grades_changed)
            # Every start-up app is checked against the roster once, before anything is
            # written for it: a new roster inside the transaction that stores it (a refusal
            # rolls it back), a kept one here. A refused start changes nothing.
            kept, checked = self._load_roster(stamp)
            loaded = streamed or kept
            if streamed is None and not checked:
                self._check_startup_apps(self.district_ids, self.roster_apps())
            if fresh and loaded is not None and cache is not None:
                entry = cache.entry(loaded)
                made = [] if entry.exists() else [entry, *_missing_folders(str(entry))]
                with self.store.read() as conn:  # the roster alone: apps are registered next
                    cache.save(conn, loaded)
                self._made += made
            self._register_startup_apps()
        except BaseException:
            self.abandon()  # nobody gets this simulator: nor the database it made
            raise

    def _roster_cache(self, path: str) -> tuple[RosterCache | None, str | None]:
        """(the configured roster cache, the roster file's digest) for a new database file;
        (None, None) without a cache, or for a roster given as a document."""
        directory = self.cfg.get("ROSTER_CACHE")
        source = self.cfg.get("ROSTER") or default_roster_path()
        if not directory or isinstance(source, dict):
            return None, None
        return RosterCache(directory, schema_sql()), file_digest(source, _DIGEST_SALT)

    def roster_cache_entry(self) -> Path | None:
        """The roster cache file this simulator's roster is (or would be) kept in; None
        without a cache (or for a roster given as a document)."""
        cache, key = self._roster_cache(self.store.path)
        return cache.entry(key) if cache is not None and key is not None else None

    # --- start-up ----------------------------------------------------------------------

    def _read_roster(self, stored: str | None) -> tuple[dict | None, str]:
        """(checked roster or None when its digest equals ``stored``, digest)."""
        source = self.cfg.get("ROSTER") or default_roster_path()
        if isinstance(source, dict):
            doc = load_roster(source)
            digest = hashlib.sha256(_DIGEST_SALT + json.dumps(doc, sort_keys=True).encode()).hexdigest()
            return (None if digest == stored else doc), digest
        return load_roster_file(source, salt=_DIGEST_SALT, unless_digest=stored)

    def _load_roster(self, stamp: str | None) -> tuple[str | None, bool]:
        """Load the configured roster (or the one read before the database was created);
        replace the stored one only when it changed.

        A roster file is recognised by the digest of its bytes (and of the loader's
        layout): when the database already holds it, nothing is parsed, checked or
        written, so a restart on the same database is instant whatever the roster's size.
        The parsed document is dropped once stored: requests query the store. Returns (the
        digest of a roster stored now, None when the stored one was kept; whether the
        start-up apps were checked against the roster served, ``_check_startup_apps``).

        ``stamp`` (``_roster_stamp``, taken before the file was read) saves even the digest:
        when the database recorded this very stamp with its roster's digest, the file is
        the one stored and is not read at all (docs/internals.md, "Start-up").
        """
        first, self._roster_read = getattr(self, "_roster_read", None), None
        source = self.cfg.get("ROSTER") or default_roster_path()
        if first is None:
            stored = self.store.get_meta("roster_digest") if self.store.roster_loaded() else None
            if stored is not None and stamp is not None \
                    and self.store.get_meta("roster_file_stamp") == f"{stored} {stamp}":
                self.reload_district_ids()  # the very file stored last time: not even read
                return None, False
            if not isinstance(source, dict):
                if stored is not None and file_digest(source, _DIGEST_SALT) == stored:
                    first = (None, stored)  # same bytes: nothing to parse or store
                else:
                    streamed = self._stream_into_store(source, stamp)
                    if streamed is not None:
                        self.reload_district_ids()
                        return streamed, True
            if first is None:
                first = self._read_roster(stored)
        doc, digest = first
        del first
        doc_stored = doc is not None
        stamp_meta = {"roster_file_stamp": f"{digest} {stamp}"} if stamp is not None else {}
        checked = doc_stored or bool(stamp_meta)  # either path below checks the apps
        if doc is not None:  # checked against the new roster before it replaces the old one
            self._check_startup_apps([d["id"] for d in doc.get("districts", [])],
                                     list(doc.get("apps", [])))
            self.store.replace_roster(doc, {
                "roster_digest": digest,
                "roster_apps": json.dumps(doc.get("apps", []), ensure_ascii=False),
                **stamp_meta})
            big = len(doc.get("users", [])) > 5_000
            del doc
            if big:
                _release_memory()
        elif stamp_meta:  # same bytes, new stamp (touched, copied): skip the digest next time
            self._check_startup_apps(self.store.roster_ids("districts"), self.roster_apps())
            with self.store.transaction() as db:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                           ("roster_file_stamp", stamp_meta["roster_file_stamp"]))
        self.reload_district_ids()
        return (digest if doc_stored else None), checked

    def _stream_into_new_file(self, path: str, stamp: str | None) -> str | None:
        """Stream the roster file into a database written aside and linked to ``path``
        only once the roster has loaded (bad input leaves nothing behind); the roster's
        digest, or None when it is to be loaded whole (a roster given as a document, one
        the stream does not prove valid, a folder that cannot be written: the whole load
        then reports why)."""
        source = self.cfg.get("ROSTER") or default_roster_path()
        if isinstance(source, dict):
            return None
        target = Path(path)
        made = _missing_folders(path)
        aside: str | None = None
        placed = False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            aside = str(target.with_name(f"{target.name}.{secrets.token_hex(6)}.loading"))
            os.close(os.open(aside, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))  # as SQLite would
            conn = sqlite3.connect(aside, isolation_level=None)
            try:
                # No journal and no syncs while loading: a failed load deletes the file, and
                # the store's promise (WAL + synchronous=NORMAL) is about grades, which start
                # once it is in place (as roster_cache.restore, which copies without fsync).
                # A crash leaves the file behind: the next start deletes it.
                conn.execute("PRAGMA journal_mode=OFF")
                conn.execute("PRAGMA synchronous=OFF")
                conn.executescript(schema_sql())
                conn.execute("BEGIN")
                digest = _stream_roster(conn, source, stamp)
                self._check_startup_apps(  # refused: the aside goes, no file is made
                    [r[0] for r in conn.execute("SELECT id FROM districts ORDER BY rowid")],
                    _stored_apps(conn), lambda client_id: None)
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                place_new_file(aside, target)
            except FileExistsError:
                return None  # that process's database: checked and loaded like any other
            placed = True
            return digest
        except (NotStreamable, OSError, sqlite3.Error):
            return None
        finally:
            if aside is not None:
                Path(aside).unlink(missing_ok=True)
            if not placed:
                for folder in made:  # deepest first; only the ones made here, if still empty
                    try:
                        folder.rmdir()
                    except OSError:
                        break

    def _stream_into_store(self, source: str | os.PathLike, stamp: str | None) -> str | None:
        """Replace the stored roster by the file's, streamed, in one transaction; its
        digest, or None (rolled back) when it is to be loaded whole."""
        try:
            with self.store.replacing_roster() as db:
                digest = _stream_roster(db, source, stamp)
                # reads on this thread see the new roster; a refusal rolls it back whole
                self._check_startup_apps(self.store.roster_ids("districts"), _stored_apps(db))
        except NotStreamable:
            return None
        return digest

    def _roster_stamp(self) -> str | None:
        """The roster file's stamp (``_file_stamp``) tagged with the loader's layout, so a
        database written by another layout never matches; None for a roster given as a
        document or a file that cannot be stat'ed (then the digest decides)."""
        source = self.cfg.get("ROSTER") or default_roster_path()
        if isinstance(source, dict):
            return None
        stamp = _file_stamp(source)
        return f"{_SALT_TAG}:{stamp}" if stamp is not None else None

    def reload_district_ids(self) -> None:
        """Read the stored roster's district ids again (after the roster was replaced)."""
        self.clever.reload_district_ids()

    @property
    def roster(self) -> dict:
        """The whole roster document, read back from the store on each access.

        For tests and tools only: it reads every record.  Request handlers query the
        store for what they need (a user, a school's people, a page of a list).
        """
        return self.store.roster_document()

    def roster_apps(self) -> list[dict]:
        """The app registrations the roster file declares."""
        return json.loads(self.store.get_meta("roster_apps") or "[]")

    def _check_startup_apps(self, districts: list[str], roster_apps: list[dict],
                            stored: Callable[[str], Any] | None = None) -> None:
        """Refuse the start (``ConfigError`` for a config's ``[app]``) when an app it would
        register does not fit ``districts``, before anything is written for it: called
        inside a new roster's transaction, a refusal rolls the roster back too. ``stored``
        finds an app already registered (default: the store's)."""
        stored = stored or self.clever.app
        now = self.clock.iso()
        checked: dict[str, Any] = {}
        for spec in roster_apps:
            cid = spec.get("client_id")
            existing = checked.get(cid) or (stored(cid) if cid else None)
            app = normalize_app(spec, districts, existing, now)  # the roster's own: checked with it
            checked[app.client_id] = app
        for spec in self.cfg.get("APPS", []):  # a partner.toml's [app]: its mistakes are config ones
            cid = spec.get("client_id")
            existing = checked.get(cid) or (stored(cid) if cid else None)
            try:
                normalize_app(spec, districts, existing, now)
            except SimError as exc:  # e.g. a district the roster lacks (the rest: app_from_toml)
                where = self.cfg.get("CONFIG_FILE")
                raise ConfigError(f"{where + ': ' if where else ''}{app_problems(exc)}") from None

    def _register_startup_apps(self) -> None:
        """Register the roster's apps, then the config's (checked: ``_check_startup_apps``)."""
        for spec in self.roster_apps():
            self._register_startup_app(spec)
        for spec in self.cfg.get("APPS", []):
            self._register_startup_app(spec)

    def _register_startup_app(self, spec: dict) -> None:
        existing = self.clever.app(spec["client_id"]) if spec.get("client_id") else None
        self.clever.register_app(spec, existing)

    @property
    def district_ids(self) -> list[str]:
        return self.clever.district_ids

    @property
    def db_path(self) -> str:
        """The database file (``:memory:`` for none), as ``serve`` reports it."""
        return self.store.path

    # --- grades: notify and wait -------------------------------------------------------

    def retire(self) -> None:
        """Its tenant was deleted: running long-polls and live streams end now (``wait_for``
        returns), instead of holding its store, and its name, for up to their full time."""
        self.retired = True
        with self._grades_changed:
            self._grades_changed.notify_all()

    def grades_changed(self) -> None:
        """Wake every waiter (long-polls, live gradebook) after a grade was stored.

        Called after each grade POST: with nobody waiting (the common case) it takes no
        lock. Safe without one: a waiter counts itself in before its first probe, so a
        waiter this call did not see probes after the grade was stored, and finds it."""
        if self._waiters:
            with self._grades_changed:
                self._grades_changed.notify_all()

    @property
    def waiters(self) -> int:
        """Threads inside ``wait_for`` now (long-polls, live gradebook streams)."""
        return self._waiters

    def wait_for(self, probe: Callable[[], Any], timeout: float,
                 gone: Callable[[], bool] | None = None) -> Any:
        """Call ``probe`` until it returns something truthy or ``timeout`` seconds pass, or
        (checked at least every second) ``gone()`` says the client has left, or the
        simulator's tenant was deleted (``retire``)."""
        import time

        deadline = time.monotonic() + timeout
        with self._grades_changed:
            self._waiters += 1
        try:
            while True:
                with self._grades_changed:
                    found = probe()
                    if found:
                        return found
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self.retired or (gone is not None and gone()):
                        return found
                    self._grades_changed.wait(min(remaining, 1.0))
        finally:
            with self._grades_changed:
                self._waiters -= 1

    # --- reset and shutdown ------------------------------------------------------------

    def reset(self) -> None:
        """Back to a clean slate for the next test: roster and apps stay, activity goes."""
        self.store.reset_activity()
        self.journal.clear()
        self.faults.clear()
        self.rate.clear()
        self.clock.reset()
        self.grades_changed()

    def close(self) -> None:
        store = getattr(self, "store", None)  # None: a start refused before it was opened
        if store is not None:
            store.close()

    def abandon(self) -> None:
        """Close, and remove the database this start made for a new file (with its -wal,
        -shm, the folders made for it and a roster cache entry it saved): a refused start
        on a new database leaves no file. Also for a start refused after the simulator was
        built (``bind_simulator``: its server could not be made)."""
        self.close()
        made, self._made = getattr(self, "_made", []), []
        # files, then folders deepest first (one something else filled stays)
        for path in sorted(made, key=lambda p: (p.is_dir(), -len(p.parts))):
            with suppress(OSError):
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink(missing_ok=True)
