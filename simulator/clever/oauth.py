"""Clever's OAuth 2.0 authorization-code flow (RFC 6749 §4.1)."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from .. import ids
from ..apps import app_not_found
from ..errors import (AuthorizeError, FieldProblem, Forbidden, InvalidClient, InvalidGrant,
                      InvalidRequest, NotFound, Revoked, UnsupportedGrantType)
from ..models import App, AuthCode, Token
from ..sim import Simulator

# A code's row is kept this long past its expiry, so a late retry still hears exactly why
# it failed (used, expired); issuing a code deletes older ones, which then read as unknown.
CODE_KEEP_S = 3600
UNKNOWN_CODE = ("Unknown authorization code (it was not issued to this client, or it expired "
                "over an hour ago)")


@dataclass(frozen=True)
class AuthorizeRequest:
    """A checked ``GET /oauth/authorize``: safe to redirect to ``redirect_uri`` from here on."""

    app: App
    redirect_uri: str
    state: str | None
    district_id: str | None


def check_authorize(sim: Simulator, params: dict[str, str]) -> AuthorizeRequest:
    """Validate client and redirect_uri first; errors there never redirect (RFC 6749 §4.1.2.1)."""
    client_id = params.get("client_id")
    if not client_id:
        raise AuthorizeError("Missing client_id",
                             "The authorize link has no client_id parameter.",
                             hints=["Add client_id={your app's client id} to the link."])
    app = sim.clever.app(client_id)
    if app is None:
        raise AuthorizeError("Unknown client_id",
                             f"No app is registered with client_id {client_id!r}.",
                             hints=["Use the client id that `clever-sim serve` printed, or register "
                                    "your app with [app] in the config or POST /_sim/apps."])
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        redirect_uri = app.primary_redirect_uri  # Clever falls back to the primary redirect URI
    elif redirect_uri not in app.redirect_uris:
        raise AuthorizeError("redirect_uri does not match",
                             f"{redirect_uri!r} is not one of the redirect URIs registered for "
                             f"{app.name}; Clever requires an exact match.",
                             hints=["Registered: " + ", ".join(app.redirect_uris),
                                    "Check scheme, host, port, path and trailing slash."])
    district_id = params.get("district_id") or None
    return AuthorizeRequest(app, redirect_uri, params.get("state"), district_id)


def authorize_error_redirect(req: AuthorizeRequest, response_type: str | None) -> str | None:
    """RFC 6749 §4.1.2.1: once redirect_uri is trusted, other errors go back to the app."""
    if response_type != "code":
        return with_query(req.redirect_uri, {
            "error": "unsupported_response_type",
            "error_description": "response_type must be code",
            **({"state": req.state} if req.state is not None else {})})
    return None


def with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` appended to its query string, which is kept byte for byte.

    RFC 6749 §3.1.2: a redirect URI's own query "MUST be retained when adding additional
    query parameters" -- so ``?tenant=a+b&flag`` stays exactly that, not a re-encoding.
    """
    parts = urlsplit(url)
    # ':' stays literal so `state=assignment:{id}` reads as written; the rest of a value is
    # percent-encoded (%20 for spaces, which every URL parser decodes).
    encoded = urlencode(list(params.items()), quote_via=quote, safe=":")
    query = "&".join(q for q in (parts.query, encoded) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def issue_code(sim: Simulator, app: App, user_id: str, redirect_uri: str) -> str:
    """A single-use code for ``user_id``, valid for CODE_TTL_S seconds (Clever: one minute)."""
    user = sim.clever.user(user_id)
    if user is None:
        raise NotFound(f"User {user_id!r} not found",
                       [FieldProblem("user_id", "no such user in the roster")])
    _, record = user
    if record["district"] not in app.districts:
        raise Forbidden(f"{app.name} is not connected to district {record['district']}",
                        [FieldProblem("user_id", "belongs to a district the app is not connected to",
                                      "add the district to the app's districts")])
    code = ids.auth_code()
    now = sim.clock.now()
    sim.clever.add_code(AuthCode(code=code, client_id=app.client_id, user_id=user_id,
                                 redirect_uri=redirect_uri, expires_at=now + sim.cfg["CODE_TTL_S"]),
                        purge_expired_before=now - CODE_KEEP_S)
    return code


def login_redirect(sim: Simulator, req: AuthorizeRequest, user_id: str) -> str:
    """Where Clever sends the browser after login: ``redirect_uri?code&scopes[&state]``."""
    return redirect_with_code(req, issue_code(sim, req.app, user_id, req.redirect_uri))


def redirect_with_code(req: AuthorizeRequest, code: str) -> str:
    """``redirect_uri?code={code}&scopes={scopes}[&state={state}]`` (Clever's grade passback guide, Step 2)."""
    params = {"code": code, "scopes": " ".join(req.app.scopes)}
    if req.state is not None:
        params["state"] = req.state
    return with_query(req.redirect_uri, params)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic base64(id:secret)`` → (id, secret); None when absent."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient("Authorization: Basic credentials are not valid base64 of "
                            "client_id:client_secret") from None
    if ":" not in decoded:
        raise InvalidClient("Authorization: Basic credentials must be client_id:client_secret")
    client_id, secret = decoded.split(":", 1)
    return client_id, secret


def authenticate_client(sim: Simulator, basic: tuple[str, str] | None, body: dict) -> App:
    """RFC 6749 §2.3.1: HTTP Basic or client_id/client_secret in the body (never both differing)."""
    body_id, body_secret = body.get("client_id"), body.get("client_secret")
    if basic is not None:
        client_id, secret = basic
        if body_id is not None and body_id != client_id:
            raise InvalidClient("client_id in the body differs from the one in the Basic header")
    elif body_id is not None or body_secret is not None:
        client_id, secret = body_id, body_secret
    else:
        raise InvalidClient("No client credentials: send HTTP Basic client_id:client_secret "
                            "or client_id and client_secret in the body")
    if not isinstance(client_id, str) or not isinstance(secret, str):
        raise InvalidClient("client_id and client_secret must be strings")
    app = sim.clever.app(client_id)
    if app is None:
        raise InvalidClient(f"Unknown client_id {client_id!r}")
    if not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
        raise InvalidClient(f"Wrong client_secret for client_id {client_id!r}")
    return app


def exchange_code(sim: Simulator, app: App, body: dict) -> dict:
    """``grant_type=authorization_code``: a code for an il token, once, within its lifetime."""
    grant_type = body.get("grant_type")
    if grant_type is None or grant_type == "":
        raise InvalidRequest("grant_type is missing: send grant_type=authorization_code")
    if grant_type != "authorization_code":
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported; "
                                   "Clever's token endpoint takes authorization_code")
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise InvalidRequest("code is missing: send the code from the redirect's query string")
    redirect_uri = body.get("redirect_uri")
    if redirect_uri is not None and not isinstance(redirect_uri, str):
        raise InvalidRequest("redirect_uri must be a string")
    row, first = sim.clever.redeem_code(code, sim.clock.now())
    if row is None or row.client_id != app.client_id:
        raise InvalidGrant(UNKNOWN_CODE)
    if not first:
        raise InvalidGrant("Authorization code already used: codes can be redeemed once")
    if sim.clock.now() > row.expires_at:
        raise InvalidGrant(f"Authorization code expired: codes live {sim.cfg['CODE_TTL_S']} seconds")
    if redirect_uri is None:
        raise InvalidRequest("redirect_uri is missing: send the same redirect_uri as in the "
                             "authorize request")
    if redirect_uri != row.redirect_uri:
        raise InvalidGrant(f"redirect_uri {redirect_uri!r} does not match the one the code was "
                           f"issued for ({row.redirect_uri!r})")
    return mint_il_token(sim, app, row.user_id, from_code=code)


def mint_il_token(sim: Simulator, app: App, user_id: str, *, from_code: str | None = None) -> dict:
    """A new SSO token for ``user_id`` (also used by the control API's persona tokens),
    never one for an app (or from a code) deleted meanwhile."""
    user = sim.clever.user(user_id)
    if user is None:
        raise NotFound(f"User {user_id!r} not found", [FieldProblem("user_id", "no such user")])
    _, record = user
    token = ids.il_token()
    try:
        sim.clever.add_token(Token(access_token=token, kind="il", id=ids.object_id(),
                                     client_id=app.client_id, district_id=record["district"],
                                     user_id=user_id, scopes=app.scopes,
                                     created=sim.clock.iso()), from_code=from_code)
    except Revoked:
        if from_code is not None:
            raise InvalidGrant("Authorization code revoked: its app was deleted or the "
                               "simulator reset while it was being exchanged") from None
        raise app_not_found(app.client_id) from None
    return {"access_token": token, "token_type": "bearer"}


def district_token_listing(sim: Simulator, app: App, params: dict[str, str]) -> dict:
    """``GET /oauth/tokens?owner_type=district[&district=ID]`` in Clever's recorded shape."""
    owner_type = params.get("owner_type")
    if owner_type != "district":
        raise InvalidRequest("owner_type must be district (the only owner type Clever lists)")
    district = params.get("district") or None
    tokens = sim.clever.district_tokens(app.client_id, district)
    self_uri = "/oauth/tokens?" + urlencode({k: v for k, v in params.items()
                                             if k in ("owner_type", "district")})
    return {"data": [{"id": t.id, "created": t.created,
                      "owner": {"type": "district", "id": t.district_id},
                      "access_token": t.access_token, "scopes": t.scopes} for t in tokens],
            "links": [{"rel": "self", "uri": self_uri}]}


def tokeninfo(sim: Simulator, token: Token) -> dict:
    """``GET /oauth/tokeninfo``: which app a token belongs to and its scopes."""
    return {"client_id": token.client_id, "scopes": token.scopes}
