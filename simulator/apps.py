"""App registrations: credentials, redirect URIs (first = primary), connected districts."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from . import bodies, ids
from .errors import BadRequest, Conflict, FieldProblem, NotFound
from .models import App, Token

DEFAULT_SCOPES = ["read:user_id", "read:students_basic", "read:teachers_basic",
                  "read:sections_basic", "read:district_admins_basic", "read:school_admins_basic"]



def _check_url(value: str, field: str, problems: list[FieldProblem]) -> None:
    """A port that is not a number passes the schema's pattern; ``urlsplit`` finds it."""
    try:
        urlsplit(value).port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        problems.append(FieldProblem(field, f"{value!r} is not a valid URL ({exc})",
                                     "write it as http://host:port/path"))


def normalize_app(spec: Any, known_districts: list[str], existing: App | None, now_iso: str) -> App:
    """Check an app registration (new or an update of ``existing``) and fill in defaults.

    The fields' rules are ``AppRegistration`` in openapi.json; checked here: the URLs parse,
    the districts are the roster's, and the merged app has redirect URIs."""
    bodies.check_schema("AppRegistration", spec, "Invalid app registration",
                        {"name": "Mathly", "redirect_uris": ["http://localhost:5002/callback"]})
    problems: list[FieldProblem] = []
    app = existing.as_json() if existing is not None else {}
    app.update(spec)
    app.setdefault("name", "Partner app")
    for key, make in (("client_id", ids.client_id), ("client_secret", ids.client_secret)):
        if app.get(key) is None:
            app[key] = make()
    if not app.get("redirect_uris"):
        problems.append(FieldProblem("redirect_uris", "must be a non-empty list of URLs",
                                     "the first one is the primary redirect URI"))
    for i, uri in enumerate(app.get("redirect_uris") or []):
        _check_url(uri, f"redirect_uris[{i}]", problems)
    if app.get("assignments_url") is not None:
        _check_url(app["assignments_url"], "assignments_url", problems)
    if app.get("districts") is None:
        app["districts"] = list(known_districts)
    for i, d in enumerate(app["districts"]):
        if d not in known_districts:
            problems.append(FieldProblem(f"districts[{i}]", f"unknown district {d!r}",
                                         f"known: {', '.join(known_districts)}"))
    if app.get("scopes") is None:
        app["scopes"] = list(DEFAULT_SCOPES)
    if problems:
        raise BadRequest("Invalid app registration", problems)
    if app.get("created") is None:
        app["created"] = now_iso
    return App(client_id=app["client_id"], client_secret=app["client_secret"], name=app["name"],
               redirect_uris=list(app["redirect_uris"]), assignments_url=app.get("assignments_url"),
               scopes=list(app["scopes"]), districts=list(app["districts"]), created=app["created"])


def public_view(app: App, tokens: list[Token]) -> dict:
    """An app as the control API shows it, with its district-app tokens."""
    return {
        "name": app.name, "client_id": app.client_id, "client_secret": app.client_secret,
        "redirect_uris": app.redirect_uris, "primary_redirect_uri": app.primary_redirect_uri,
        "assignments_url": app.assignments_url, "scopes": app.scopes,
        "districts": app.districts, "created": app.created,
        "district_tokens": {t.district_id: t.access_token for t in tokens},
    }


def app_removed_while_registered(client_id: str) -> Conflict:
    """409 for a registration whose new app a reset, snapshot load or DELETE removed before
    its tokens were made (a 404 "not found" named an id the client never sent)."""
    return Conflict(f"App {client_id!r} was removed while it was being registered",
                    [FieldProblem("client_id", "was removed by a snapshot load or DELETE "
                                  "/_sim/apps that ran at the same time",
                                  "register it again")])


def app_not_found(client_id: str) -> NotFound:
    """404 for an app that is not (or no longer) registered."""
    return NotFound(f"App {client_id!r} not found",
                    [FieldProblem("client_id", "no app is registered with this client id",
                                  "register it with POST /_sim/apps or [app] in the config")])
