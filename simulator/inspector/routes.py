"""The request inspector: the journal newest first, filters, one entry's detail.

Filters are GET parameters (``path``, ``status`` = 404 or 4xx, ``user``, ``assignment``,
``client``, ``direction``, ``method``; paging ``page`` or ``after_id``).  An invalid value
is named on the page (HTTP 400) and ignored; the other filters still apply.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, render_template, request, url_for

from .. import jsontext
from ..gradebook import domain as gradebook_domain
from ..gradebook.domain import pretty_exact
from ..numbers import whole_number
from ..schoology.domain import full_name
from ..web import sim
from .findings import findings_for, redact_body, redact_headers

bp = Blueprint("inspector", __name__)

PER_PAGE = 50
_STATUS_CLASS = re.compile(r"^([1-5])[xX]{2}$")

# filter name → (journal entry key, aliases accepted in the query string)
_EXACT = {"user": ("user_id", ("user_id",)), "assignment": ("assignment_id", ("assignment_id",)),
          "client": ("client_id", ("client_id",))}


# query parameters carried over to the pager links (never url_for's own _external etc.)
_KEEP = ("path", "endpoint", "status", "user", "user_id", "assignment", "assignment_id",
         "client", "client_id", "direction", "method", "after_id")


def _arg(name: str, *aliases: str) -> str | None:
    for key in (name, *aliases):
        value = request.args.get(key)
        if value is not None and value.strip():
            return value.strip()
    return None


def parse_filters() -> tuple[dict, list[str], int, int]:
    """(filters, problems in plain words, page, after_id) from the query string."""
    filters: dict = {}
    problems: list[str] = []
    path = _arg("path", "endpoint")
    if path is not None:
        if len(path) > 1000:
            problems.append("path: is longer than 1000 characters; ignored")
        else:
            filters["path"] = path
    status = _arg("status")
    if status is not None:
        m = _STATUS_CLASS.match(status)
        if m:
            filters["status_class"] = int(m.group(1))
        elif whole_number(status, 100, 599) is not None and len(status) == 3:
            filters["status"] = int(status)
        else:
            problems.append(f"status: {status[:40]!r} is not an HTTP status; use a number from "
                            "100 to 599 (e.g. 400) or a class such as 4xx; ignored")
    for name, (key, aliases) in _EXACT.items():
        value = _arg(name, *aliases)
        if value is not None:
            filters[key] = value
    direction = _arg("direction")
    if direction is not None:
        if direction.lower() in ("inbound", "outbound"):
            filters["direction"] = direction.lower()
        else:
            problems.append(f"direction: {direction[:40]!r} must be inbound (requests to the "
                            "simulator) or outbound (calls to the partner); ignored")
    method = _arg("method")
    if method is not None:
        if method.isalpha() and len(method) <= 10:
            filters["method"] = method.upper()
        else:
            problems.append(f"method: {method[:40]!r} is not an HTTP method; ignored")
    page = _whole("page", 1, 1, 1_000_000, problems)
    after_id = _whole("after_id", 0, 0, 2 ** 62, problems)
    return filters, problems, page, after_id


def _whole(name: str, default: int, lo: int, hi: int, problems: list[str]) -> int:
    raw = _arg(name)
    if raw is None:
        return default
    value = whole_number(raw, lo, hi)
    if value is not None:
        return value
    problems.append(f"{name}: {raw[:40]!r} must be a whole number from {lo} to {hi}; ignored")
    return default


def _matches(e: dict, f: dict, after_id: int) -> bool:
    if after_id and not (isinstance(e.get("id"), int) and e["id"] > after_id):
        return False
    if "path" in f and f["path"].lower() not in str(e.get("path", "")).lower():
        return False
    if "status" in f and e.get("status") != f["status"]:
        return False
    if "status_class" in f and not (isinstance(e.get("status"), int)
                                    and e["status"] // 100 == f["status_class"]):
        return False
    if "method" in f and str(e.get("method", "")).upper() != f["method"]:
        return False
    if "direction" in f and e.get("direction", "inbound") != f["direction"]:
        return False
    for key in ("user_id", "assignment_id", "client_id"):
        if key in f and e.get(key) != f[key]:
            return False
    return True


def status_class(status) -> str:
    return f"st{status // 100}" if isinstance(status, int) and 100 <= status <= 599 else "st0"


@bp.get("/inspector")
def journal():
    s = sim()
    filters, problems, page, after_id = parse_filters()
    if filters or after_id:  # as captured: filter on the facts, build only the shown page
        entries = s.journal.raw()
        matched = [e for e in reversed(entries) if _matches(e, filters, after_id)]
        total, size, newest_id = len(matched), len(entries), entries[-1]["id"] if entries else 0

        def page_of(n: int) -> list:
            return matched[(n - 1) * PER_PAGE: n * PER_PAGE]
    else:  # the default view reads only the page shown, not a full journal's 10,000 entries
        newest, size = s.journal.newest(0, 1)
        total, newest_id = size, newest[0]["id"] if newest else 0

        def page_of(n: int) -> list:
            return s.journal.newest((n - 1) * PER_PAGE, PER_PAGE)[0]
    pages = max(1, -(-total // PER_PAGE))
    if page > pages:
        page = pages
    shown = [s.journal.materialize(e) for e in page_of(page)]
    rows = [{"e": e, "findings": findings_for(e), "cls": status_class(e.get("status"))}
            for e in shown]
    people = _names(s, {e.get("user_id") for e in shown})
    apps = {a.client_id: a.name for a in s.clever.apps()}
    kept = {k: v for k, v in request.args.items() if k in _KEEP and v.strip()}

    def page_url(n: int) -> str:
        return url_for("inspector.journal", **kept, page=n)

    html = render_template(
        "inspector_list.html", rows=rows, problems=problems, total=total,
        journal_size=size, cap=s.journal.cap, dropped=s.journal.dropped, page=page,
        pages=pages, newer_url=page_url(page - 1) if page > 1 else None,
        older_url=page_url(page + 1) if page < pages else None,
        newest_id=newest_id,
        args={k: request.args.get(k, "") for k in ("path", "status", "user", "assignment",
                                                     "client", "direction", "method")},
        filtered=bool(filters or after_id), people=people, apps=apps)
    return html, (400 if problems else 200)


def _names(s, user_ids) -> dict[str, str]:
    """Names of the people behind journal entries (an id nobody has stays an id)."""
    out = {}
    for user_id in user_ids:
        if isinstance(user_id, str) and len(user_id) <= 200:
            found = s.clever.user(user_id)
            if found is not None:
                out[user_id] = full_name(found[1])
    return out


# --- one entry -----------------------------------------------------------------------

def _pretty(text: str | None, content_type: str | None) -> tuple[str | None, bool]:
    """(text to show, whether it was pretty-printed JSON)."""
    if text is None or text == "":
        return text, False
    looks_json = "json" in (content_type or "").lower() or text.lstrip()[:1] in ("{", "[")
    if looks_json:
        try:  # numbers exactly as sent (Decimal), not as floats
            return pretty_exact(jsontext.loads(text, exact_numbers=True)), True
        except jsontext.JSONTextError:  # not JSON, or hostile JSON: shown as sent
            pass
    return text, False


def _ctype(headers: dict | None) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == "content-type":
            return str(value)
    return None


@bp.get("/inspector/<entry_id>")
def entry(entry_id: str):
    s = sim()
    wanted = whole_number(entry_id, 1, 10 ** 18)
    found = s.journal.get(wanted) if wanted is not None else None
    if found is None:
        return render_template("inspector_not_found.html", entry_id=entry_id,
                               cap=s.journal.cap), 404

    def known(token: str) -> bool:
        return len(token) <= 200 and s.clever.token(token) is not None

    req_ct = _ctype(found.get("request_headers"))
    resp_ct = _ctype(found.get("response_headers"))
    req_body, req_json = _pretty(redact_body(found.get("request_body"), req_ct), req_ct)
    resp_body, resp_json = _pretty(found.get("response_body"), resp_ct)
    fault = found.get("fault")
    app = s.clever.app(found["client_id"]) if isinstance(found.get("client_id"), str) else None
    return render_template(
        "inspector_entry.html", e=found, findings=findings_for(found),
        person=_names(s, {found.get("user_id")}).get(found.get("user_id")),
        app_name=app.name if app else None,
        cls=status_class(found.get("status")),
        request_headers=redact_headers(found.get("request_headers"), known),
        response_headers=redact_headers(found.get("response_headers"), lambda _t: True),
        request_body=req_body, request_json=req_json, response_body=resp_body,
        response_json=resp_json,
        fault=json.dumps(fault, indent=2, ensure_ascii=False, default=str) if fault else None)


# --- one student's whole story (the QA view) -------------------------------------------

STORY_ENTRIES = 300  # newest journal entries of the student shown


def _kind(e: dict) -> str:
    """What a journal entry was, in the student's story."""
    path, status = e.get("path"), e.get("status")
    ok = isinstance(status, int) and status < 400
    if path == "/v1/grade":
        return "grade accepted" if ok else "grade rejected"
    if path in ("/oauth/tokens", "/oauth/authorize"):
        return "launch (login)" if ok else "launch failed"
    return "API call" if e.get("direction", "inbound") == "inbound" else "call to the partner"


@bp.get("/inspector/students/<user_id>")
def student_story(user_id: str):
    """Everything about one student across apps and assignments: why is there no grade?"""
    s = sim()
    found = s.clever.user(user_id) if len(user_id) <= 200 else None
    if found is None:
        return render_template("page_not_found.html", path=request.path), 404
    role, record = found
    raw = [e for e in s.journal.raw() if e.get("user_id") == user_id]
    shown = [s.journal.materialize(e) for e in reversed(raw[-STORY_ENTRIES:])]
    timeline = [{"e": e, "kind": _kind(e), "findings": findings_for(e),
                 "cls": status_class(e.get("status"))} for e in shown]

    def explain(entry) -> tuple[str, str | None]:
        got = findings_for(s.journal.materialize(entry))
        return (got[0].text, got[0].hint) if got else (f"HTTP {entry.get('status')}", None)

    rejected = gradebook_domain.rejections(s.journal.rejected_grades([user_id]), explain,
                                           lambda entry: s.journal.materialize(entry).get("time"))
    sections = [sec for sid in s.clever.user_section_ids(user_id)
                if (sec := s.clever.record("sections", sid)) is not None]
    return render_template(
        "inspector_student.html", person={"id": user_id, "name": full_name(record), "role": role},
        sections=sections, grades=gradebook_domain.student_grades(s.schoology, user_id),
        rejected=sorted(rejected.values(), key=lambda r: (r.assignment_id, r.client_id)),
        timeline=timeline, total=len(raw), shown_cap=STORY_ENTRIES,
        apps={a.client_id: a.name for a in s.clever.apps()})
