"""Grade passback (Clever's grade passback guide, Step 3): the ``POST {GRADES_URL}/v1/grade`` body and sending it.

One completion, one grade: sent with the student's il token when they are logged in, else
with the district-app token of their district. Network errors, 429 and 5xx are retried
(``transport.py``). A 401 means the token was revoked (a login ended, the district
re-authorized the app): the app fetches the district's current district-app token and
sends the grade once more with it; a second 401 is final. Other 4xx are never retried.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from .clever import CleverClient
from .content import Assignment
from .state import Completion
from .transport import CleverError, Sent, Transport

log = logging.getLogger("reference_partner")


def grade_body(assignment: Assignment, completion: Completion,
               time_spent_s: int | None = None) -> dict:
    """The POST /v1/grade body: ids, the score in the assignment's format, then context."""
    body: dict[str, Any] = {"assignmentID": assignment.id, "userID": completion.user_id}
    body.update(assignment.score_fields(completion.fraction))
    body["attempt"] = completion.attempt
    if time_spent_s is not None:
        body["timeSpentSeconds"] = time_spent_s
    body["completedAt"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return body


class GradeClient:
    """Sends grades to Clever's grades API, with retries and one token refresh after a 401."""

    def __init__(self, grades_url: str, transport: Transport, clever: CleverClient):
        self.grades_url = grades_url.rstrip("/")
        self.transport = transport
        self.clever = clever

    def post_grade(self, token: str, body: dict) -> Sent:
        """``POST /v1/grade`` once, retrying 429/5xx/connection errors (at most 3 times)."""
        return self.transport.with_retries(lambda http: http.post(
            f"{self.grades_url}/v1/grade", json=body,
            headers={"Authorization": f"Bearer {token}"}), "grade")

    def send(self, body: dict, district_id: str, token: str | None = None) -> Sent:
        """Send one grade with ``token`` (an il token) or the district-app token; after a
        401, once more with the district-app token Clever lists now."""
        try:
            return self.post_grade(token or self.clever.district_token(district_id), body)
        except CleverError as exc:
            if exc.status != 401:
                raise
            log.info("grade: 401 with the %s token, fetching the district-app token again",
                     "il" if token else "district-app")
            fresh = self.clever.district_token(district_id, refresh=True)
            try:
                sent = self.post_grade(fresh, body)
            except CleverError as again:
                again.tries[:0] = exc.tries
                raise
            sent.tries[:0] = exc.tries
            return sent

    def report(self, completion: Completion, body: dict, token: str | None = None) -> Completion:
        """Send one completion's grade (exactly one successful POST) and record the outcome."""
        completion.payload = body
        try:
            sent = self.send(body, completion.district_id, token)
        except CleverError as exc:
            completion.sent, completion.grade_status = False, exc.status
            completion.error, completion.tries = exc.message, exc.tries
            log.warning("grade for %s/%s not sent: %s", completion.user_id,
                        completion.assignment_id, exc.message)
            return completion
        completion.sent, completion.grade_status = True, sent.response.status_code
        completion.tries = sent.tries
        return completion
