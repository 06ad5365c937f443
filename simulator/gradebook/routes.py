"""The Schoology gradebook pages, exports and live updates."""

from flask import Blueprint

bp = Blueprint("gradebook", __name__)
