"""Rules of the control API (``/_sim/``): checking fault, persona and wait requests.

No Flask here; routes parse JSON and call these functions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .. import bodies, ids
from ..clever import oauth
from ..errors import BadRequest, FieldProblem, NotFound
from ..faults import Fault
from ..models import App
from ..numbers import whole_number
from ..schoology.domain import launch_state
from ..sim import Simulator

TOKEN_MAX_LEN = 200  # longer than any token the simulator issues


def parse_fault(body: Any) -> Fault:
    """A ``FaultRequest`` (its rules are the schema in openapi.json) as a ``Fault``."""
    body = bodies.check_request("post", "/_sim/faults", body, "Invalid fault")
    method = body.get("method")
    return Fault(path=body["path"], status=_whole(body.get("status")), count=_whole(body.get("count", 1)),
                 method=method.upper() if method else None,
                 retry_after=_whole(body.get("retry_after")), latency_ms=_whole(body.get("latency_ms", 0)),
                 body=body.get("body"), drop=body.get("drop") is True)


def _whole(value: Any) -> int | None:
    """An integer the schema accepted (503.0 is one) as an int."""
    return None if value is None else int(value)


def _persona(sim: Simulator, body: dict) -> tuple[App, str]:
    client_id, user_id = body["client_id"], body["user_id"]
    app = sim.clever.require_app(client_id)
    if sim.clever.user(user_id) is None:
        raise NotFound("User not found", [FieldProblem("user_id", f"{user_id!r} is not in the roster",
                                                       "list people with GET /_sim/personas")])
    return app, user_id


def mint_code(sim: Simulator, body: Any) -> dict:
    """A code for a persona, and the redirect URL Clever would send the browser to."""
    body = bodies.check_request("post", "/_sim/codes", body, "Invalid code request")
    redirect_uri, state, assignment_id = (body.get(k) for k in ("redirect_uri", "state", "assignment_id"))
    app, user_id = _persona(sim, body)
    if redirect_uri is None:
        redirect_uri = app.primary_redirect_uri
    elif redirect_uri not in app.redirect_uris:
        raise BadRequest("redirect_uri does not match", [FieldProblem(
            "redirect_uri", "is not registered for the app", "registered: " + ", ".join(app.redirect_uris))])
    if assignment_id is not None:
        state = launch_state(assignment_id)
    req = oauth.AuthorizeRequest(app, redirect_uri, state, None)
    code = oauth.issue_code(sim, app, user_id, redirect_uri)
    url = oauth.redirect_with_code(req, code)
    return {"code": code, "redirect_url": url, "state": state, "expires_in": sim.cfg["CODE_TTL_S"]}


def mint_token(sim: Simulator, body: Any) -> dict:
    """An il token for a persona, as if they had just logged in."""
    body = bodies.check_request("post", "/_sim/tokens", body, "Invalid token request")
    app, user_id = _persona(sim, body)
    return oauth.mint_il_token(sim, app, user_id)


def revoke_token(sim: Simulator, access_token: str) -> dict:
    """Revoke one il or district-app token, as Clever does when a login ends or a district
    re-authorizes; a district-app token is reissued (the district stays connected)."""
    reissue = {"access_token": ids.district_token(), "id": ids.object_id(),
               "created": sim.clock.iso()}
    old = sim.clever.revoke_token(access_token, reissue=reissue) \
        if len(access_token) <= TOKEN_MAX_LEN else None
    if old is None:
        raise NotFound("Token not found", [FieldProblem(
            "token", "is not a token of this simulator (unknown, or revoked already)",
            "district-app tokens: GET /_sim/apps/{client_id}; il tokens: the partner's "
            "POST /oauth/tokens in GET /_sim/journal, or POST /_sim/tokens")])
    return {"revoked": old.describe(), "kind": old.kind, "client_id": old.client_id,
            "district_id": old.district_id, "user_id": old.user_id,
            "reissued": not old.is_il}


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
