"""Clever's per-token rate limit: 1200 requests a minute, reported on every API answer."""

from __future__ import annotations

import threading


class RateLimiter:
    """Fixed one-minute windows per bearer token (Clever's ``X-RateLimit-*`` headers)."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float) -> tuple[int, int, int]:
        """Count one request; return (limit, remaining, reset epoch seconds). Remaining < 0 = over."""
        window = int(now // 60)
        with self._lock:
            start, used = self._windows.get(key, (window, 0))
            if start != window:
                start, used = window, 0
            used += 1
            self._windows[key] = (start, used)
            if len(self._windows) > 100_000:  # forget idle tokens; memory stays flat
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        return self.per_minute, self.per_minute - used, (start + 1) * 60

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()
