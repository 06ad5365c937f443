"""Identifiers in Clever's formats: 24-hex record ids, 20-hex client ids, 40-hex secrets."""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import time


def _new_process_part() -> tuple[str, "itertools.count[int]"]:
    return secrets.token_hex(5), itertools.count(int.from_bytes(secrets.token_bytes(3), "big"))


_process, _counter = _new_process_part()


def _after_fork() -> None:
    global _process, _counter
    _process, _counter = _new_process_part()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)  # a forked child must not repeat ids


def object_id() -> str:
    """A 24-hex id built as Clever's Mongo ObjectIds are: 4 bytes of Unix time, 5 random
    bytes per process, a 3-byte counter. Unique without a system call per id (grade POSTs
    make one each), and ids made later sort later, as Clever's do."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{_process}{next(_counter) & 0xFFFFFF:06x}"


def client_id() -> str:
    """A 20-hex OAuth client id, as Clever issues them."""
    return secrets.token_hex(10)


def client_secret() -> str:
    """A 40-hex OAuth client secret."""
    return secrets.token_hex(20)


def district_token() -> str:
    """District-app tokens are 40 hex characters."""
    return secrets.token_hex(20)


def il_token() -> str:
    """SSO ("instant login") tokens start with ``ilc_``."""
    return "ilc_" + secrets.token_hex(20)


def auth_code() -> str:
    """A single-use authorization code."""
    return secrets.token_hex(10)


ROLES = ("student", "teacher", "staff", "district_admin", "contact")
"""Clever's v3 user roles, in the order that picks a person's primary role (a student is
always a student; a teacher who is also staff is seen as a teacher)."""


ROLE_WORDS = {"student": "a student", "teacher": "a teacher", "staff": "a staff member",
              "district_admin": "a district admin", "contact": "a contact (a student's parent or guardian)"}
"""How messages name a person of each role."""


def primary_role(user: dict) -> str:
    """The role that stands for a person where one is needed (login, pickers, v2 ``/me``)."""
    roles = user.get("roles") or {}
    return next((r for r in ROLES if r in roles), next(iter(roles), "student"))


def legacy_role_ids(user: dict) -> dict[str, str]:
    """``{role: v2 id}`` of a user's non-student roles ({} for students, whose id is the
    same in every version).

    Clever: "Clever user IDs for all users except students will be different in v3.0 than
    they were in any previous API versions" (dev.clever.com, API v3 upgrade guide); v3 role
    objects carry the old id as ``legacy_id`` (Clever's v3.0 Swagger, and a recorded
    ``/v3.0/users/{id}`` of a teacher).  v2 kept a teacher and a school admin as two
    records, so each role has its own ``legacy_id``.  A roster may give
    ``roles.<role>.legacy_id``; otherwise it is derived from the v3 id (the primary role's
    from the id alone, as before several roles existed; others' from the id and the role),
    so the same roster always has the same v2 ids.
    """
    roles = user.get("roles") or {}
    if "student" in roles:
        return {}
    primary = primary_role(user)
    out: dict[str, str] = {}
    for role in ROLES:
        if role not in roles:
            continue
        fields = roles[role]
        given = fields.get("legacy_id") if isinstance(fields, dict) else None
        if isinstance(given, str) and given:
            out[role] = given
            continue
        seed = b"clever-sim legacy id:" + user["id"].encode()
        if role != primary:
            seed += b":" + role.encode()
        out[role] = hashlib.sha256(seed).hexdigest()[:24]
    return out


def legacy_user_id(user: dict) -> str | None:
    """A user's v2 ("legacy") id in its primary role, or None for students."""
    return legacy_role_ids(user).get(primary_role(user))
