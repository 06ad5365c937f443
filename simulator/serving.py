"""Run the app on waitress, a production WSGI server, in this process or in a thread.

Waitress reads each request fully in its I/O thread before a worker sees it, so slow
clients do not hold worker threads; long-polls do, hence a generous worker count.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

from flask import Flask
from waitress.server import create_server

DEFAULT_THREADS = 16
CONNECTION_LIMIT = 1000  # waitress's default (100) lets 100 idle or slow clients lock out everyone


# A worker that blocked (a SQLite call, the write lock) waits for the GIL until the thread
# holding it is asked to let go: every 5 ms by default.  With many connections the workers
# then queue behind one another (measured at 128 connections: 62 context switches and
# 4 ms of CPU per grade POST, 270 req/s); at 1 ms: 5 switches, 0.7 ms, 1,180 req/s.
SWITCH_INTERVAL_S = 0.001


def tune_interpreter() -> None:
    """Shorten the GIL switch interval for serving (never lengthen it)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


def connection_limit() -> int:
    """Open connections served at once: CONNECTION_LIMIT, within the process's file limit."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):  # not POSIX
        return 100
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(100, min(CONNECTION_LIMIT, soft - 100))


@dataclass
class RunningServer:
    """A bound server; ``url`` is where to reach it, ``stop()`` closes it."""

    app: Flask
    server: object
    host: str
    port: int
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        from .tenants import close_app

        stop_waitress(self.server, self.thread)
        close_app(self.app)  # every tenant's store, then the root's


def bind(app: Flask, host: str = "127.0.0.1", port: int = 8080,
         threads: int = DEFAULT_THREADS) -> RunningServer:
    """Bind the listening socket now (port 0 picks a free port) without serving yet."""
    tune_interpreter()
    server = create_server(app, host=host, port=port, threads=threads, ident="clever-sim",
                           max_request_body_size=app.config["MAX_CONTENT_LENGTH"],
                           channel_timeout=30, clear_untrusted_proxy_headers=True,
                           connection_limit=connection_limit())
    return RunningServer(app, server, host, server.effective_port)


def start_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0,
                    threads: int = DEFAULT_THREADS) -> RunningServer:
    """Serve in a daemon thread (tests, the pytest plugin, the demo)."""
    running = bind(app, host, port, threads)
    running.thread = threading.Thread(target=running.server.run, name="clever-sim-server",
                                      daemon=True)
    running.thread.start()
    return running


def stop_waitress(server: Any, thread: threading.Thread | None, timeout: float = 5.0) -> None:
    """Stop a waitress server promptly and cleanly, from any thread.

    ``server.close()`` alone closes the listening socket under the running ``select``
    (EBADF in the server thread) and leaves keep-alive connections open, so the loop
    lingers for up to a second per poll. Instead, the closing runs inside the loop's own
    thread (through waitress's trigger): every dispatcher (listener, connections,
    trigger) is closed, the socket map empties and ``run()`` returns at once.
    """
    if thread is None or not thread.is_alive():
        server.close()
    else:
        def _close_all() -> None:
            for dispatcher in list(server._map.values()):  # waitress's socket map
                try:
                    dispatcher.close()
                except OSError:
                    pass
        try:
            server.trigger.pull_trigger(_close_all)
        except OSError:
            server.close()
        thread.join(timeout)
    server.task_dispatcher.shutdown(timeout=timeout)
