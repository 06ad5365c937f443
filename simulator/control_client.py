"""A client for the simulator's control API (``/_sim/…``) usable from any Python code (a script,
a CI step, another test runner); the pytest plugin's fixtures are built on it.

    from simulator.control_client import ControlClient

    with ControlClient("http://127.0.0.1:8080") as sim:
        sim.reset()
        student = sim.personas("student")[0]
        url = sim.mint_code(client_id, student["id"], assignment_id="quiz1")["redirect_url"]
        ...                                   # your app passes the grade back
        grade = sim.wait_for_grade(student["id"], "quiz1", timeout=10)

Every refusal raises ``ControlAPIError`` with the simulator's own explanation (field, problem,
fix); every call has a timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import quote

import httpx

from . import httpclient
from .config import control_headers

__all__ = ["App", "ControlAPIError", "ControlClient"]

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
WAIT_CHUNK_S = 30.0  # long-polls stay below the server's WAIT_MAX_S (60 s)
PAGE = 10_000        # the control API's largest page


class ControlAPIError(Exception):
    """The control API refused a request (the message has its explanation)."""

    def __init__(self, method: str, path: str, status: int, body: Any):
        self.method, self.path, self.status, self.body = method, path, status, body
        lines = [f"{method} {path} → HTTP {status}"]
        if isinstance(body, dict):
            lines[0] += f": {body.get('message', '')}"
            for e in body.get("errors") or []:
                hint = f" ({e['hint']})" if e.get("hint") else ""
                lines.append(f"  {e.get('field')}: {e.get('problem')}{hint}")
        elif body:
            lines[0] += f": {str(body)[:300]}"
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class App:
    """A registered app, as the control API shows it."""

    client_id: str
    client_secret: str
    name: str
    redirect_uris: list[str]
    assignments_url: str | None
    districts: list[str]
    scopes: list[str]
    district_tokens: dict[str, str]
    data: dict = field(repr=False, compare=False)

    @property
    def primary_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    @classmethod
    def from_view(cls, view: dict) -> "App":
        return cls(client_id=view["client_id"], client_secret=view["client_secret"],
                   name=view["name"], redirect_uris=list(view["redirect_uris"]),
                   assignments_url=view.get("assignments_url"),
                   districts=list(view.get("districts") or []), scopes=list(view.get("scopes") or []),
                   district_tokens=dict(view.get("district_tokens") or {}), data=view)


def _given(**values: Any) -> dict:
    return {k: v for k, v in values.items() if v is not None}


class ControlClient:
    """The control API of the simulator at ``url`` (``token``: its control token, if any)."""

    def __init__(self, url: str, token: str | None = None, *,
                 timeout: httpx.Timeout | float = TIMEOUT):
        self.url = url.rstrip("/")
        self.http = httpclient.client(base_url=self.url, timeout=timeout,
                                      headers=control_headers(token))

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None,
             timeout: float | None = None, ok: Iterable[int] = (200, 201)) -> Any:
        """One request; the decoded answer, or ``ControlAPIError`` for any status not in ``ok``."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        kwargs: dict[str, Any] = {"params": params}
        if json_body is not None or method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = {} if json_body is None else json_body  # the control API takes JSON only
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=5.0)
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ControlAPIError(method, path, 0, f"no answer from the simulator at {self.url} "
                                                   "in time") from None
        except httpx.TransportError as exc:
            raise ControlAPIError(method, path, 0, f"cannot reach the simulator at {self.url}: "
                                                   f"{exc or type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code not in ok:
            raise ControlAPIError(method, path, response.status_code, body)
        return body

    # -- the simulator ----------------------------------------------------------------------

    def health(self) -> dict:
        """``{"status": "ok", "version", "districts", "apps", "grades", "strict"}``."""
        return self.call("GET", "/_sim/health")

    def reset(self) -> None:
        """Forget grades, links, codes, il tokens, journal, faults and clock (keeps apps)."""
        self.call("POST", "/_sim/reset")

    def advance_clock(self, seconds: float) -> float:
        """Move simulated time forward (codes expire after 60 s); the total offset in seconds."""
        return self.call("POST", "/_sim/clock", json_body={"advance_s": seconds})["offset_s"]

    # -- apps -------------------------------------------------------------------------------

    def apps(self) -> list[dict]:
        return self.call("GET", "/_sim/apps")["data"]

    def app(self, client_id: str) -> dict | None:
        """The app's registration, or None when no app has this client id."""
        try:
            return self.call("GET", f"/_sim/apps/{quote(client_id, safe='')}")
        except ControlAPIError as exc:
            if exc.status == 404:
                return None
            raise

    def register_app(self, spec: dict) -> dict:
        """Register an app (``redirect_uris`` at least); credentials are made when absent."""
        return self.call("POST", "/_sim/apps", json_body=spec)

    def update_app(self, client_id: str, changes: dict, *, ok: Iterable[int] = (200,)) -> dict:
        return self.call("PATCH", f"/_sim/apps/{quote(client_id, safe='')}", json_body=changes, ok=ok)

    def delete_app(self, client_id: str, *, ok: Iterable[int] = (200,)) -> None:
        self.call("DELETE", f"/_sim/apps/{quote(client_id, safe='')}", ok=ok)

    # -- people and logins ------------------------------------------------------------------

    def personas(self, role: str | None = None, district_id: str | None = None) -> list[dict]:
        """Everyone a test can log in as (``{"id", "role", "district", "name", "sections"}``)."""
        out: list[dict] = []
        after = None
        while True:
            body = self.call("GET", "/_sim/personas", params={
                "role": role, "district_id": district_id, "limit": PAGE, "starting_after": after})
            out.extend(body["data"])
            if not body.get("has_more") or not body["data"]:
                return out
            after = body["data"][-1]["id"]

    def mint_code(self, client_id: str, user_id: str, *, assignment_id: str | None = None,
                  state: str | None = None, redirect_uri: str | None = None) -> dict:
        """A fresh code: ``{"code", "redirect_url", "state", "expires_in"}``."""
        return self.call("POST", "/_sim/codes", json_body=_given(
            client_id=client_id, user_id=user_id, assignment_id=assignment_id, state=state,
            redirect_uri=redirect_uri))

    def il_token(self, client_id: str, user_id: str) -> str:
        """An SSO (il) token for a persona, as if they had just logged in."""
        return self.call("POST", "/_sim/tokens",
                         json_body={"client_id": client_id, "user_id": user_id})["access_token"]

    def district_token(self, client_id: str, district_id: str | None = None) -> str:
        """The app's district-app token for a district (default: the app's first district)."""
        path = f"/_sim/apps/{quote(client_id, safe='')}"
        view = self.call("GET", path)
        tokens = view.get("district_tokens") or {}
        district_id = district_id or (view.get("districts") or [None])[0]
        if district_id not in tokens:
            raise ControlAPIError("GET", path, 200,
                                  f"the app has no district-app token for district {district_id!r} "
                                  f"(it has: {', '.join(tokens) or 'none'})")
        return tokens[district_id]

    # -- Schoology --------------------------------------------------------------------------

    def link(self, section_id: str, client_id: str, assignment_id: str, **settings: Any) -> dict:
        """Add a partner assignment to a section as a teacher would (``settings``: max_points,
        name, description, standards, grading_enabled, grading_type, grading_category,
        grading_period, due_date)."""
        return self.call("POST", "/_sim/links", json_body={
            "section_id": section_id, "client_id": client_id, "assignment_id": assignment_id,
            **settings})

    def links(self, **filters: Any) -> list[dict]:
        """Schoology assignments; filters: section_id, client_id, assignment_id, limit, offset."""
        return self.call("GET", "/_sim/links", params=filters)["data"]

    # -- grades -----------------------------------------------------------------------------

    def grades(self, **filters: Any) -> list[dict]:
        """Every current grade, oldest write first; filters: client_id, user_id, assignment_id,
        district_id, after_seq."""
        out: list[dict] = []
        params = dict(filters)
        while True:
            body = self.call("GET", "/_sim/grades", params={**params, "limit": PAGE})
            out.extend(body["data"])
            if not body.get("has_more"):
                return out
            params["after_seq"] = body["next_after_seq"]

    def grade_history(self, grade_id: str) -> list[dict]:
        return self.call("GET", f"/_sim/grades/{quote(grade_id, safe='')}/history",
                         params={"limit": PAGE})["data"]

    def lti(self, grade_id: str) -> dict:
        """The grade's LTI 1.1 ``replaceResult`` XML and LTI 1.3 AGS score per Schoology assignment."""
        return self.call("GET", f"/_sim/grades/{quote(str(grade_id), safe='')}/lti")

    def wait_for_grade(self, user_id: str, assignment_id: str, timeout: float = 10, *,
                       client_id: str | None = None) -> dict | None:
        """The grade once it is stored (long-polls of at most 30 s), or None after ``timeout``."""
        deadline = time.monotonic() + max(0.0, float(timeout))
        params = {"user_id": user_id, "assignment_id": assignment_id, "client_id": client_id}
        while True:
            chunk = min(WAIT_CHUNK_S, max(0.0, deadline - time.monotonic()))
            body = self.call("GET", "/_sim/grades/wait",
                             params={**params, "timeout": f"{chunk:.3f}"}, timeout=chunk + 10)
            if body.get("data"):
                return body["data"]
            if time.monotonic() >= deadline:
                return None

    # -- faults and journal -----------------------------------------------------------------

    def fault(self, path: str, status: int | None = None, count: int = 1,
              retry_after: int | None = None, latency_ms: int = 0, *, method: str | None = None,
              body: dict | None = None, drop: bool = False) -> dict:
        """Make the next ``count`` requests to ``path`` (``*`` allowed) answer ``status``, wait
        ``latency_ms`` first, or (``drop``) close the connection without an answer."""
        spec = {"path": path, "count": count, **_given(status=status, retry_after=retry_after,
                                                       method=method, body=body)}
        if latency_ms:
            spec["latency_ms"] = latency_ms
        if drop:
            spec["drop"] = True
        return self.call("POST", "/_sim/faults", json_body=spec)

    def faults(self) -> list[dict]:
        return self.call("GET", "/_sim/faults")["data"]

    def clear_faults(self) -> None:
        self.call("DELETE", "/_sim/faults")

    def journal(self, **filters: Any) -> list[dict]:
        """Requests the simulator received and made (newest first); filters: path (substring),
        method, status, user_id, assignment_id, client_id, direction, after_id, limit, order
        (``oldest``: oldest first, to page on with after_id)."""
        return self.call("GET", "/_sim/journal", params=filters)["data"]

    def clear_journal(self) -> None:
        self.call("DELETE", "/_sim/journal")
