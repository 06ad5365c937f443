"""Grade assertions over a ``ControlClient``, usable from any test runner (the pytest plugin's
``clever_sim.assert_grade`` and ``wait_for_grade`` are these functions).

    from simulator.control_client import ControlClient
    from simulator.grade_check import assert_grade

    with ControlClient("http://127.0.0.1:8080") as sim:
        ...                                          # your app passes a grade back
        assert_grade(sim, student, "quiz1", lti=0.8, timeout=5)

A failure is an ``AssertionError`` whose message lists the grades stored and the similar
``POST /v1/grade`` requests the simulator received, closest first, with the error it
answered: what a partner needs to see why the expected grade is not there.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from .control_client import ControlAPIError, ControlClient

__all__ = ["assert_grade", "explain", "user_id", "wait_for_grade"]

TOLERANCE = Decimal("0.000001")
POINTS_TOLERANCE = Decimal("0.005")  # Schoology shows points with 2 decimals
SHOWN = 10                           # lines of grades / similar requests in a failure message


def user_id(person: Any) -> str:
    """A user id from an id or a persona/user dict (helpers take either)."""
    if isinstance(person, dict):
        return person["id"]
    return person


def wait_for_grade(control: ControlClient, user: Any, assignment_id: str, timeout: float = 10, *,
                   client_id: str | None = None) -> dict:
    """The grade of ``user`` for ``assignment_id`` once it is stored (long-poll); an
    AssertionError listing what did arrive when none comes within ``timeout`` seconds."""
    __tracebackhide__ = True  # pytest: failures point at the test's line, not here
    student = user_id(user)
    grade = control.wait_for_grade(student, assignment_id, timeout, client_id=client_id)
    if grade is None:
        raise AssertionError(explain(
            control, f"wait_for_grade: no grade for student {student} on assignment "
            f"{assignment_id!r} arrived within {timeout:g} s", student, assignment_id))
    return grade


def assert_grade(control: ControlClient, student: Any, assignment_id: str, *, lti: Any = None,
                 percentage: Any = None, points: Any = None, client_id: str | None = None,
                 timeout: float = 0) -> dict:
    """Assert the stored grade of ``student`` for ``assignment_id`` has one expected value:

    * ``lti`` — the LTI 1.1 score (0–1.0, what Clever passes to Schoology), ± 0.000001;
    * ``percentage`` — the fraction the partner sent (``percentage``, or
      ``scoreGiven/scoreMaximum`` before the 1.0 clamp), ± 0.000001;
    * ``points`` — the points the teacher's gradebook shows: LTI × the max points of
      the assignment linked in the student's section (``link()`` it first), ± 0.005.

    ``timeout`` > 0 waits that long for the grade to arrive. On failure the message lists
    the grades stored and the similar grade requests the simulator received.
    """
    __tracebackhide__ = True
    given = [(name, value) for name, value in (("lti", lti), ("percentage", percentage),
                                               ("points", points)) if value is not None]
    if len(given) != 1:
        raise TypeError("assert_grade takes exactly one of lti=, percentage= or points=")
    name, expected_raw = given[0]
    expected = _decimal(expected_raw)
    if expected is None:
        raise TypeError(f"assert_grade: {name}={expected_raw!r} is not a number")
    student_id = user_id(student)
    if timeout:
        grade = control.wait_for_grade(student_id, assignment_id, timeout, client_id=client_id)
    else:
        found = control.grades(user_id=student_id, assignment_id=assignment_id, client_id=client_id)
        grade = found[-1] if found else None
    what = f"student {student_id} on assignment {assignment_id!r}"
    if grade is None:
        waited = f" within {timeout:g} s" if timeout else ""
        raise AssertionError(explain(
            control, f"assert_grade: expected {name} {_text(expected)} but no grade for {what} "
            f"arrived{waited}", student_id, assignment_id))
    got, detail = _measure(control, name, grade, student_id)
    tolerance = POINTS_TOLERANCE if name == "points" else TOLERANCE
    if got is None or abs(got - expected) > tolerance:
        shown = "nothing" if got is None else _text(got)
        hint = ""
        if name == "percentage" and 1 < expected <= 100:
            hint = f"\n(percentage is Clever's 0–1.0 format: did you mean {_text(expected / 100)}?)"
        raise AssertionError(explain(
            control, f"assert_grade: {what}: expected {name} {_text(expected)}, got {shown} "
            f"({detail}){hint}", student_id, assignment_id))
    return grade


# --- measuring a stored grade ----------------------------------------------------------------

def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _measure(control: ControlClient, name: str, grade: dict,
             student_id: str) -> tuple[Decimal | None, str]:
    """The grade's value for ``name`` (None: it has none) and how it was found."""
    lti = _decimal(grade.get("lti_score"))
    sent = describe_grade(grade)
    if name == "lti":
        return lti, sent
    if name == "percentage":
        if grade.get("format") == "percentage":
            return _decimal(grade.get("percentage")), sent
        given, maximum = _decimal(grade.get("scoreGiven")), _decimal(grade.get("scoreMaximum"))
        if given is None or not maximum:
            return None, sent
        return given / maximum, sent
    max_points, why = _max_points(control, grade, student_id)
    if max_points is None or lti is None:
        return None, f"{sent}; {why}"
    return lti * max_points, f"{sent}; LTI × max points {_text(max_points)}"


def _max_points(control: ControlClient, grade: dict, student_id: str) -> tuple[Decimal | None, str]:
    """The max points of the Schoology assignment the grade shows in (the student's section's
    when links differ), or None and why there is none."""
    links = control.links(client_id=grade.get("client_id"), assignment_id=grade["assignmentID"])
    if not links:
        return None, ("the assignment is not linked to any section, so the gradebook shows "
                      "no points: link it first (clever_sim.link(section_id, assignment_id, max_points=…), "
                      "ControlClient.link or POST /_sim/links)")
    values = {str(link.get("max_points")) for link in links}
    if len(values) > 1:
        students = control.personas("student", grade.get("district"))
        mine = next((p for p in students if p["id"] == student_id), None)
        sections = set(mine["sections"]) if mine else set()
        links = [link for link in links if link["section_id"] in sections]
        if not links:
            return None, "the assignment is not linked in any of the student's sections"
    return _decimal(links[0].get("max_points")), ""


# --- failure reports -------------------------------------------------------------------------

def explain(control: ControlClient, headline: str, student_id: str, assignment_id: str) -> str:
    """``headline`` and what did arrive: the grades stored and the similar ``POST /v1/grade``
    requests, closest to ``student_id``/``assignment_id`` first."""
    lines = [headline]
    try:
        grades = control.grades()
        posts = control.journal(path="/v1/grade", method="POST", limit=1000)
    except ControlAPIError as exc:  # the report must not hide the assertion
        return f"{headline}\n(could not read what arrived: {exc})"
    posts = [p for p in posts if p.get("path") == "/v1/grade"]
    lines.extend(_stored_lines(grades, student_id, assignment_id))
    lines.extend(_similar_lines(posts, student_id, assignment_id, control.url))
    return "\n".join(lines)


def _stored_lines(grades: list[dict], student_id: str, assignment_id: str) -> list[str]:
    def rank(g: dict) -> int:
        same_user, same_assignment = g.get("userID") == student_id, g.get("assignmentID") == assignment_id
        return 0 if same_user and same_assignment else 1 if same_user else 2 if same_assignment else 3

    ranked = sorted(grades, key=lambda g: (rank(g), -(g.get("seq") or 0)))
    if not ranked:
        return ["no grades stored at all."]
    lines = [f"{len(grades)} grade(s) stored, closest first:"]
    lines.extend(f"  {_grade_line(g, student_id, assignment_id)}" for g in ranked[:SHOWN])
    if len(ranked) > SHOWN:
        lines.append(f"  … and {len(ranked) - SHOWN} more")
    return lines


def _similar_lines(posts: list[dict], student_id: str, assignment_id: str, url: str) -> list[str]:
    def rank(e: dict) -> int | None:
        same_user, same_assignment = e.get("user_id") == student_id, e.get("assignment_id") == assignment_id
        if same_user and same_assignment:
            return 0
        if same_user:
            return 1
        if same_assignment:
            return 2
        if (e.get("status") or 0) >= 400:
            return 3
        return None

    similar = sorted(((r, e) for e in posts if (r := rank(e)) is not None),
                     key=lambda item: (item[0], -item[1]["id"]))
    if similar:
        lines = [f"similar requests (POST /v1/grade received, closest first; {len(posts)} in all):"]
        for r, entry in similar[:SHOWN]:
            lines.extend("  " + text for text in _request_lines(entry, r))
        if len(similar) > SHOWN:
            lines.append(f"  … and {len(similar) - SHOWN} more")
        return lines
    if posts:
        return [f"similar requests: none ({len(posts)} POST /v1/grade received, all "
                "accepted for other students and assignments)"]
    return ["similar requests: none — no POST /v1/grade reached the simulator "
            f"(is your app's grades base URL {url}?)"]


def describe_grade(grade: dict) -> str:
    """A stored grade in one line: its LTI score, what the partner sent and its version."""
    if grade.get("format") == "percentage":
        sent = f"sent percentage {grade.get('percentage')}"
    else:
        sent = f"sent scoreGiven {grade.get('scoreGiven')} / scoreMaximum {grade.get('scoreMaximum')}"
    return f"lti_score {grade.get('lti_score')}, {sent}, version {grade.get('version')}"


def _grade_line(g: dict, student_id: str, assignment_id: str) -> str:
    marks = []
    if g.get("userID") == student_id:
        marks.append("same student")
    if g.get("assignmentID") == assignment_id:
        marks.append("same assignment")
    mark = f"  ← {', '.join(marks)}" if marks else ""
    return (f"student {g.get('userID')} assignment {g.get('assignmentID')!r}: {describe_grade(g)} "
            f"(app {g.get('client_id')}){mark}")


_RANK_LABEL = {0: "same student, same assignment", 1: "same student, other assignment",
               2: "same assignment, other student", 3: "rejected"}


def _request_lines(entry: dict, rank: int) -> list[str]:
    """A journaled ``POST /v1/grade``: its head, the body sent and what the simulator made of it."""
    status = entry.get("status")
    head = (f"#{entry.get('id')} POST /v1/grade → {status} [{_RANK_LABEL[rank]}] "
            f"student {entry.get('user_id') or '?'} assignment {entry.get('assignment_id')!r}")
    if entry.get("fault"):
        head += " (injected fault)"
    lines = [head]
    body = entry.get("request_body")
    if body:
        lines.append(f"    sent: {body[:300]}")
    answer = entry.get("response_body") or ""
    try:
        parsed = json.loads(answer) if answer else None
    except ValueError:
        parsed = None
    if isinstance(status, int) and status < 400 and isinstance(parsed, dict) and \
            isinstance(parsed.get("data"), dict):
        lines.append(f"    stored: lti_score {parsed['data'].get('lti_score')}")
    elif isinstance(parsed, dict) and parsed.get("message"):
        errors = "; ".join(f"{e.get('field')}: {e.get('problem')}" +
                           (f" ({e['hint']})" if e.get("hint") else "")
                           for e in parsed.get("errors") or [])
        lines.append(f"    error: {parsed['message']}" + (f" — {errors}" if errors else ""))
    elif entry.get("findings"):
        lines.append("    findings: " + "; ".join(entry["findings"]))
    return lines
