"""How the app talks to Clever over HTTP: one pooled client, timeouts, and the retry policy.

Retried: 429, 5xx and network errors (connection refused or dropped, timeouts), at most
``MAX_RETRIES`` times, waiting ``Retry-After`` when Clever sends it and a growing pause
(``BACKOFF_S``) when it does not. Never retried here: every other 4xx, which no retry can
fix (a 401 is the caller's business: it needs a new token first, see ``grades.py``).
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import httpx

log = logging.getLogger("reference_partner")

TIMEOUT = httpx.Timeout(connect=3.0, read=10.0, write=10.0, pool=3.0)
MAX_RETRIES = 3                      # retries after the first try (so at most 4 tries)
BACKOFF_S = (0.15, 0.3, 0.6)         # waits when Clever sends no usable Retry-After (doubling)
RETRY_AFTER_CAP_S = 10.0             # never wait longer than this, whatever Retry-After says


class CleverError(Exception):
    """Clever answered with an error (``status``/``body``) or could not be reached."""

    def __init__(self, message: str, status: int | None = None, body: Any = None,
                 tries: list | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.tries = tries or []


@dataclass
class Sent:
    """A successful call after ``tries`` (each a status code or a transport error name)."""

    response: httpx.Response
    tries: list


def retry_delay(response: httpx.Response | None, retry_index: int) -> float:
    """Seconds to wait before retry number ``retry_index`` (0-based).

    ``Retry-After`` (delta-seconds or an HTTP date) wins, capped at RETRY_AFTER_CAP_S;
    without it, the doubling backoff 0.15 s, 0.3 s, 0.6 s.
    """
    fallback = BACKOFF_S[min(retry_index, len(BACKOFF_S) - 1)]
    raw = response.headers.get("Retry-After") if response is not None else None
    if raw is None:
        return fallback
    raw = raw.strip()
    if raw.isdigit():
        return min(float(raw), RETRY_AFTER_CAP_S)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return fallback
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, min((when - datetime.now(timezone.utc)).total_seconds(), RETRY_AFTER_CAP_S))


def is_retryable(status: int) -> bool:
    """429 and 5xx are worth another try; every other 4xx is the caller's bug."""
    return status == 429 or status >= 500


def body_of(response: httpx.Response) -> Any:
    """The answer's JSON, or (for an HTML error page, say) its first 2000 characters."""
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]


def describe(body: Any) -> str:
    """Clever's error in a sentence: its message and, for grades, each field problem."""
    if isinstance(body, dict):
        text = body.get("message") or body.get("error_description") or body.get("error") or ""
        problems = [f"{e.get('field')}: {e.get('problem')}" for e in body.get("errors", [])
                    if isinstance(e, dict)]
        return "; ".join([str(text)] + problems) if problems else str(text)
    return str(body or "")[:300]


class Transport:
    """One pooled httpx client for every call to Clever, and the retry loop."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep):
        self.sleep = sleep
        # trust_env=False: talk to exactly the configured base URLs, never through a proxy
        # picked up from the environment (CI machines often set HTTP(S)_PROXY).
        self.http = httpx.Client(timeout=TIMEOUT, trust_env=False,
                                 headers={"User-Agent": "clever-reference-partner/1.0"})

    def close(self) -> None:
        self.http.close()

    def once(self, call: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
        """One try (a code exchange: codes are single-use); a network error is CleverError."""
        try:
            return call(self.http)
        except httpx.HTTPError as exc:
            raise CleverError(f"could not reach Clever ({type(exc).__name__})") from None

    def with_retries(self, call: Callable[[httpx.Client], httpx.Response], what: str) -> Sent:
        """``call`` until a 2xx; retry 429/5xx/network errors (see the module docstring)."""
        tries: list = []
        for attempt in range(MAX_RETRIES + 1):
            last = attempt == MAX_RETRIES
            try:
                resp = call(self.http)
            except httpx.TransportError as exc:
                tries.append(type(exc).__name__)
                if last:
                    raise CleverError(f"could not reach Clever to send the {what} "
                                      f"({type(exc).__name__}), tried {len(tries)} times",
                                      tries=tries) from None
                log.info("%s: %s, retrying", what, type(exc).__name__)
                self.sleep(retry_delay(None, attempt))
                continue
            tries.append(resp.status_code)
            if 200 <= resp.status_code < 300:
                return Sent(resp, tries)
            if not is_retryable(resp.status_code) or last:
                raise _refused(resp, what, tries)
            log.info("%s: HTTP %s, retrying", what, resp.status_code)
            self.sleep(retry_delay(resp, attempt))
        raise AssertionError("unreachable")  # pragma: no cover


def _refused(resp: httpx.Response, what: str, tries: list) -> CleverError:
    body = body_of(resp)
    more = f" after {len(tries)} tries" if len(tries) > 1 else ""
    return CleverError(f"Clever refused the {what} with HTTP {resp.status_code}{more}: "
                       f"{describe(body)}".rstrip(": "), resp.status_code, body, tries)
