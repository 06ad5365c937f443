"""Run the app on waitress, a production WSGI server, in this process or in a thread.

Waitress reads each request fully in its I/O thread (poll(), not select(), so any
descriptor number works) before a worker sees it, so slow clients do not hold worker
threads. Long waits (``/_sim/grades/wait``, live gradebook streams) never run on the
workers either: ``WaitDispatcher`` gives each its own thread, up to a server-wide cap.
Connections, SQLite handles, tenants and waits are bounded to fit the process's
descriptor limit (``limits``); past a bound the answer is 503 + Retry-After.
"""

from __future__ import annotations

import gc
import logging
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask
from waitress.channel import ClientDisconnected, HTTPChannel
from waitress.server import TcpWSGIServer, create_server
from waitress.task import ThreadedTaskDispatcher, WSGITask

from . import limits
from .errors import ConnectionDropped
from .jsontext import dumps
from .web import MAX_BODY

DEFAULT_THREADS = 16
RETRY_AFTER_S = 5
log = logging.getLogger("clever_sim")


# A worker that blocked (a SQLite call, the write lock) waits for the GIL until the thread
# holding it is asked to let go: every 5 ms by default.  With many connections the workers
# then queue behind one another (measured at 128 connections: 62 context switches and
# 4 ms of CPU per grade POST, 270 req/s); at 1 ms: 5 switches, 0.7 ms, 1,180 req/s.
SWITCH_INTERVAL_S = 0.001


def tune_interpreter() -> None:
    """Shorten the GIL switch interval for serving (never lengthen it)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


class _Task(WSGITask):
    """Waitress's WSGI task, telling the app when ``WaitDispatcher`` refused a wait."""

    def get_environment(self):
        environ = super().get_environment()
        refused = getattr(self.request, "clever_sim_wait_refused", None)
        if refused is not None:
            environ[limits.WAIT_REFUSED] = refused
        return environ


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

    task_class = _Task

    def writable(self):
        if self.total_outbufs_len and self.requests and not (self.will_close
                                                             or self.close_when_flushed):
            if not self.outbuf_lock.acquire(False):  # a worker is writing its answer
                return False
            self.outbuf_lock.release()
        return super().writable()


_SLASHES = re.compile(r"/{2,}")
_WAIT_PATH = re.compile(r"/(?:t/[a-z0-9][a-z0-9-]{0,62}/)?"
                        r"(?:_sim/grades/wait|schoology/sections/[^/]+/gradebook/events)")


def is_wait(request: Any) -> bool:
    """Whether a parsed request is a long wait (a long-poll or a live gradebook stream),
    by its path as the app routes it (doubled slashes folded, as ``TenantDispatcher`` does)."""
    if getattr(request, "command", None) not in ("GET", "HEAD"):
        return False
    return _WAIT_PATH.fullmatch(_SLASHES.sub("/", getattr(request, "path", "") or "")) is not None


class WaitDispatcher:
    """Waitress's task hand-off: long waits on threads of their own, the rest on the workers.

    A long-poll or a live stream held one of the 16 workers for up to a minute: 16 of them
    (or streams spread over tenants) left nothing for grades or ``/_sim/health``. Here a
    wait gets a thread started for it, up to ``cap`` at once over the whole server; past
    the cap it goes to the workers marked refused and is answered 503 at once. Waits are
    asleep nearly all the time (a condition variable), so a thread each costs little; the
    workers never run one.
    """

    def __init__(self, workers: ThreadedTaskDispatcher, cap: int):
        self.workers = workers
        self.cap = cap
        self.waiting = 0
        self._channels: list[Any] = []  # connections whose wait is running (one per wait)
        self._lock = threading.Condition()

    def add_task(self, channel: Any) -> None:
        requests = getattr(channel, "requests", None)
        request = requests[0] if requests else None
        if request is not None and is_wait(request):
            with self._lock:
                admitted = self.waiting < self.cap
                if admitted:
                    self.waiting += 1
                    self._channels.append(channel)
            if admitted:
                threading.Thread(target=self._serve, args=(channel,), daemon=True,
                                 name="clever-sim-wait").start()
                return
            request.clever_sim_wait_refused = self.cap
        self.workers.add_task(channel)

    def _serve(self, channel: Any) -> None:
        try:
            channel.service()
        except BaseException:  # noqa: BLE001 - as waitress's own worker loop does
            log.exception("wait thread failed")
        finally:
            with self._lock:
                self.waiting -= 1
                self._channels.remove(channel)
                self._lock.notify_all()

    def set_thread_count(self, count: int) -> None:
        self.workers.set_thread_count(count)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        """Stop the workers; end running waits as if their clients had gone (they notice
        within a second) and give them until ``timeout`` to finish, so stores close after."""
        deadline = time.monotonic() + timeout
        with self._lock:
            for channel in self._channels:
                channel.connected = False  # what waitress.client_disconnected reports
        done = self.workers.shutdown(cancel_pending=cancel_pending, timeout=timeout)
        with self._lock:
            self._lock.wait_for(lambda: self.waiting <= 0,
                                timeout=max(0.0, deadline - time.monotonic()))
        return done


def _busy_answer(limit: int) -> bytes:
    body = (dumps({"message": "Too many connections", "errors": [{
        "field": "connection",
        "problem": f"all {limit} connections this server accepts are busy with requests",
        "hint": f"retry after {RETRY_AFTER_S} seconds"}]}) + "\n").encode()
    return (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER_S}\r\n"
            f"X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n").encode() + body


class BoundedServer(TcpWSGIServer):
    """Waitress's TCP server, which at its connection limit still answers.

    Waitress stops accepting at the limit, so 1,000 idle keep-alive connections locked
    everyone else out until they timed out. Here a new connection at the limit closes the
    longest-idle connection that has no request running (any HTTP client reconnects a
    closed keep-alive connection); if every one is serving a request, the newcomer gets a
    503 with Retry-After and is closed.
    """

    def readable(self):
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return self.accepting

    def handle_accept(self):
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
            self.set_socket_options(conn)
        except OSError:  # as waitress: a client gone before accept() completed
            return
        if len(self.active_channels) >= self.adj.connection_limit and not self._make_room():
            _refuse(conn, _busy_answer(self.adj.connection_limit))
            return
        self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def _make_room(self) -> bool:
        idle = [c for c in self.active_channels.values()
                if not c.requests and (c.will_close or not c.total_outbufs_len)]
        if not idle:
            return False
        min(idle, key=lambda c: (not c.will_close, c.last_activity)).handle_close()
        return True


def _refuse(conn: socket.socket, answer: bytes) -> None:
    """Answer a connection that cannot be served and close it (in the I/O thread: never blocks)."""
    try:
        conn.setblocking(False)
        try:
            conn.recv(65536)  # what already came: closing with unread data would reset
        except OSError:
            pass
        conn.send(answer)
    except OSError:
        pass
    finally:
        conn.close()


class _DropConnections:
    """WSGI: an injected ``drop`` fault (``ConnectionDropped``) closes the connection with
    no answer at all: waitress does that for ``ClientDisconnected`` (and logs it at INFO)."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        try:
            return self.app(environ, start_response)
        except ConnectionDropped:
            raise ClientDisconnected("connection dropped by an injected fault") from None


def tune_server(server: Any) -> None:
    """Waitress settings that are not constructor options: each accepted connection is a
    ``QuietChannel``, the server a ``BoundedServer``, and no queue-depth warnings.

    Waitress warns "Task queue depth is N" for every request that waits for a worker: under
    a CI burst, one stderr line per request from its I/O thread (measured: 5 % of the
    server's CPU at 32 connections), saying nothing a partner can act on.
    """
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server.channel_class = QuietChannel  # one listening socket (create_waitress: one address)
    if type(server) is TcpWSGIServer:
        server.__class__ = BoundedServer


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Let all threads share ``arenas`` glibc heaps, not one each (up to 8 per core): each
    arena keeps the memory its thread freed, so 16 workers grew RSS by ~10 MB more under
    mixed load (bench/soak.py). Call before threads start; a no-op off glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def freeze_startup_objects() -> None:
    """Leave everything built before serving (modules, the app, the loaded roster) out of
    the garbage collector's full passes, which otherwise walk all of it every few thousand
    requests while every request waits (measured at 32 connections: pauses up to 47 ms,
    p99 65–75 ms → 50–56 ms). For a process that serves until it stops: ``clever-sim serve``."""
    gc.freeze()


def local_url(host: str, port: int) -> str:
    """Where a client on this machine reaches a server bound to ``host``: a wildcard
    address means 127.0.0.1; IPv6 addresses go in brackets."""
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


WILDCARDS = ("0.0.0.0", "::", "")


def machine_addresses(host: str) -> list[str]:
    """The addresses other machines reach a server bound to ``host`` at: ``host`` itself,
    or for a wildcard, this machine's own non-loopback addresses (from its host name)."""
    if host not in WILDCARDS:
        return [host]
    family = socket.AF_INET if host == "0.0.0.0" else 0
    try:
        found = [a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, family,
                                                     socket.SOCK_STREAM)]
    except (OSError, UnicodeError):
        found = []
    out: list[str] = []
    for address in found + _interface_addresses():
        address = address.split("%", 1)[0]
        if not address.startswith("127.") and address != "::1" and address not in out:
            out.append(address)
    return out


def _interface_addresses() -> list[str]:
    """Each network interface's IPv4 address (Linux ioctl SIOCGIFADDR; sends nothing)."""
    try:
        import fcntl
        import struct

        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, OSError, AttributeError):
        return []
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in names:
            try:
                packed = fcntl.ioctl(probe.fileno(), 0x8915,  # SIOCGIFADDR
                                     struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            out.append(socket.inet_ntoa(packed[20:24]))
    return out


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
         threads: int = DEFAULT_THREADS, waiters: int | None = None) -> RunningServer:
    """Bind the listening socket now (port 0 picks a free port) without serving yet."""
    tune_interpreter()
    server = create_waitress(app, host, port, threads, app.config["MAX_CONTENT_LENGTH"], waiters)
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
                    max_body: int = MAX_BODY, waiters: int | None = None) -> Any:
    """The simulator's waitress server for any WSGI app (``bench/baseline_app.py`` serves
    its bare Flask app on the very same, so benchmarks compare like with like), listening
    on one address (``one_address``), with the bounds of ``limits`` (``waiters``: the
    cap on long waits, default from the descriptor limit).

    ``channel_request_lookahead=1`` keeps reading a connection while its request runs, so
    a closed browser tab is noticed at once (``waitress.client_disconnected``) and its
    live stream or long-poll ends and frees its place.
    """
    bounds = limits.current()
    workers = ThreadedTaskDispatcher()
    workers.set_thread_count(threads)
    dispatcher = WaitDispatcher(workers, bounds.waiters if waiters is None else waiters)
    server = create_server(_DropConnections(app), host=one_address(host), port=port, threads=threads,
                           ident="clever-sim", max_request_body_size=max_body, channel_timeout=30,
                           clear_untrusted_proxy_headers=True, asyncore_use_poll=True,
                           channel_request_lookahead=1, connection_limit=bounds.connections,
                           _dispatcher=dispatcher)
    tune_server(server)
    return server


def start_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0,
                    threads: int = DEFAULT_THREADS, waiters: int | None = None) -> RunningServer:
    """Serve in a daemon thread (tests, the pytest plugin, the demo)."""
    running = bind(app, host, port, threads, waiters)
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
