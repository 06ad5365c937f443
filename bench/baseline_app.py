"""Baseline for the benchmarks: a bare Flask app on the simulator's own WSGI server (waitress,
or granian with ``--server granian``), with the same two endpoints the benchmarks drive — ``POST /v1/grade`` (parse the JSON body, answer it)
and ``GET /v3.0/me`` (answer a small JSON document) — and nothing else: no auth, no store.

    python bench/baseline_app.py [THREADS] [--server waitress|granian]   # prints "on http://127.0.0.1:PORT"
"""

from __future__ import annotations

from flask import Flask, jsonify, request

from app_server import serve

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
    serve(app, args.server, args.threads)
