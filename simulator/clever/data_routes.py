"""Routes of Clever's data API (``/me``, ``/v2.x``, ``/v3.x``): parse, call domain, serialise.

Only known (version, collection) pairs are routed; any other ``/vX/…`` path falls through
to the app's 404 handler.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..web import bearer_token, note, sim
from . import data_api, tokens

bp = Blueprint("data_api", __name__)


def _any(values: tuple[str, ...]) -> str:
    """A werkzeug ``any`` converter argument list: ``"v2.0", "v2.1"``."""
    return ", ".join(f'"{v}"' for v in values)


_VERSION = f"any({_any(data_api.VERSIONS)})"
_V2 = f"any({_any(data_api.V2_VERSIONS)})"
_V3 = f"any({_any(data_api.V3_VERSIONS)})"
_V2_COLL = f"any({_any(data_api.V2_COLLECTIONS)})"
_V3_COLL = f"any({_any(data_api.V3_COLLECTIONS)})"


@bp.get("/me")
@bp.get(f"/<{_VERSION}:version>/me")
def me(version: str | None = None):
    token = tokens.resolve(sim(), bearer_token())
    note(client_id=token["client_id"], user_id=token.get("user_id"), token_kind=token["kind"])
    return jsonify(data_api.me(sim(), token, version))


@bp.get(f"/<{_V2}:version>/<{_V2_COLL}:collection>/<record_id>")
@bp.get(f"/<{_V3}:version>/<{_V3_COLL}:collection>/<record_id>")
def record(version: str, collection: str, record_id: str):
    token = tokens.resolve(sim(), bearer_token())
    note(client_id=token["client_id"], user_id=token.get("user_id"), token_kind=token["kind"])
    return jsonify(data_api.get_record(sim(), token, version, collection, record_id))


@bp.get(f"/<{_V2}:version>/<{_V2_COLL}:collection>")
@bp.get(f"/<{_V3}:version>/<{_V3_COLL}:collection>")
def listing(version: str, collection: str):
    token = tokens.resolve(sim(), bearer_token())
    note(client_id=token["client_id"], user_id=token.get("user_id"), token_kind=token["kind"])
    params = request.args.to_dict(flat=True)  # first value of a repeated parameter
    query = request.query_string.decode("utf-8", errors="replace")
    return jsonify(data_api.list_records(sim(), token, version, collection, params, query))
