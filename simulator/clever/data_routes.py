"""Routes of Clever's data API (``/me``, ``/v2.x``, ``/v3.x``): parse, call domain, serialise.

Only documented (version, collection) pairs are routed, and nested paths only for
collections that have relations; any other ``/vX/…`` path falls through to the app's 404.
Every answer of this API carries the headers every recorded api.clever.com answer
carries (``CLEVER_HEADERS``), errors included. A ``web.JsonApi``: answered by the pipeline
(``traffic.EmulatedTraffic``) after fault injection and the rate limit.
"""

from __future__ import annotations

from ..traffic import Call
from ..web import JsonApi, bearer_from
from . import data_api, tokens

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


api = JsonApi("data_api", rate_limited=True, headers=CLEVER_HEADERS, content_type=JSON_UTF8)
bp = api.blueprint


def _token(call: Call) -> dict:
    token = tokens.resolve(call.sim, bearer_from(call.header("HTTP_AUTHORIZATION")))
    call.exchange.note(client_id=token.client_id, user_id=token.user_id, token_kind=token.kind)
    return token


@api.route("/me")
@api.route(f"/<{_VERSION}:version>/me")
def me(call: Call, version: str | None = None) -> dict:
    return data_api.me(call.sim, _token(call), version)


@api.route(f"/<{_V2}:version>/<{_V2_COLL}:collection>/<record_id>")
@api.route(f"/<{_V3}:version>/<{_V3_COLL}:collection>/<record_id>")
def record(call: Call, version: str, collection: str, record_id: str) -> dict:
    return data_api.get_record(call.sim, _token(call), version, collection, record_id)


@api.route(f"/<{_V2}:version>/<{_V2_COLL}:collection>")
@api.route(f"/<{_V3}:version>/<{_V3_COLL}:collection>")
def listing(call: Call, version: str, collection: str) -> dict:
    token = _token(call)
    params, query = call.query()
    return data_api.list_records(call.sim, token, version, collection, params, query)


@api.route(f"/<{_V2}:version>/<{_V2_NESTED}:collection>/<record_id>/<related>")
@api.route(f"/<{_V3}:version>/<{_V3_NESTED}:collection>/<record_id>/<related>")
def related(call: Call, version: str, collection: str, record_id: str, related: str) -> dict:
    token = _token(call)
    params, query = call.query()
    return data_api.list_related(call.sim, token, version, collection, record_id, related,
                                 params, query)
