"""Baseline for the benchmarks: a bare Flask app on the same WSGI server (waitress), with the
same two endpoints the benchmarks drive — ``POST /v1/grade`` (parse the JSON body, answer it)
and ``GET /v3.0/me`` (answer a small JSON document) — and nothing else: no auth, no store.

    python bench/baseline_app.py [THREADS]      # prints "on http://127.0.0.1:PORT"
"""

from __future__ import annotations

import sys

from flask import Flask, jsonify, request

from simulator.serving import create_waitress

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
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    # The simulator's own server (serving.create_waitress: waitress with the same options,
    # connection class and logging), so the only difference measured is the app.
    server = create_waitress(app, "127.0.0.1", 0, threads)
    print(f"on http://127.0.0.1:{server.effective_port}", flush=True)
    server.run()
