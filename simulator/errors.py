"""One exception hierarchy for every rule the simulator enforces.

Domain modules raise these; ``traffic.error_parts`` turns them into answers in one place
(for Flask through ``app.error_response``, for ``/v1/grade`` directly).  Each family answers in the shape the real API uses:

* Clever's data API and the grades endpoint: ``{"message": ..., "errors": [...]}`` —
  ``message`` is Clever's own wording where Clever has one; ``errors`` names each
  offending field, the problem and the fix (our addition; absent when empty).
* OAuth (RFC 6749 §5.2): ``{"error": <code>, "error_description": ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of a request, with the fix where one is known."""

    field: str
    problem: str
    hint: str | None = None

    def as_dict(self) -> dict:
        out = {"field": self.field or '""', "problem": self.problem}  # '""': the empty key
        if self.hint:
            out["hint"] = self.hint
        return out


class ConnectionDropped(Exception):
    """An injected fault: close the connection without answering (not an HTTP error)."""


class Revoked(LookupError):
    """The token, code or app a write depends on was revoked while the request ran."""


class DatabaseUnusable(Exception):
    """The database path cannot hold the simulator's state; the message names it and why."""


class SimError(Exception):
    """Base of every error the simulator answers with a 4xx (or a 503 when busy)."""

    status: int = 400
    message: str = "Bad request"

    def __init__(self, message: str | None = None, errors: list[FieldProblem] | None = None,
                 headers: dict[str, str] | None = None):
        self.message = message or type(self).message
        self.errors = list(errors or [])
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def body(self) -> dict:
        """The canonical JSON error body: ``message`` plus ``errors`` when there are any."""
        out: dict = {"message": self.message}
        if self.errors:
            out["errors"] = [e.as_dict() for e in self.errors]
        return out

    def findings(self) -> list[str]:
        """Plain-words findings for the request journal."""
        if not self.errors:
            return [self.message]
        return [f"{e.field}: {e.problem}" for e in self.errors]


# --- Clever data API / grades errors -------------------------------------------------

class BadRequest(SimError):
    status = 400
    message = "Bad request"


class GradeValidationError(BadRequest):
    """The grade body breaks one or more rules; every problem is listed."""

    message = "Invalid grade"


class NoAuthorization(SimError):
    """No bearer token at all (Clever: 401 "No authorization provided")."""

    status = 401
    message = "No authorization provided"


class InvalidToken(SimError):
    """Unknown, malformed or revoked token (Clever: 401 "Could not authorize token")."""

    status = 401
    message = "Could not authorize token"


class Forbidden(SimError):
    """A valid token that may not do this (Clever LMS Connect: 403 "Could not authorize token")."""

    status = 403
    message = "Could not authorize token"


class NotFound(SimError):
    status = 404
    message = "Not found"


class MethodNotAllowed(SimError):
    """The path exists but takes other methods (listed in ``Allow``)."""

    status = 405
    message = "Method not allowed"


class Conflict(SimError):
    status = 409
    message = "Conflict"


class PayloadTooLarge(SimError):
    status = 413
    message = "Request body too large"


class UnsupportedMediaType(SimError):
    status = 415
    message = "Unsupported Content-Type"


class RateLimited(SimError):
    """Clever answers 429 with an empty body; the headers say when to retry."""

    status = 429
    message = "Too many requests"


class ServiceUnavailable(SimError):
    """A per-process bound is reached (connections, tenants, SQLite handles, waiters):
    nothing is wrong with the request; ``Retry-After`` says when to try again."""

    status = 503
    message = "Simulator busy"

    def __init__(self, message: str | None = None, errors: list[FieldProblem] | None = None,
                 retry_after: int = 5):
        super().__init__(message, errors, headers={"Retry-After": str(retry_after)})


class InjectedFault(SimError):
    """A fault the test asked for through ``/_sim/faults``; the body is the test's choice."""

    def __init__(self, status: int, body: dict | None, headers: dict[str, str]):
        self.status = status
        self.raw_body = body
        super().__init__(f"Injected fault: HTTP {status}", headers=headers)

    def body(self) -> dict:
        return self.raw_body if self.raw_body is not None else {"message": self.message}


# --- OAuth errors (RFC 6749 §5.2), one class per error code --------------------------

class OAuthError(SimError):
    """Token-endpoint error: ``{"error", "error_description"}`` as RFC 6749 §5.2 says."""

    error: str = "invalid_request"

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.message}

    def findings(self) -> list[str]:
        return [f"{self.error}: {self.message}"]


class InvalidRequest(OAuthError):
    """RFC 6749 §5.2: a required parameter is missing or malformed."""

    error = "invalid_request"
    message = "The request is missing a required parameter"


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: client authentication failed (401, with WWW-Authenticate)."""

    status = 401
    error = "invalid_client"
    message = "Client authentication failed"

    def __init__(self, message: str | None = None):
        super().__init__(message, headers={"WWW-Authenticate": 'Basic realm="clever-sim"'})


class InvalidGrant(OAuthError):
    """RFC 6749 §5.2: the code is invalid, expired, used, or issued for another redirect_uri."""

    error = "invalid_grant"
    message = "The authorization code is invalid"


class UnsupportedGrantType(OAuthError):
    """RFC 6749 §5.2: only ``authorization_code`` is supported by Clever's token endpoint."""

    error = "unsupported_grant_type"
    message = "grant_type must be authorization_code"


@dataclass
class AuthorizeError(Exception):
    """An authorize request that must NOT redirect (unknown client, bad redirect_uri).

    RFC 6749 §4.1.2.1: with an invalid redirect_uri the server informs the user and
    never redirects; rendered as an HTML error page.
    """

    title: str
    detail: str
    status: int = 400
    hints: list[str] = field(default_factory=list)
