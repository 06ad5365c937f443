"""Baseline for the benchmarks: a bare Flask app on the simulator's own WSGI server (waitress,
or granian with ``--server granian``), with the same two endpoints the benchmarks drive — ``POST /v1/grade`` (parse the JSON body, answer it)
and ``GET /v3.0/me`` (answer a small JSON document) — and nothing else: no auth, no store.

    python bench/baseline_app.py [THREADS] [--server waitress|granian]   # prints "on http://127.0.0.1:PORT"
"""

from __future__ import annotations

import sys

from flask import Flask, jsonify, request

from simulator.serving import GranianServer, create_waitress
from simulator.web import MAX_BODY

app = Flask(__name__)


@app.post("/v1/grade")
def grade():
    body = request.get_json()
    return jsonify({"data": body, "warnings": []})


@app.get("/v3.0/me")
def me():
    return jsonify({"type": "user",
                    "data": {"id": "5f1b2c3d4e5f60718293a4b5", "district": "4e7112c9111e8c530d98db16",
                             "type": "user", "authorized_by": "district"},
                    "links": [{"rel": "self", "uri": "/me"},
                              {"rel": "canonical", "uri": "/v3.0/users/5f1b2c3d4e5f60718293a4b5"},
                              {"rel": "district", "uri": "/v3.0/districts/4e7112c9111e8c530d98db16"}]})


@app.get("/_sim/health")
def health():
    return jsonify({"status": "ok"})


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("threads", type=int, nargs="?", default=16)
    ap.add_argument("--server", choices=["waitress", "granian"], default="waitress")
    args = ap.parse_args()
    # The simulator's own server with the same options, connection handling and logging
    # (serving.create_waitress / serving.GranianServer), so the only difference measured is the app.
    if args.server == "granian":
        server = GranianServer(app, "127.0.0.1", 0, args.threads, MAX_BODY)
    else:
        server = create_waitress(app, "127.0.0.1", 0, args.threads)
    print(f"on http://127.0.0.1:{server.effective_port}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
