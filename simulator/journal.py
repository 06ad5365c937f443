"""The request journal: every request to the emulated APIs, newest kept, oldest dropped."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any, Iterable

BODY_CAP = 16 * 1024  # bytes of each body kept for the inspector


def clip_body(raw: bytes | str | None) -> str | None:
    """A body as text for the journal, cut to BODY_CAP and marked when cut."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        text = raw[:BODY_CAP].decode("utf-8", errors="replace")
        cut = len(raw) > BODY_CAP
    else:
        text, cut = raw[:BODY_CAP], len(raw) > BODY_CAP
    return text + f"\n… [{len(raw) - BODY_CAP} more bytes not kept]" if cut else text


class RawEntry:
    """An inbound request as captured on the hot path; turned into a dict only when read."""

    __slots__ = ("fields", "environ_headers", "request_body", "response_headers", "response_body",
                 "when", "iso", "_dict")

    def __init__(self, fields: dict, environ_headers: list[tuple[str, str]], request_body: bytes | None,
                 response_headers: list[tuple[str, str]], response_body: bytes | None, when: float, iso):
        self.fields = fields            # filterable facts: method, path, status, user_id, …
        self.environ_headers = environ_headers
        self.request_body = request_body
        self.response_headers = response_headers
        self.response_body = response_body
        self.when = when
        self.iso = iso
        self._dict: dict | None = None

    def get(self, key: str, default=None):
        return self.fields.get(key, default)

    def __getitem__(self, key: str):
        return self.fields[key]

    def __setitem__(self, key: str, value) -> None:
        self.fields[key] = value

    def as_dict(self) -> dict:
        if self._dict is None:
            self._dict = {
                "id": self.fields["id"], "time": self.iso(self.when), **self.fields,
                "request_headers": {_header_name(k): v for k, v in self.environ_headers},
                "request_body": clip_body(self.request_body),
                "response_headers": dict(self.response_headers),
                "response_body": clip_body(self.response_body),
            }
        return self._dict


def _header_name(environ_key: str) -> str:
    """``HTTP_X_RATELIMIT`` → ``X-Ratelimit``; ``CONTENT_TYPE`` → ``Content-Type``."""
    name = environ_key[5:] if environ_key.startswith("HTTP_") else environ_key
    return "-".join(part.capitalize() for part in name.split("_"))


def _materialize(entry) -> dict:
    return entry.as_dict() if isinstance(entry, RawEntry) else entry


class Journal:
    """A capped, thread-safe list of request entries, numbered from 1, read as dicts."""

    def __init__(self, cap: int):
        self.cap = cap
        self._entries: deque[dict] = deque(maxlen=cap)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, entry: "dict[str, Any] | RawEntry"):
        """Append an entry (a dict, or a RawEntry from the request hot path)."""
        with self._lock:
            entry["id"] = next(self._ids)
            if len(self._entries) == self.cap:
                self.dropped += 1
            self._entries.append(entry)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.dropped = 0

    def get(self, entry_id: int) -> dict | None:
        with self._lock:
            for e in self._entries:
                if e["id"] == entry_id:
                    return _materialize(e)
        return None

    def query(self, *, path: str | None = None, method: str | None = None,
              status: int | None = None, user_id: str | None = None,
              assignment_id: str | None = None, client_id: str | None = None,
              direction: str | None = None, after_id: int = 0,
              limit: int = 100) -> tuple[list[dict], int]:
        """Entries matching every given filter, newest first, and how many matched in all."""
        with self._lock:
            snapshot = list(self._entries)
        matched = [e for e in reversed(snapshot) if _matches(e, path, method, status, user_id,
                                                              assignment_id, client_id,
                                                              direction, after_id)]
        return [_materialize(e) for e in matched[:limit]], len(matched)

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
