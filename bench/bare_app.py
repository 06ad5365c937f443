"""Baseline: a bare Flask app answering the same JSON POST on the same WSGI server (waitress)."""

from __future__ import annotations

import sys

from flask import Flask, jsonify, request
from waitress.server import create_server

app = Flask(__name__)


@app.post("/v1/grade")
def grade():
    body = request.get_json()
    return jsonify({"data": body, "warnings": []})


@app.get("/_sim/health")
def health():
    return jsonify({"status": "ok"})


if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    print(f"on http://127.0.0.1:{server.effective_port}", flush=True)
    server.run()
