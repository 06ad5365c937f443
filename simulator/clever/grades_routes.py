"""Route of the grades endpoint ``POST /v1/grade``: parse, call domain, serialise.

Order (each step's errors before the next's): bearer token (401) → Content-Type (415)
→ body size (413) → Content-Encoding (415 unless identity or gzip; 400 bad gzip; 413 when
it inflates past the limit) → JSON (400) → the grade's rules (``grades.submit_grade``).
Other methods get 405 naming POST (a browser's preflight too: no CORS here).

A ``web.JsonApi``: answered by the pipeline (``traffic.EmulatedTraffic``) after fault
injection and the rate limit, like every emulated JSON API route.
"""

from __future__ import annotations

import zlib

from ..errors import BadRequest, FieldProblem, PayloadTooLarge, UnsupportedMediaType
from ..jsontext import dumps
from ..models import Grade
from ..traffic import Call
from ..web import JsonApi, bearer_from, check_json_content_type, parse_json, read_body_from
from . import grades, tokens

api = JsonApi("grades", rate_limited=True, preflight=False)
bp = api.blueprint


@api.route("/v1/grade", methods=("POST",))
def post_grade(call: Call) -> bytes:
    """Check, store and answer one grade POST."""
    s, ex, environ = call.sim, call.exchange, call.environ
    generation = s.clever.token_generation  # before the lookup: see Store.save_grade
    token = tokens.resolve(s, bearer_from(environ.get("HTTP_AUTHORIZATION")))
    ex.note(client_id=token.client_id, token_kind=token.kind, user_id=token.user_id)
    check_json_content_type(environ.get("CONTENT_TYPE"))
    limit = s.cfg["GRADE_BODY_LIMIT"]
    ex.request_body = read_body_from(environ, limit)
    body = parse_json(decode_content(environ.get("HTTP_CONTENT_ENCODING"), ex.request_body, limit),
                      exact_numbers=True)
    if isinstance(body, dict):
        # Named now, so a rejected POST is still found by student and assignment: with a
        # district-app token the body's userID is the only place the student is named.
        if isinstance(body.get("assignmentID"), str):
            ex.note(assignment_id=body["assignmentID"][:grades.ASSIGNMENT_ID_MAX])
        if token.user_id is None and isinstance(body.get("userID"), str):
            ex.note(user_id=body["userID"][:grades.ASSIGNMENT_ID_MAX])
    grade, warnings = grades.submit_grade(s, token, body, generation)
    s.grades_changed()
    ex.note(client_id=grade.client_id, user_id=grade.user_id,
            assignment_id=grade.assignment_id, token_kind=token.kind)
    ex.findings.extend(warnings)
    return grade_response(grade, warnings)


def decode_content(encoding: str | None, raw: bytes, limit: int) -> bytes:
    """The body as sent before ``Content-Encoding``: identity as is, gzip inflated (at most
    ``limit`` bytes, so a small bomb cannot grow large); any other coding is 415 naming it."""
    codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return raw
    if codings not in (["gzip"], ["x-gzip"]):
        raise UnsupportedMediaType("Unsupported Content-Encoding", [FieldProblem(
            "Content-Encoding", f"is {(encoding or '')[:60]!r}: the grades endpoint reads gzip or "
                                "an unencoded body", "send the JSON as is, or gzip it")])
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, limit + 1)
        complete = inflater.eof
    except zlib.error as exc:
        raise BadRequest("Body is not valid gzip", [FieldProblem(
            "Content-Encoding", f"says gzip, but the body does not inflate ({exc})",
            "gzip the whole JSON body, or drop the Content-Encoding header")]) from None
    if len(data) > limit:
        raise PayloadTooLarge(f"Request body too large once inflated (limit {limit} bytes)", [
            FieldProblem("(body)", f"inflates past {limit} bytes",
                         "send only the grade fields and a little context")])
    if not complete:
        raise BadRequest("Body is not valid gzip", [FieldProblem(
            "Content-Encoding", "says gzip, but the gzip stream is cut short",
            "send the whole gzip stream")])
    return data


def grade_response(grade: Grade | dict, warnings: list[str]) -> bytes:
    """``{"data": record, "warnings": [...]}`` as ``jsonify`` writes it, reusing the record's
    text from the store (``Grade.json``) rather than serialising it a second time."""
    text = grade.json if isinstance(grade, Grade) else dumps(grade)
    return ('{"data":' + text + ',"warnings":[' + ",".join(map(grades.json_string, warnings))
            + "]}\n").encode()
