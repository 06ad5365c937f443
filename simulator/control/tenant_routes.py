"""``/_sim/tenants`` on the root app: create, list, read and delete isolated tenants.

A tenant's own control API (reset, apps, grades, journal, faults…) is the usual one under
its prefix, ``/t/{name}/_sim/…``; these routes only manage the set of tenants.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from ..tenants import EXTENSION, Tenants, unknown_tenant
from .routes import _created, _json_body

bp = Blueprint("tenants", __name__, url_prefix="/_sim/tenants")


def _tenants() -> Tenants:
    return current_app.extensions[EXTENSION]


@bp.post("")
def create_tenant():
    body = _json_body()
    name = body.get("name") if isinstance(body, dict) else body
    tenant = _tenants().create(name)
    return _created(tenant.view(request.url_root))


@bp.get("")
def list_tenants():
    registry = _tenants()
    return jsonify({"data": [t.view(request.url_root) for t in registry.list()],
                    "count": len(registry), "limit": registry.limit})


@bp.get("/<name>")
def get_tenant(name: str):
    tenant = _tenants().get(name)
    if tenant is None:
        raise unknown_tenant(name)
    return jsonify(tenant.view(request.url_root))


@bp.delete("/<name>")
def delete_tenant(name: str):
    closed = _tenants().delete(name)
    # closed is false only while a request to it (a long-poll) is still running: its
    # store and database file go when that request ends; the name is free again then.
    return jsonify({"deleted": name, "closed": closed})
