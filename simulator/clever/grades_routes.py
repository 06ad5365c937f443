"""Route of the grades endpoint ``POST /v1/grade``: parse, call domain, serialise."""

from flask import Blueprint

bp = Blueprint("grades", __name__)
