"""The request inspector pages."""

from flask import Blueprint

bp = Blueprint("inspector", __name__)
