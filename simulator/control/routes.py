"""Control API under ``/_sim/``: JSON in, JSON out, for tests and tools.

Routes only parse → call the domain (``control.domain``, ``Simulator``) → serialise.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from flask import Blueprint, jsonify, request

from .. import __version__, bodies
from ..clock import MAX_OFFSET_S, ClockBoundError
from ..errors import BadRequest, FieldProblem, NotFound
from ..gradebook import domain as gradebook
from ..ids import ROLES, primary_role
from ..schoology import domain as schoology
from ..web import admit_wait, parse_json, query_int, read_body, sim, wait_cut_short
from . import domain

bp = Blueprint("control", __name__, url_prefix="/_sim")


def _json_body() -> object:
    raw = read_body(1024 * 1024)
    if not raw.strip():
        return {}
    return parse_json(raw)


def _created(payload: dict):
    response = jsonify(payload)
    response.status_code = 201
    return response


@bp.get("/health")
def health():
    """Readiness: answers once the roster is loaded and the store is open."""
    s = sim()
    return jsonify({"status": "ok", "version": __version__, "districts": len(s.district_ids),
                    "apps": s.clever.app_count(), "grades": s.clever.grade_count(),
                    "strict": s.cfg["STRICT"]})


@bp.post("/reset")
def reset():
    sim().reset()
    return jsonify({"status": "reset", "kept": ["roster", "apps", "district-app tokens"]})


@bp.post("/clock")
def clock():
    body = bodies.check_request("post", "/_sim/clock", _json_body(), "Invalid clock change")
    seconds = body["advance_s"]
    try:
        offset = sim().clock.advance(float(seconds))
    except ClockBoundError as exc:
        raise BadRequest("Invalid clock change", [FieldProblem(
            "advance_s", f"would put the clock more than {MAX_OFFSET_S} s (10 years) ahead; it "
            f"is {exc.offset:g} s ahead now", f"advance by at most {exc.room:g} s, or POST "
            "/_sim/reset to start the clock over")]) from None
    return jsonify({"offset_s": offset, "now": sim().clock.iso()})


# --- apps ----------------------------------------------------------------------------

@bp.get("/apps")
def list_apps():
    s = sim()
    return jsonify({"data": [s.clever.app_view(a) for a in s.clever.apps()]})


@bp.post("/apps")
def register_app():
    s = sim()
    body = _json_body()
    if isinstance(body, dict) and isinstance(body.get("client_id"), str) and \
            s.clever.app(body["client_id"]) is not None:
        raise BadRequest("App already registered", [FieldProblem(
            "client_id", "is taken", f"update it with PATCH /_sim/apps/{body['client_id']}")])
    return _created(s.clever.app_view(s.clever.register_app(body)))


@bp.get("/apps/<client_id>")
def get_app(client_id: str):
    s = sim()
    return jsonify(s.clever.app_view(s.clever.require_app(client_id)))


@bp.route("/apps/<client_id>", methods=["PATCH", "PUT"])
def update_app(client_id: str):
    s = sim()
    existing = s.clever.require_app(client_id)
    body = _json_body()
    if isinstance(body, dict) and body.get("client_id", client_id) != client_id:
        raise BadRequest("client_id cannot change", [FieldProblem("client_id", "differs from the URL")])
    return jsonify(s.clever.app_view(s.clever.register_app(body, existing)))


@bp.delete("/apps/<client_id>")
def delete_app(client_id: str):
    s = sim()
    s.clever.require_app(client_id)
    s.clever.delete_app(client_id)
    return jsonify({"deleted": client_id})


# --- personas, codes, tokens ---------------------------------------------------------

PERSONAS_DEFAULT_LIMIT = 1000
PERSONAS_MAX_LIMIT = 10_000


@bp.get("/personas")
def personas():
    """Who a test can log in as, with their sections; paged by id (``limit`` 1–10000,
    default 1000; ``starting_after`` = the last id of the previous page)."""
    s = sim()
    args = request.args
    role = args.get("role")
    district = args.get("district_id")
    problems = []
    if role is not None and role not in ROLES:
        problems.append(FieldProblem("role", "must be one of " + ", ".join(ROLES),
                                     "e.g. role=teacher (people who hold several roles are "
                                     "listed under each)"))
    limit = query_int("limit", PERSONAS_DEFAULT_LIMIT, 1, PERSONAS_MAX_LIMIT, problems=problems)
    after = args.get("starting_after")
    if after is not None and not re.fullmatch(r"[0-9a-f]{24}", after):
        problems.append(FieldProblem("starting_after", "must be a user id (24 hexadecimal characters)",
                                     "send the id of the last persona of the previous page"))
    if problems:
        raise BadRequest("Invalid filter", problems)
    page = s.clever.records("users", district_id=district, role=role, limit=limit,
                                starting_after=after)
    sections = s.clever.section_ids_of([u["id"] for u in page.rows])
    out = [{"id": u["id"], "role": primary_role(u), "roles": [r for r in ROLES if r in u["roles"]],
            "district": u["district"],
            "name": f"{u['name']['first']} {u['name']['last']}",
            "sections": sections[u["id"]]} for u in page.rows]
    links = []
    if page.has_more and out:
        query = [(k, v) for k, v in (("role", role), ("district_id", district)) if v is not None]
        query += [("limit", str(limit)), ("starting_after", out[-1]["id"])]
        links.append({"rel": "next", "uri": "/_sim/personas?" + urlencode(query)})
    return jsonify({"data": out, "has_more": page.has_more, "links": links})


@bp.post("/codes")
def mint_code():
    return _created(domain.mint_code(sim(), _json_body()))


@bp.post("/tokens")
def mint_token():
    return _created(domain.mint_token(sim(), _json_body()))


@bp.delete("/tokens/<token>")
def revoke_token(token: str):
    """Revoke one token (il or district-app); a district-app token is reissued."""
    return jsonify(domain.revoke_token(sim(), token))


# --- Schoology assignments -----------------------------------------------------------

@bp.post("/links")
def link_assignment():
    return _created(schoology.link_view(schoology.link_assignment(sim(), _json_body())))


@bp.get("/links")
def list_links():
    """Schoology assignments, oldest first, 1000 a page (``limit`` up to 10000, ``offset``)."""
    args = request.args
    limit = query_int("limit", 1000, 1, 10_000)
    offset = query_int("offset", 0, 0, 999_999_999)
    rows = sim().schoology.links(section_id=args.get("section_id"), client_id=args.get("client_id"),
                                  assignment_id=args.get("assignment_id"), limit=limit,
                                  offset=offset)
    return jsonify({"data": [link.as_json() for link in rows[:limit]]})  # a full page (``limit`` rows) means: ask for more


# --- grades --------------------------------------------------------------------------

@bp.get("/grades")
def list_grades():
    """Current grades, oldest write first; page on with ``after_seq`` = ``next_after_seq``."""
    args = {k: v for k, v in request.args.items() if k != "limit"}
    filters = domain.grade_filters(args)
    limit = query_int("limit", 1000, 1, 10_000)
    rows = sim().clever.grades(**filters, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify({"data": [grade.as_json() for grade in rows], "has_more": more,
                    "next_after_seq": rows[-1].seq if more and rows else None})


@bp.get("/grades/<grade_id>/history")
def grade_history(grade_id: str):
    """Every version of a grade, oldest first, 1000 a page (``limit`` up to 10000);
    page on with ``after_version`` = the last version shown."""
    limit = query_int("limit", 1000, 1, 10_000)
    after = query_int("after_version", 0, 0, 10 ** 18 - 1)
    clever = sim().clever
    history = clever.grade_history(grade_id, after_version=after, limit=limit + 1)
    if not history and (after == 0 or not clever.grade_history(grade_id, limit=1)):
        raise NotFound("Grade not found", [FieldProblem("grade_id", "no grade has this id")])
    more = len(history) > limit
    return jsonify({"data": history[:limit], "has_more": more})


@bp.get("/grades/<grade_id>/lti")
def grade_lti(grade_id: str):
    """The grade's LTI 1.1 ``replaceResult`` XML and LTI 1.3 AGS score, per Schoology assignment."""
    found = gradebook.grade_lti(sim().schoology, grade_id)
    if found is None:
        raise NotFound("Grade not found", [FieldProblem("grade_id", "no grade has this id")])
    return jsonify(found)


@bp.get("/grades/wait")
def wait_for_grade():
    """Long-poll until a grade matching the filters is stored (after ``after_seq`` if given)."""
    s = sim()
    filters = domain.grade_filters(dict(request.args.items()))
    timeout = domain.parse_timeout(request.args.get("timeout"), 10.0, float(s.cfg["WAIT_MAX_S"]))
    gone = admit_wait()  # 503 past the server's cap on waits
    found = s.wait_for(lambda: s.clever.grades(**filters, limit=1), timeout, gone)
    if found:
        return jsonify({"data": found[0].as_json(), "timed_out": False})
    if gone() or s.retired:
        raise wait_cut_short(s.retired)
    return jsonify({"data": None, "timed_out": True})


# --- journal and faults --------------------------------------------------------------

@bp.get("/journal")
def journal():
    s = sim()
    args = request.args
    problems: list[FieldProblem] = []
    ints = {key: query_int(key, default, lo, hi, problems=problems)
            for key, default, lo, hi in (("status", None, 100, 599), ("after_id", 0, 0, 2 ** 62),
                                         ("limit", 100, 1, 10_000))}
    order = args.get("order", "newest")
    if order not in ("newest", "oldest"):
        problems.append(FieldProblem("order", f"must be newest or oldest, not {order!r}",
                                     "oldest with after_id={the last id read} pages through "
                                     "every entry"))
    if problems:
        raise BadRequest("Invalid journal filter", problems)
    entries, total = s.journal.query(oldest_first=order == "oldest",path=args.get("path"), method=args.get("method"),
                                     user_id=args.get("user_id"),
                                     assignment_id=args.get("assignment_id"),
                                     client_id=args.get("client_id"),
                                     direction=args.get("direction"), **ints)
    return jsonify({"data": entries, "total": total, "cap": s.journal.cap,
                    "dropped": s.journal.dropped})


@bp.get("/journal/<int:entry_id>")
def journal_entry(entry_id: int):
    entry = sim().journal.get(entry_id)
    if entry is None:
        raise NotFound("Journal entry not found", [FieldProblem(
            "id", "no entry with this id (the journal keeps the newest entries only)")])
    return jsonify(entry)


@bp.delete("/journal")
def clear_journal():
    sim().journal.clear()
    return jsonify({"cleared": True})


@bp.post("/faults")
def add_fault():
    fault = sim().faults.add(domain.parse_fault(_json_body()))
    return _created(fault.as_dict())


@bp.get("/faults")
def list_faults():
    return jsonify({"data": sim().faults.list()})


@bp.delete("/faults")
def clear_faults():
    sim().faults.clear()
    return jsonify({"cleared": True})
