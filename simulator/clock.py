"""Time source that tests (and partners, through ``/_sim/clock``) can move forward."""

from __future__ import annotations

import threading
import time


MAX_OFFSET_S = 10 * 365 * 86_400  # ten years ahead at most: every offset a snapshot can hold


class ClockBoundError(ValueError):
    """An advance that would move simulated time past ``MAX_OFFSET_S`` (nothing changed)."""

    def __init__(self, offset: float, seconds: float):
        self.offset = offset
        self.room = max(0.0, MAX_OFFSET_S - offset)
        super().__init__(f"the clock is {offset:g} s ahead and may be at most {MAX_OFFSET_S} s "
                         f"(10 years) ahead: advance by at most {self.room:g} s, or reset")


class Clock:
    """Wall-clock time plus an offset that only ever grows, at most ``MAX_OFFSET_S``."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        # (whole second, its "YYYY-MM-DDTHH:MM:SS" text): every grade POST stamps the time,
        # and most of them fall in a second already formatted (one tuple: read atomically)
        self._second: tuple[int, str] = (-1, "")

    def now(self) -> float:
        """Seconds since the epoch, as the simulator sees them."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move simulated time forward (e.g. past a code's 60-second life); returns the offset."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            if self._offset + seconds > MAX_OFFSET_S:
                raise ClockBoundError(self._offset, seconds)
            self._offset += seconds
            return self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    def iso(self, when: float | None = None) -> str:
        """ISO-8601 UTC with milliseconds and ``Z``, as Clever formats timestamps."""
        t = self.now() if when is None else when
        second, text = self._second
        if int(t) != second or t < 0:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
            if t >= 0:
                self._second = (int(t), text)
        return f"{text}.{int(t * 1000) % 1000:03d}Z"
