"""Routes of Clever's data API (``/me``, ``/v2.x``, ``/v3.x``): parse, call domain, serialise."""

from flask import Blueprint

bp = Blueprint("data_api", __name__)
