"""Findings in plain words for one journal entry.

No Flask.  ``findings_for(entry)`` returns the derived findings first — short, specific
statements of a common mistake, each with what to do — then the findings the endpoint
recorded that no derived one already explains.  ``redact_headers`` hides secrets that
may be real (unknown bearer tokens, Basic secrets, cookies) before a page shows them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

from .. import jsontext

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass(frozen=True)
class Finding:
    level: str             # error | warning | info
    text: str              # the finding, short
    hint: str | None = None
    recorded: str | None = None  # the endpoint's own words, when this explains one

    def as_dict(self) -> dict:
        return {"level": self.level, "text": self.text, "hint": self.hint,
                "recorded": self.recorded}


def _header(entry: dict, name: str) -> str | None:
    for key, value in (entry.get("request_headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def _json_body(entry: dict) -> Any:
    try:
        return jsontext.loads(entry.get("request_body") or "")
    except (jsontext.JSONTextError, TypeError):
        return None


def _query(entry: dict) -> dict[str, str]:
    return dict(parse_qsl(entry.get("query") or "", keep_blank_values=True))


def _short(text: Any, limit: int = 120) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"


def _first(recorded: list[str], *needles: str) -> str | None:
    for text in recorded:
        if any(n in text for n in needles):
            return text
    return None


# --- one rule per common mistake -------------------------------------------------------

def _district_without_user(e: dict, rec: list[str]) -> Finding | None:
    if e.get("path") != "/v1/grade" or e.get("token_kind") != "district":
        return None
    hit = _first(rec, "userID: is missing")
    body = _json_body(e)
    if hit or (isinstance(body, dict) and "userID" not in body):
        return Finding(ERROR, "userID missing with a district-app token",
                       "a district-app token can grade any student of the district, so the body "
                       "must name the student: add \"userID\": \"{student's Clever id}\"", hit)
    return None


def _redirect_mismatch(e: dict, rec: list[str]) -> Finding | None:
    path = e.get("path")
    if path == "/oauth/authorize":
        hit = _first(rec, "redirect_uri does not match")
        if hit:
            sent = _query(e).get("redirect_uri")
            return Finding(ERROR, "redirect_uri does not match a registered one"
                           + (f" (sent {_short(sent, 80)})" if sent else ""),
                           "Clever needs an exact match: check scheme, host, port, path and "
                           "trailing slash against the app's registered redirect URIs", hit)
    if path == "/oauth/tokens":
        hit = _first(rec, "does not match the one the code")
        if hit:
            return Finding(ERROR, "redirect_uri does not match the one the code was issued for",
                           "send the same redirect_uri to /oauth/tokens as in the authorize "
                           "request", hit)
    return None


def _code_reused(e: dict, rec: list[str]) -> Finding | None:
    hit = _first(rec, "code already used")
    if hit:
        return Finding(ERROR, "code already used",
                       "each authorization code can be exchanged once: keep the access token "
                       "instead of exchanging again (a retried or double-submitted callback does this)",
                       hit)
    return None


def _grade_content_type(e: dict, rec: list[str]) -> Finding | None:
    if e.get("path") != "/v1/grade" or e.get("method") != "POST":
        return None
    ctype = _header(e, "Content-Type")
    mimetype = (ctype or "").split(";")[0].strip().lower()
    if mimetype == "application/json":
        return None
    return Finding(ERROR, "grade POST without Content-Type: application/json"
                   + (f" (sent {_short(ctype, 60)})" if ctype else " (no Content-Type)"),
                   "send the header Content-Type: application/json with a JSON body",
                   _first(rec, "Content-Type:"))


def _unknown_token(e: dict, rec: list[str]) -> Finding | None:
    hit = _first(rec, "bearer token is unknown to the simulator")
    if hit:
        return Finding(ERROR, "token unknown to the simulator (revoked, or a real Clever token?)",
                       "fetch a fresh token the simulator issues (POST /oauth/tokens or "
                       "GET /oauth/tokens?owner_type=district) and check the app's base URLs "
                       "point at the simulator", hit)
    return None


def _no_token(e: dict, rec: list[str]) -> Finding | None:
    hit = _first(rec, "Authorization: header is missing", "Authorization: is empty",
                 "Authorization: is not a Bearer token")
    if hit:
        return Finding(ERROR, "no bearer token sent" if "is not a Bearer token" not in hit else
                       "Authorization is not a Bearer token",
                       "send Authorization: Bearer {token}", hit)
    return None


def _fault(e: dict, rec: list[str]) -> Finding | None:
    fault = e.get("fault")
    if not isinstance(fault, dict):
        return None
    parts = []
    if fault.get("status"):
        parts.append(f"HTTP {fault['status']}")
        if fault.get("retry_after") is not None:
            parts.append(f"Retry-After {fault['retry_after']} s")
    if fault.get("latency_ms"):
        parts.append(f"{fault['latency_ms']} ms delay")
    return Finding(INFO, "injected fault answered" + (f": {', '.join(parts)}" if parts else ""),
                   "set up through /_sim/faults; a robust app retries after the Retry-After delay",
                   _first(rec, "Injected fault"))


def _rate_limited(e: dict, rec: list[str]) -> Finding | None:
    if e.get("status") == 429 and not e.get("fault"):
        return Finding(ERROR, "rate limited: over 1200 requests a minute with this token",
                       "wait until X-RateLimit-Reset, then retry with back-off")
    return None


def _partner_call(e: dict, rec: list[str]) -> Finding | None:
    """An outbound call (the simulator → the partner) that failed; its warnings stay as
    recorded findings."""
    if e.get("direction") != "outbound":
        return None
    status = e.get("status")
    error = e.get("error")
    failed = bool(error) or not isinstance(status, int) or status >= 400
    if not failed:
        return None
    what = error or (f"HTTP {status}" if isinstance(status, int) else
                     (rec[0] if rec else "no answer"))
    # Today the simulator calls the partner only for the assignments list.
    label = "partner assignments URL failed" if e.get("purpose") in (None, "assignments") \
        else "call to the partner failed"
    explained = error if error in rec else (rec[0] if rec and not error and
                                            not isinstance(status, int) else None)
    return Finding(ERROR, f"{label}: {_short(what, 200)}",
                   "the teacher sees this instead of the app's assignments; fix the partner's "
                   "endpoint and try Add Materials again", explained)


_RULES: list[Callable[[dict, list[str]], Finding | None]] = [
    _district_without_user, _redirect_mismatch, _code_reused, _grade_content_type,
    _unknown_token, _no_token, _fault, _rate_limited, _partner_call,
]


def findings_for(entry: dict) -> list[Finding]:
    """Derived findings, then recorded ones not already explained (each only once)."""
    recorded = [str(f) for f in entry.get("findings") or []]
    out: list[Finding] = []
    explained: set[str] = set()
    for rule in _RULES:
        try:
            found = rule(entry, recorded)
        except Exception:  # noqa: BLE001 - an odd entry must never break the inspector
            found = None
        if found is not None:
            out.append(found)
            if found.recorded:
                explained.add(found.recorded)
    status = entry.get("status")
    level = ERROR if isinstance(status, int) and status >= 400 else WARNING
    hints = _answer_hints(entry) if level == ERROR else {}
    for text in dict.fromkeys(recorded):
        if text not in explained:
            out.append(Finding(level, text, hints.get(text)))
    return out


def _answer_hints(entry: dict) -> dict[str, str]:
    """``"field: problem"`` → the fix the answer's ``errors`` gave (so it shows under Findings,
    not only in the raw response body)."""
    try:
        doc = json.loads(entry.get("response_body") or "")
    except (ValueError, TypeError, RecursionError):
        return {}
    errors = doc.get("errors") if isinstance(doc, dict) else None
    out: dict[str, str] = {}
    for e in errors if isinstance(errors, list) else []:
        if isinstance(e, dict) and isinstance(e.get("hint"), str) and e["hint"]:
            out[f"{e.get('field')}: {e.get('problem')}"] = e["hint"]
    return out


# --- secrets ---------------------------------------------------------------------------

def _mask(value: str, keep: int = 6) -> str:
    return (value[:keep] + "…" if len(value) > keep else "…") + f" ({len(value)} chars, hidden)"


def redact_headers(headers: dict | None, token_known: Callable[[str], bool]) -> dict[str, str]:
    """Headers safe to show: simulator tokens stay (they are fake); a bearer token the
    simulator does not know may be a real Clever token and is hidden; Basic secrets and
    cookies are always hidden."""
    out: dict[str, str] = {}
    for key, value in (headers or {}).items():
        value = str(value)
        low = key.lower()
        if low == "authorization":
            scheme, _, cred = value.strip().partition(" ")
            cred = cred.strip()
            if scheme.lower() == "bearer" and cred:
                value = value if token_known(cred) else f"Bearer {_mask(cred)} — not a simulator token"
            elif scheme.lower() == "basic" and cred:
                try:
                    user, _, _secret = base64.b64decode(cred, validate=True).decode(
                        "utf-8", "replace").partition(":")
                    value = f"Basic base64({_short(user, 80)}:••••) — secret hidden"
                except (binascii.Error, ValueError):
                    value = f"Basic {_mask(cred, 0)}"
            elif value:
                value = _mask(value, 0)
        elif low in ("cookie", "set-cookie"):
            value = _mask(value, 0)
        out[key] = value
    return out


_SECRET_FIELDS = ("client_secret",)


def redact_body(text: str | None, content_type: str | None) -> str | None:
    """A body with ``client_secret`` values hidden (form or JSON)."""
    if not text or "client_secret" not in text:
        return text
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if mimetype == "application/json":
        try:
            doc = jsontext.loads(text)
        except jsontext.JSONTextError:
            return text
        if isinstance(doc, dict):
            for key in _SECRET_FIELDS:
                if key in doc:
                    doc[key] = "•••• (hidden)"
            return json.dumps(doc, ensure_ascii=False)
        return text
    pairs = parse_qsl(text, keep_blank_values=True)
    if pairs:
        return urlencode([(k, "(hidden)" if k in _SECRET_FIELDS else v) for k, v in pairs])
    return text
