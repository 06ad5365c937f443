"""Bearer tokens: SSO ("il") tokens of one user and district-app tokens of one district."""

from __future__ import annotations

from ..errors import FieldProblem, InvalidToken
from ..models import Token
from ..sim import Simulator


def resolve(sim: Simulator, access_token: str) -> Token:
    """The stored token, or 401 "Could not authorize token" naming why."""
    token = sim.clever.token(access_token) if len(access_token) <= 200 else None
    if token is None:
        raise InvalidToken(errors=[FieldProblem(
            "Authorization", "the bearer token is unknown to the simulator (never issued here, "
            "or revoked)",
            "use a current token from POST /oauth/tokens (il token) or GET /oauth/tokens?"
            "owner_type=district (district-app token); tokens from real Clever do not work here")])
    return token


def revoked() -> InvalidToken:
    """401 for a token revoked while its request ran (its app deleted, the simulator reset)."""
    return InvalidToken(errors=[FieldProblem(
        "Authorization", "the bearer token was revoked (its app was deleted, its district "
        "disconnected, or the simulator reset)", "get a new token")])

