"""Every page and endpoint of the app, in the order of Clever's grade passback guide: parse
the request, call the parts in ``partner.current()`` (memory, Clever client, grade client),
answer.

1. ``GET /clever/assignments``: the assignments API Clever calls with a teacher's token.
2. ``GET /clever/callback``: Log in with Clever, ``state=assignment:{id}`` → that page.
3. ``POST /assignments/{id}/submit``: the student finishes; the grade goes to Clever.
Plus the contract suite's provider-state hook ``POST /test-hooks/complete``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from flask import (Blueprint, Response, abort, current_app, jsonify, redirect, render_template,
                   request, session)
from werkzeug.exceptions import HTTPException

from .content import Assignment
from .grades import grade_body
from .partner import current
from .transport import CleverError

log = logging.getLogger("reference_partner")
bp = Blueprint("partner", __name__)

LAUNCH_PREFIX = "assignment:"        # Clever: state=assignment:{assignmentID}
ID_LIMIT = 256                       # longest user/district/assignment id the hook accepts
HOOK_IDS = ("user_id", "assignment_id", "district_id")
_JSON_PATHS = re.compile(r"^/(clever/assignments|test-hooks/|healthz)")


# --- helpers -------------------------------------------------------------------------------

def redirect_uri() -> str:
    uri = current_app.config.get("REDIRECT_URI")
    if not uri:
        raise RuntimeError("REDIRECT_URI is not configured (set it, or serve with bind_partner)")
    return uri


def login_url(state: str | None = None) -> str:
    return current().clever.authorize_url(redirect_uri(), state)


def current_user() -> dict | None:
    """The logged-in user, while their login (and so their il token) is still held."""
    user = session.get("user")
    if not isinstance(user, dict) or current().state.token_for(session.get("login")) is None:
        return None
    return user


def csrf() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(18)
    return session["csrf"]


def assignment_path(assignment_id: str) -> str:
    return "/assignments/" + quote(assignment_id, safe="")


def page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, user=current_user(), csrf=csrf(),
                           assignment_path=assignment_path, **context), status


def message(title: str, text: str, status: int, *, login: str | None = None,
            hint: str | None = None) -> tuple[str, int]:
    return page("message.html", status, title=title, text=text, login_url=login, hint=hint)


def json_error(http_status: int, text: str, field_name: str | None = None,
               **extra: Any) -> Response:
    body: dict[str, Any] = {"error": text}
    if field_name:
        body["field"] = field_name
    body.update(extra)
    response = jsonify(body)
    response.status_code = http_status
    return response


def logout_session() -> None:
    current().state.drop_login(session.get("login"))
    session.clear()


def not_found(assignment_id: str, hint: str | None = None) -> tuple[str, int]:
    return message("Assignment not found",
                   f"There is no assignment with the id \u201c{assignment_id}\u201d.", 404,
                   hint=hint)


# --- pages ---------------------------------------------------------------------------------

@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok", "assignments": len(current().state.assignments)})


@bp.get("/")
def home():
    return page("home.html", login_url=login_url())


@bp.get("/login")
def login_needed():
    """Where pages that need a login send a visitor; the link keeps the assignment."""
    wanted = request.args.get("assignment")
    if current_user() is not None:  # already logged in: nothing to do here
        return redirect(assignment_path(wanted) if wanted else "/dashboard", code=302)
    state_param = LAUNCH_PREFIX + wanted if wanted in current().state.assignments else None
    return message("Please log in", "You need to log in with Clever to see this page.", 200,
                   login=login_url(state_param))


@bp.get("/dashboard")
def dashboard():
    user = current_user()
    if user is None:
        return redirect("/login", code=302)
    state = current().state
    mine = sorted(state.completions_of(user["id"]), key=lambda c: c.id, reverse=True)
    return page("dashboard.html", assignments=list(state.assignments.values()),
                completions=mine, by_id=state.assignments)


# --- Step 1: the assignments API -------------------------------------------------------------

def _unauthorized(text: str, error: str | None = None) -> Response:
    response = json_error(401, text)
    response.headers["WWW-Authenticate"] = 'Bearer realm="clever"' + (
        f', error="{error}"' if error else "")
    return response


@bp.get("/clever/assignments")
def assignments_api():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("send Authorization: Bearer {token}")
    try:
        current().clever.me(token.strip())  # the guide's optional step: who is asking
    except CleverError as exc:
        if exc.status in (401, 403):
            return _unauthorized(f"the bearer token is not valid (Clever's /me said "
                                 f"{exc.status})", "invalid_token")
        return json_error(502, f"could not check the token with Clever: {exc.message}")
    # The list is the same for every teacher and district, so /me only authenticates.
    return jsonify({"assignments": [a.listing() for a in current().state.assignments.values()]})


# --- Step 2: login, with the assignment in state ---------------------------------------------

@bp.get("/clever/callback")
def callback():
    args = request.args
    if args.get("error"):
        logout_session()
        detail = f" – {args['error_description']}" if args.get("error_description") else ""
        return message("Login was cancelled", "Clever did not log you in.", 400,
                       hint=f"Clever said: {args.get('error')}{detail}", login=login_url())
    code = args.get("code")
    if not code:
        logout_session()
        return message("Login link incomplete", "This login link has no code from Clever.",
                       400, login=login_url())
    clever = current().clever
    try:
        token = clever.exchange_code(code, redirect_uri())
        me = clever.me(token)
    except CleverError as exc:
        logout_session()
        return message("Login failed", "Clever could not log you in. Please start again from "
                       "Schoology or the Clever portal.", 400 if exc.status == 400 else 401,
                       hint=f"Clever said: {exc.message}", login=login_url())
    name, role = clever.user_profile(token, me["id"])
    logout_session()  # a new session for every login (no session fixation)
    session["login"] = current().state.add_login(me["id"], token)
    session["user"] = {"id": me["id"], "district": me["district"],
                       "name": name or me["id"], "role": role or "student"}
    launch = args.get("state") or ""
    if launch.startswith(LAUNCH_PREFIX) and launch[len(LAUNCH_PREFIX):]:
        return redirect(assignment_path(launch[len(LAUNCH_PREFIX):]), code=302)
    return redirect("/dashboard", code=302)


@bp.post("/logout")
def logout():
    if request.form.get("csrf") != session.get("csrf"):
        abort(400)
    logout_session()
    return redirect("/", code=303)


# --- Step 3: the activity, and the grade when the student finishes ---------------------------

@bp.get("/assignments/<path:assignment_id>")
def assignment_page(assignment_id: str):
    user = current_user()
    if user is None:
        return redirect("/login?" + urlencode({"assignment": assignment_id}), code=302)
    state = current().state
    assignment = state.assignments.get(assignment_id)
    if assignment is None:
        return not_found(assignment_id, "Your teacher may have linked an assignment that was "
                                        "removed. Pick one from your dashboard.")
    nonce = state.open_attempt(user["id"], assignment.id) if user["role"] == "student" else ""
    return page("assignment.html", assignment=assignment, nonce=nonce,
                preview=user["role"] != "student")


@bp.post("/assignments/<path:assignment_id>/submit")
def submit(assignment_id: str):
    user = current_user()
    if user is None:
        return redirect("/login?" + urlencode({"assignment": assignment_id}), code=303)
    assignment = current().state.assignments.get(assignment_id)
    if assignment is None:
        return not_found(assignment_id)
    if user["role"] != "student":
        return message("Preview only", "Only students turn in assignments.", 403)
    attempt, done = current().state.claim_attempt(request.form.get("attempt", ""), user["id"],
                                                  assignment.id)
    if done is not None:  # the same form submitted again: report nothing twice
        return redirect(f"/results/{done}", code=303)
    if attempt is None:
        return message("This page has expired", "Open the assignment again to start a new "
                       "attempt.", 400)
    completion_id = _grade_submission(user, assignment, attempt)
    return redirect(f"/results/{completion_id}", code=303)


def _grade_submission(user: dict, assignment: Assignment, attempt: dict) -> str:
    """Score the submitted form, record it and send the grade with the student's il token."""
    answers = [request.form.get(f"q{i}") for i in range(len(assignment.questions))]
    correct = sum(q.is_correct(a) for q, a in zip(assignment.questions, answers))
    total = len(assignment.questions)
    partner = current()
    completion = partner.state.record(
        user_id=user["id"], district_id=user["district"], assignment_id=assignment.id,
        fraction=Decimal(correct) / Decimal(total), source="activity",
        completion_id=attempt["completion"], correct=correct, total=total)
    spent = max(0, round(time.time() - attempt["started"]))
    token = partner.state.token_for(session.get("login"))
    partner.grades.report(completion, grade_body(assignment, completion, spent), token)
    return completion.id


@bp.get("/results/<completion_id>")
def result(completion_id: str):
    user = current_user()
    if user is None:
        return redirect("/login", code=302)
    state = current().state
    completion = state.completions.get(completion_id)
    if completion is None or completion.user_id != user["id"]:
        return message("Result not found", "There is no such result for you.", 404)
    assignment = state.assignments[completion.assignment_id]
    return page("result.html", assignment=assignment, completion=completion,
                score_text=assignment.score_text(completion.fraction))


# --- provider state for the contract suite ---------------------------------------------------

@bp.post("/test-hooks/complete")
def complete_hook():
    """A completion without a browser: record it and send its grade (see the README)."""
    if not current_app.config.get("TEST_HOOKS"):
        abort(404)
    body, problem = _hook_body()
    if problem is not None:
        return problem
    partner = current()
    assignment = partner.state.assignments.get(body["assignment_id"])
    if assignment is None:
        return json_error(404, f"unknown assignment {body['assignment_id']!r}", "assignment_id",
                          known=list(partner.state.assignments))
    # The student's own il token while they are logged in here (what the activity page
    # uses), else the district-app token of their district.
    token = partner.state.il_token_of(body["user_id"])
    if token is None:
        try:
            partner.clever.district_token(body["district_id"])
        except CleverError as exc:
            return json_error(502, f"could not get a district-app token: {exc.message}",
                              status="failed", clever_status=exc.status, clever_body=exc.body)
    completion = partner.state.record(user_id=body["user_id"], district_id=body["district_id"],
                                      assignment_id=assignment.id,
                                      fraction=Decimal(body["score"]), source="test-hook")
    partner.grades.report(completion, grade_body(assignment, completion), token)
    if not completion.sent:
        return json_error(502, completion.error or "grade not sent", status="failed",
                          grade_status=completion.grade_status, tries=completion.tries,
                          completion_id=completion.id)
    return jsonify({"status": "sent", "grade_status": completion.grade_status,
                    "completion_id": completion.id, "tries": completion.tries,
                    "sent": completion.payload})


def _hook_body() -> tuple[dict, Response | None]:
    """The hook's JSON body, or the 400 naming the field that is wrong."""
    try:
        body = json.loads(request.get_data(cache=False).decode("utf-8"), parse_float=Decimal,
                          parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        return {}, json_error(400, "body must be a JSON object", "(body)")
    for key in HOOK_IDS:
        value = body.get(key)
        if not isinstance(value, str) or not value.strip() or len(value) > ID_LIMIT:
            return body, json_error(400, f"{key} must be a non-empty string "
                                         f"(at most {ID_LIMIT} characters)", key)
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, Decimal)) or not 0 <= score <= 1:
        return body, json_error(400, "score must be a number from 0 to 1.0 (the fraction the "
                                     "student earned)", "score")
    return body, None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# --- errors ----------------------------------------------------------------------------------

ERROR_TITLES = {404: "Page not found", 405: "Not allowed", 400: "Bad request", 413: "Too large"}


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException):
    if _JSON_PATHS.match(request.path):
        return json_error(exc.code or 500, exc.description or exc.name)
    return message(ERROR_TITLES.get(exc.code or 500, exc.name),
                   "That page does not exist here." if exc.code == 404 else
                   (exc.description or exc.name), exc.code or 500)


@bp.app_errorhandler(Exception)
def unexpected(exc: Exception):  # pragma: no cover - a bug in this app
    log.exception("unexpected error on %s %s", request.method, request.path)
    if _JSON_PATHS.match(request.path):
        return json_error(500, f"reference partner bug: {type(exc).__name__}")
    return message("Something went wrong", "The app hit an unexpected error.", 500)
