"""What the store hands out: apps, tokens, authorization codes, grades and Schoology links.

Frozen, slotted dataclasses, so code reads ``token.kind`` (a typo is an AttributeError,
not a silent ``KeyError`` in some rare branch) and nothing changes a stored value in place.
Each model's ``as_json()`` is the object as the simulator serves and snapshots it, key for
key in the order the API has always written it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class App:
    """A partner app's registration: credentials, redirect URIs (first = primary), districts."""

    name: str
    client_id: str
    client_secret: str
    redirect_uris: list[str]  # the first is the primary one
    assignments_url: str | None
    scopes: list[str]
    districts: list[str]
    created: str

    @property
    def primary_redirect_uri(self) -> str:
        """Where Clever sends a login when the authorize link names no redirect URI."""
        return self.redirect_uris[0]

    def as_json(self) -> dict[str, Any]:
        """The registration as a snapshot stores it."""
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                "name": self.name, "redirect_uris": list(self.redirect_uris),
                "assignments_url": self.assignments_url, "scopes": list(self.scopes),
                "districts": list(self.districts), "created": self.created}


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token: an il (SSO) token of one user, or a district-app token of one district."""

    access_token: str
    kind: str  # "il" or "district"
    id: str
    client_id: str
    district_id: str
    user_id: str | None
    scopes: list[str]
    created: str

    @property
    def is_il(self) -> bool:
        """An SSO token: it acts as one user (il tokens of students post their own grades)."""
        return self.kind == "il"

    def describe(self) -> str:
        """'il token of user X' / 'district-app token of district Y', for messages."""
        if self.is_il:
            return f"il token of user {self.user_id}"
        return f"district-app token of district {self.district_id}"

    def as_json(self) -> dict[str, Any]:
        """The token as a snapshot stores it."""
        return {"access_token": self.access_token, "kind": self.kind, "id": self.id,
                "client_id": self.client_id, "district_id": self.district_id,
                "user_id": self.user_id, "scopes": list(self.scopes), "created": self.created}


@dataclass(frozen=True, slots=True)
class AuthCode:
    """A single-use authorization code (RFC 6749 §4.1.2) and what it was issued for."""

    code: str
    client_id: str
    user_id: str
    redirect_uri: str
    expires_at: float
    used_at: float | None = None


@dataclass(frozen=True, slots=True)
class Grade:
    """The current grade of one (app, student, assignmentID): the record the API serves,
    its exact JSON text as stored, and where it sits in the write order (``seq``)."""

    id: str
    client_id: str
    user_id: str
    assignment_id: str
    district_id: str
    version: int
    seq: int
    created: str  # when this (app, student, assignment) was first graded
    updated: str  # when the current version was stored
    record: dict[str, Any]
    json: str

    def as_json(self) -> dict[str, Any]:
        """The record as the control API lists it: the stored record plus its ``seq``."""
        return {**self.record, "seq": self.seq}


@dataclass(frozen=True, slots=True)
class Link:
    """A Schoology assignment a teacher made for a partner assignment in one section;
    ``data`` is the whole assignment as Schoology shows it (name, grading, due date, …)."""

    id: str
    section_id: str
    client_id: str
    assignment_id: str
    created: str
    data: dict[str, Any]

    def setting(self, key: str, default: Any = None) -> Any:
        """One of the assignment's settings (``name``, ``grading_type``, ``max_points``, …)."""
        return self.data.get(key, default)

    @property
    def name(self) -> str:
        return self.data.get("name") or self.assignment_id

    def as_json(self) -> dict[str, Any]:
        """The assignment as the control API shows it."""
        return dict(self.data)


@dataclass(frozen=True, slots=True)
class GradeVersion:
    """One accepted POST of a grade, as its history keeps it (``seq``: the write order)."""

    seq: int
    grade_id: str
    version: int
    record: dict[str, Any]
    received_at: str
