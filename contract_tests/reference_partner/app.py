"""The reference partner: what a partner's app does on its side of Clever grade passback.

Seed steps, as this app implements them:

1. Assignments API (``GET /clever/assignments``): Schoology (through Clever) calls it with
   a teacher's bearer token; the app checks the token with ``GET {API_URL}/v3.0/me`` and
   answers the seed's ``{"assignments": [...]}``.
2. Login with assignment state (``GET /clever/callback``): exchange the code at
   ``{CLEVER_URL}/oauth/tokens`` (HTTP Basic client credentials), read ``/v3.0/me``, log
   the user in and, for ``state=assignment:{id}``, send them to ``/assignments/{id}``.
3. Grade passback: when a student finishes, ``POST {GRADES_URL}/v1/grade`` with the
   student's il token, once, retrying only 429/5xx/connection errors.

Plus the contract suite's provider-state hook, ``POST /test-hooks/complete``, which
records a completion without a browser and reports it with a district-app token.

It knows nothing about the simulator: only Clever's three base URLs and its credentials.
All state is in memory (one process); the il token never leaves the server (the signed
session cookie holds a login id, not the token).
"""

from __future__ import annotations

import email.utils
import itertools
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote, urlencode

import httpx
from flask import Flask, Response, abort, jsonify, redirect, render_template, request, session
from werkzeug.exceptions import HTTPException

log = logging.getLogger("reference_partner")

# --- outbound HTTP policy ------------------------------------------------------------------

TIMEOUT = httpx.Timeout(connect=3.0, read=10.0, write=10.0, pool=3.0)
MAX_RETRIES = 3                      # retries after the first try (so at most 4 tries)
BACKOFF_S = (0.2, 0.5, 1.0)          # waits when Clever sends no usable Retry-After
RETRY_AFTER_CAP_S = 10.0             # never wait longer than this, whatever Retry-After says

LAUNCH_PREFIX = "assignment:"        # seed: state=assignment:{assignmentID}
EXTENSION = "reference_partner"
REQUIRED_CONFIG = ("CLEVER_URL", "API_URL", "GRADES_URL", "CLIENT_ID", "CLIENT_SECRET")
ID_LIMIT = 256                       # longest user/district/assignment id the hook accepts


# --- assignments ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    """One question: multiple choice when ``choices`` is given, else a number to type."""

    prompt: str
    answer: str
    choices: tuple[str, ...] = ()

    def is_correct(self, given: str | None) -> bool:
        if given is None:
            return False
        given = given.strip()
        if self.choices:
            return given == self.answer
        try:  # numbers: "1.20" and "1.2" are the same answer
            return Decimal(given.replace(",", "")) == Decimal(self.answer)
        except (InvalidOperation, ValueError):
            return given.lower() == self.answer.lower()


@dataclass(frozen=True)
class Assignment:
    """An assignment as the app keeps it; ``listing()`` is what Clever sees.

    ``score_format`` is how this app reports the assignment's score: ``"percentage"``
    (0–1.0) or ``"points"`` (scoreGiven/scoreMaximum, ``points_each`` per question).
    """

    id: str
    name: str
    questions: tuple[Question, ...]
    description: str | None = None
    standards: tuple[str, ...] = ()
    score_format: str = "percentage"
    points_each: int = 1

    @property
    def max_points(self) -> int:
        return self.points_each * len(self.questions)

    def listing(self) -> dict:
        """The seed's assignment object: name, id, type, optional description and standards."""
        out: dict[str, Any] = {"name": self.name, "id": self.id, "type": "assignment"}
        if self.description:
            out["description"] = self.description
        if self.standards:
            out["standards"] = list(self.standards)
        return out

    def score_fields(self, fraction: Decimal) -> dict:
        """The score part of the grade POST, in this assignment's own format (Clever's grade passback guide, Step 3)."""
        if self.score_format == "points":
            return {"scoreGiven": json_number(fraction * self.max_points),
                    "scoreMaximum": self.max_points}
        return {"percentage": json_number(fraction)}

    def score_text(self, fraction: Decimal) -> str:
        if self.score_format == "points":
            return f"{json_number(fraction * self.max_points)} / {self.max_points} points"
        return f"{json_number(round(fraction * 100, 1))}%"


def _mc(prompt: str, answer: str, *others: str) -> Question:
    choices = [answer, *others]
    rotate = len(prompt) % len(choices)  # a stable, not-always-first position for the answer
    return Question(prompt, answer, tuple(choices[rotate:] + choices[:rotate]))


DEFAULT_ASSIGNMENTS: tuple[Assignment, ...] = (
    Assignment(
        id="frac5nf1", name="Adding Fractions with Unlike Denominators",
        description="Find a common denominator, then add fractions such as 1/3 + 1/4.",
        standards=("CCSS.MATH.CONTENT.5.NF.A.1",), score_format="points", points_each=1,
        questions=(
            _mc("1/2 + 1/4 = ?", "3/4", "2/6", "2/4", "1/8"),
            _mc("1/3 + 1/6 = ?", "1/2", "2/9", "2/6", "1/9"),
            _mc("2/5 + 1/10 = ?", "1/2", "3/15", "3/10", "2/50"),
            _mc("3/4 + 1/8 = ?", "7/8", "4/12", "4/8", "1"),
            Question("What is the least common denominator of 1/6 and 3/8?", "24"),
        )),
    Assignment(
        id="dec5nbt7", name="Multiplying Decimals",
        description="Multiply decimals to hundredths using place value.",
        standards=("CCSS.MATH.CONTENT.5.NBT.B.7",), score_format="percentage",
        questions=(
            Question("0.4 × 3 = ?", "1.2"),
            Question("2.5 × 4 = ?", "10"),
            Question("0.3 × 0.2 = ?", "0.06"),
            Question("1.5 × 1.5 = ?", "2.25"),
            Question("0.07 × 10 = ?", "0.7"),
        )),
    Assignment(
        id="vol5md5", name="Volume of Rectangular Prisms",
        standards=("CCSS.MATH.CONTENT.5.MD.C.5.B",), score_format="points", points_each=2,
        questions=(
            Question("A prism is 2 units long, 3 units wide and 4 units tall. What is its volume "
                     "in cubic units?", "24"),
            Question("A box is 5 cm by 5 cm by 2 cm. What is its volume in cubic cm?", "50"),
            Question("A prism has a base area of 12 square units and a height of 5 units. What "
                     "is its volume in cubic units?", "60"),
            Question("How many 1-inch cubes fill a box that is 3 by 3 by 3 inches?", "27"),
            Question("A fish tank is 10 in long, 4 in wide and 6 in tall. What is its volume in "
                     "cubic inches?", "240"),
        )),
    Assignment(
        id="read5rl2", name="Finding the Theme of a Story",
        description="Read \u201cThe Tortoise and the Hare\u201d and identify its theme.",
        standards=("CCSS.ELA-LITERACY.RL.5.2",), score_format="percentage",
        questions=(
            _mc("What is the theme of a story?", "The lesson or message of the story",
                "The place where the story happens", "The main character's name",
                "The title of the story"),
            _mc("Why does the Hare lose the race?", "He takes a nap because he is overconfident",
                "The Tortoise tricks him", "He gets lost", "He hurts his leg"),
            _mc("Which sentence best states the theme?", "Slow and steady wins the race",
                "Hares are faster than tortoises", "Races are never fair",
                "Always rest before a race"),
            _mc("Which detail best supports the theme?",
                "The Tortoise keeps walking without stopping", "The Hare has long ears",
                "The race starts in the morning", "Many animals watch the race"),
            _mc("What could the Hare learn from the story?",
                "Being boastful can make you careless", "Tortoises like to race",
                "Naps are always a bad idea", "Winning does not matter"),
        )),
    Assignment(
        id="mult5fluency", name="Multiplication Facts Fluency Check",
        score_format="percentage",
        questions=(
            Question("7 × 8 = ?", "56"),
            Question("6 × 9 = ?", "54"),
            Question("12 × 4 = ?", "48"),
            Question("9 × 9 = ?", "81"),
            Question("8 × 6 = ?", "48"),
        )),
    Assignment(
        id="matter5ps1", name="States of Matter Quiz",
        description="Solids, liquids and gases, and how matter changes from one state to another.",
        score_format="points", points_each=4,
        questions=(
            _mc("Which state of matter has a definite shape?", "Solid", "Liquid", "Gas"),
            _mc("What happens to water when it freezes?", "It changes from a liquid to a solid",
                "It changes from a gas to a liquid", "It changes from a solid to a gas"),
            _mc("Steam is water in which state?", "Gas", "Solid", "Liquid"),
            _mc("When an ice cube melts, what happens to its mass?", "It stays the same",
                "It gets larger", "It gets smaller"),
            _mc("In which state are the particles farthest apart?", "Gas", "Liquid", "Solid"),
        )),
)

_GENERIC_QUESTIONS = (
    Question("2 + 3 = ?", "5"), Question("10 − 4 = ?", "6"), Question("3 × 4 = ?", "12"),
    Question("20 ÷ 5 = ?", "4"), Question("7 + 8 = ?", "15"),
)


def load_assignments(spec: Iterable[Any] | None) -> "OrderedDict[str, Assignment]":
    """The app's assignments: the defaults, or an ``ASSIGNMENTS`` override.

    An override item is an ``Assignment`` or a dict with ``id`` and ``name`` and optionally
    ``description``, ``standards``, ``format`` ("percentage"/"points"), ``points_each`` and
    ``questions`` (``[{"prompt", "answer", "choices"?}]``; five simple sums when absent).
    """
    items = DEFAULT_ASSIGNMENTS if spec is None else spec
    out: OrderedDict[str, Assignment] = OrderedDict()
    for i, item in enumerate(items):
        assignment = item if isinstance(item, Assignment) else _assignment_from_dict(item, i)
        if assignment.id in out:
            raise ValueError(f"ASSIGNMENTS[{i}]: duplicate id {assignment.id!r}")
        out[assignment.id] = assignment
    if not out:
        raise ValueError("ASSIGNMENTS must list at least one assignment")
    return out


def _assignment_from_dict(item: Any, i: int) -> Assignment:
    where = f"ASSIGNMENTS[{i}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be an object with id and name")
    for key in ("id", "name"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ValueError(f"{where}.{key} must be a non-empty string")
    fmt = item.get("format", "percentage")
    if fmt not in ("percentage", "points"):
        raise ValueError(f"{where}.format must be 'percentage' or 'points'")
    points_each = item.get("points_each", 1)
    if isinstance(points_each, bool) or not isinstance(points_each, int) or points_each < 1:
        raise ValueError(f"{where}.points_each must be a whole number ≥ 1")
    standards = item.get("standards") or ()
    if not isinstance(standards, (list, tuple)) or not all(isinstance(x, str) for x in standards):
        raise ValueError(f"{where}.standards must be a list of strings")
    if item.get("description") is not None and not isinstance(item["description"], str):
        raise ValueError(f"{where}.description must be a string")
    questions = []
    for j, q in enumerate(item.get("questions") or ()):
        if not isinstance(q, Mapping) or not isinstance(q.get("prompt"), str) \
                or not isinstance(q.get("answer"), (str, int, float)):
            raise ValueError(f"{where}.questions[{j}] needs a prompt (string) and an answer")
        choices = tuple(str(c) for c in q.get("choices") or ())
        if choices and str(q["answer"]) not in choices:
            raise ValueError(f"{where}.questions[{j}].answer must be one of its choices")
        questions.append(Question(q["prompt"], str(q["answer"]), choices))
    return Assignment(id=item["id"], name=item["name"],
                      questions=tuple(questions) or _GENERIC_QUESTIONS,
                      description=item.get("description"),
                      standards=tuple(standards), score_format=fmt,
                      points_each=points_each)


def json_number(value: Decimal) -> int | float:
    """A Decimal as the JSON number a partner would send: 4 not 4.0, 3.5 not '3.5'."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


# --- talking to Clever ---------------------------------------------------------------------

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
    without it, the fixed backoff 0.2 s, 0.5 s, 1 s.
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


def _body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]


def _describe(body: Any) -> str:
    """Clever's error in a sentence: its message and, for grades, each field problem."""
    if isinstance(body, dict):
        text = body.get("message") or body.get("error_description") or body.get("error") or ""
        problems = [f"{e.get('field')}: {e.get('problem')}" for e in body.get("errors", [])
                    if isinstance(e, dict)]
        return "; ".join([str(text)] + problems) if problems else str(text)
    return str(body or "")[:300]


class Clever:
    """Clever's endpoints as this app uses them, over one pooled httpx client."""

    def __init__(self, cfg: Mapping[str, Any], sleep: Callable[[float], None] = time.sleep):
        self.clever_url = cfg["CLEVER_URL"].rstrip("/")
        self.api_url = cfg["API_URL"].rstrip("/")
        self.grades_url = cfg["GRADES_URL"].rstrip("/")
        self.client_id = cfg["CLIENT_ID"]
        self.client_secret = cfg["CLIENT_SECRET"]
        self.sleep = sleep
        # trust_env=False: talk to exactly the configured base URLs, never through a proxy
        # picked up from the environment (CI machines often set HTTP(S)_PROXY).
        self.http = httpx.Client(timeout=TIMEOUT, trust_env=False,
                                 headers={"User-Agent": "clever-reference-partner/1.0"})
        self._district_tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def authorize_url(self, redirect_uri: str, state: str | None = None) -> str:
        params = {"response_type": "code", "client_id": self.client_id,
                  "redirect_uri": redirect_uri}
        if state is not None:
            params["state"] = state
        return f"{self.clever_url}/oauth/authorize?{urlencode(params)}"

    # --- login --------------------------------------------------------------------------

    def exchange_code(self, code: str, redirect_uri: str) -> str:
        """The il token for an authorization code (single try: codes are single-use)."""
        try:
            resp = self.http.post(f"{self.clever_url}/oauth/tokens",
                                  auth=(self.client_id, self.client_secret),
                                  json={"code": code, "grant_type": "authorization_code",
                                        "redirect_uri": redirect_uri})
        except httpx.HTTPError as exc:
            raise CleverError(f"could not reach Clever ({type(exc).__name__})") from None
        body = _body_of(resp)
        if resp.status_code != 200:
            raise CleverError(_describe(body) or f"HTTP {resp.status_code}", resp.status_code, body)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise CleverError("Clever's token answer has no access_token", resp.status_code, body)
        return token

    def me(self, token: str) -> dict:
        """``GET /v3.0/me``: ``{"id", "district", "type"}`` of whoever owns the token."""
        try:
            resp = self.http.get(f"{self.api_url}/v3.0/me",
                                 headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise CleverError(f"could not reach Clever ({type(exc).__name__})") from None
        body = _body_of(resp)
        if resp.status_code != 200:
            raise CleverError(_describe(body) or f"HTTP {resp.status_code}", resp.status_code, body)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) \
                or not isinstance(data.get("district"), str):
            raise CleverError("Clever's /me answer has no data.id/data.district", 200, body)
        return data

    def user_profile(self, token: str, user_id: str) -> tuple[str | None, str | None]:
        """(display name, role) from ``/v3.0/users/{id}``; (None, None) when unavailable."""
        try:
            resp = self.http.get(f"{self.api_url}/v3.0/users/{quote(user_id, safe='')}",
                                 headers={"Authorization": f"Bearer {token}"})
            data = resp.json().get("data") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None, None
        if not isinstance(data, dict):
            return None, None
        name = data.get("name") if isinstance(data.get("name"), dict) else {}
        shown = " ".join(str(name[k]) for k in ("first", "last") if name.get(k)) or None
        roles = data.get("roles") if isinstance(data.get("roles"), dict) else {}
        role = next((r for r in ("student", "teacher", "staff", "district_admin") if r in roles),
                    None)
        return shown, role

    # --- grades -------------------------------------------------------------------------

    def district_token(self, district_id: str, *, refresh: bool = False) -> str:
        """The district-app token for ``district_id`` (cached; ``refresh`` fetches again)."""
        with self._lock:
            if not refresh and district_id in self._district_tokens:
                return self._district_tokens[district_id]
        sent = self._with_retries(lambda: self.http.get(
            f"{self.clever_url}/oauth/tokens", auth=(self.client_id, self.client_secret),
            params={"owner_type": "district", "district": district_id}), "district-app token")
        body = _body_of(sent.response)
        data = body.get("data") if isinstance(body, dict) else None
        tokens = [t for t in data or [] if isinstance(t, dict)
                  and isinstance(t.get("access_token"), str)
                  and (t.get("owner") or {}).get("id", district_id) == district_id]
        if not tokens:
            raise CleverError(f"Clever lists no district-app token for district {district_id}: "
                              "is the app connected to that district?", sent.response.status_code,
                              body, sent.tries)
        token = tokens[0]["access_token"]
        with self._lock:
            self._district_tokens[district_id] = token
        return token

    def post_grade(self, token: str, body: dict) -> Sent:
        """``POST /v1/grade`` once, retrying 429/5xx/connection errors (at most 3 times)."""
        return self._with_retries(lambda: self.http.post(
            f"{self.grades_url}/v1/grade", json=body,
            headers={"Authorization": f"Bearer {token}"}), "grade")

    def _with_retries(self, call: Callable[[], httpx.Response], what: str) -> Sent:
        tries: list = []
        for attempt in range(MAX_RETRIES + 1):
            last = attempt == MAX_RETRIES
            try:
                resp = call()
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
                body = _body_of(resp)
                more = f" after {len(tries)} tries" if len(tries) > 1 else ""
                raise CleverError(f"Clever refused the {what} with HTTP {resp.status_code}{more}: "
                                  f"{_describe(body)}".rstrip(": "), resp.status_code, body, tries)
            log.info("%s: HTTP %s, retrying", what, resp.status_code)
            self.sleep(retry_delay(resp, attempt))
        raise AssertionError("unreachable")  # pragma: no cover


# --- the app's own records -----------------------------------------------------------------

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

    def __init__(self, cfg: Mapping[str, Any], assignments: "OrderedDict[str, Assignment]"):
        self.clever = Clever(cfg)
        self.assignments = assignments
        self._lock = threading.Lock()
        self._logins: dict[str, str] = {}                       # login id -> il token
        self._open: OrderedDict[str, dict] = OrderedDict()      # attempt nonce -> attempt
        self.completions: dict[str, Completion] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._ids = itertools.count(1)

    def close(self) -> None:
        self.clever.close()

    # logins
    def add_login(self, token: str) -> str:
        login_id = secrets.token_urlsafe(24)
        with self._lock:
            self._logins[login_id] = token
        return login_id

    def token_for(self, login_id: str | None) -> str | None:
        with self._lock:
            return self._logins.get(login_id) if login_id else None

    def drop_login(self, login_id: str | None) -> None:
        with self._lock:
            self._logins.pop(login_id, None)

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


def grade_body(assignment: Assignment, completion: Completion,
               time_spent_s: int | None = None) -> dict:
    """The POST /v1/grade body: ids, the score in the assignment's format, then context."""
    body: dict[str, Any] = {"assignmentID": assignment.id, "userID": completion.user_id}
    body.update(assignment.score_fields(completion.fraction))
    body["attempt"] = completion.attempt
    if time_spent_s is not None:
        body["timeSpentSeconds"] = time_spent_s
    body["completedAt"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return body


def report(state: PartnerState, completion: Completion, body: dict, token: str,
           district_token: bool = False) -> Completion:
    """Send one completion's grade (exactly one successful POST) and record the outcome."""
    completion.payload = body
    try:
        try:
            sent = state.clever.post_grade(token, body)
        except CleverError as exc:
            if not (district_token and exc.status == 401):
                raise
            # The cached district-app token was revoked: fetch the current one, once.
            token = state.clever.district_token(completion.district_id, refresh=True)
            sent = state.clever.post_grade(token, body)
            sent.tries[:0] = exc.tries
    except CleverError as exc:
        completion.sent, completion.grade_status = False, exc.status
        completion.error, completion.tries = exc.message, exc.tries
        log.warning("grade for %s/%s not sent: %s", completion.user_id,
                    completion.assignment_id, exc.message)
        return completion
    completion.sent, completion.grade_status = True, sent.response.status_code
    completion.tries = sent.tries
    return completion


# --- the Flask app -------------------------------------------------------------------------

def create_partner_app(config: Mapping[str, Any]) -> Flask:
    """Build the reference partner.

    Keys: ``CLEVER_URL``, ``API_URL``, ``GRADES_URL`` (stand-ins for https://clever.com,
    https://api.clever.com, https://grades-api.beta.clever.com), ``CLIENT_ID``,
    ``CLIENT_SECRET``, ``REDIRECT_URI`` (this app's callback as registered with Clever;
    ``bind_partner`` fills it in from the bound port when absent), ``SECRET_KEY``
    (random when absent), optional ``ASSIGNMENTS`` (see ``load_assignments``) and
    ``TEST_HOOKS`` (default true: serve ``POST /test-hooks/complete``).
    """
    missing = [k for k in REQUIRED_CONFIG if not isinstance(config.get(k), str) or not config[k]]
    if missing:
        raise ValueError("reference partner config is missing " + ", ".join(missing))
    app = Flask(__name__)
    app.config.update({k: v for k, v in config.items()})
    app.config["SECRET_KEY"] = config.get("SECRET_KEY") or secrets.token_hex(32)
    app.config.setdefault("REDIRECT_URI", None)
    app.config.setdefault("TEST_HOOKS", True)
    # The simulator runs on the same host (other port) and cookies ignore ports: use a
    # cookie name of our own so the two apps never overwrite each other's session.
    app.config.setdefault("SESSION_COOKIE_NAME", "partner_session")
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.url_map.merge_slashes = False  # assignment ids may contain "//"
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    state = PartnerState(app.config, load_assignments(config.get("ASSIGNMENTS")))
    app.extensions[EXTENSION] = state
    _routes(app, state)
    _error_pages(app)
    return app


def _redirect_uri(app: Flask) -> str:
    uri = app.config.get("REDIRECT_URI")
    if not uri:
        raise RuntimeError("REDIRECT_URI is not configured (set it, or serve with bind_partner)")
    return uri


def _current_user() -> dict | None:
    state: PartnerState = _state()
    user = session.get("user")
    if not isinstance(user, dict) or state.token_for(session.get("login")) is None:
        return None
    return user


def _state() -> PartnerState:
    from flask import current_app
    return current_app.extensions[EXTENSION]


def _csrf() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(18)
    return session["csrf"]


def _assignment_path(assignment_id: str) -> str:
    return "/assignments/" + quote(assignment_id, safe="")


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, user=_current_user(), csrf=_csrf(),
                           assignment_path=_assignment_path, **context), status


def _message(title: str, text: str, status: int, *, login_url: str | None = None,
             hint: str | None = None) -> tuple[str, int]:
    return _page("message.html", status, title=title, text=text, login_url=login_url, hint=hint)


def _json_error(http_status: int, message: str, field_name: str | None = None,
                **extra: Any) -> Response:
    body: dict[str, Any] = {"error": message}
    if field_name:
        body["field"] = field_name
    body.update(extra)
    response = jsonify(body)
    response.status_code = http_status
    return response


def _routes(app: Flask, state: PartnerState) -> None:  # noqa: C901 - one place for every route
    clever = state.clever

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok", "assignments": len(state.assignments)})

    @app.get("/")
    def home():
        return _page("home.html", login_url=clever.authorize_url(_redirect_uri(app)))

    @app.get("/login")
    def login_needed():
        """Where pages that need a login send a visitor; the link keeps the assignment."""
        wanted = request.args.get("assignment")
        if _current_user() is not None:  # already logged in: nothing to do here
            return redirect(_assignment_path(wanted) if wanted else "/dashboard", code=302)
        state_param = LAUNCH_PREFIX + wanted if wanted in state.assignments else None
        return _message("Please log in", "You need to log in with Clever to see this page.", 200,
                        login_url=clever.authorize_url(_redirect_uri(app), state_param))

    # Step 1: the assignments API -------------------------------------------------------
    @app.get("/clever/assignments")
    def assignments_api():
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = _json_error(401, "send Authorization: Bearer {token}")
            response.headers["WWW-Authenticate"] = 'Bearer realm="clever"'
            return response
        try:
            clever.me(token.strip())  # the seed's optional step: who is asking, which district
        except CleverError as exc:
            if exc.status in (401, 403):
                response = _json_error(401, "the bearer token is not valid (Clever's /me said "
                                            f"{exc.status})")
                response.headers["WWW-Authenticate"] = 'Bearer realm="clever", error="invalid_token"'
                return response
            return _json_error(502, f"could not check the token with Clever: {exc.message}")
        # The list is the same for every teacher and district, so /me only authenticates.
        return jsonify({"assignments": [a.listing() for a in state.assignments.values()]})

    # Step 2: login, with the assignment in state ----------------------------------------
    @app.get("/clever/callback")
    def callback():
        args = request.args
        if args.get("error"):
            _logout()
            return _message("Login was cancelled", "Clever did not log you in.", 400,
                            hint=f"Clever said: {args.get('error')}"
                                 + (f" – {args['error_description']}"
                                    if args.get("error_description") else ""),
                            login_url=clever.authorize_url(_redirect_uri(app)))
        code = args.get("code")
        if not code:
            _logout()
            return _message("Login link incomplete", "This login link has no code from Clever.",
                            400, login_url=clever.authorize_url(_redirect_uri(app)))
        try:
            token = clever.exchange_code(code, _redirect_uri(app))
            me = clever.me(token)
        except CleverError as exc:
            _logout()
            status = 400 if exc.status == 400 else 401
            return _message("Login failed", "Clever could not log you in. Please start again "
                            "from Schoology or the Clever portal.", status,
                            hint=f"Clever said: {exc.message}",
                            login_url=clever.authorize_url(_redirect_uri(app)))
        name, role = clever.user_profile(token, me["id"])
        _logout()  # a new session for every login (no session fixation)
        session["login"] = state.add_login(token)
        session["user"] = {"id": me["id"], "district": me["district"],
                           "name": name or me["id"], "role": role or "student"}
        launch = args.get("state") or ""
        if launch.startswith(LAUNCH_PREFIX) and launch[len(LAUNCH_PREFIX):]:
            return redirect(_assignment_path(launch[len(LAUNCH_PREFIX):]), code=302)
        return redirect("/dashboard", code=302)

    @app.post("/logout")
    def logout():
        if request.form.get("csrf") != session.get("csrf"):
            abort(400)
        _logout()
        return redirect("/", code=303)

    def _logout() -> None:
        state.drop_login(session.get("login"))
        session.clear()

    @app.get("/dashboard")
    def dashboard():
        user = _current_user()
        if user is None:
            return redirect("/login", code=302)
        mine = sorted(state.completions_of(user["id"]), key=lambda c: c.id, reverse=True)
        return _page("dashboard.html", assignments=list(state.assignments.values()),
                     completions=mine, by_id=state.assignments)

    @app.get("/assignments/<path:assignment_id>")
    def assignment_page(assignment_id: str):
        user = _current_user()
        if user is None:
            return redirect("/login?" + urlencode({"assignment": assignment_id}), code=302)
        assignment = state.assignments.get(assignment_id)
        if assignment is None:
            return _message("Assignment not found",
                            f"There is no assignment with the id \u201c{assignment_id}\u201d.",
                            404, hint="Your teacher may have linked an assignment that was "
                                      "removed. Pick one from your dashboard.")
        nonce = state.open_attempt(user["id"], assignment.id) if user["role"] == "student" else ""
        return _page("assignment.html", assignment=assignment, nonce=nonce,
                     preview=user["role"] != "student")

    # Step 3: finish the activity, send the grade ----------------------------------------
    @app.post("/assignments/<path:assignment_id>/submit")
    def submit(assignment_id: str):
        user = _current_user()
        if user is None:
            return redirect("/login?" + urlencode({"assignment": assignment_id}), code=303)
        assignment = state.assignments.get(assignment_id)
        if assignment is None:
            return _message("Assignment not found",
                            f"There is no assignment with the id \u201c{assignment_id}\u201d.", 404)
        if user["role"] != "student":
            return _message("Preview only", "Only students turn in assignments.", 403)
        attempt, done = state.claim_attempt(request.form.get("attempt", ""), user["id"],
                                            assignment.id)
        if done is not None:  # the same form submitted again: report nothing twice
            return redirect(f"/results/{done}", code=303)
        if attempt is None:
            return _message("This page has expired", "Open the assignment again to start a new "
                            "attempt.", 400, hint=None)
        answers = [request.form.get(f"q{i}") for i in range(len(assignment.questions))]
        correct = sum(q.is_correct(a) for q, a in zip(assignment.questions, answers))
        total = len(assignment.questions)
        completion = state.record(user_id=user["id"], district_id=user["district"],
                                  assignment_id=assignment.id,
                                  fraction=Decimal(correct) / Decimal(total), source="activity",
                                  completion_id=attempt["completion"], correct=correct,
                                  total=total)
        spent = max(0, round(time.time() - attempt["started"]))
        token = state.token_for(session.get("login"))
        report(state, completion, grade_body(assignment, completion, spent), token or "")
        return redirect(f"/results/{completion.id}", code=303)

    @app.get("/results/<completion_id>")
    def result(completion_id: str):
        user = _current_user()
        if user is None:
            return redirect("/login", code=302)
        completion = state.completions.get(completion_id)
        if completion is None or completion.user_id != user["id"]:
            return _message("Result not found", "There is no such result for you.", 404)
        assignment = state.assignments[completion.assignment_id]
        return _page("result.html", assignment=assignment, completion=completion,
                     score_text=assignment.score_text(completion.fraction))

    # Provider state for the contract suite ----------------------------------------------
    @app.post("/test-hooks/complete")
    def complete_hook():
        if not app.config.get("TEST_HOOKS"):
            abort(404)
        raw = request.get_data(cache=False)
        try:
            body = json.loads(raw.decode("utf-8"), parse_float=Decimal,
                              parse_constant=_no_constants)
        except (UnicodeDecodeError, ValueError):
            return _json_error(400, "body must be a JSON object", "(body)")
        if not isinstance(body, dict):
            return _json_error(400, "body must be a JSON object", "(body)")
        for key in ("user_id", "assignment_id", "district_id"):
            value = body.get(key)
            if not isinstance(value, str) or not value.strip() or len(value) > ID_LIMIT:
                return _json_error(400, f"{key} must be a non-empty string "
                                        f"(at most {ID_LIMIT} characters)", key)
        score = body.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, Decimal)) \
                or not (0 <= score <= 1):
            return _json_error(400, "score must be a number from 0 to 1.0 (the fraction the "
                                    "student earned)", "score")
        assignment = state.assignments.get(body["assignment_id"])
        if assignment is None:
            return _json_error(404, f"unknown assignment {body['assignment_id']!r}",
                               "assignment_id", known=list(state.assignments))
        try:
            token = clever.district_token(body["district_id"])
        except CleverError as exc:
            return _json_error(502, f"could not get a district-app token: {exc.message}",
                               status="failed", clever_status=exc.status, clever_body=exc.body)
        completion = state.record(user_id=body["user_id"], district_id=body["district_id"],
                                  assignment_id=assignment.id, fraction=Decimal(score),
                                  source="test-hook")
        report(state, completion, grade_body(assignment, completion), token, district_token=True)
        if not completion.sent:
            return _json_error(502, completion.error or "grade not sent", status="failed",
                               grade_status=completion.grade_status, tries=completion.tries,
                               completion_id=completion.id)
        return jsonify({"status": "sent", "grade_status": completion.grade_status,
                        "completion_id": completion.id, "tries": completion.tries,
                        "sent": completion.payload})


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_JSON_PATHS = re.compile(r"^/(clever/assignments|test-hooks/|healthz)")


def _error_pages(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if _JSON_PATHS.match(request.path):
            return _json_error(exc.code or 500, exc.description or exc.name)
        titles = {404: "Page not found", 405: "Not allowed", 400: "Bad request",
                  413: "Too large"}
        return _message(titles.get(exc.code or 500, exc.name),
                        "That page does not exist here." if exc.code == 404 else
                        (exc.description or exc.name), exc.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # pragma: no cover - a bug in this app
        log.exception("unexpected error on %s %s", request.method, request.path)
        if _JSON_PATHS.match(request.path):
            return _json_error(500, f"reference partner bug: {type(exc).__name__}")
        return _message("Something went wrong", "The app hit an unexpected error.", 500)


# --- serving on waitress -------------------------------------------------------------------

@dataclass
class PartnerServer:
    """A bound waitress server for the partner; ``start()`` serves it in a daemon thread."""

    app: Flask
    server: Any
    host: str
    port: int
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        from simulator.serving import local_url

        return local_url(self.host, self.port)

    def start(self) -> "PartnerServer":
        self.thread = threading.Thread(target=self.server.run, name="reference-partner",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        from simulator.serving import stop_waitress

        stop_waitress(self.server, self.thread)
        self.app.extensions[EXTENSION].close()


def bind_partner(app: Flask, host: str = "127.0.0.1", port: int = 5001,
                 threads: int = 8) -> PartnerServer:
    """Bind the listening socket now (port 0 picks one); REDIRECT_URI defaults to it."""
    from waitress.server import create_server

    server = create_server(app, host=host, port=port, threads=threads, ident="reference-partner",
                           channel_timeout=30, clear_untrusted_proxy_headers=True)
    running = PartnerServer(app, server, host, server.effective_port)
    if not app.config.get("REDIRECT_URI"):
        app.config["REDIRECT_URI"] = f"{running.url}/clever/callback"
    return running


__all__ = ["Assignment", "Clever", "CleverError", "DEFAULT_ASSIGNMENTS", "PartnerServer",
           "Question", "bind_partner", "create_partner_app", "load_assignments", "retry_delay"]
