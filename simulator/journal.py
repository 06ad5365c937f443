"""The request journal: every request to the emulated APIs, newest kept, oldest dropped."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any, Iterable, Sequence

BODY_CAP = 16 * 1024  # bytes of each body kept for the inspector
# Memory the journal may hold in all (bodies, headers, the entries themselves); the oldest
# entries go first. Sized so a server's memory stays flat under load (bench/soak.py): a
# grade POST's entry is ~3.4 KB, a /v3.0/me's ~2.5 KB, so 2 MiB holds the newest ~600
# grades or ~800 data API calls (JOURNAL_MAX_MB / journal_max_mb raise it). 4 MiB cost
# ~2.5-3 MB more RSS on the soak, a fifth of what a server may grow (×1.3 of ready).
BYTES_CAP = 2 * 1024 * 1024  # the default of JOURNAL_MAX_MB
# What an entry costs beyond its bodies' and headers' text, measured with tracemalloc on
# real requests (the entry, its facts, a tuple and a str per header): counting these too
# keeps BYTES_CAP a bound on memory, not only on body text.
ENTRY_OVERHEAD = 1000
HEADER_OVERHEAD = 110


def clip_body(raw: bytes | str | None, total: int | None = None) -> str | None:
    """A body as text for the journal, cut to BODY_CAP and marked when cut (``total``: the
    length of the whole body when ``raw`` was already cut on capture)."""
    if raw is None:
        return None
    total = len(raw) if total is None else total
    if isinstance(raw, bytes):
        text = raw[:BODY_CAP].decode("utf-8", errors="replace")
    else:
        text = raw[:BODY_CAP]
    return text + f"\n… [{total - BODY_CAP} more bytes not kept]" if total > BODY_CAP else text


def _keep(raw: bytes | None) -> tuple[bytes | None, int]:
    """What the journal keeps of a body on capture: at most BODY_CAP bytes, and the length."""
    if raw is None:
        return None, 0
    return (raw[:BODY_CAP] if len(raw) > BODY_CAP else raw), len(raw)


class RawEntry:
    """An inbound request as captured on the hot path; turned into a dict only when read."""

    __slots__ = ("fields", "environ_headers", "request_body", "response_headers", "response_body",
                 "when", "iso", "request_len", "response_len")

    def __init__(self, fields: dict, environ_headers: Sequence[tuple[str, str]],
                 request_body: bytes | None, response_headers: Sequence[tuple[str, str]],
                 response_body: bytes | None, when: float, iso):
        self.fields = fields            # filterable facts: method, path, status, user_id, …
        self.environ_headers = environ_headers
        # Bodies are cut to BODY_CAP now, so a 5 MB list answer costs 16 KiB of journal.
        self.request_body, self.request_len = _keep(request_body)
        self.response_headers = response_headers
        self.response_body, self.response_len = _keep(response_body)
        self.when = when
        self.iso = iso

    @property
    def size(self) -> int:
        """Bytes this entry holds in memory (bodies, headers, the entry), for the byte cap."""
        pairs = itertools.chain(self.environ_headers, self.response_headers)
        fields = self.fields  # the request line is the client's too: a URL may be ~250 KB
        return (ENTRY_OVERHEAD + len(self.request_body or b"") + len(self.response_body or b"")
                + len(fields.get("path") or "") + len(fields.get("query") or "")
                + HEADER_OVERHEAD * (len(self.environ_headers) + len(self.response_headers))
                + sum(map(len, itertools.chain.from_iterable(pairs)))
                + sum(map(len, self.fields.get("findings") or ())))

    def get(self, key: str, default=None):
        return self.fields.get(key, default)

    def __getitem__(self, key: str):
        return self.fields[key]

    def __setitem__(self, key: str, value) -> None:
        self.fields[key] = value

    def as_dict(self) -> dict:
        """The entry as the inspector and control API show it (built on each read, not
        kept: the journal's memory is the captured facts only)."""
        return {
            "id": self.fields["id"], "time": self.iso(self.when), **self.fields,
            "request_headers": {_header_name(k): v for k, v in self.environ_headers},
            "request_body": clip_body(self.request_body, self.request_len),
            "response_headers": dict(self.response_headers),
            "response_body": clip_body(self.response_body, self.response_len),
        }


def _header_name(environ_key: str) -> str:
    """``HTTP_X_RATELIMIT`` → ``X-Ratelimit``; ``CONTENT_TYPE`` → ``Content-Type``."""
    name = environ_key[5:] if environ_key.startswith("HTTP_") else environ_key
    return "-".join(part.capitalize() for part in name.split("_"))


def _materialize(entry) -> dict:
    return entry.as_dict() if isinstance(entry, RawEntry) else entry


def _size(entry) -> int:
    if isinstance(entry, RawEntry):
        return entry.size
    text = 0  # an outbound entry (a dict): count its strings, one level into headers
    for value in entry.values():
        if isinstance(value, (str, bytes)):
            text += len(value)
        elif isinstance(value, dict):
            text += sum(HEADER_OVERHEAD + len(str(k)) + len(str(v)) for k, v in value.items())
    return ENTRY_OVERHEAD + text

def rejected_grade_key(entry) -> tuple[str, str, str] | None:
    """(user_id, client_id, assignment_id) of a rejected ``POST /v1/grade`` entry; None for
    any other entry (or one that does not name its student, app and assignment)."""
    if entry.get("path") != "/v1/grade":  # most entries: one lookup
        return None
    status = entry.get("status")
    if entry.get("method") != "POST" or not isinstance(status, int) or status < 400:
        return None
    key = (entry.get("user_id"), entry.get("client_id"), entry.get("assignment_id"))
    return key if all(isinstance(part, str) and part for part in key) else None


class RejectedGrades:
    """The rejected grade POSTs still in the journal, by (student, app, assignment): how
    many, and the newest. Kept as entries come and go, so a gradebook asks only about its
    own students instead of scanning the whole journal (10,000 entries: 16 → 552 ms a page)."""

    __slots__ = ("_by_user",)

    def __init__(self):
        # user_id → {(client_id, assignment_id): [count, newest entry]}
        self._by_user: dict[str, dict[tuple[str, str], list]] = {}

    def added(self, key: tuple[str, str, str], entry) -> None:
        found = self._by_user.setdefault(key[0], {}).setdefault(key[1:], [0, None])
        found[0] += 1
        found[1] = entry

    def dropped(self, key: tuple[str, str, str]) -> None:
        """The journal dropped its oldest entry under ``key`` (the newest stays, or none)."""
        per_user = self._by_user[key[0]]
        found = per_user[key[1:]]
        found[0] -= 1
        if found[0] == 0:
            del per_user[key[1:]]
            if not per_user:
                del self._by_user[key[0]]

    def of(self, users: Iterable[str]) -> list[tuple[tuple[str, str, str], int, Any]]:
        """((user_id, client_id, assignment_id), count, newest entry) for ``users``."""
        return [((user, client, assignment), count, entry) for user in users
                for (client, assignment), (count, entry) in self._by_user.get(user, {}).items()]


class Journal:
    """A capped, thread-safe list of request entries, numbered from 1, read as dicts.

    Two caps keep memory flat under any load: ``cap`` entries, and ``bytes_cap`` bytes
    of bodies and headers (bodies are cut to BODY_CAP on capture); the oldest go first.
    Rejected grade POSTs are also indexed by student (``rejected_grades``), bounded with
    the entries they index.
    """

    def __init__(self, cap: int, bytes_cap: int = BYTES_CAP):
        self.cap = cap
        self.bytes_cap = bytes_cap
        self._entries: deque = deque()
        self._sizes: deque[int] = deque()
        self._keys: deque = deque()  # each entry's rejected_grade_key (None: not one)
        self._rejected = RejectedGrades()
        self.bytes = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, entry: "dict[str, Any] | RawEntry"):
        """Append an entry (a dict, or a RawEntry from the request hot path)."""
        size = _size(entry)
        key = rejected_grade_key(entry)
        with self._lock:
            entry["id"] = next(self._ids)
            self._entries.append(entry)
            self._sizes.append(size)
            self._keys.append(key)
            if key is not None:
                self._rejected.added(key, entry)
            self.bytes += size
            while self._entries and (len(self._entries) > self.cap
                                     or (self.bytes > self.bytes_cap and len(self._entries) > 1)):
                self._entries.popleft()
                self.bytes -= self._sizes.popleft()
                gone = self._keys.popleft()
                if gone is not None:
                    self._rejected.dropped(gone)
                self.dropped += 1
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
            self._keys.clear()
            self._rejected = RejectedGrades()
            self.bytes = 0
            self.dropped = 0

    def raw(self) -> list:
        """A snapshot of the entries as stored (oldest first): filter on ``get`` and
        materialise (``as_dict``) only the ones shown."""
        with self._lock:
            return list(self._entries)

    @staticmethod
    def materialize(entry) -> dict:
        return _materialize(entry)

    def get(self, entry_id: int) -> dict | None:
        found = None
        with self._lock:
            if self._entries:  # ids are consecutive: index straight in
                i = entry_id - self._entries[0]["id"]
                if 0 <= i < len(self._entries) and self._entries[i]["id"] == entry_id:
                    found = self._entries[i]
                else:
                    found = next((e for e in self._entries if e["id"] == entry_id), None)
        return None if found is None else _materialize(found)

    def query(self, *, path: str | None = None, method: str | None = None,
              status: int | None = None, user_id: str | None = None,
              assignment_id: str | None = None, client_id: str | None = None,
              direction: str | None = None, after_id: int = 0,
              limit: int = 100, oldest_first: bool = False) -> tuple[list[dict], int]:
        """Entries matching every given filter, newest first (``oldest_first``: oldest first,
        so ``after_id`` = the last id read pages through any number of entries), and how
        many matched in all."""
        if after_id <= 0 and all(f is None for f in (path, method, status, user_id,
                                                     assignment_id, client_id, direction)):
            # Unfiltered (the common read): the newest ``limit`` only, not a pass over a
            # full journal's 10,000 entries on every call.
            with self._lock:
                total = len(self._entries)
                ends = iter(self._entries) if oldest_first else reversed(self._entries)
                page = list(itertools.islice(ends, limit))
            return [_materialize(e) for e in page], total
        with self._lock:
            snapshot = list(self._entries)
        matched = [e for e in (snapshot if oldest_first else reversed(snapshot))
                   if _matches(e, path, method, status, user_id, assignment_id, client_id,
                               direction, after_id)]
        return [_materialize(e) for e in matched[:limit]], len(matched)

    def rejected_grades(self, users: Iterable[str]) -> list[tuple[tuple[str, str, str], int, Any]]:
        """The rejected grade POSTs of ``users`` still journaled: ((user_id, client_id,
        assignment_id), how many, the newest raw entry); costs what those users have, not
        the journal's length."""
        with self._lock:
            return self._rejected.of(users)

    def newest(self, skip: int, count: int) -> tuple[list, int]:
        """(up to ``count`` raw entries, newest first, after skipping the ``skip`` newest;
        the journal's length), without copying the whole journal."""
        with self._lock:
            total = len(self._entries)
            return list(itertools.islice(reversed(self._entries), skip, skip + count)), total

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterable[dict]:
        with self._lock:
            snapshot = list(self._entries)
        return iter([_materialize(e) for e in snapshot])


def _matches(e: dict, path, method, status, user_id, assignment_id, client_id, direction,
             after_id) -> bool:
    if e["id"] <= after_id:
        return False
    if path is not None and path not in e.get("path", ""):
        return False
    if method is not None and e.get("method") != method.upper():
        return False
    if status is not None and e.get("status") != status:
        return False
    for key, want in (("user_id", user_id), ("assignment_id", assignment_id),
                      ("client_id", client_id), ("direction", direction)):
        if want is not None and e.get(key) != want:
            return False
    return True
