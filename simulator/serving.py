"""Run the app on waitress, a production WSGI server, in this process or in a thread.

Waitress reads each request fully in its I/O thread before a worker sees it, so slow
clients do not hold worker threads; long-polls do, hence a generous worker count.
"""

from __future__ import annotations

import gc
import logging
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

from flask import Flask
from waitress.channel import HTTPChannel
from waitress.server import create_server

from .web import MAX_BODY

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


class QuietChannel(HTTPChannel):
    """Waitress's connection, minus a busy loop in its I/O thread.

    While a worker writes an answer it holds the connection's output lock, across the
    send() call and then while it waits to get the GIL back. Waitress reports the
    connection writable all that time, so its I/O thread's select() returns at once, the
    flush cannot take the lock, and the loop goes round again, holding the GIL the worker
    is waiting for. Here the connection is not writable while a worker holds that lock:
    the worker sends its own output, and when it leaves some unsent it wakes the I/O
    thread (waitress's trigger), which then sees the connection writable again.
    """

    def writable(self):
        if self.total_outbufs_len and self.requests and not (self.will_close
                                                             or self.close_when_flushed):
            if not self.outbuf_lock.acquire(False):  # a worker is writing its answer
                return False
            self.outbuf_lock.release()
        return super().writable()


def tune_server(server: Any) -> None:
    """Waitress settings that are not constructor options: each accepted connection is a
    ``QuietChannel``, and no queue-depth warnings.

    Waitress warns "Task queue depth is N" for every request that waits for a worker: under
    a CI burst, one stderr line per request from its I/O thread (measured: 5 % of the
    server's CPU at 32 connections), saying nothing a partner can act on.
    """
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server.channel_class = QuietChannel  # one listening socket (create_waitress: one address)


def freeze_startup_objects() -> None:
    """Leave everything built before serving (modules, the app, the loaded roster) out of
    the garbage collector's full passes, which otherwise walk all of it every few thousand
    requests while every request waits (measured at 32 connections: pauses up to 47 ms,
    p99 65–75 ms → 50–56 ms). For a process that serves until it stops: ``clever-sim serve``."""
    gc.freeze()


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


def local_url(host: str, port: int) -> str:
    """Where a client on this machine reaches a server bound to ``host``: a wildcard
    address means 127.0.0.1; IPv6 addresses go in brackets."""
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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
        return local_url(self.host, self.port)

    def stop(self) -> None:
        from .tenants import close_app

        stop_waitress(self.server, self.thread)
        close_app(self.app)  # every tenant's store, then the root's


def bind(app: Flask, host: str = "127.0.0.1", port: int = 8080,
         threads: int = DEFAULT_THREADS) -> RunningServer:
    """Bind the listening socket now (port 0 picks a free port) without serving yet."""
    tune_interpreter()
    server = create_waitress(app, host, port, threads, app.config["MAX_CONTENT_LENGTH"])
    return RunningServer(app, server, host, server.effective_port)


def one_address(host: str) -> str:
    """The first address of a host name. Given a name with several (``localhost`` is
    127.0.0.1 and ::1 on most machines), waitress opens one socket on each — on different
    ports when the port is 0 — and returns a server object without ``effective_port``;
    the simulator serves on one address, the first the system lists."""
    if not host or host in ("0.0.0.0", "::"):
        return host
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # waitress reports a bad host in its own words
        return host
    return found[0][4][0] if found else host


def create_waitress(app: Any, host: str, port: int, threads: int = DEFAULT_THREADS,
                    max_body: int = MAX_BODY) -> Any:
    """The simulator's waitress server for any WSGI app (``bench/baseline_app.py`` serves
    its bare Flask app on the very same, so benchmarks compare like with like), listening
    on one address (``one_address``)."""
    server = create_server(app, host=one_address(host), port=port, threads=threads,
                           ident="clever-sim", max_request_body_size=max_body, channel_timeout=30,
                           clear_untrusted_proxy_headers=True, connection_limit=connection_limit())
    tune_server(server)
    return server


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
