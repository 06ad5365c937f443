"""Token lifecycle: Clever revokes the token the app holds, mid-session; the grade still arrives.

The suite revokes a token with ``DELETE /_sim/tokens/{token}`` between two steps of a
session, then triggers the completion hook. An app that sends the grade with the revoked
token gets a 401; it must get a fresh token (the district-app token listing, ``GET
/oauth/tokens?owner_type=district``, or a new login) and send the grade again, once.

GRADE-012 revokes the student's il token right after the launch (the app may never use
it for grades: then there is nothing to recover from). GRADE-013 revokes the district-app
token the app just used; Clever lists a new one for the district at once. It runs last:
an app that never fetches the new token would fail every later grade of that district.
"""

from __future__ import annotations

from datetime import datetime, timezone

from .grade_checks import S_RETRY, _attempts, _hook_failed, _message, auth_mistake
from .harness import CompletionRun, Fail, Skip, bearer_of, check, show_entry
from .session import Contract

TOKEN_PATHS = ("/oauth/tokens",)
TOKEN_FIX = ("after a 401 from /v1/grade, get a fresh token (GET /oauth/tokens?owner_type=district"
             "&district=<district_id> lists the district's current district-app token; an il "
             "token needs a new login, which a background job cannot do, so fall back to the "
             "district-app token) and send the grade again once; if that also gets 401, stop and "
             "keep the grade to send later")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _short(token: str) -> str:
    return f"{token[:8]}…" if len(token) > 8 else token


def _token_fetches(run: CompletionRun, after_id: int, before_id: int | None = None) -> list[dict]:
    """Requests for a token (code exchange or district-app listing) between two entries."""
    return [e for e in run.entries if e.get("path") in TOKEN_PATHS and e["id"] > after_id
            and (before_id is None or e["id"] < before_id)]


def _judge(run: CompletionRun, token: str, what: str, revoked_at: str) -> str:
    """PASS text, Skip (another check's business) or Fail saying what happened to the grade."""
    _hook_failed(run)
    attempts = _attempts(run)
    story = f"Clever revoked {what.format(token=_short(token))} at {revoked_at}"
    sent = f"{story}, then:\n{run.sent()}"
    refused = [e for e in attempts if e.get("status") == 401]
    malformed = [e for e in refused if auth_mistake(e)]
    if malformed and run.grade is None:
        raise Skip(f"not judged: Clever refused the Authorization header itself, not the token "
                   f"({auth_mistake(malformed[0])}; see GRADE-001)")
    for hit in refused:  # after each 401, the next POST carries a token fetched after it
        after = [e for e in attempts if e["id"] > hit["id"]]
        if after and bearer_of(after[0]) == bearer_of(hit) \
                and not _token_fetches(run, hit["id"], after[0]["id"]):
            raise Fail(f"after a 401 at {hit.get('time')} your app sent the grade again with the "
                       f"same revoked token, without fetching a new one (the token stays revoked: "
                       f"retrying it only hammers Clever)",
                       sent=sent, got=run.describe(), fix=TOKEN_FIX)
    if run.grade is not None:
        if not refused:
            return f"{story}; your app did not use it for the grade (no 401), the grade arrived"
        how = "the district-app token listing" if any(
            e.get("method") == "GET" for e in _token_fetches(run, refused[0]["id"])) \
            else "a new token"
        return f"{story}; your app got 401, fetched {how} and sent the grade again: it arrived"
    last = attempts[-1] if attempts else None
    if last is not None and 200 <= (last.get("status") or 0) < 300:
        raise Skip("not judged: Clever stored the grade, but not for this student and assignment "
                   "(see GRADE-001 and GRADE-002)")
    if last is not None and last.get("status") != 401:
        raise Skip(f"not judged: Clever refused the grade for another reason (HTTP "
                   f"{last.get('status')}: {_message(last)}; see GRADE-001..004)")
    raise Fail(_lost(run, refused, story), sent=sent, got=run.describe(), fix=TOKEN_FIX)


def _lost(run: CompletionRun, refused: list[dict], story: str) -> str:
    """One sentence: the revocation, the 401, what the app did (not) do, the grade lost."""
    if not refused:
        calls = "; ".join(show_entry(e, bodies=False) for e in run.entries[:4]) or "none"
        return (f"{story}; afterwards no grade POST reached Clever (your app's requests: "
                f"{calls}), so the grade was lost")
    first = refused[0]
    fetched = _token_fetches(run, first["id"])
    if not fetched:
        did = "it did not fetch a new token (no request to /oauth/tokens after the 401)"
    else:
        retried = [e for e in _attempts(run) if e["id"] > fetched[0]["id"]]
        if retried:
            did = (f"it fetched a token again ({show_entry(fetched[0], bodies=False)}) and sent the "
                   f"grade with it, but Clever answered {retried[-1].get('status')} "
                   f"({_message(retried[-1])})")
        else:
            did = (f"it fetched a token again ({show_entry(fetched[0], bodies=False)}) but did not "
                   f"send the grade with it")
    return f"{story}; your app's grade POST got 401 at {first.get('time')}, {did}: the grade was lost"


def _revoke_then_complete(c: Contract, token: str, what: str, student: dict, aid: str,
                          score: float) -> str:
    """Revoke ``token`` (``what`` names it, ``{token}`` standing for its first characters),
    then drive one completion and judge what became of its grade."""
    c.sim.call("DELETE", f"/_sim/tokens/{token}")
    revoked_at = _now()
    return _judge(c.complete(student, aid, score), token, what, revoked_at)


@check("GRADE-012", "recommended", "A revoked il token does not lose the grade",
       seed=S_RETRY,
       rule="the student launches the app, then Clever revokes the student's il token (before the "
            "completion); the grade still arrives: after a 401 the app fetches a fresh token "
            "(district-app token listing or a new login) and sends the grade again, at most once "
            "per 401 and never with the revoked token")
def grade_survives_revoked_il_token(c: Contract) -> str:
    student, aid = c.fresh_student(), c.next_assignment()
    c.doing(f"launching the app as student {student['id']}")
    launch = c.login(student, assignment_id=aid)
    token = launch.token()
    if token is None:
        raise Skip("not judged: the launch did not log the student in (your app got no il token "
                   "from /oauth/tokens; see LOGIN-001)")
    return _revoke_then_complete(c, token, "the student's il token {token} right after the launch",
                                 student, aid, 0.75)


@check("GRADE-013", "recommended", "A revoked district-app token is fetched again",
       seed=S_RETRY,
       rule="after a completion the app reported with a district-app token, Clever revokes that "
            "token and lists a new one for the district; a second completion's grade still "
            "arrives: after a 401 the app fetches the district-app token listing again and sends "
            "the grade once more, never with the revoked token")
def grade_survives_revoked_district_token(c: Contract) -> str:
    # a student who never launched the app: it holds no il token of theirs, so it reports
    # with the district-app token (on a roster this run has cycled through)
    student, aid = c.fresh_student(never_launched=True), c.next_assignment()
    first = c.complete(student, aid, 0.6)
    _hook_failed(first)
    used = [bearer_of(e) for e in first.posts
            if e.get("token_kind") == "district" and e.get("status") == 200]
    if not used or used[-1] is None:
        raise Skip("not judged: your app did not send a grade with a district-app token that "
                   "Clever accepted (see GRADE-001 and GRADE-002)")
    return _revoke_then_complete(c, used[-1], "the district-app token {token} your app had just "
                                 "used (and listed a new one for the district)", student, aid, 0.85)
