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


class Journal:
    """A capped, thread-safe list of request entries (dicts), numbered from 1."""

    def __init__(self, cap: int):
        self.cap = cap
        self._entries: deque[dict] = deque(maxlen=cap)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, entry: dict[str, Any]) -> dict:
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
                    return e
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
        return matched[:limit], len(matched)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterable[dict]:
        with self._lock:
            return iter(list(self._entries))


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
