"""Routes of Clever's data API (``/me``, ``/v2.x``, ``/v3.x``): parse, call domain, serialise.

Only documented (version, collection) pairs are routed, and nested paths only for
collections that have relations; any other ``/vX/…`` path falls through to the app's 404.
Every answer of this blueprint carries the headers every recorded api.clever.com answer
carries (``_clever_headers``).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from ..web import bearer_token, note, sim
from . import data_api, tokens

bp = Blueprint("data_api", __name__)

# Headers of every answer api.clever.com gave in the recordings (2023): JSON labelled
# UTF-8, open CORS, and no caching.
CLEVER_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Content-Type,Authorization,X-Requested-With,Accept,Origin,"
                                    "Referer,User-Agent",
    "Access-Control-Allow-Methods": "GET,PATCH,POST,DELETE",
    "Cache-Control": "no-store",
}
JSON_UTF8 = "application/json; charset=utf-8"


def _any(values) -> str:
    """A werkzeug ``any`` converter argument list: ``"v2.0", "v2.1"``."""
    return ", ".join(f'"{v}"' for v in values)


_VERSION = f"any({_any(data_api.VERSIONS)})"
_V2 = f"any({_any(data_api.V2_VERSIONS)})"
_V3 = f"any({_any(data_api.V3_VERSIONS)})"
_V2_COLL = f"any({_any(data_api.V2_COLLECTIONS)})"
_V3_COLL = f"any({_any(data_api.V3_COLLECTIONS)})"
_V2_NESTED = f"any({_any(sorted(data_api.relations('v2.1')))})"
_V3_NESTED = f"any({_any(sorted(data_api.relations('v3.0')))})"


@bp.after_request
def _clever_headers(response: Response) -> Response:
    """Clever's recorded headers on every answer of the data API, errors included."""
    for key, value in CLEVER_HEADERS.items():
        response.headers.setdefault(key, value)
    if response.mimetype == "application/json":
        response.headers["Content-Type"] = JSON_UTF8
    return response


def _token() -> dict:
    token = tokens.resolve(sim(), bearer_token())
    note(client_id=token["client_id"], user_id=token.get("user_id"), token_kind=token["kind"])
    return token


def _query() -> tuple[dict, str]:
    """The query parameters (first value of each) and the raw query string."""
    return (request.args.to_dict(flat=True),
            request.query_string.decode("utf-8", errors="replace"))


@bp.get("/me")
@bp.get(f"/<{_VERSION}:version>/me")
def me(version: str | None = None):
    return jsonify(data_api.me(sim(), _token(), version))


@bp.get(f"/<{_V2}:version>/<{_V2_COLL}:collection>/<record_id>")
@bp.get(f"/<{_V3}:version>/<{_V3_COLL}:collection>/<record_id>")
def record(version: str, collection: str, record_id: str):
    return jsonify(data_api.get_record(sim(), _token(), version, collection, record_id))


@bp.get(f"/<{_V2}:version>/<{_V2_COLL}:collection>")
@bp.get(f"/<{_V3}:version>/<{_V3_COLL}:collection>")
def listing(version: str, collection: str):
    token = _token()
    params, query = _query()
    return jsonify(data_api.list_records(sim(), token, version, collection, params, query))


@bp.get(f"/<{_V2}:version>/<{_V2_NESTED}:collection>/<record_id>/<related>")
@bp.get(f"/<{_V3}:version>/<{_V3_NESTED}:collection>/<record_id>/<related>")
def related(version: str, collection: str, record_id: str, related: str):
    token = _token()
    params, query = _query()
    return jsonify(data_api.list_related(sim(), token, version, collection, record_id, related,
                                         params, query))
