"""A directory of databases that already hold a roster, keyed by the roster's digest, so a
first start on a fresh machine (CI, a container) copies one file instead of parsing,
checking and storing a big roster again.

Only a roster that loaded is ever cached (a bad one writes nothing, here too); a cached
file holds the roster and nothing else (no apps, tokens or grades), and is taken only for a
database file that does not exist yet. The key covers the roster file's bytes, the loader's
layout salt and the schema, so a cache written by another version is never used. A copied
file is still checked like any restart: its stored digest must equal the roster's, or the
roster is loaded as usual. No Flask here.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sqlite3
from pathlib import Path

__all__ = ["RosterCache"]


def place_new_file(finished: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the ``finished`` file at ``target`` only if nothing is there: a hard link, never a
    rename over a database another process made meanwhile (FileExistsError); a rename where
    the file system has no hard links. The caller removes ``finished`` (missing_ok) after."""
    try:
        os.link(finished, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links here
        os.replace(finished, target)


def _new_part_file(target: Path) -> str:
    """A new, empty file next to ``target`` to write it aside in, created with the mode
    SQLite gives a new database (0644 less the umask), not ``mkstemp``'s 0600: the file
    becomes the user's database (or a cache entry others may read)."""
    while True:
        part = target.with_name(f"{target.name}.{secrets.token_hex(6)}.part")
        try:
            os.close(os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return str(part)


def _holds(path: str, roster_digest: str) -> bool:
    """Whether the file is a clever-sim database that stored exactly this roster."""
    try:
        probe = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            row = probe.execute("SELECT value FROM meta WHERE key = 'roster_digest'").fetchone()
        finally:
            probe.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == roster_digest


class RosterCache:
    """Databases holding one roster each, in ``directory``, named by key."""

    def __init__(self, directory: str | os.PathLike, schema_sql: str):
        self.directory = Path(directory)
        self._schema = hashlib.sha256(schema_sql.encode("utf-8")).hexdigest()

    def entry(self, roster_digest: str) -> Path:
        """The cache file for a roster digest (the digest already holds the layout salt)."""
        key = hashlib.sha256(f"{self._schema}:{roster_digest}".encode()).hexdigest()[:40]
        return self.directory / f"roster-{key}.db"

    def restore(self, roster_digest: str, db_path: str | os.PathLike) -> bool:
        """Copy the cached database for ``roster_digest`` to the new file ``db_path``
        (written aside, checked to hold that roster, then linked into place: never a
        half-copied or foreign database, never over one another process made meanwhile);
        False when there is none, it cannot be used, or the file exists by then."""
        source = self.entry(roster_digest)
        target = Path(db_path)
        if not source.is_file() or target.exists():
            return False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _new_part_file(target)
        except OSError:  # a folder that cannot be written: the roster is loaded (and says so)
            return False
        try:
            shutil.copyfile(source, tmp)  # the kernel's copy (sendfile) where there is one
            if not _holds(tmp, roster_digest):
                raise OSError("not this roster's database")
            # No fsync: the store's promise is the one of WAL + synchronous=NORMAL (a grade
            # survives the process crashing, not the machine), which the page cache keeps;
            # flushing 200 MB cost seconds of wall time on a busy disk.
            place_new_file(tmp, target)
        except OSError:  # FileExistsError too: another process made the database meanwhile
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)  # the copy's second name, or all of a failed one
        return True

    def save(self, conn: sqlite3.Connection, roster_digest: str) -> None:
        """Write the database behind ``conn`` (holding just the roster) as the cache entry,
        through SQLite's backup API (a consistent copy), aside then renamed. Best effort:
        a cache that cannot be written only costs the next start its time."""
        target = self.entry(roster_digest)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = _new_part_file(target)
        except OSError:
            return
        try:
            copy = sqlite3.connect(tmp)
            try:
                conn.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                copy.close()
            os.replace(tmp, target)
        except (OSError, sqlite3.Error):
            Path(tmp).unlink(missing_ok=True)
