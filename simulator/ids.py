"""Identifiers in Clever's formats: 24-hex record ids, 20-hex client ids, 40-hex secrets."""

from __future__ import annotations

import secrets


def object_id() -> str:
    """A 24-hex id like Clever's Mongo ObjectIds."""
    return secrets.token_hex(12)


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
