"""Control API under ``/_sim/`` (DESIGN §5): JSON in, JSON out, for tests and tools.

Routes only parse → call the domain (``control.domain``, ``Simulator``) → serialise.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from .. import __version__
from ..apps import require_app
from ..errors import BadRequest, FieldProblem, NotFound
from ..web import parse_json, read_body, sim
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
                    "apps": s.store.count("apps"), "grades": s.store.count("grades"),
                    "strict": s.cfg["STRICT"]})


@bp.post("/reset")
def reset():
    sim().reset()
    return jsonify({"status": "reset", "kept": ["roster", "apps", "district-app tokens"]})


@bp.post("/clock")
def clock():
    body = _json_body()
    seconds = body.get("advance_s") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 10 ** 8:
        raise BadRequest("Invalid clock change", [FieldProblem(
            "advance_s", "must be a number of seconds ≥ 0", 'e.g. {"advance_s": 61} expires codes')])
    return jsonify({"offset_s": sim().clock.advance(float(seconds)), "now": sim().clock.iso()})


# --- apps ----------------------------------------------------------------------------

@bp.get("/apps")
def list_apps():
    s = sim()
    return jsonify({"data": [s.app_view(a) for a in s.store.list_apps()]})


@bp.post("/apps")
def register_app():
    s = sim()
    body = _json_body()
    if isinstance(body, dict) and isinstance(body.get("client_id"), str) and \
            s.store.get_app(body["client_id"]) is not None:
        raise BadRequest("App already registered", [FieldProblem(
            "client_id", "is taken", f"update it with PATCH /_sim/apps/{body['client_id']}")])
    return _created(s.app_view(s.register_app(body)))


@bp.get("/apps/<client_id>")
def get_app(client_id: str):
    s = sim()
    return jsonify(s.app_view(require_app(s.store, client_id)))


@bp.route("/apps/<client_id>", methods=["PATCH", "PUT"])
def update_app(client_id: str):
    s = sim()
    existing = require_app(s.store, client_id)
    body = _json_body()
    if isinstance(body, dict) and body.get("client_id", client_id) != client_id:
        raise BadRequest("client_id cannot change", [FieldProblem("client_id", "differs from the URL")])
    return jsonify(s.app_view(s.register_app(body, existing)))


@bp.delete("/apps/<client_id>")
def delete_app(client_id: str):
    s = sim()
    require_app(s.store, client_id)
    s.store.delete_app(client_id)
    return jsonify({"deleted": client_id})


# --- personas, codes, tokens ---------------------------------------------------------

@bp.get("/personas")
def personas():
    """Everyone in the roster, with their sections: who a test can log in as."""
    s = sim()
    role = request.args.get("role")
    district = request.args.get("district_id")
    if role not in (None, "student", "teacher"):
        raise BadRequest("Invalid filter", [FieldProblem("role", "must be student or teacher")])
    out = []
    for u in s.roster["users"]:
        user_role = "student" if "student" in u["roles"] else "teacher"
        if (role and user_role != role) or (district and u["district"] != district):
            continue
        out.append({"id": u["id"], "role": user_role, "district": u["district"],
                    "name": f"{u['name']['first']} {u['name']['last']}",
                    "sections": s.store.list_user_section_ids(u["id"])})
    return jsonify({"data": out})


@bp.post("/codes")
def mint_code():
    return _created(domain.mint_code(sim(), _json_body()))


@bp.post("/tokens")
def mint_token():
    return _created(domain.mint_token(sim(), _json_body()))


# --- Schoology assignments -----------------------------------------------------------

@bp.post("/links")
def link_assignment():
    return _created(domain.link_assignment(sim(), _json_body()))


@bp.get("/links")
def list_links():
    args = request.args
    return jsonify({"data": sim().store.list_links(section_id=args.get("section_id"),
                                                   client_id=args.get("client_id"),
                                                   assignment_id=args.get("assignment_id"))})


# --- grades --------------------------------------------------------------------------

@bp.get("/grades")
def list_grades():
    filters = domain.grade_filters(dict(request.args.items()))
    return jsonify({"data": sim().store.list_grades(**filters)})


@bp.get("/grades/<grade_id>/history")
def grade_history(grade_id: str):
    history = sim().store.grade_history(grade_id)
    if not history:
        raise NotFound("Grade not found", [FieldProblem("grade_id", "no grade has this id")])
    return jsonify({"data": history})


@bp.get("/grades/wait")
def wait_for_grade():
    """Long-poll until a grade matching the filters is stored (after ``after_seq`` if given)."""
    s = sim()
    filters = domain.grade_filters(dict(request.args.items()))
    timeout = domain.parse_timeout(request.args.get("timeout"), 10.0, float(s.cfg["WAIT_MAX_S"]))
    found = s.wait_for(lambda: s.store.list_grades(**filters, limit=1), timeout)
    if found:
        return jsonify({"data": found[0], "timed_out": False})
    return jsonify({"data": None, "timed_out": True})


# --- journal and faults --------------------------------------------------------------

@bp.get("/journal")
def journal():
    s = sim()
    args = request.args
    problems = []
    ints = {}
    for key, default, lo, hi in (("status", None, 100, 599), ("after_id", 0, 0, 2 ** 62),
                                 ("limit", 100, 1, 10_000)):
        raw = args.get(key)
        if raw is None:
            ints[key] = default
            continue
        try:
            ints[key] = int(raw)
            if not lo <= ints[key] <= hi:
                raise ValueError
        except ValueError:
            problems.append(FieldProblem(key, f"must be a whole number from {lo} to {hi}"))
    if problems:
        raise BadRequest("Invalid journal filter", problems)
    entries, total = s.journal.query(path=args.get("path"), method=args.get("method"),
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
