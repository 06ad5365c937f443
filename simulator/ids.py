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


def legacy_user_id(user: dict) -> str | None:
    """A user's v2 ("legacy") id, or None for students, whose id is the same in every version.

    Clever: "Clever user IDs for all users except students will be different in v3.0 than
    they were in any previous API versions" (dev.clever.com, API v3 upgrade guide); v3 role
    objects carry the old id as ``legacy_id`` (Clever's v3.0 Swagger, and a recorded
    ``/v3.0/users/{id}`` of a teacher).  A roster may give ``roles.<role>.legacy_id``;
    otherwise it is derived from the v3 id, so the same roster always has the same v2 ids.
    """
    roles = user.get("roles") or {}
    if "student" in roles:
        return None
    for role in roles.values():
        given = role.get("legacy_id") if isinstance(role, dict) else None
        if isinstance(given, str) and given:
            return given
    return hashlib.sha256(b"clever-sim legacy id:" + user["id"].encode()).hexdigest()[:24]
