"""``GET``/``POST /_sim/snapshot``: save and load the simulator's whole state as JSON.

Routes only parse → call ``simulator.snapshot`` → serialise.
"""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request

from ..errors import BadRequest, FieldProblem, PayloadTooLarge
from ..snapshot import SnapshotError, export_state, import_state
from ..web import parse_json, read_body, sim

bp = Blueprint("snapshot", __name__, url_prefix="/_sim")

SNAPSHOT_BODY_LIMIT = 50 * 1024 * 1024  # the app-wide cap (MAX_CONTENT_LENGTH) is 1 MiB
_TRUE = ("1", "true", "yes", "on")


@bp.get("/snapshot")
def save_snapshot():
    """The whole state as a ``clever-sim-snapshot`` document (``?download=1``: as a file)."""
    response = jsonify(export_state(sim()))
    if request.args.get("download", "").lower() in _TRUE:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        response.headers["Content-Disposition"] = \
            f'attachment; filename="clever-sim-snapshot-{stamp}.json"'
    return response


@bp.post("/snapshot")
def load_snapshot():
    """Replace the whole state with a snapshot; a refused one changes nothing."""
    try:
        request.max_content_length = SNAPSHOT_BODY_LIMIT  # this view only (Flask ≥ 3.1)
    except AttributeError:  # pragma: no cover - Flask 3.0: the app-wide cap applies
        pass
    length = request.content_length
    if length is not None and length > SNAPSHOT_BODY_LIMIT:
        raise PayloadTooLarge(f"Snapshot too large: {length} bytes (limit {SNAPSHOT_BODY_LIMIT})",
                              [FieldProblem("(body)", f"is {length} bytes; the limit is "
                                            f"{SNAPSHOT_BODY_LIMIT}",
                                            "load it with clever-sim snapshot load FILE --db PATH "
                                            "(no size limit) while the simulator is stopped")])
    raw = read_body(SNAPSHOT_BODY_LIMIT)
    if not raw.strip():
        raise BadRequest("Invalid snapshot: nothing was loaded", [FieldProblem(
            "(body)", "is empty", "send a document from GET /_sim/snapshot")])
    doc = parse_json(raw)
    try:
        loaded = import_state(sim(), doc)
    except SnapshotError as exc:
        problems = [FieldProblem(p.path, p.message) for p in exc.problems]
        if exc.more:
            problems.append(FieldProblem("$", f"… and {exc.more} more problem(s)"))
        raise BadRequest("Invalid snapshot: nothing was loaded", problems) from None
    return jsonify({"status": "loaded", "counts": loaded})
