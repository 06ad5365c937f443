"""Route of the grades endpoint ``POST /v1/grade``: parse, call domain, serialise.

Order (each step's errors before the next's): bearer token (401) → Content-Type (415)
→ body size (413) → JSON (400) → the grade's rules (``grades.submit_grade``).
Other methods get Flask's 405, answered as JSON by ``app``'s error handler.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app

from ..web import (add_findings, bearer_token, note, parse_json, read_body,
                   require_json_content_type, sim)
from . import grades, tokens

bp = Blueprint("grades", __name__)


@bp.route("/v1/grade", methods=["POST"], provide_automatic_options=False)
def post_grade():
    s = sim()
    token = tokens.resolve(s, bearer_token())
    note(client_id=token["client_id"], token_kind=token["kind"],
         user_id=token.get("user_id"))
    require_json_content_type()
    raw = read_body(s.cfg["GRADE_BODY_LIMIT"])
    body = parse_json(raw, exact_numbers=True)
    if isinstance(body, dict) and isinstance(body.get("assignmentID"), str):
        note(assignment_id=body["assignmentID"][:grades.ASSIGNMENT_ID_MAX])
    record, warnings = grades.submit_grade(s, token, body)
    s.grades_changed()
    note(client_id=record["client_id"], user_id=record["userID"],
         assignment_id=record["assignmentID"], token_kind=record["token_kind"])
    add_findings(warnings)
    return grade_response(record, warnings)


def grade_response(record, warnings: list[str]):
    """``{"data": record, "warnings": [...]}`` as ``jsonify`` writes it, reusing the record's
    text from the store (``StoredRecord.json``) rather than serialising it a second time."""
    text = getattr(record, "json", None)
    if text is None:
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    body = ('{"data":' + text + ',"warnings":[' + ",".join(map(grades.json_string, warnings))
            + "]}\n")
    return current_app.response_class(body, mimetype="application/json")
