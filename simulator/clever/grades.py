"""The grades endpoint's rules (Clever's grade passback guide, Step 3): check a grade, store it, warn.

No Flask here: ``submit_grade`` takes the resolved token and the parsed JSON body (numbers
as ``int``/``Decimal``) and returns ``(grade, warnings)`` or raises a ``SimError``.

Order of checks: the body must be an object; the token must be able to post grades (an
il token of a student); then every problem of the body is collected into one 400; then
the student is resolved (403/404/400); then warnings (strict mode turns them into a 400);
then the grade is stored, overwriting the (app, student, assignmentID) grade.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from json.encoder import encode_basestring as json_string  # = json.dumps(s, ensure_ascii=False)
from typing import Any

from .. import ids, scoring
from ..jsontext import kind
from ..errors import FieldProblem, Forbidden, GradeValidationError, InvalidToken, NotFound, Revoked
from ..models import Grade, Token
from ..sim import Simulator
from . import tokens

FIELDS = ("assignmentID", "userID", "percentage", "scoreGiven", "scoreMaximum")
SCORE_FIELDS = ("percentage", "scoreGiven", "scoreMaximum")

ASSIGNMENT_ID_MAX = 256          # longer is refused
ASSIGNMENT_ID_RECOMMENDED = 64   # Clever: "alphanumeric and under 64 characters" (warning)
SCORE_LIMIT = Decimal(10) ** 15  # scoreGiven/scoreMaximum above this are refused
MIN_SCORE_MAXIMUM = Decimal("0.000001")  # smaller is a bug (and would read as 0 in the record)
MAX_DEPTH = 64                   # nesting of the body (context is stored and shown)

FORMAT_PERCENTAGE = "percentage"
FORMAT_RATIO = "scoreGiven/scoreMaximum"

_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]+")
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")

# Spellings partners get wrong, normalised (lower case, no separators) → the real field.
_NEAR_MISSES = {
    "assignmentid": "assignmentID", "userid": "userID", "percentage": "percentage",
    "percent": "percentage", "scoregiven": "scoreGiven", "scoremaximum": "scoreMaximum",
    "scoremax": "scoreMaximum", "maxscore": "scoreMaximum",
}

_EXAMPLE = '{"assignmentID": "heRte321", "percentage": 0.8}'
_STRICT_HINT = "fix this, or run the simulator without strict mode"


# --- small helpers -------------------------------------------------------------------

def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _show(value: Any) -> str:
    """A value as it appears in JSON, shortened for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, Decimal)):
        return _clip(scoring.number_text(value), 40)
    if isinstance(value, str):
        return _clip(json.dumps(value, ensure_ascii=False), 80)
    return "an array" if isinstance(value, list) else "an object"


def _normalise(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _near_misses(body: dict) -> dict[str, list[str]]:
    """{real field: [keys the partner sent that look like it]}."""
    out: dict[str, list[str]] = {}
    for key in body:
        if key in FIELDS:
            continue
        field = _NEAR_MISSES.get(_normalise(key))
        if field is not None:
            out.setdefault(field, []).append(key)
    return out


def _did_you_mean(field: str, misses: dict[str, list[str]]) -> str | None:
    sent = misses.get(field)
    if not sent:
        return None
    return f"you sent {_clip(sent[0], 40)}; field names are case-sensitive: use {field}"


def _join_hints(*hints: str | None) -> str | None:
    kept = [h for h in hints if h]
    return "; ".join(kept) if kept else None


# --- body-wide checks ----------------------------------------------------------------

def _walk_problems(body: dict) -> list[FieldProblem]:
    """Context nested deeper than MAX_DEPTH (lone surrogates are refused by web.parse_json)."""
    problems: list[FieldProblem] = []
    for key, value in body.items():
        stack = [(value, 2)]
        while stack:
            item, depth = stack.pop()
            if isinstance(item, (list, dict)):
                if depth > MAX_DEPTH:
                    problems.append(FieldProblem(key or "(empty key)",
                                                 f"is nested more than {MAX_DEPTH} levels deep",
                                                 "send flatter context"))
                    break
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return problems


# --- field checks --------------------------------------------------------------------

def _check_assignment_id(body: dict, misses: dict, problems: list[FieldProblem]) -> str | None:
    if "assignmentID" not in body:
        problems.append(FieldProblem("assignmentID", "is missing", _join_hints(
            _did_you_mean("assignmentID", misses),
            "send the assignment id your app gave Schoology, e.g. " + _EXAMPLE)))
        return None
    value = body["assignmentID"]
    if not isinstance(value, str):
        hint = (f'send it as a string: "{scoring.number_text(value)}"'
                if scoring.is_number(value) else 'send a non-empty string, e.g. "heRte321"')
        problems.append(FieldProblem("assignmentID", f"is {kind(value)} ({_show(value)}): must be a string",
                                     hint))
        return None
    if not value:
        problems.append(FieldProblem("assignmentID", "is empty",
                                     'send the assignment id your app gave Schoology, e.g. "heRte321"'))
        return None
    if not value.strip():
        problems.append(FieldProblem("assignmentID", "is blank (only whitespace)",
                                     'send the assignment id your app gave Schoology, e.g. "heRte321"'))
        return None
    if len(value) > ASSIGNMENT_ID_MAX:
        problems.append(FieldProblem(
            "assignmentID", f"is {len(value)} characters; the limit is {ASSIGNMENT_ID_MAX}",
            f"Clever recommends alphanumeric ids under {ASSIGNMENT_ID_RECOMMENDED} characters"))
        return None
    return value


def _check_user_id(body: dict, token: Token, misses: dict, problems: list[FieldProblem]) -> str | None:
    if "userID" not in body:
        if token.kind == "district":
            problems.append(FieldProblem("userID", "is missing", _join_hints(
                _did_you_mean("userID", misses),
                "district-app tokens need the student's Clever id in userID")))
        return None
    value = body["userID"]
    if not isinstance(value, str):
        problems.append(FieldProblem("userID", f"is {kind(value)} ({_show(value)}): must be a string",
                                     "send the student's Clever id as a string"))
        return None
    if not value:
        problems.append(FieldProblem("userID", "is empty",
                                     "send the student's Clever id" +
                                     (", or leave userID out with an il token" if token.kind == "il" else "")))
        return None
    return value


def _number(body: dict, field: str, problems: list[FieldProblem], example: str) -> Decimal | None:
    """The exact value of a score field, or None (with a problem) if it is not a JSON number."""
    value = body[field]
    if scoring.is_number(value):
        return scoring.to_decimal(value)
    if isinstance(value, bool):
        problems.append(FieldProblem(field, "must be a number, not true/false",
                                     f"send a JSON number, e.g. {example}"))
    elif isinstance(value, str):
        text = value.strip()
        if len(text) <= 64 and _JSON_NUMBER.fullmatch(text):
            hint = f"send a JSON number, not a string: {text}"
        else:
            hint = f"send a JSON number, e.g. {example}"
        problems.append(FieldProblem(field, f"is a string ({_show(value)}): must be a number", hint))
    else:
        problems.append(FieldProblem(field, f"is {kind(value)}: must be a number",
                                     f"send a JSON number, e.g. {example}"))
    return None


def _check_score(body: dict, misses: dict, problems: list[FieldProblem]
                 ) -> tuple[str, dict[str, Decimal]] | None:
    """(format, {field: exact value}) of the one score format sent, or None with problems."""
    present = [f for f in SCORE_FIELDS if f in body]
    values: dict[str, Decimal | None] = {f: None for f in present}

    if "percentage" in body:
        p = _number(body, "percentage", problems, "0.8")
        if p is not None:
            if p < 0:
                problems.append(FieldProblem("percentage", f"is {_show(p)}: must be between 0 and 1.0",
                                             "send the score as a fraction of 1.0, e.g. 0.8 for 80%"))
            elif p > 100:
                problems.append(FieldProblem("percentage", f"is {_show(p)}: must be between 0 and 1.0",
                                             "for points, send scoreGiven and scoreMaximum instead"))
            elif p > 1:
                problems.append(FieldProblem(
                    "percentage", f"is {_show(p)}: must be between 0 and 1.0",
                    f"looks like 0–100; send {scoring.lti_string(p / 100)} for {_show(p)}%"))
            else:
                values["percentage"] = p
    if "scoreMaximum" in body:
        m = _number(body, "scoreMaximum", problems, "10")
        if m is not None:
            if m <= 0:
                problems.append(FieldProblem("scoreMaximum", f"is {_show(m)}: must be greater than 0",
                                             "send the points possible, e.g. 10"))
            elif m < MIN_SCORE_MAXIMUM:
                problems.append(FieldProblem("scoreMaximum", f"is {_show(m)}: must be at least 0.000001",
                                             "send the points possible, e.g. 10"))
            elif m > SCORE_LIMIT:
                problems.append(FieldProblem("scoreMaximum", f"is {_show(m)}: must be at most 10^15",
                                             "send the points possible, e.g. 10"))
            else:
                values["scoreMaximum"] = m
    if "scoreGiven" in body:
        g = _number(body, "scoreGiven", problems, "8")
        if g is not None:
            if g < 0:
                problems.append(FieldProblem("scoreGiven", f"is {_show(g)}: must be 0 or more",
                                             "send the points earned, e.g. 8"))
            elif g > SCORE_LIMIT:
                problems.append(FieldProblem("scoreGiven", f"is {_show(g)}: must be at most 10^15",
                                             "send the points earned, e.g. 8"))
            else:
                values["scoreGiven"] = g

    ratio_sent = "scoreGiven" in body or "scoreMaximum" in body
    if "percentage" in body and ratio_sent:
        others = "/".join(f for f in ("scoreGiven", "scoreMaximum") if f in body)
        problems.append(FieldProblem(
            "percentage", f"was sent together with {others}: send exactly one score format",
            "send percentage (0–1.0), or scoreGiven with scoreMaximum, not both"))
        return None
    if "scoreGiven" in body and "scoreMaximum" not in body:
        problems.append(FieldProblem("scoreMaximum", "is missing: scoreGiven needs scoreMaximum",
                                     _join_hints(_did_you_mean("scoreMaximum", misses),
                                                 'send both, e.g. {"scoreGiven": 8, "scoreMaximum": 10}')))
        return None
    if "scoreMaximum" in body and "scoreGiven" not in body:
        problems.append(FieldProblem("scoreGiven", "is missing: scoreMaximum needs scoreGiven",
                                     _join_hints(_did_you_mean("scoreGiven", misses),
                                                 'send both, e.g. {"scoreGiven": 8, "scoreMaximum": 10}')))
        return None
    if not present:
        problems.append(FieldProblem(
            "percentage", "is missing, and so are scoreGiven/scoreMaximum: the grade has no score",
            _join_hints(_did_you_mean("percentage", misses), _did_you_mean("scoreGiven", misses),
                        _did_you_mean("scoreMaximum", misses),
                        "send percentage (0–1.0), or scoreGiven with scoreMaximum")))
        return None
    if any(v is None for v in values.values()):
        return None
    fmt = FORMAT_PERCENTAGE if "percentage" in body else FORMAT_RATIO
    return fmt, values  # type: ignore[return-value]


def _null_read_as_absent(problem: FieldProblem, nulls: list[str]) -> FieldProblem:
    """A missing-field problem of a field sent as null says so."""
    if problem.field in nulls and problem.problem.startswith("is missing"):
        return FieldProblem(problem.field, "is null, read as absent: " + problem.problem, problem.hint)
    return problem


# --- who the grade is for ------------------------------------------------------------

def _token_student(sim: Simulator, token: Token) -> dict | None:
    """For an il token, its user (who must be a student); None for a district-app token."""
    if token.kind != "il":
        return None
    found = sim.clever.user(token.user_id)
    if found is None:
        raise InvalidToken(errors=[FieldProblem(
            "Authorization", f"this il token's user {token.user_id} is no longer in the roster",
            "log the student in again to get a new il token")])
    role, user = found
    if role != "student":
        what = ids.ROLE_WORDS.get(role, "a user who is not a student")
        raise Forbidden(errors=[FieldProblem(
            "Authorization", f"this il token belongs to {what}; grades are posted for students",
            "use the student's il token, or a district-app token with the student's userID")])
    return user


def _resolve_student(sim: Simulator, token: Token, token_user: dict | None,
                     user_id: str | None) -> dict:
    if token_user is not None:  # il token
        if user_id is not None and user_id != token_user["id"]:
            raise Forbidden(errors=[FieldProblem(
                "userID", f"does not match the il token's user ({token_user['id']}); "
                          f"got {_show(user_id)}",
                "leave userID out with an il token, or send the id of the student who logged in")])
        return token_user
    assert user_id is not None  # district token: checked with the other body problems
    district = token.district_id
    found = sim.clever.user(user_id)
    if found is None and user_id in sim.clever.legacy_ids()[1]:
        # A v2 id of a non-student (students keep one id in every version, Clever's v3
        # upgrade guide): whoever it is, grades are for students.
        found = sim.clever.user(sim.clever.legacy_ids()[1][user_id])
    if found is None:
        raise NotFound("User not found", [FieldProblem(
            "userID", f"no user {_show(user_id)} in district {district}",
            "send the Clever id of a student in the district-app token's district")])
    role, user = found
    if user["district"] != district:
        raise NotFound("User not found", [FieldProblem(
            "userID", f"belongs to another district, not the district-app token's ({district})",
            "use the district-app token of the student's district")])
    if role != "student":
        what = "is " + ids.ROLE_WORDS.get(role, "not a student")
        raise GradeValidationError(errors=[FieldProblem(
            "userID", f"{what}; grades are for students",
            "send the Clever id of the student who did the assignment")])
    return user


# --- JSON forms of the payload -------------------------------------------------------

def exact_json(value: Any) -> str:
    """Compact JSON of a parsed body with every number written exactly as it arrived."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return scoring.number_text(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, list):
        return "[" + ",".join(exact_json(v) for v in value) + "]"
    return "{" + ",".join(json_string(k) + ":" + exact_json(v) for k, v in value.items()) + "}"


def plain_json(value: Any) -> Any:
    """The body with Decimals as JSON numbers (``scoring.json_number``), ready for json.dumps."""
    if isinstance(value, Decimal):
        return scoring.json_number(value)
    if isinstance(value, list):
        return [plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    return value


# --- the endpoint's domain -----------------------------------------------------------

def submit_grade(sim: Simulator, token: Token, body: object,
                 token_generation: int | None = None) -> tuple[Grade, list[str]]:
    """Check and store one grade; return (grade, warnings) or raise a SimError.

    ``token_generation``: ``store.token_generation`` read before ``token`` was looked up;
    given, a token revoked meanwhile (app deleted, reset) stores nothing and gets a 401."""
    if not isinstance(body, dict):
        raise GradeValidationError("Grade body must be a JSON object", [FieldProblem(
            "(body)", f"is {kind(body)}", "send a JSON object, e.g. " + _EXAMPLE)])
    token_user = _token_student(sim, token)

    # A grade field sent as null reads as absent (serializers such as Jackson and pydantic
    # write every field, unset ones as null), with a warning: the simulator decides this.
    original, nulls = body, [f for f in FIELDS if f in body and body[f] is None]
    body = {k: v for k, v in body.items() if k not in nulls}
    problems = _walk_problems(body)
    misses = _near_misses(body)
    assignment_id = _check_assignment_id(body, misses, problems)
    user_id = _check_user_id(body, token, misses, problems)
    score = _check_score(body, misses, problems)
    if problems:
        raise GradeValidationError(errors=[_null_read_as_absent(p, nulls) for p in problems])
    assert assignment_id is not None and score is not None

    student = _resolve_student(sim, token, token_user, user_id)
    fmt, values = score
    if fmt == FORMAT_PERCENTAGE:
        lti, clamped = scoring.percentage_lti(values["percentage"]), False
    else:
        lti, clamped = scoring.ratio_lti(values["scoreGiven"], values["scoreMaximum"])
    client_id = token.client_id
    linked = sim.schoology.is_linked(client_id, assignment_id, student["id"])

    warned: list[tuple[str, str]] = [
        (f, f"{f} is null: read as absent (leave fields without a value out)") for f in nulls]
    if clamped:
        warned.append(("scoreGiven", f"scoreGiven {_show(body['scoreGiven'])} exceeds scoreMaximum "
                                     f"{_show(body['scoreMaximum'])}: LTI 1.1 accepts 0–1.0, so the score "
                                     "sent to Schoology is clamped to 1.0"))
    shown_id = _clip(assignment_id, 80)
    if len(assignment_id) > ASSIGNMENT_ID_RECOMMENDED:
        warned.append(("assignmentID", f"assignmentID {shown_id} is {len(assignment_id)} characters: "
                                       f"Clever recommends alphanumeric ids under "
                                       f"{ASSIGNMENT_ID_RECOMMENDED} characters"))
    if not _ALPHANUMERIC.fullmatch(assignment_id):
        warned.append(("assignmentID", f"assignmentID {shown_id} has characters other than letters "
                                       "and digits: Clever recommends alphanumeric ids"))
    for field, keys in misses.items():
        for key in keys:
            warned.append((key, f"{_clip(key, 40)} is not a grade field (did you mean "
                                           f"{field}?): it is kept as context only"))
    if not linked:
        warned.append(("assignmentID", f"assignmentID {shown_id} is not linked to a Schoology "
                                       "assignment yet: the grade is kept and appears in the "
                                       "gradebook once a teacher links it"))
    if warned and sim.cfg.get("STRICT"):
        raise GradeValidationError("Strict mode: the grade has warnings",
                                   [FieldProblem(f, text, _STRICT_HINT) for f, text in warned])
    warnings = [text for _, text in warned]

    now = sim.clock.iso()
    context = {k: plain_json(v) for k, v in body.items() if k not in FIELDS}
    payload = exact_json(original)
    numbers = {f: (scoring.json_number(values[f]) if f in values else None) for f in SCORE_FIELDS}

    def build_record(grade_id: str, version: int, created: str) -> dict:
        return {
            "id": grade_id,
            "assignmentID": assignment_id,
            "userID": student["id"],
            "district": student["district"],
            "client_id": client_id,
            "format": fmt,
            "percentage": numbers["percentage"],
            "scoreGiven": numbers["scoreGiven"],
            "scoreMaximum": numbers["scoreMaximum"],
            "lti_score": scoring.lti_string(lti),
            "clamped": clamped,
            "context": context,
            "payload": payload,
            "linked": linked,
            "token_kind": token.kind,
            "warnings": warnings,
            "version": version,
            "created": created,
            "last_modified": now,
        }

    try:
        grade = sim.clever.save_grade(
            grade_id=ids.object_id(), client_id=client_id, user_id=student["id"],
            assignment_id=assignment_id, district_id=student["district"],
            build_record=build_record, now_iso=now,
            token=None if token_generation is None else (token.access_token, token_generation))
    except Revoked:
        raise tokens.revoked() from None
    return grade, warnings
