"""Identifiers in Clever's formats: 24-hex record ids, 20-hex client ids, 40-hex secrets."""

from __future__ import annotations

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
