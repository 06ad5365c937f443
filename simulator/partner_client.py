"""Calls the simulator makes to the partner's URLs (no Flask here).

``fetch_assignments`` is Schoology's "Add Materials → Clever app" step (Clever's grade
passback guide, Step 1): ``GET {assignments_url}`` with ``Authorization: Bearer {teacher's
il token}``, then the answer is checked against the guide's assignments schema. Every way it can go wrong is
put into plain words a teacher (or the partner's developer reading over a teacher's
shoulder) understands, and every call is recorded in the simulator's journal as an
``outbound`` entry.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from . import httpclient, jsontext
from .numbers import whole_number
from .journal import clip_body

if TYPE_CHECKING:
    import httpx
    import jsonschema

MAX_BYTES = 1024 * 1024          # read at most 1 MiB of an assignments answer
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
TOTAL_TIMEOUT_S = 30.0           # a partner trickling bytes slower than the read timeout
MAX_REDIRECTS = 5
MAX_LISTED = 200                 # problems listed one by one; the rest are counted
ID_RECOMMENDED_MAX = 64          # seed: "alphanumeric and under 64 characters"
USER_AGENT = "clever-grade-sim (Schoology Add Materials; assignments fetch)"

_ALNUM = re.compile(r"[A-Za-z0-9]+")
_SCHEMA_FILE = "assignments.schema.json"


@dataclass
class AssignmentsResult:
    """What one fetch of a partner's assignments list found."""

    url: str
    ok: bool
    assignments: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # failures: the list cannot be used
    warnings: list[str] = field(default_factory=list)   # usable, but against the seed's advice
    status: int | None = None
    duration_ms: float = 0.0
    journal_id: int | None = None

    @property
    def findings(self) -> list[str]:
        return self.problems + self.warnings


class _Failure(Exception):
    """One plain-words reason the fetch failed (ends the fetch)."""


# --- the schema -------------------------------------------------------------------------

def _schema_text() -> str:
    try:
        return (resources.files("simulator.schemas") / _SCHEMA_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):  # pragma: no cover - odd installs
        return (Path(__file__).resolve().parent / "schemas" / _SCHEMA_FILE).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    """The seed's assignments-list schema (JSON Schema draft 2020-12)."""
    return json.loads(_schema_text())


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema  # on the first fetch: most runs never make one

    schema = load_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


# --- checking a document (pure; usable by tools and contract tests) ---------------------

json_path = jsontext.json_path  # ``$.assignments[2].type`` from a jsonschema path


def _got(value: Any) -> str:
    kind = jsontext.kind(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        shown = json.dumps(value, ensure_ascii=False)
        if len(shown) > 60:
            shown = shown[:57] + "…"
        return f"{kind} {shown}" if not isinstance(value, bool) and value is not None else shown
    return kind


def _describe(error: jsonschema.ValidationError) -> tuple[str, str]:
    """(JSON path, plain-words problem) for one schema violation."""
    path = list(error.absolute_path)
    validator, expected, value = error.validator, error.validator_value, error.instance
    if validator == "required":
        match = re.fullmatch(r"(.+) is a required property", error.message)
        try:
            name = ast.literal_eval(match.group(1)) if match else None
        except (ValueError, SyntaxError):
            name = None
        if not isinstance(name, str):
            missing = [k for k in expected if isinstance(value, dict) and k not in value]
            name = missing[0] if missing else "?"
        return json_path(path + [name]), "is missing (required)"
    if validator == "const":
        return json_path(path), f"must be {json.dumps(expected)} (got {_got(value)})"
    if validator == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(jsontext.SCHEMA_TYPE_WORDS.get(k, k) for k in kinds)
        return json_path(path), f"must be {wanted} (got {_got(value)})"
    if validator == "minLength" and expected == 1:
        return json_path(path), "must not be empty"
    return json_path(path), error.message


def check_document(doc: Any) -> tuple[list[dict], list[str], list[str]]:
    """(assignments, problems, warnings) for a parsed assignments answer.

    Problems: every schema violation with its JSON path, and duplicate ids.
    Warnings: the seed's recommendations (ids alphanumeric, under 64 characters), an
    empty list.
    """
    problems: list[str] = []
    warnings: list[str] = []
    errors = sorted(_validator().iter_errors(doc),
                    key=lambda e: ([(0, p) if isinstance(p, int) else (1, str(p))
                                    for p in e.absolute_path], e.validator))
    for err in errors:
        where, what = _describe(err)
        problems.append(f"{where}: {what}")
    if isinstance(doc, list):
        problems.append('the answer is a bare list; wrap it as {"assignments": [...]} '
                        "(Clever's grade passback guide, Step 1)")
    items = doc.get("assignments") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        return [], problems, warnings
    seen: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            seen.setdefault(item["id"], []).append(i)
    for assignment_id, where in seen.items():
        if len(where) > 1:
            at = ", ".join(f"$.assignments[{i}]" for i in where)
            problems.append(f"duplicate assignment id {json.dumps(assignment_id, ensure_ascii=False)} "
                            f"at {at}: each assignment needs a unique id")
    for assignment_id, where in seen.items():
        shown = json.dumps(assignment_id, ensure_ascii=False)
        if len(shown) > 80:
            shown = shown[:77] + "…\""
        at = f"$.assignments[{where[0]}].id"
        if not _ALNUM.fullmatch(assignment_id):
            warnings.append(f"{at}: id {shown} is not alphanumeric; Clever recommends letters and "
                            "digits only, because ids travel in URLs")
        if len(assignment_id) >= ID_RECOMMENDED_MAX:
            warnings.append(f"{at}: id is {len(assignment_id)} characters long; Clever recommends "
                            f"under {ID_RECOMMENDED_MAX}")
    if not items and not problems:
        warnings.append("the assignments list is empty: teachers will have nothing to pick")
    assignments = []
    for item in items:
        if isinstance(item, dict):
            standards = item.get("standards")
            assignments.append({
                "name": item.get("name"), "id": item.get("id"), "type": item.get("type"),
                "description": item.get("description") if isinstance(item.get("description"), str) else None,
                "standards": [s for s in standards if isinstance(s, str)] if isinstance(standards, list) else [],
            })
    return assignments, _capped(problems), _capped(warnings)


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LISTED:
        return lines
    return lines[:MAX_LISTED] + [f"… and {len(lines) - MAX_LISTED} more like these"]


def parse_body(raw: bytes, content_type: str, url: str) -> Any:
    """The JSON document of an answer, or a plain-words _Failure (HTML, not UTF-8, bad JSON)."""
    mimetype = content_type.split(";")[0].strip().lower()
    head = raw.lstrip()[:200].lower()
    if "html" in mimetype or head.startswith((b"<!doctype", b"<html", b"<head", b"<body")) or \
            (head.startswith(b"<") and not mimetype.endswith("json")):
        raise _Failure(f"{url} answered HTML, not JSON (Content-Type: {content_type or 'none'}): "
                       "check the assignments URL; a login or error page may be in the way. "
                       f"It began: {_snippet(raw)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Failure(f"{url} answered something that is not UTF-8 text (bad byte at "
                       f"position {exc.start}); JSON must be UTF-8") from None
    if not text.strip():
        raise _Failure(f"{url} answered 200 with an empty body; it must answer "
                       '{"assignments": [...]}')
    try:
        return jsontext.loads(text)
    except jsontext.JSONTextError as exc:
        if exc.syntax:
            raise _Failure(f"{url} answered something that is not JSON ({exc.problem}). "
                           f"It began: {_snippet(raw)}") from None
        raise _Failure(f"{url} answered JSON that cannot be read: {exc.path()} "
                       f"{exc.problem}; {exc.hint}") from None


def _snippet(raw: bytes, n: int = 300) -> str:
    text = raw[: n * 4].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return (text[:n] + "…") if len(text) > n else (text or "(empty)")


# --- the HTTP call ----------------------------------------------------------------------

def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError) or "refused" in str(cur).lower():
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _seconds(value: float) -> str:
    return f"{value:g} s"


def fetch_assignments(url: str, token: str, *, journal, clock, client_id: str | None = None,
                      user_id: str | None = None, connect_timeout: float = CONNECT_TIMEOUT_S,
                      read_timeout: float = READ_TIMEOUT_S, total_timeout: float = TOTAL_TIMEOUT_S,
                      max_bytes: int = MAX_BYTES,
                      transport: httpx.BaseTransport | None = None) -> AssignmentsResult:
    """GET the partner's assignments list as Schoology would; never raises for partner faults."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
               "User-Agent": USER_AGENT}
    result = AssignmentsResult(url=url, ok=False)
    started = time.perf_counter()
    raw = b""
    response_headers: dict[str, str] = {}
    redirects: list[str] = []
    try:
        raw, response_headers = _get(url, headers, result, redirects, connect_timeout,
                                     read_timeout, total_timeout, max_bytes, transport, started)
        doc = parse_body(raw, response_headers.get("content-type", ""), url)
        assignments, problems, warnings = check_document(doc)
        result.assignments, result.warnings = assignments, warnings
        if problems:
            result.problems = [f"{url} answered JSON that does not match the assignments "
                               f"format (Clever's grade passback guide, Step 1): {len(problems)} problem"
                               f"{'s' if len(problems) != 1 else ''}"] + problems
            result.assignments = []
        else:
            result.ok = True
    except _Failure as exc:
        result.problems = [str(exc)]
    result.duration_ms = round((time.perf_counter() - started) * 1000, 2)
    entry = journal.add({
        "time": clock.iso(),
        "direction": "outbound",
        "purpose": "assignments",
        "method": "GET",
        "path": urlsplit(url).path or "/",
        "query": urlsplit(url).query,
        "url": url,
        "redirects": redirects,
        "status": result.status,
        "duration_ms": result.duration_ms,
        "request_headers": headers,
        "request_body": None,
        "response_headers": response_headers,
        "response_body": clip_body(raw) if raw or result.status is not None else None,
        "findings": result.findings,
        "error": result.problems[0] if result.problems else None,
        "warnings": list(result.warnings),
        "fault": None,
        "client_id": client_id,
        "user_id": user_id,
    })
    result.journal_id = entry.get("id")
    return result


def _get(url, headers, result, redirects, connect_timeout, read_timeout, total_timeout,
         max_bytes, transport, started) -> tuple[bytes, dict[str, str]]:
    """Fetch with same-origin redirects and the body cap; fills ``result.status``."""
    import httpx  # on the first fetch: most runs never make one (~50 ms of start-up CPU)

    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise _Failure(f"the assignments URL {url!r} is not an absolute http(s) URL; "
                       "fix assignments_url in the app's registration")
    timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout,
                            pool=connect_timeout)
    current = url
    try:
        with httpclient.client(timeout=timeout, follow_redirects=False,
                               transport=transport) as client:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", current, headers=headers) as resp:
                    result.status = resp.status_code
                    response_headers = {k: v for k, v in resp.headers.items()}
                    if resp.is_redirect and "location" in resp.headers:
                        target = urljoin(current, resp.headers["location"])
                        if _origin(target) != _origin(current):
                            raise _Failure(
                                f"{current} redirected (HTTP {resp.status_code}) to {target}, on "
                                f"another host ({_netloc(target)}): the simulator follows "
                                "redirects only to the same scheme, host and port. Point "
                                "assignments_url at the final URL")
                        redirects.append(target)
                        current = target
                        continue
                    declared = resp.headers.get("content-length", "")
                    if resp.status_code == 200 and declared.isascii() and declared.isdigit() \
                            and whole_number(declared, 0, max_bytes) is None:
                        raise _Failure(f"{current}: the response is larger than {_size(max_bytes)} "
                                       f"({declared} bytes declared); send a shorter list")
                    raw = bytearray()
                    for chunk in resp.iter_bytes():
                        raw += chunk
                        if resp.status_code != 200 and len(raw) >= 4096:
                            break  # an error answer: its first lines are all we show
                        if len(raw) > max_bytes:
                            raise _Failure(f"{current}: the response is larger than "
                                           f"{_size(max_bytes)}; the simulator stopped reading "
                                           "there. Send a shorter list")
                        if time.perf_counter() - started > total_timeout:
                            raise _Failure(f"{current} timed out: it was still sending after "
                                           f"{_seconds(total_timeout)}")
                    if resp.status_code != 200:
                        reason = f" {resp.reason_phrase}" if resp.reason_phrase else ""
                        raise _Failure(f"{current} answered HTTP {resp.status_code}{reason} "
                                       f"instead of 200. It said: {_snippet(bytes(raw))}")
                    return bytes(raw), response_headers
            raise _Failure(f"{url} redirected more than {MAX_REDIRECTS} times: "
                           + " → ".join([url, *redirects]))
    except _Failure:
        raise
    except httpx.ConnectTimeout:
        raise _Failure(f"could not connect to {current}: timed out after "
                       f"{_seconds(connect_timeout)}; is the host reachable?") from None
    except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
        raise _Failure(f"{current} timed out: no answer within {_seconds(read_timeout)}. "
                       "The assignments list must come back quickly") from None
    except httpx.ConnectError as exc:
        if _refused(exc):
            raise _Failure(f"could not connect to {current}: connection refused — "
                           "is the app running?") from None
        raise _Failure(f"could not connect to {current}: {exc or type(exc).__name__}") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise _Failure(f"the assignments URL {current!r} cannot be used: {exc}") from None
    except httpx.HTTPError as exc:
        raise _Failure(f"the connection to {current} failed before a full answer arrived "
                       f"({type(exc).__name__}: {exc or 'no detail'})") from None


def _netloc(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"
