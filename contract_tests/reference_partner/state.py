"""What the app remembers, in memory: who is logged in (with their il token), open
attempts (one nonce per rendered activity, so a double submit reports once) and finished
attempts with what happened to their grades. A real app keeps this in its database.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal

from .content import Assignment


@dataclass
class Completion:
    """One finished attempt and what happened to its grade."""

    id: str
    user_id: str
    district_id: str
    assignment_id: str
    fraction: Decimal
    attempt: int
    source: str                       # "activity" or "test-hook"
    correct: int | None = None
    total: int | None = None
    payload: dict = field(default_factory=dict)
    sent: bool = False
    grade_status: int | None = None
    error: str | None = None
    tries: list = field(default_factory=list)


class PartnerState:
    """Everything the app remembers (in memory): logins, open attempts, completions."""

    MAX_OPEN_ATTEMPTS = 10_000

    def __init__(self, assignments: "OrderedDict[str, Assignment]"):
        self.assignments = assignments
        self._lock = threading.Lock()
        self._logins: dict[str, tuple[str, str]] = {}          # login id -> (user id, il token)
        self._latest: dict[str, str] = {}                      # user id -> newest login id
        self._open: OrderedDict[str, dict] = OrderedDict()      # attempt nonce -> attempt
        self.completions: dict[str, Completion] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._ids = itertools.count(1)

    # logins
    def add_login(self, user_id: str, token: str) -> str:
        login_id = secrets.token_urlsafe(24)
        with self._lock:
            self._logins[login_id] = (user_id, token)
            self._latest[user_id] = login_id
        return login_id

    def token_for(self, login_id: str | None) -> str | None:
        with self._lock:
            login = self._logins.get(login_id) if login_id else None
        return login[1] if login else None

    def il_token_of(self, user_id: str) -> str | None:
        """The il token of the user's newest login still open, if they have one."""
        with self._lock:
            login = self._logins.get(self._latest.get(user_id, ""))
        return login[1] if login else None

    def drop_login(self, login_id: str | None) -> None:
        with self._lock:
            login = self._logins.pop(login_id, None) if login_id else None
            if login and self._latest.get(login[0]) == login_id:
                del self._latest[login[0]]

    # attempts: a nonce per rendered activity, so a double submit reports once
    def open_attempt(self, user_id: str, assignment_id: str) -> str:
        nonce = secrets.token_urlsafe(18)
        with self._lock:
            self._open[nonce] = {"user_id": user_id, "assignment_id": assignment_id,
                                 "started": time.time(), "completion": None}
            while len(self._open) > self.MAX_OPEN_ATTEMPTS:
                self._open.popitem(last=False)
        return nonce

    def claim_attempt(self, nonce: str, user_id: str, assignment_id: str
                      ) -> tuple[dict | None, str | None]:
        """(attempt, None) for the first submit; (None, completion id) for a repeat."""
        with self._lock:
            attempt = self._open.get(nonce)
            if attempt is None or attempt["user_id"] != user_id \
                    or attempt["assignment_id"] != assignment_id:
                return None, None
            if attempt["completion"] is not None:
                return None, attempt["completion"]
            attempt["completion"] = self._new_id()
            return attempt, None

    def _new_id(self) -> str:
        return f"c{next(self._ids)}{secrets.token_hex(4)}"

    def record(self, *, user_id: str, district_id: str, assignment_id: str, fraction: Decimal,
               source: str, completion_id: str | None = None, correct: int | None = None,
               total: int | None = None) -> Completion:
        with self._lock:
            key = (user_id, assignment_id)
            self._counts[key] = self._counts.get(key, 0) + 1
            completion = Completion(id=completion_id or self._new_id(), user_id=user_id,
                                    district_id=district_id, assignment_id=assignment_id,
                                    fraction=fraction, attempt=self._counts[key], source=source,
                                    correct=correct, total=total)
            self.completions[completion.id] = completion
        return completion

    def completions_of(self, user_id: str) -> list[Completion]:
        with self._lock:
            return [c for c in self.completions.values() if c.user_id == user_id]
