"""``GET /``: the landing page as HTML for a browser, as JSON for ``Accept: application/json``."""

from __future__ import annotations

from flask import Blueprint, jsonify, make_response, render_template, request, url_for

from .. import __version__
from ..web import sim
from . import domain

bp = Blueprint("home", __name__)

# (key in the JSON, endpoint, label on the page)
PAGES = (
    ("schoology", "schoology.home", "Schoology (simulated): teacher and student flows"),
    ("portal", "schoology.portal", "Clever portal (simulated): app tiles"),
    ("gradebooks", "gradebook.sections", "Gradebooks: every section's grid, CSV and JSON exports"),
    ("inspector", "inspector.journal", "Inspector: every request, with findings"),
    ("api_docs", "api_docs.docs", "API docs: the control API and the emulated Clever"),
    ("openapi", "api_docs.openapi_json", "OpenAPI 3.1 document"),
    ("health", "control.health", "Control API readiness"),
)


def wants_json() -> bool:
    """JSON only when the client prefers it to HTML (a browser's ``*/*`` gets the page)."""
    accept = request.accept_mimetypes
    return accept.quality("application/json") > accept.quality("text/html")


@bp.get("/")
def landing():
    url = request.url_root.rstrip("/")  # under a tenant: http://host:port/t/{name}
    host = request.host_url.rstrip("/")
    pages = {key: host + url_for(endpoint) for key, endpoint, _ in PAGES}
    facts = domain.landing(sim(), url, pages, __version__)
    if wants_json():
        response = jsonify(facts)
    else:
        response = make_response(render_template(
            "home.html", facts=facts, links=[(pages[key], label) for key, _, label in PAGES]))
    response.vary.add("Accept")  # one URL, two representations: caches must keep both
    return response
