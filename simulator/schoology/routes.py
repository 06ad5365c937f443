"""Fake Schoology pages (teacher and student flows) and the fake Clever portal."""

from flask import Blueprint

bp = Blueprint("schoology", __name__)
