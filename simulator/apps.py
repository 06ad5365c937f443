"""App registrations: credentials, redirect URIs (first = primary), connected districts."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from . import ids
from .errors import BadRequest, FieldProblem, NotFound

DEFAULT_SCOPES = ["read:user_id", "read:students_basic", "read:teachers_basic",
                  "read:sections_basic", "read:district_admins_basic", "read:school_admins_basic"]

_FIELDS = {"name", "client_id", "client_secret", "redirect_uris", "assignments_url", "districts",
           "scopes"}


def _check_url(value: Any, field: str, problems: list[FieldProblem]) -> None:
    if not isinstance(value, str) or not value:
        problems.append(FieldProblem(field, "must be a non-empty string (an absolute URL)"))
        return
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        problems.append(FieldProblem(field, f"{value!r} is not a valid URL ({exc})",
                                     "write it as http://host:port/path"))
        return
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(FieldProblem(field, f"{value!r} is not an absolute http(s) URL",
                                     "write it as http://host:port/path"))
    elif parts.fragment:
        problems.append(FieldProblem(field, "must not contain a #fragment (RFC 6749 §3.1.2)"))


def normalize_app(spec: Any, known_districts: list[str], existing: dict | None, now_iso: str) -> dict:
    """Check an app registration (new or an update of ``existing``) and fill in defaults."""
    if not isinstance(spec, dict):
        raise BadRequest("App registration must be a JSON object",
                         [FieldProblem("(body)", f"is a JSON {type(spec).__name__}",
                                       'send an object like {"name": ..., "redirect_uris": [...]}')])
    problems: list[FieldProblem] = []
    for key in sorted(set(spec) - _FIELDS):
        problems.append(FieldProblem(key, "unknown field", f"known fields: {', '.join(sorted(_FIELDS))}"))
    app = dict(existing or {})
    app.update({k: v for k, v in spec.items() if k in _FIELDS})
    app.setdefault("name", "Partner app")
    if not isinstance(app["name"], str) or not app["name"].strip():
        problems.append(FieldProblem("name", "must be a non-empty string"))
    for key, make in (("client_id", ids.client_id), ("client_secret", ids.client_secret)):
        if app.get(key) is None:
            app[key] = make()
        elif not isinstance(app[key], str) or not app[key] or len(app[key]) > 200:
            problems.append(FieldProblem(key, "must be a non-empty string of at most 200 characters"))
    uris = app.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        problems.append(FieldProblem("redirect_uris", "must be a non-empty list of URLs",
                                     "the first one is the primary redirect URI"))
    else:
        for i, uri in enumerate(uris):
            _check_url(uri, f"redirect_uris[{i}]", problems)
    if app.get("assignments_url") is not None:
        _check_url(app["assignments_url"], "assignments_url", problems)
    districts = app.get("districts")
    if districts is None:
        app["districts"] = list(known_districts)
    elif not isinstance(districts, list) or not all(isinstance(d, str) for d in districts):
        problems.append(FieldProblem("districts", "must be a list of district ids"))
    else:
        for i, d in enumerate(districts):
            if d not in known_districts:
                problems.append(FieldProblem(f"districts[{i}]", f"unknown district {d!r}",
                                             f"known: {', '.join(known_districts)}"))
    scopes = app.get("scopes")
    if scopes is None:
        app["scopes"] = list(DEFAULT_SCOPES)
    elif not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        problems.append(FieldProblem("scopes", "must be a list of scope names like 'read:user_id'"))
    if problems:
        raise BadRequest("Invalid app registration", problems)
    app.setdefault("created", now_iso)
    return app


def public_view(app: dict, tokens: list[dict]) -> dict:
    """An app as the control API shows it, with its district-app tokens."""
    return {
        "name": app["name"], "client_id": app["client_id"], "client_secret": app["client_secret"],
        "redirect_uris": app["redirect_uris"], "primary_redirect_uri": app["redirect_uris"][0],
        "assignments_url": app.get("assignments_url"), "scopes": app["scopes"],
        "districts": app["districts"], "created": app["created"],
        "district_tokens": {t["district_id"]: t["access_token"] for t in tokens},
    }


def require_app(store, client_id: str) -> dict:
    """The registered app, or 404 naming ``client_id``."""
    app = store.get_app(client_id) if isinstance(client_id, str) else None
    if app is None:
        raise app_not_found(client_id)
    return app


def app_not_found(client_id: str) -> NotFound:
    """404 for an app that is not (or no longer) registered."""
    return NotFound(f"App {client_id!r} not found",
                    [FieldProblem("client_id", "no app is registered with this client id",
                                  "register it with POST /_sim/apps or [app] in the config")])
