"""Clever's OAuth and identity endpoints, as this app uses them.

- login: the authorize URL, the code exchange at ``{CLEVER_URL}/oauth/tokens`` (HTTP Basic
  client credentials) and ``GET {API_URL}/v3.0/me`` (who logged in, which district);
- district-app tokens: ``GET {CLEVER_URL}/oauth/tokens?owner_type=district&district=ID``,
  cached per district, fetched again (``refresh=True``) after Clever answers 401.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping
from urllib.parse import quote, urlencode

import httpx

from .transport import CleverError, Transport, body_of, describe


class CleverClient:
    """Clever's login, identity and district-app token endpoints over one ``Transport``."""

    def __init__(self, cfg: Mapping[str, Any], transport: Transport):
        self.clever_url = cfg["CLEVER_URL"].rstrip("/")
        self.api_url = cfg["API_URL"].rstrip("/")
        self.client_id = cfg["CLIENT_ID"]
        self.client_secret = cfg["CLIENT_SECRET"]
        self.transport = transport
        self._district_tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def authorize_url(self, redirect_uri: str, state: str | None = None) -> str:
        params = {"response_type": "code", "client_id": self.client_id,
                  "redirect_uri": redirect_uri}
        if state is not None:
            params["state"] = state
        return f"{self.clever_url}/oauth/authorize?{urlencode(params)}"

    # --- login --------------------------------------------------------------------------

    def exchange_code(self, code: str, redirect_uri: str) -> str:
        """The il token for an authorization code (single try: codes are single-use)."""
        resp = self.transport.once(lambda http: http.post(
            f"{self.clever_url}/oauth/tokens", auth=(self.client_id, self.client_secret),
            json={"code": code, "grant_type": "authorization_code",
                  "redirect_uri": redirect_uri}))
        body = _ok_body(resp)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise CleverError("Clever's token answer has no access_token", resp.status_code, body)
        return token

    def me(self, token: str) -> dict:
        """``GET /v3.0/me``: ``{"id", "district", "type"}`` of whoever owns the token."""
        resp = self.transport.once(lambda http: http.get(
            f"{self.api_url}/v3.0/me", headers={"Authorization": f"Bearer {token}"}))
        body = _ok_body(resp)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) \
                or not isinstance(data.get("district"), str):
            raise CleverError("Clever's /me answer has no data.id/data.district", 200, body)
        return data

    def user_profile(self, token: str, user_id: str) -> tuple[str | None, str | None]:
        """(display name, role) from ``/v3.0/users/{id}``; (None, None) when unavailable."""
        try:
            resp = self.transport.once(lambda http: http.get(
                f"{self.api_url}/v3.0/users/{quote(user_id, safe='')}",
                headers={"Authorization": f"Bearer {token}"}))
            data = resp.json().get("data") if resp.status_code == 200 else None
        except (CleverError, ValueError, AttributeError):
            return None, None
        if not isinstance(data, dict):
            return None, None
        name = data.get("name") if isinstance(data.get("name"), dict) else {}
        shown = " ".join(str(name[k]) for k in ("first", "last") if name.get(k)) or None
        roles = data.get("roles") if isinstance(data.get("roles"), dict) else {}
        role = next((r for r in ("student", "teacher", "staff", "district_admin") if r in roles),
                    None)
        return shown, role

    # --- district-app tokens -------------------------------------------------------------

    def district_token(self, district_id: str, *, refresh: bool = False) -> str:
        """The district-app token for ``district_id`` (cached; ``refresh`` asks Clever again,
        e.g. after a 401: the district may have re-authorized the app, with a new token)."""
        with self._lock:
            if not refresh and district_id in self._district_tokens:
                return self._district_tokens[district_id]
        sent = self.transport.with_retries(lambda http: http.get(
            f"{self.clever_url}/oauth/tokens", auth=(self.client_id, self.client_secret),
            params={"owner_type": "district", "district": district_id}), "district-app token")
        body = body_of(sent.response)
        data = body.get("data") if isinstance(body, dict) else None
        tokens = [t for t in data or [] if isinstance(t, dict)
                  and isinstance(t.get("access_token"), str)
                  and (t.get("owner") or {}).get("id", district_id) == district_id]
        if not tokens:
            raise CleverError(f"Clever lists no district-app token for district {district_id}: "
                              "is the app connected to that district?", sent.response.status_code,
                              body, sent.tries)
        token = tokens[0]["access_token"]
        with self._lock:
            self._district_tokens[district_id] = token
        return token


def _ok_body(resp: httpx.Response) -> Any:
    """The body of a 200, or CleverError with Clever's own words."""
    body = body_of(resp)
    if resp.status_code != 200:
        raise CleverError(describe(body) or f"HTTP {resp.status_code}", resp.status_code, body)
    return body
