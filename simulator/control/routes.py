"""Control API under ``/_sim/`` for tests and tools."""

from flask import Blueprint

bp = Blueprint("control", __name__, url_prefix="/_sim")
