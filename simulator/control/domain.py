"""Rules of the control API (``/_sim/``): checking fault, link, persona and wait requests.

No Flask here; routes parse JSON and call these functions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .. import ids
from ..apps import require_app
from ..clever import oauth, tokens
from ..errors import BadRequest, FieldProblem, NotFound
from ..faults import Fault
from ..numbers import whole_number
from ..sim import Simulator

GRADING_TYPES = ("points", "percentage", "letter", "pass_fail")
TOKEN_MAX_LEN = 200  # longer than any token the simulator issues


def _obj(body: Any, example: str) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("Body must be a JSON object",
                         [FieldProblem("(body)", f"is a JSON {type(body).__name__}", f"send {example}")])
    return body


def _str(body: dict, key: str, problems: list[FieldProblem], *, required: bool = True,
         max_len: int = 256) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            problems.append(FieldProblem(key, "is required"))
        return None
    if not isinstance(value, str) or not value:
        problems.append(FieldProblem(key, "must be a non-empty string"))
        return None
    if len(value) > max_len:
        problems.append(FieldProblem(key, f"is longer than {max_len} characters"))
        return None
    return value


def _int(body: dict, key: str, problems: list[FieldProblem], default: int | None, lo: int,
         hi: int) -> int | None:
    value = body.get(key)
    if value is None:  # absent or null: the default
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        problems.append(FieldProblem(key, f"must be a whole number from {lo} to {hi}"))
        return None
    return value


def _unknown(body: dict, known: set[str], problems: list[FieldProblem]) -> None:
    for key in sorted(set(body) - known):
        problems.append(FieldProblem(key, "unknown field", "known: " + ", ".join(sorted(known))))


def parse_fault(body: Any) -> Fault:
    """``{"path", "status"?, "count"?, "method"?, "retry_after"?, "latency_ms"?, "body"?, "drop"?}``."""
    body = _obj(body, '{"path": "/v1/grade", "status": 503, "count": 1}')
    problems: list[FieldProblem] = []
    _unknown(body, {"path", "status", "count", "method", "retry_after", "latency_ms", "body", "drop"},
             problems)
    path = _str(body, "path", problems, max_len=1000)
    if path is not None and not path.startswith("/"):
        problems.append(FieldProblem("path", "must start with /", "e.g. /v1/grade or /v3.0/*"))
    status = _int(body, "status", problems, None, 100, 599)
    count = _int(body, "count", problems, 1, 1, 1_000_000)
    retry_after = _int(body, "retry_after", problems, None, 0, 86_400)
    latency = _int(body, "latency_ms", problems, 0, 0, 60_000)
    method = body.get("method")
    if method is not None and (not isinstance(method, str) or not method.isalpha()):
        problems.append(FieldProblem("method", "must be an HTTP method such as POST"))
    fault_body = body.get("body")
    if fault_body is not None and not isinstance(fault_body, dict):
        problems.append(FieldProblem("body", "must be a JSON object (the error body to answer)"))
    drop = body.get("drop", False)
    if drop is None:
        drop = False
    if not isinstance(drop, bool):
        problems.append(FieldProblem("drop", "must be true or false",
                                     "true closes the connection without answering"))
    elif drop and (status is not None or retry_after is not None or fault_body is not None):
        problems.append(FieldProblem("drop", "a dropped connection has no status, retry_after or body",
                                     "give drop (with latency_ms if you like) or a status"))
    if status is None and not latency and not drop and not problems:
        problems.append(FieldProblem("status", "give a status, a latency_ms, drop: true, or a status "
                                               "with a latency_ms"))
    if problems:
        raise BadRequest("Invalid fault", problems)
    return Fault(path=path, status=status, count=count, method=method.upper() if method else None,
                 retry_after=retry_after, latency_ms=latency or 0, body=fault_body,
                 drop=drop is True)


def _persona(sim: Simulator, body: dict, problems: list[FieldProblem]) -> tuple[dict | None, str | None]:
    client_id = _str(body, "client_id", problems)
    user_id = _str(body, "user_id", problems)
    if problems:
        return None, None
    app = require_app(sim.store, client_id)
    if sim.store.get_user(user_id) is None:
        raise NotFound("User not found", [FieldProblem("user_id", f"{user_id!r} is not in the roster",
                                                       "list people with GET /_sim/personas")])
    return app, user_id


def mint_code(sim: Simulator, body: Any) -> dict:
    """A code for a persona, and the redirect URL Clever would send the browser to."""
    body = _obj(body, '{"client_id": "...", "user_id": "..."}')
    problems: list[FieldProblem] = []
    _unknown(body, {"client_id", "user_id", "redirect_uri", "state", "assignment_id"}, problems)
    redirect_uri = _str(body, "redirect_uri", problems, required=False, max_len=2000)
    state = body.get("state")
    if state is not None and not isinstance(state, str):
        problems.append(FieldProblem("state", "must be a string"))
    assignment_id = _str(body, "assignment_id", problems, required=False)
    if state is not None and assignment_id is not None:
        problems.append(FieldProblem("state", "give state or assignment_id, not both"))
    app, user_id = _persona(sim, body, problems)
    if problems:
        raise BadRequest("Invalid code request", problems)
    if redirect_uri is None:
        redirect_uri = app["redirect_uris"][0]
    elif redirect_uri not in app["redirect_uris"]:
        raise BadRequest("redirect_uri does not match", [FieldProblem(
            "redirect_uri", "is not registered for the app", "registered: " + ", ".join(app["redirect_uris"]))])
    if assignment_id is not None:
        state = launch_state(assignment_id)
    req = oauth.AuthorizeRequest(app, redirect_uri, state, None)
    code = oauth.issue_code(sim, app, user_id, redirect_uri)
    url = oauth.redirect_with_code(req, code)
    return {"code": code, "redirect_url": url, "state": state, "expires_in": sim.cfg["CODE_TTL_S"]}


def launch_state(assignment_id: str) -> str:
    """The seed's ``state=assignment:{assignmentID}`` (the prefix literal, the id as given)."""
    return f"assignment:{assignment_id}"


def mint_token(sim: Simulator, body: Any) -> dict:
    """An il token for a persona, as if they had just logged in."""
    body = _obj(body, '{"client_id": "...", "user_id": "..."}')
    problems: list[FieldProblem] = []
    _unknown(body, {"client_id", "user_id"}, problems)
    app, user_id = _persona(sim, body, problems)
    if problems:
        raise BadRequest("Invalid token request", problems)
    return oauth.mint_il_token(sim, app, user_id)


def revoke_token(sim: Simulator, access_token: str) -> dict:
    """Revoke one il or district-app token, as Clever does when a login ends or a district
    re-authorizes; a district-app token is reissued (the district stays connected)."""
    reissue = {"access_token": ids.district_token(), "id": ids.object_id(),
               "created": sim.clock.iso()}
    old = sim.store.revoke_token(access_token, reissue=reissue) \
        if len(access_token) <= TOKEN_MAX_LEN else None
    if old is None:
        raise NotFound("Token not found", [FieldProblem(
            "token", "is not a token of this simulator (unknown, or revoked already)",
            "district-app tokens: GET /_sim/apps/{client_id}; il tokens: the partner's "
            "POST /oauth/tokens in GET /_sim/journal, or POST /_sim/tokens")])
    district = old["kind"] == "district"
    return {"revoked": tokens.describe(old), "kind": old["kind"], "client_id": old["client_id"],
            "district_id": old["district_id"], "user_id": old.get("user_id"),
            "reissued": district}


def link_assignment(sim: Simulator, body: Any) -> dict:
    """Create the Schoology assignment a teacher would make from a partner assignment."""
    body = _obj(body, '{"section_id": "...", "client_id": "...", "assignment_id": "a1"}')
    problems: list[FieldProblem] = []
    known = {"section_id", "client_id", "assignment_id", "name", "description", "standards",
             "grading_enabled", "grading_category", "grading_period", "grading_type",
             "due_date", "max_points"}
    _unknown(body, known, problems)
    section_id = _str(body, "section_id", problems)
    client_id = _str(body, "client_id", problems)
    assignment_id = _str(body, "assignment_id", problems)
    name = _str(body, "name", problems, required=False, max_len=1000)
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(FieldProblem("description", "must be a string"))
    standards = body.get("standards", [])
    if not isinstance(standards, list) or not all(isinstance(s, str) for s in standards):
        problems.append(FieldProblem("standards", "must be a list of strings"))
    enabled = body.get("grading_enabled", True)
    if not isinstance(enabled, bool):
        problems.append(FieldProblem("grading_enabled", "must be true or false"))
    grading_type = body.get("grading_type", "points")
    if grading_type not in GRADING_TYPES:
        problems.append(FieldProblem("grading_type", "must be one of " + ", ".join(GRADING_TYPES)))
    max_points = body.get("max_points", 100)
    if isinstance(max_points, bool) or not isinstance(max_points, (int, float)) or not 0 < max_points <= 100_000:
        problems.append(FieldProblem("max_points", "must be a number above 0 (at most 100000)",
                                     "Schoology's default is 100"))
    due_date = _str(body, "due_date", problems, required=False, max_len=40)
    section = sim.store.get_record("sections", section_id) if section_id else None
    if section_id and section is None:
        problems.append(FieldProblem("section_id", "no such section in the roster"))
    if problems:
        raise BadRequest("Invalid Schoology assignment", problems)
    app = require_app(sim.store, client_id)
    district = sim.store.get_record("districts", section["district"]) or {}
    schoology = district.get("schoology", {})
    for key, table in (("grading_category", "grading_categories"), ("grading_period", "grading_periods")):
        value = body.get(key)
        choices = [c["id"] for c in schoology.get(table, [])]
        if value is not None and value not in choices:
            problems.append(FieldProblem(key, f"{value!r} is not one of the district's {table}",
                                         "choices: " + ", ".join(choices)))
    if problems:
        raise BadRequest("Invalid Schoology assignment", problems)
    link = {
        "id": ids.object_id(), "section_id": section_id, "client_id": app["client_id"],
        "assignment_id": assignment_id, "name": name or assignment_id, "description": description,
        "standards": standards, "grading_enabled": enabled, "grading_type": grading_type,
        "grading_category": body.get("grading_category"), "grading_period": body.get("grading_period"),
        "due_date": due_date, "max_points": max_points,
        "grading_scale": section.get("schoology", {}).get("grading_scale"),
        "created": sim.clock.iso(),
    }
    link = sim.store.link_assignment(link)
    link["launch_path"] = "/_sim/launch"  # where a student's "Open" goes (control API form)
    sim.grades_changed()
    return link


def grade_filters(args: dict[str, str]) -> dict:
    """Query parameters of grade listings and waits, checked."""
    problems: list[FieldProblem] = []
    out: dict[str, Any] = {}
    for key in ("client_id", "user_id", "assignment_id", "district_id"):
        if key in args:
            if not args[key]:
                problems.append(FieldProblem(key, "must not be empty"))
            out[key] = args[key]
    if "after_seq" in args:
        out["after_seq"] = whole_number(args["after_seq"], 0, 10 ** 18 - 1)
        if out["after_seq"] is None:
            problems.append(FieldProblem("after_seq", "must be a whole number from 0 to "
                                         "999999999999999999", "use the seq of the last grade seen"))
    if problems:
        raise BadRequest("Invalid filter", problems)
    return out


def parse_timeout(raw: str | None, default: float, maximum: float) -> float:
    if raw is None:
        return default
    try:
        value = Decimal(raw)
    except Exception:
        value = None
    if value is None or not value.is_finite() or value < 0 or value > Decimal(str(maximum)):
        raise BadRequest("Invalid timeout", [FieldProblem("timeout", f"must be seconds from 0 to {maximum}")])
    return float(value)
