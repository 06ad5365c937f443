"""Serve a benchmark's app (``baseline_app.py``, ``raw_app.py``) on the simulator's own server
(``serving.create_waitress`` / ``serving.GranianServer``: the same options, connection handling
and logging as ``clever-sim serve``), so the only difference a benchmark measures is the app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a checkout without an install

from simulator.serving import GranianServer, create_waitress  # noqa: E402
from simulator.web import MAX_BODY  # noqa: E402


def serve(app: Callable, server: str, threads: int) -> None:
    """Print "on http://127.0.0.1:PORT" (port 0: a free one) and serve ``app`` until stopped."""
    if server == "granian":
        running = GranianServer(app, "127.0.0.1", 0, threads, MAX_BODY)
    else:
        running = create_waitress(app, "127.0.0.1", 0, threads)
    print(f"on http://127.0.0.1:{running.effective_port}", flush=True)
    try:
        running.run()
    except KeyboardInterrupt:
        pass
    finally:
        running.close()
