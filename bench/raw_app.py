"""The serving ceiling: a plain WSGI app (no Flask) that parses a ``POST /v1/grade`` JSON
body and answers it, and answers ``GET /v3.0/me`` and ``/_sim/health`` with a small JSON
document, on the simulator's own granian wrapper (``serving.GranianServer``). Whatever an
app does, it cannot answer faster than this on the same server.

``--busy-us N``: each grade POST first spins N µs of its thread's CPU in Python, holding the
GIL (the simulator's own work per grade, measured in process by ``grade_floor.py``): the
best a server could do with that much work per request and nothing else (no locks, no
SQLite, no other threads).

    python bench/raw_app.py [THREADS] [--busy-us N]   # prints "on http://127.0.0.1:PORT"
"""

from __future__ import annotations

import json
import time

ME = json.dumps({"type": "user",
                 "data": {"id": "5f1b2c3d4e5f60718293a4b5", "district": "4e7112c9111e8c530d98db16",
                          "type": "user", "authorized_by": "district"},
                 "links": [{"rel": "self", "uri": "/me"}]}).encode()


BUSY_S = 0.0  # CPU seconds spun per grade POST (``--busy-us``)


def app(environ: dict, start_response) -> list[bytes]:
    """Parse the body when there is one, answer it back (as the bare Flask app does)."""
    length = environ.get("CONTENT_LENGTH") or ""
    if environ.get("REQUEST_METHOD") == "POST" and length.isdigit():
        if BUSY_S:
            until = time.thread_time() + BUSY_S
            while time.thread_time() < until:
                pass
        body = json.loads(environ["wsgi.input"].read(int(length)))
        out = json.dumps({"data": body, "warnings": []}).encode()
    else:
        out = ME
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]


if __name__ == "__main__":
    import argparse

    from app_server import serve

    ap = argparse.ArgumentParser()
    ap.add_argument("threads", type=int, nargs="?", default=16)
    ap.add_argument("--busy-us", type=float, default=0.0)
    args = ap.parse_args()
    BUSY_S = args.busy_us / 1e6
    serve(app, "granian", args.threads)
