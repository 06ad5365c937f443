"""The serving ceiling: a plain WSGI app (no Flask) that parses a ``POST /v1/grade`` JSON
body and answers it, and answers ``GET /v3.0/me`` and ``/_sim/health`` with a small JSON
document, on the simulator's own granian wrapper (``serving.GranianServer``). Whatever an
app does, it cannot answer faster than this on the same server.

    python bench/raw_app.py [THREADS]   # prints "on http://127.0.0.1:PORT"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ME = json.dumps({"type": "user",
                 "data": {"id": "5f1b2c3d4e5f60718293a4b5", "district": "4e7112c9111e8c530d98db16",
                          "type": "user", "authorized_by": "district"},
                 "links": [{"rel": "self", "uri": "/me"}]}).encode()


def app(environ: dict, start_response) -> list[bytes]:
    """Parse the body when there is one, answer it back (as the bare Flask app does)."""
    length = environ.get("CONTENT_LENGTH") or ""
    if environ.get("REQUEST_METHOD") == "POST" and length.isdigit():
        body = json.loads(environ["wsgi.input"].read(int(length)))
        out = json.dumps({"data": body, "warnings": []}).encode()
    else:
        out = ME
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from simulator.serving import GranianServer
    from simulator.web import MAX_BODY

    threads = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 16
    server = GranianServer(app, "127.0.0.1", 0, threads, MAX_BODY)
    print(f"on http://127.0.0.1:{server.effective_port}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
