"""Fault injection: make the next N matching requests fail or slow down, on purpose."""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import dataclass, field


@dataclass
class Fault:
    """A planned failure for requests whose path matches ``path`` (``*`` globs allowed)."""

    path: str
    status: int | None = None          # None: no error, only latency
    count: int = 1                     # how many matching requests it still applies to
    method: str | None = None
    retry_after: int | None = None
    latency_ms: int = 0
    body: dict | None = None
    drop: bool = False                 # close the connection without any answer
    id: int = 0
    hits: int = field(default=0)

    def matches(self, method: str, path: str) -> bool:
        """The method (if given) and the path, with or without a final slash: the simulator
        serves ``/v1/grade/`` as ``/v1/grade``, so a fault on one applies to both."""
        if self.method and self.method.upper() != method.upper():
            return False
        path, wanted = _unslashed(path), _unslashed(self.path)
        return path == wanted or fnmatch.fnmatchcase(path, wanted)

    def as_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "method": self.method, "status": self.status,
                "count": self.count, "retry_after": self.retry_after,
                "latency_ms": self.latency_ms, "body": self.body, "drop": self.drop,
                "hits": self.hits}


def _unslashed(path: str) -> str:
    return path.rstrip("/") or "/"


class Faults:
    """The planned faults, consumed in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, counted down (and dropped at zero)."""
        if not self._faults:
            return None
        with self._lock:
            for f in self._faults:
                if f.matches(method, path):
                    f.count -= 1
                    f.hits += 1
                    if f.count <= 0:
                        self._faults.remove(f)
                    return f
        return None

    def list(self) -> list[dict]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
