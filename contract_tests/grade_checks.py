"""Seed Step 3: grade passback, driven through the app's completion hook.

Pact-style provider state: the suite POSTs ``{"user_id", "assignment_id", "district_id",
"score"}`` to ``[contract].complete_assignment_hook`` (``score`` is the fraction 0–1.0 the
student earned; the app reports it in whatever format it uses), then watches the
simulator for the grade and for every ``POST /v1/grade`` the app made. Each check uses
its own student, so its journal entries and grades are its own.

Each check judges one aspect: a wrong score fails GRADE-004 (and GRADE-001, since no
grade arrives) but not the token or Content-Type checks.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from urllib.parse import parse_qsl

from .harness import (DOCS_HOOK, CompletionRun, Fail, SimError, Skip, as_fraction, bearer_of, check,
                      entry_time, jdump, media_type, request_json, show_entry)
from .session import Contract

S_SEND = "Once a student completes the assignment, you will send the grade back to Clever."
S_APPEAR = "Grades appear in Schoology after the student finishes the assignment"
S_USERID = ("Please note that the userID portion of the POST is required if you\u2019re using a "
            "district-app token, and is optional (but must match) if you\u2019re using an il token")
S_CTYPE = "Content-type: application/json"
S_LTI = ("While LTI only accepts grades in the format of a number between 0-1.0, Clever will accept "
         "a broader range of formats and transform them into the required LTI format on your behalf.")
S_OVERWRITE = ("If you send a grade for a student/Assignment ID pair that already has a grade "
               "associated, we will overwrite the existing grade")
S_ONE = "Each student can only have one grade per Assignment ID"

TOLERANCE = Decimal("0.000001")
MAX_POSTS = 3


def _hook_failed(run: CompletionRun) -> None:
    if run.hook_error:
        raise Fail(f"the completion hook did not answer: {run.hook_error}", sent=run.sent(),
                   got=run.describe(),
                   fix="answer the hook once your app has sent the grade (or at once with 202 and "
                       "send it right after); check the hook URL and that it is enabled in test runs")


def _no_posts(run: CompletionRun, what: str) -> None:
    if not run.posts and not run.faulted:
        raise Fail(f"no grade POST reached Clever, so {what} could not be checked", sent=run.sent(),
                   got=run.describe(),
                   fix="after the hook, POST the grade to /v1/grade on the grades base URL "
                       "(https://grades-api.beta.clever.com → the simulator); see GRADE-001")


@check("GRADE-001", "required", "The grade arrives for the right student and assignment",
       seed=f"{S_SEND} \u2026 {S_APPEAR}",
       rule="after the completion hook, Clever stores a grade from this app for that student and "
            "assignment within grade_timeout_s (default 10 s)")
def grade_arrives(c: Contract) -> str:
    student, aid = c.fresh_student(), c.next_assignment()
    # Another student launches the app first, as classmates do: an app that grades "the
    # user who logged in last" (a session or a global) instead of the completing student is
    # caught here, even in a run without the LOGIN checks.
    classmate = c.fresh_student()
    c.doing(f"launching the app as another student ({classmate['id']}) first")
    try:
        c.login(classmate, assignment_id=aid)
    except SimError:
        classmate = None  # the simulator refused to mint a code: the check does not need it
    run = c.complete(student, aid, 0.8)
    _hook_failed(run)
    slashed = [e for e in run.posts + run.faulted if e.get("path") != "/v1/grade"]
    if slashed:
        raise Fail(f"your app POSTs grades to {slashed[0].get('path')} (a trailing slash), not /v1/grade "
                   f"as in Clever's guide: the simulator routes both, Clever's grades API need not "
                   f"(a 404, or a redirect that turns the POST into a GET and loses the grade)",
                   sent=run.sent(), got=run.describe(),
                   fix="POST to exactly {grades base URL}/v1/grade, with no trailing slash")
    if run.grade is not None:
        return (f"stored for student {student['id']} / {aid!r} (LTI {run.grade['lti_score']}) "
                f"after {run.hook_seconds:.2f} s")
    stored_elsewhere = [e for e in run.posts if e.get("status") == 200]
    if stored_elsewhere:
        e = stored_elsewhere[0]
        summary = (f"Clever stored the grade for user {e.get('user_id')} / {e.get('assignment_id')!r}, "
                   f"not for student {student['id']} / {aid!r}")
        fix = ("send userID = the hook's user_id and assignmentID = the hook's assignment_id "
               "(the id your assignments list gave Clever)")
        if classmate is not None and e.get("user_id") == classmate["id"]:
            summary += (f": {e.get('user_id')} is the classmate who had just launched your app, "
                        f"not the student who completed the assignment")
            fix = ("take the student from the completion itself (the hook's user_id; in "
                   "production, the student whose work was scored), never from the latest login "
                   "or a shared variable")
    elif run.posts:
        e = run.posts[-1]
        summary = f"Clever refused the grade: HTTP {e.get('status')} ({_message(e)})"
        fix = "fix what Clever's answer names (each error has a field, the problem and a hint)"
        wrong_auth = auth_mistake(e) if e.get("status") == 401 else ""
        if wrong_auth:
            summary, fix = f"Clever refused the grade: HTTP 401: {wrong_auth}", AUTH_FIX
    elif run.faulted:
        summary = "the only grade POST got a server error and was not sent again"
        fix = "retry 429 and 5xx answers (see GRADE-006)"
    elif run.hook_status is not None and not 200 <= run.hook_status < 300:
        summary = (f"your completion hook answered HTTP {run.hook_status} and no grade reached "
                   f"Clever")
        fix = ("make the hook accept {\"user_id\", \"assignment_id\", \"district_id\", \"score\"} "
               "for any student of a connected district and any id from your assignments list, "
               f"and send that grade (see {DOCS_HOOK})")
    else:
        summary = f"no grade reached Clever within {c.cfg.grade_timeout_s:g} s of the completion"
        fix = ("when a student finishes, POST {\"assignmentID\", \"userID\", \"percentage\"} (or "
               "scoreGiven/scoreMaximum) to /v1/grade on the grades base URL, with a district-app "
               "token (GET /oauth/tokens?owner_type=district&district=<district_id>) or the "
               "student's il token")
    raise Fail(summary, sent=run.sent(), got=run.describe(), fix=fix)


AUTH_FIX = ("send the token in the Authorization header as exactly \"Authorization: Bearer "
            "<token>\" (the scheme is Bearer, then one space, then the token); never put a token "
            "in the URL, where proxies and logs keep it")
_TOKEN_PARAMS = ("access_token", "token", "bearer", "auth", "authorization")


def auth_mistake(e: dict) -> str:
    """How a grade POST's credentials are wrong, in words ("" when it sent a Bearer header)."""
    header = (e.get("request_headers") or {}).get("Authorization")
    in_url = sorted({k for k, _ in parse_qsl(e.get("query") or "", keep_blank_values=True)
                     if k.lower() in _TOKEN_PARAMS})
    if header is None or not header.strip():
        if in_url:
            return (f"your app sent the token in the URL query ({in_url[0]}=…) and no "
                    f"Authorization header")
        return "your app sent no Authorization header"
    scheme = header.split()[0]
    if scheme.lower() != "bearer":
        return (f"your app sent \"Authorization: {scheme} …\"; Clever takes only the Bearer scheme "
                f"(\"Authorization: Bearer <token>\")")
    if len(header.split()) != 2:
        return "the Authorization header is not \"Bearer <token>\" (one space, then the token)"
    return ""


def _message(e: dict) -> str:
    """Clever's answer to a grade POST in one line: message, first field problem and hint."""
    try:
        body = json.loads(e.get("response_body") or "")
    except ValueError:
        return (e.get("response_body") or "").strip()[:200] or "no body"
    if isinstance(body, dict):
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None
        if first:
            hint = f"; {first['hint']}" if first.get("hint") else ""
            return f"{body.get('message')}: {first.get('field')} {first.get('problem')}{hint}"
        return str(body.get("message") or body.get("error") or jdump(body))[:200]
    return jdump(body)[:200]


@check("GRADE-002", "required", "Token rules: userID present and right with a district-app token",
       seed=S_USERID,
       rule="district-app token ⇒ userID present and equal to the student; il token ⇒ userID "
            "absent or equal; the token is accepted and belongs to the student's district")
def grade_token_rules(c: Contract) -> str:
    student, aid = c.fresh_student(other_district=True), c.next_assignment()
    run = c.complete(student, aid, 0.65)
    _hook_failed(run)
    _no_posts(run, "the token rules")
    problems, kinds, unread = [], set(), 0
    for e in run.posts:
        kind = e.get("token_kind")
        body = request_json(e)
        if kind is None:
            wrong_auth = auth_mistake(e)
            problems.append(f"Clever did not accept the token: {wrong_auth}" if wrong_auth else
                            f"Clever did not accept the bearer token ({_message(e)})")
            continue
        kinds.add(kind)
        if not isinstance(body, dict):
            unread += 1
            continue
        uid = body.get("userID")
        if kind == "district":
            if "userID" not in body:
                problems.append("userID is missing, but the token is a district-app token (it "
                                "stands for the whole district, so Clever cannot tell which student)")
            elif uid != student["id"]:
                problems.append(f"userID is {jdump(uid)}, not the student {student['id']}")
            elif e.get("status") == 404:
                problems.append(f"Clever could not find the student with this token ({_message(e)}): "
                                f"use the district-app token of the student's district "
                                f"{student['district']}")
        elif "userID" in body and uid != student["id"]:
            problems.append(f"userID is {jdump(uid)}, but the il token belongs to {e.get('user_id')}")
    if problems:
        fix = ("with a district-app token (GET /oauth/tokens?owner_type=district&district="
               f"{student['district']}) always send userID = the student's Clever id; with "
               "the student's own il token, leave userID out or send their id")
        if problems[0].startswith("Clever did not accept the token:"):
            fix = AUTH_FIX
        raise Fail(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                   sent=run.sent(), got=run.describe(), fix=fix)
    if unread == len(run.posts):
        raise Skip("not judged: Clever refused every grade POST before reading its body "
                   "(see GRADE-003: Content-Type)")
    return f"{'/'.join(sorted(kinds))} token with userID = the student (district {student['district']})"


@check("GRADE-003", "required", "Grades are sent as JSON",
       seed=S_CTYPE, rule="every POST /v1/grade has Content-Type: application/json")
def grade_content_type(c: Contract) -> str:
    student, aid = c.fresh_student(), c.next_assignment()
    run = c.complete(student, aid, 0.9)
    _hook_failed(run)
    _no_posts(run, "the Content-Type")
    bad = [e for e in run.posts + run.faulted
           if media_type((e.get("request_headers") or {}).get("Content-Type")) != "application/json"]
    if bad:
        got = (bad[0].get("request_headers") or {}).get("Content-Type") or "(none)"
        raise Fail(f"a grade was sent with Content-Type {got}", sent=run.sent(), got=run.describe(),
                   fix="send the grade as a JSON body with the header Content-Type: application/json "
                       "(httpx/requests: json=...; fetch: headers {'Content-Type': 'application/json'} "
                       "and JSON.stringify(body); Java HttpClient: .header(\"Content-Type\", "
                       "\"application/json\") with BodyPublishers.ofString(json))")
    return f"{len(run.posts)} POST(s), all application/json"


def _score_of(body: dict) -> tuple[Decimal | None, str]:
    """(fraction, description) of a grade body's score, or (None, the problem)."""
    has_p = "percentage" in body
    has_r = "scoreGiven" in body or "scoreMaximum" in body
    if has_p and has_r:
        return None, "both percentage and scoreGiven/scoreMaximum: send exactly one score format"
    if has_p:
        p = body["percentage"]
        value = as_fraction(p) if not isinstance(p, str) else None
        if value is None:
            return None, f"percentage is {jdump(p)}: send a JSON number from 0 to 1.0"
        if not 0 <= value <= 1:
            return None, f"percentage is {jdump(p)}: it must be from 0 to 1.0 (0.8 means 80%)"
        return value, f"percentage {jdump(p)}"
    if has_r:
        g, m = body.get("scoreGiven"), body.get("scoreMaximum")
        vg = as_fraction(g) if not isinstance(g, str) else None
        vm = as_fraction(m) if not isinstance(m, str) else None
        if vg is None or vm is None:
            return None, f"scoreGiven {jdump(g)} / scoreMaximum {jdump(m)}: send both, as JSON numbers"
        if vm <= 0 or vg < 0:
            return None, f"scoreGiven {jdump(g)} / scoreMaximum {jdump(m)}: need scoreGiven ≥ 0 and scoreMaximum > 0"
        return min(vg / vm, Decimal(1)), f"scoreGiven {jdump(g)} / scoreMaximum {jdump(m)}"
    return None, "no score: send percentage (0–1.0), or scoreGiven with scoreMaximum"


def truncated(value: Decimal, score: float) -> str:
    """A note when ``value`` is ``score`` cut down (not rounded) to a coarser step ("" if not)."""
    earned = Decimal(str(score))
    if not Decimal(0) < earned - value <= Decimal("0.05"):
        return ""
    return (f": the score was cut down, not rounded — {score} × 100 is "
            f"{score * 100!r} in binary floating point, so int(), floor() or an integer cast "
            f"makes it {int(score * 100)}; round to the nearest instead (sprintf('%.0f'), "
            f"Math.round, round()) or send the score unchanged")


@check("GRADE-004", "required", "The score is valid and equals what the student earned",
       seed=S_LTI,
       rule="one score format (percentage 0–1.0, or scoreGiven/scoreMaximum); its LTI value "
            "equals the hook's score within 0.000001")
def grade_score(c: Contract) -> str:
    student, aid = c.fresh_student(), c.next_assignment()
    # 0.57 * 100 is 56.99999999999999 in binary floating point: an app that truncates
    # (int(), floor, a cast) instead of rounding sends 0.56, and 11 of 20 instead of 11.4
    score = 0.57
    run = c.complete(student, aid, score)
    _hook_failed(run)
    _no_posts(run, "the score")
    fix = (f"the hook's score {score} is the fraction of 1.0 the student earned: send "
           f"\"percentage\": {score} (not {score * 100:g}), or scoreGiven/scoreMaximum in your "
           f"own points (e.g. {score * 20:g} of 20)")
    if run.grade is not None:
        lti = Decimal(run.grade["lti_score"])
        if abs(lti - Decimal(str(score))) > TOLERANCE:
            raise Fail(f"Clever turned your score into LTI {run.grade['lti_score']}, but the student "
                       f"earned {score}{truncated(lti, score)}", sent=run.sent(), got=run.describe(),
                       fix=fix)
        return f"sent as {run.grade['format']} → LTI {run.grade['lti_score']} (earned {score})"
    readable = [(e, request_json(e)) for e in run.posts]
    readable = [(e, b) for e, b in readable if isinstance(b, dict)]
    if not readable:
        raise Skip("not judged: Clever refused every grade POST before reading its body "
                   "(see GRADE-003: Content-Type)")
    for e, body in readable:
        value, what = _score_of(body)
        if value is None:
            raise Fail(f"the grade's score is invalid: {what}", sent=run.sent(), got=run.describe(),
                       fix=fix)
        if abs(value - Decimal(str(score))) > TOLERANCE:
            raise Fail(f"the grade says {what} = {value.normalize()}, but the student earned {score}"
                       f"{truncated(value, score)}", sent=run.sent(), got=run.describe(), fix=fix)
    return (f"the POST's score is right ({_score_of(readable[-1][1])[1]}); the grade itself was not "
            f"stored — see GRADE-001/GRADE-002")


@check("GRADE-005", "reported", "A re-completion overwrites the grade",
       seed=S_OVERWRITE,
       rule="reported: completing again with a new score stores version 2 with the new value")
def grade_overwrite(c: Contract) -> str:
    student, aid = c.fresh_student(), c.next_assignment()
    first = c.complete(student, aid, 0.6)
    _hook_failed(first)
    if first.grade is None:
        raise Fail("the first grade did not arrive (see GRADE-001)", sent=first.sent(), got=first.describe())
    second = c.complete(student, aid, 0.9)
    _hook_failed(second)
    if second.grade is None:
        raise Fail("the second completion's grade did not arrive", sent=second.sent(), got=second.describe())
    history = c.sim.get(f"/_sim/grades/{second.grade['id']}/history")["data"]
    versions = [(h.get("version"), h.get("lti_score")) for h in history]
    if second.grade["lti_score"] != "0.9" or second.grade.get("version", 0) < 2:
        raise Fail(f"after re-completing with 0.9 the grade is LTI {second.grade['lti_score']} "
                   f"(version {second.grade.get('version')})", sent=second.sent(),
                   got=f"history: {versions}\n{second.describe()}",
                   fix="send the new score when a student completes an assignment again")
    return f"overwritten: history {versions}"


S_RETRY = f"{S_SEND} \u2026 {S_APPEAR}"
MIN_PAUSE_S = 0.1         # a retry sooner than this after a failure is not a backoff
# GRADE-011 judges growth from two completions with three failures in a row each. A pause
# runs from Clever's answer to the next request's arrival. Jitter on a loaded CI machine
# only ever lengthens a pause (by up to ~0.5 s seen at load 35 on two cores), so the
# shortest of all six pauses is the app's base pause, and the shorter of the two pauses
# before a third retry is its third pause: a spike in one run cannot fake growth. No ratio:
# a loaded app adds the same overhead to every pause, which shrinks ratios, not differences.
GROWTH_MIN_S = 0.2
SERIES = ((500, 503, 502), (504, 503, 503))   # GRADE-006's completions, shared with GRADE-011
RETRY_FIX = ("retry 429, 5xx and network errors (connection dropped, timeout) a few times with a "
             "growing pause (e.g. 0.2 s, 0.4 s, 0.8 s), waiting Retry-After when Clever sends it; "
             "give up (and keep the grade to send later) after the last try")


def _attempts(run: CompletionRun) -> list[dict]:
    """Every grade POST of the run (faulted or not), in the order Clever journaled them."""
    return sorted(run.posts + run.faulted, key=lambda e: e["id"])


def _faulted(c: Contract, faults: list[dict], label: str, score: float,
             quiet_s: float | None = None) -> tuple[CompletionRun, str]:
    """One completion whose first grade POST(s) get the planned ``faults``; the run and
    what was sent, or Fail when no POST reached the fault."""
    student, aid = c.fresh_student(), c.next_assignment()
    run = c.complete(student, aid, score, fault=faults, quiet_s=quiet_s)
    _hook_failed(run)
    sent = f"{run.sent()}\n(the simulator answered your app's first grade POST(s) with {label})"
    if not run.faulted:
        _no_posts(run, "what the app does after the failure")
        raise Fail("the injected failure was never served: your app's grade POST did not reach "
                   "/v1/grade", sent=sent, got=run.describe())
    return run, sent


def _pauses(run: CompletionRun) -> tuple[list[float], bool]:
    """The pause after each injected failure until the next POST, and whether every
    failure was followed by another POST."""
    attempts = _attempts(run)
    pauses = []
    for i, e in enumerate(attempts):
        if not e.get("fault"):
            continue
        if i + 1 >= len(attempts):
            return pauses, False
        pauses.append(_arrival(attempts[i + 1]) - entry_time(e))
    return pauses, True


def _arrival(e: dict) -> float:
    """When the simulator received a request: its journal time is when it had answered."""
    return entry_time(e) - (e.get("duration_ms") or 0) / 1000


def _transient(c: Contract, faults: list[dict], label: str, score: float) -> tuple[CompletionRun, list[float]]:
    """One completion whose first ``len(faults)`` grade POSTs fail as planned; Fail unless
    every failure was followed by another POST. Returns the run and the pauses."""
    run, sent = _faulted(c, faults, label, score)
    return run, _retried(run, sent, label)


def _retried(run: CompletionRun, sent: str, label: str) -> list[float]:
    pauses, every = _pauses(run)
    if not every:
        raise Fail(f"your app did not send the grade again after Clever answered {label}; "
                   f"the grade is lost", sent=sent, got=run.describe(), fix=RETRY_FIX)
    return pauses


def _series_label(statuses: tuple[int, ...]) -> str:
    return f"{', '.join(map(str, statuses))} in a row (no Retry-After)"


def _five_hundreds(c: Contract, statuses: tuple[int, ...]) -> tuple[CompletionRun, str]:
    """The completion whose first grade POSTs get ``statuses`` in a row, run once for
    GRADE-006 (each retried, with a pause) and GRADE-011 (the pauses grow)."""
    faults = [{"path": "/v1/grade", "method": "POST", "status": s, "count": 1} for s in statuses]
    return c.memo(f"series-{statuses}", lambda: _faulted(c, faults, _series_label(statuses), 0.45))


def _arrived(run: CompletionRun) -> str:
    """How the last retry ended: the grade stored, or Clever's answer (another check's business)."""
    if run.grade is not None:
        return "the grade arrived"
    last = _attempts(run)[-1]
    return f"the retry was answered {last.get('status')} (judged by GRADE-001..004)"


@check("GRADE-006", "required", "Server errors (500, 502, 503, 504) are retried with backoff",
       seed=S_RETRY,
       rule=f"Clever answers the first three POST /v1/grade of one completion with 500, 503, 502 "
            f"and of another with 504, 503, 503 (injected, no Retry-After); after each failure "
            f"the app sends the grade again, at least {MIN_PAUSE_S * 1000:.0f} ms later")
def grade_retry_5xx(c: Contract) -> str:
    done = []
    for statuses in SERIES:
        label = _series_label(statuses)
        run, sent = _five_hundreds(c, statuses)
        pauses = _retried(run, sent, label)
        quick = [p for p in pauses if p < MIN_PAUSE_S]
        if quick:
            raise Fail(f"your app retried {quick[0] * 1000:.0f} ms after a 5xx: no backoff",
                       sent=sent, got=run.describe(),
                       fix="pause before retrying, longer each time: an immediate retry hits Clever "
                           "while it is still failing and adds to the load that made it fail")
        done.append(f"{label} → retried after {', '.join(f'{p:.2f}' for p in pauses)} s, {_arrived(run)}")
    return "; ".join(done)


@check("GRADE-007", "required", "The app waits Retry-After after a 429",
       seed=S_RETRY,
       rule="Clever answers the first POST with 429 and Retry-After: 1 (injected); the app sends "
            "the grade again, no sooner than 1 s later")
def grade_retry_after(c: Contract) -> str:
    fault = {"path": "/v1/grade", "method": "POST", "status": 429, "retry_after": 1, "count": 1}
    run, pauses = _transient(c, [fault], "429 with Retry-After: 1", 0.35)
    dt = pauses[0]
    if dt < 1.0 - 0.05:
        raise Fail(f"retried {dt:.2f} s after a 429 that said Retry-After: 1",
                   sent=f"{run.sent()}\n(the simulator answered the app's first POST /v1/grade with "
                        f"429, Retry-After: 1)", got=run.describe(),
                   fix="wait at least Retry-After seconds before retrying (a number, or an HTTP "
                       "date): retrying at once keeps the app over Clever's rate limit")
    return f"sent again {dt:.2f} s after the 429 (Retry-After: 1), {_arrived(run)}"


@check("GRADE-008", "recommended", "No duplicate storms",
       seed=f"{S_ONE} \u2026 {S_OVERWRITE}",
       rule=f"one completion in the happy path causes at most {MAX_POSTS} POST /v1/grade "
            f"(counted until 1 s after the grade arrives)")
def grade_no_storm(c: Contract) -> str:
    student, aid = c.fresh_student(), c.next_assignment()
    run = c.complete(student, aid, 0.7, settle=True)
    _hook_failed(run)
    _no_posts(run, "the number of POSTs")
    n = len(run.posts) + len(run.faulted)
    if n > MAX_POSTS:
        times = [entry_time(e) for e in run.posts]
        span = max(times) - min(times) if times else 0.0
        raise Fail(f"{n} grade POSTs for one completion (within {span:.2f} s)", sent=run.sent(),
                   got="\n".join(show_entry(e, bodies=False) for e in run.posts),
                   fix="send one POST per completion and retry only 429/5xx/network errors, a few "
                       "times: each POST overwrites the grade and counts against Clever's rate limit")
    return f"{n} POST(s) for one completion"


def slow_latency_ms(c: Contract) -> int:
    """How long the "slow answer" of GRADE-009 hangs: grade_timeout_s × 0.03, 0.1–0.3 s."""
    return int(min(300, max(100, c.cfg.grade_timeout_s * 30)))


@check("GRADE-009", "required", "Network failures (dropped connection, slow answer) are retried",
       seed=S_RETRY,
       rule="Clever drops the connection of the first POST /v1/grade without answering; in "
            "another completion it hangs for grade_timeout_s × 0.03 (0.1–0.3 s) and then drops it "
            "(injected); each time the app sends the grade again")
def grade_retry_network(c: Contract) -> str:
    done = []
    slow = slow_latency_ms(c)
    for label, fault in (("a dropped connection", {"drop": True}),
                         (f"a connection that hung {slow} ms and then dropped",
                          {"drop": True, "latency_ms": slow})):
        fault = {"path": "/v1/grade", "method": "POST", "count": 1, **fault}
        run, _ = _transient(c, [fault], label, 0.4)
        done.append(f"{label} → sent again, {_arrived(run)}")
    return "; ".join(done)


PERMANENT = (400, 403, 404, 413, 415, 401)
TOKEN_CALLS = ("/oauth/tokens",)


@check("GRADE-010", "recommended", "Permanent errors (400, 401, 403, 404, 413, 415) are not retried",
       seed=S_RETRY,
       rule="Clever answers the first POST /v1/grade with 400, 403, 404, 413, 415 or 401 (one "
            "completion each, injected); the app does not send it again, except once after a 401 "
            "and only after fetching a token again (a request to /oauth/tokens)")
def grade_no_retry_permanent(c: Contract) -> str:
    quiet = max(c.cfg.settle_s / 10, 0.02)   # per case; one longer watch at the end
    done, runs = [], []
    for status in PERMANENT:
        fault = {"path": "/v1/grade", "method": "POST", "status": status, "count": 1,
                 "body": {"message": f"Injected by the contract suite: HTTP {status}"}}
        run, sent = _faulted(c, [fault], str(status), 0.5, quiet_s=quiet)
        hit = run.faulted[0]
        after = [e for e in _attempts(run) if e["id"] > hit["id"]]
        if status != 401 and after:
            raise Fail(f"your app sent the grade {len(after)} more time(s) after Clever answered "
                       f"{status}, which no retry can fix", sent=sent, got=run.describe(),
                       fix=f"do not retry 4xx answers other than 429 (and 401 once, with a fresh "
                           f"token): {status} means the request itself is wrong; log Clever's "
                           f"message and fix the cause, or the app hammers Clever for nothing")
        if status == 401 and after:
            tokens = [e for e in run.entries if e.get("path") in TOKEN_CALLS
                      and hit["id"] < e["id"] < after[0]["id"]]
            if len(after) > 1 or (not tokens and bearer_of(after[0]) == bearer_of(hit)):
                raise Fail(f"after a 401 your app sent the grade {len(after)} more time(s)"
                           + ("" if tokens else " with the same token, without fetching a new one"),
                           sent=sent, got=run.describe(),
                           fix="after a 401, get a fresh token (GET /oauth/tokens?owner_type=district "
                               "for a district-app token, or a new login for an il token) and retry "
                               "once; if that fails too, stop")
        done.append(f"{status} → " + ("not retried" if not after else "retried once with a fresh token"))
        runs.append((status, run))
    c.doing("watching for late grade POSTs after the permanent errors")
    time.sleep(c.cfg.settle_s / 2)
    last_seen = max(e["id"] for _, run in runs for e in run.entries)
    late = [e for e in c.sim.journal_since(last_seen, path="/v1/grade")
            if e.get("method") == "POST" and e.get("client_id") in (None, c.cfg.client_id)]
    if late:
        status, run = runs[-1]
        raise Fail(f"your app sent {len(late)} more grade POST(s) after the permanent errors had "
                   f"been answered (late retries)", sent=f"{run.sent()}\n(the last of "
                   f"{len(runs)} completions whose first grade POST got {', '.join(str(s) for s, _ in runs)})",
                   got="\n".join(show_entry(e, bodies=False) for e in late),
                   fix="do not schedule retries of 4xx answers other than 429 (and one 401 retry "
                       "with a fresh token)")
    return "; ".join(done)


@check("GRADE-011", "recommended", "Retries back off: the pause grows after repeated failures",
       seed=S_RETRY,
       rule=f"in GRADE-006's two completions (three 5xx in a row each, no Retry-After), the "
            f"shorter of the two pauses before a third retry is at least "
            f"{GROWTH_MIN_S * 1000:.0f} ms longer than the shortest of all six pauses (a pause: "
            f"from Clever's answer to the next POST's arrival)")
def grade_backoff_grows(c: Contract) -> str:
    series, runs = [], []
    for statuses in SERIES:
        run, _ = _five_hundreds(c, statuses)
        runs.append(run)
        pauses, every = _pauses(run)
        if not every or len(pauses) < 3:
            raise Skip(f"not judged: your app did not retry all of {_series_label(statuses)} "
                       f"(see GRADE-006)")
        series.append(pauses)
    base = min(min(p) for p in series)
    if base < MIN_PAUSE_S:
        raise Skip("not judged: your app retried without any pause (see GRADE-006)")
    third = min(p[2] for p in series)
    shown = "; ".join(" → ".join(f"{p:.2f} s" for p in pauses) for pauses in series)
    if third - base < GROWTH_MIN_S:
        raise Fail(f"your app paused {shown} before its retries: the pause does not grow (the "
                   f"third, {third:.2f} s at best, is not {GROWTH_MIN_S * 1000:.0f} ms longer "
                   f"than the shortest, {base:.2f} s)",
                   sent="\n".join(f"{r.sent()}\n(your app's first grade POSTs were answered "
                                  f"{_series_label(st)})" for r, st in zip(runs, SERIES)),
                   got="\n".join(r.describe() for r in runs),
                   fix="back off exponentially: double the pause after each failure (e.g. 0.2 s, "
                       "0.4 s, 0.8 s; add jitter on top, not instead): a fixed pause keeps "
                       "hitting Clever at the same rate while it is overloaded, from every "
                       "partner at once")
    return f"pauses {shown}: the third ({third:.2f} s at best) is {third - base:.2f} s longer than the shortest"



@check("GRADE-014", "required", "A score of 0 is sent like any other",
       seed=f"{S_SEND} \u2026 {S_APPEAR}",
       rule="the hook's score is 0 (the student earned nothing) → a grade with LTI value 0 from "
            "this app arrives within grade_timeout_s (judged only on the 0: a grade refused for "
            "another reason is GRADE-001..004's business)")
def grade_zero(c: Contract) -> str:
    student, aid = c.fresh_student(), c.next_assignment()
    run = c.complete(student, aid, 0.0, silence_kills_hook=False)
    _hook_failed(run)
    fix = ("a 0 is a grade: send \"percentage\": 0 (or \"scoreGiven\": 0 with scoreMaximum); test "
           "for a missing score explicitly (score === undefined / score is None), never by "
           "truthiness (if (!score), score || …, if not score), which drops a 0")
    if run.grade is not None:
        if Decimal(run.grade["lti_score"]) != 0:
            raise Fail(f"Clever turned your score into LTI {run.grade['lti_score']}, but the student "
                       f"earned 0", sent=run.sent(), got=run.describe(), fix=fix)
        return f"sent as {run.grade['format']} → LTI {run.grade['lti_score']}"
    if not run.posts and not run.faulted:
        if run.hook_status is not None and not 200 <= run.hook_status < 300:
            raise Fail(f"your completion hook answered HTTP {run.hook_status} to a score of 0 and no "
                       f"grade reached Clever", sent=run.sent(), got=run.describe(), fix=fix)
        raise Fail(f"no grade reached Clever for a score of 0 (your hook answered HTTP "
                   f"{run.hook_status}): the student's 0 never reaches Schoology, so the gradebook "
                   f"shows the assignment as not done", sent=run.sent(), got=run.describe(), fix=fix)
    for e in run.posts + run.faulted:
        body = request_json(e)
        if not isinstance(body, dict):
            continue
        has_score = any(k in body for k in ("percentage", "scoreGiven", "scoreMaximum"))
        if not has_score or body.get("percentage", 0) is None or body.get("scoreGiven", 0) is None:
            raise Fail(f"the grade for a score of 0 carries no score ({_score_of(body)[1]}): "
                       f"a 0 was dropped on the way", sent=run.sent(), got=run.describe(), fix=fix)
        value, _ = _score_of(body)
        if value is not None and value != 0:
            raise Fail(f"the grade for a score of 0 says {_score_of(body)[1]} = {value.normalize()}",
                       sent=run.sent(), got=run.describe(), fix=fix)
    raise Skip("not judged: your app sent the 0, but Clever did not store the grade for another "
               "reason (see GRADE-001..004)")


@check("GRADE-015", "required", "Simultaneous completions: each student gets their own grade",
       seed=f"{S_SEND} \u2026 {S_APPEAR}",
       rule="two students finish the same assignment at the same moment (two hook calls released "
            "together, scores 0.3 and 0.75) → each student's grade arrives with their own score, "
            "not the other's (judged only on the mix-up: a grade refused for another reason is "
            "GRADE-001..004's business)")
def grade_simultaneous(c: Contract) -> str:
    aid = c.next_assignment()
    a, b = c.fresh_student(), c.fresh_student()
    if a["id"] == b["id"]:
        raise Skip("not judged: the roster has a single student")
    runs = c.complete_together([(a, aid, 0.3), (b, aid, 0.75)])
    for run in runs:
        _hook_failed(run)
    sent = "\n".join(run.sent() for run in runs) + "\n(both hook calls released at the same moment)"
    got = "\n".join(f"student {run.student['id']}: {run.hook_answer()}" for run in runs)
    posts = runs[0].posts + runs[0].faulted
    got += "\n" + (f"{len(posts)} grade POST(s) reached Clever:\n"
                   + "\n".join("  " + show_entry(e) for e in sorted(posts, key=lambda e: e["id"]))
                   if posts else "no POST /v1/grade reached Clever from your app")
    fix = ("keep each completion's student, assignment and score in that request's own variables "
           "(or its own job in a queue), never in a module-level or shared slot that the next "
           "completion overwrites: a class finishes a quiz together")

    def score_is(value: Decimal | None, score: float) -> bool:
        return value is not None and abs(value - Decimal(str(score))) <= TOLERANCE

    def posts_for(student_id: str) -> list[dict]:
        """The grade POSTs naming this student: by userID, or by the student's own il token."""
        return [e for e in posts if (request_json(e) or {}).get("userID") == student_id
                or (e.get("token_kind") == "il" and e.get("user_id") == student_id)]

    problems, unexplained = [], []
    for run, other in ((runs[0], runs[1]), (runs[1], runs[0])):
        sid, oid = run.student["id"], other.student["id"]
        mine = posts_for(sid)
        if run.grade is not None:
            lti = Decimal(run.grade["lti_score"])
            if score_is(lti, run.score):
                continue
            if score_is(lti, other.score):
                problems.append(f"student {sid} got LTI {run.grade['lti_score']}, the score of student "
                                f"{oid}, not their own {run.score}")
                continue
        theirs = posts_for(oid)
        for e in mine:
            body = request_json(e)
            if isinstance(body, dict) and score_is(_score_of(body)[0], other.score) \
                    and not score_is(_score_of(body)[0], run.score):
                problems.append(f"a grade POST for student {sid} carried {_score_of(body)[1]}, the score "
                                f"of student {oid}")
                break
        else:
            if run.grade is None and not mine and len(theirs) >= 2 and len(theirs) == len(posts) \
                    and 200 <= (run.hook_status or 0) < 300:
                # both completions sent a grade, both for the other student
                problems.append(f"no grade POST for student {sid} reached Clever, though your hook "
                                f"answered HTTP {run.hook_status}: all {len(theirs)} POSTs were for "
                                f"student {oid}")
            elif run.grade is None or not score_is(Decimal(run.grade["lti_score"]), run.score):
                unexplained.append(sid)
    if problems:
        raise Fail(f"two students finished {aid!r} at the same moment: {problems[0]}"
                   + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                   sent=sent, got=got, fix=fix)
    if unexplained:
        raise Skip(f"not judged: the grade of {', '.join(unexplained)} was not stored, for a reason "
                   f"other than a mix-up (see GRADE-001..004)")
    return (f"student {a['id']} → LTI {runs[0].grade['lti_score']}, student {b['id']} → LTI "
            f"{runs[1].grade['lti_score']} (hooks answered in {runs[0].hook_seconds:.2f} s and "
            f"{runs[1].hook_seconds:.2f} s)")


@check("GRADE-016", "required", "The grade names the assignment the student completed",
       seed=f"{S_SEND} \u2026 {S_APPEAR}",
       rule="a completion of the last assignment in your list → every grade POST carries that "
            "assignmentID, not another one (an app that looks the hook's id up wrongly and takes "
            "the first assignment is caught here). Skipped when the list has one assignment; a "
            "grade refused for another reason is GRADE-001..004's business")
def grade_names_its_assignment(c: Contract) -> str:
    ids = c.assignment_ids()
    if len(ids) < 2:
        raise Skip("not judged: your assignments list has a single assignment")
    student, aid = c.fresh_student(), ids[-1]
    run = c.complete(student, aid, 0.7)
    _hook_failed(run)
    if run.grade is not None:
        return f"stored for {aid!r}, the last assignment of your list (LTI {run.grade['lti_score']})"
    named = [(request_json(e) or {}).get("assignmentID") if isinstance(request_json(e), dict) else None
             for e in run.posts + run.faulted]
    wrong = [n for n in named if isinstance(n, str) and n != aid]
    if wrong and not any(n == aid for n in named):
        said = (f"your app sent the grade with assignmentID {wrong[0]!r}, but the student completed "
                f"{aid!r} (the hook's assignment_id)")
        if wrong[0] == ids[0]:
            said += (f": {wrong[0]!r} is the first assignment of your list, so the lookup of the "
                     f"hook's id matched the first entry (in Perl and PHP, == compares strings as "
                     f"numbers, and every id that does not start with a digit is 0)")
        raise Fail(said, sent=run.sent(), got=run.describe(),
                   fix="find the assignment by exact string equality with the hook's assignment_id "
                       "(Perl: eq, PHP: ===) and send that id as assignmentID")
    raise Skip("not judged: the grade was not stored, for a reason other than its assignmentID "
               "(see GRADE-001..004)")
