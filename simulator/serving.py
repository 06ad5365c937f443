"""Run the app on a production WSGI server, in this process or in a thread: waitress (pure
Python), or granian (Rust HTTP, one worker in this process) where its wheel installs.

Every server runs on waitress unless ``--server``/``CLEVER_SIM_SERVER`` asks for granian or
``auto``: only waitress can close a connection unanswered (an injected ``drop`` fault, which
the contract suite's network-error check relies on) and evict idle connections at the limit.
``choose_server("auto")`` picks granian when it imports and is a version whose worker this
module drives (``GRANIAN_SERIES``), waitress otherwise; ``--server`` overrides it. Both keep
the same bounds (``limits``): long waits (``/_sim/grades/wait``, live gradebook streams)
capped server-wide with 503 + Retry-After past the cap, bodies over the cap refused with 413
before they are read, an injected ``drop`` fault closing the connection with no answer, and
a stop that ends running waits before the stores close.

On waitress, each request is read fully in its I/O thread (poll(), any descriptor number)
before a worker sees it, long waits get threads of their own (``WaitDispatcher``), and at the
connection limit the longest-idle connection makes room (``BoundedServer``). On granian the
Rust side reads and writes every socket; Python threads run only the app (``threads`` for
requests plus one per admitted wait).
"""

from __future__ import annotations

import gc
import io
import logging
import os
import re
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from flask import Flask
from waitress.channel import ClientDisconnected, HTTPChannel
from waitress.server import TcpWSGIServer, create_server
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.trigger import trigger as WaitressTrigger
from waitress.utilities import RequestEntityTooLarge, RequestHeaderFieldsTooLarge, ServerNotImplemented
from waitress.wasyncore import _DISCONNECTED

from . import limits
from .errors import ConnectionDropped
from .jsontext import dumps
from .web import MAX_BODY

DEFAULT_THREADS = 16
RETRY_AFTER_S = 5
SERVERS = ("auto", "granian", "waitress")
# granian has no public way to run a WSGI worker in this process (its embedded server is
# ASGI only; its ``Server`` forks worker processes), so ``GranianServer`` drives the worker
# as granian's own threaded server does: a minor-version series it was written against.
GRANIAN_SERIES = (2, 8)
log = logging.getLogger("clever_sim")


class ServerUnavailable(ValueError):
    """``--server granian`` where granian cannot serve (not installed, another series)."""


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
    """Waitress's WSGI task, telling the app when ``WaitDispatcher`` refused a wait and
    whether the client has gone (``limits.CLIENT_GONE``)."""

    def get_environment(self):
        environ = super().get_environment()
        refused = getattr(self.request, "clever_sim_wait_refused", None)
        if refused is not None:
            environ[limits.WAIT_REFUSED] = refused
        gone = environ.get("waitress.client_disconnected")  # a closed connection, noticed at once
        if gone is not None:
            environ[limits.CLIENT_GONE] = gone
        return environ


_BAD_URI_HINT = "percent-encode what is not printable ASCII in the path and query (☃ is %E2%98%83)"


def _method_problem(method: str) -> bytes:
    """The 400 for a method that is not upper case (methods are case-sensitive, RFC 9110
    §9.1: ``get`` is not GET), worded as waitress words it, on either server."""
    return _problem_body("Bad request", "(request)", f'Malformed HTTP method "{method}"',
                         f'HTTP methods are case-sensitive: send "{method.upper()}"')


class _JsonErrorTask(ErrorTask):
    """Waitress's answer to a request it could not parse (a body over the cap, a bad header
    or chunk) in the simulator's JSON error shape, as granian's wrapper answers a body over
    the cap, instead of waitress's text/plain page; a transfer coding it cannot read is a
    400 naming the header, as on granian (waitress: 501), so no request gets a 5xx."""

    def __init__(self, channel: Any, request: Any) -> None:
        super().__init__(channel, request)
        # A request line it could not parse leaves no path, which waitress names when the
        # client has gone before the answer is written ("Client disconnected while serving
        # %s"): an AttributeError traceback from a worker thread otherwise.
        if getattr(request, "path", None) is None:
            request.path = "(a request it could not parse)"

    def execute(self):
        error, adj = self.request.error, self.channel.server.adj
        status = f"{error.code} {error.reason}"
        if isinstance(error, RequestEntityTooLarge):
            cap, declared = adj.max_request_body_size - 1, self.request.content_length  # see create_waitress
            body = _problem_body("Request body too large", "(body)", f"is {declared} bytes; this "
                                 f"server accepts at most {cap}" if declared > cap else
                                 f"is over {cap} bytes, the most this server accepts",
                                 "send a smaller body")
        elif isinstance(error, RequestHeaderFieldsTooLarge):
            body = _problem_body("Request headers too large", "(headers)", f"are over "
                                 f"{adj.max_request_header_size} bytes in all",
                                 "send fewer or shorter headers")
        elif isinstance(error, ServerNotImplemented):  # the one 5xx waitress answers itself
            status = "400 Bad Request"
            body = _problem_body("Unsupported Transfer-Encoding", "Transfer-Encoding",
                                 str(error.body).rstrip("."), "send the body with Content-Length, "
                                 "or with Transfer-Encoding: chunked alone")
        elif str(error.body).startswith('Malformed HTTP method "'):  # as _GranianApp answers it
            body = _method_problem(str(error.body)[len('Malformed HTTP method "'):-1])
        else:  # waitress's words name what it could not parse (a header line, the chunk size)
            problem = str(error.body).rstrip(".")
            body = _problem_body("Bad request", "(request)", problem, _BAD_URI_HINT
                                 if problem == "Bad URI" else "send a well-formed HTTP/1.1 request")
        self.status = status
        self.response_headers.extend([("Content-Type", "application/json"),
                                      ("X-Content-Type-Options", "nosniff")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


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
    error_task_class = _JsonErrorTask
    half_closed = False  # the client shut its sending side with requests to answer

    def handle_read(self):
        """Waitress's read, except that the end of the client's data with whole requests
        still to answer (a half-close: ``shutdown(SHUT_WR)`` after the request, which HTTP
        allows) answers them and then closes; waitress closed the connection at once, so
        they got nothing. A long wait's client that stops sending has left (a closed tab):
        its wait ends, as before."""
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except OSError as why:
            if why.args[0] not in _DISCONNECTED and self.adj.log_socket_errors:
                self.logger.exception("Socket error")
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
            return
        with self.requests_lock:
            answering = bool(self.requests) and not any(is_wait(r) for r in self.requests)
            if answering:
                self.half_closed = True  # read no more; ``service`` closes after the answers
        if not answering:
            self.handle_close()  # as waitress: the client has gone

    def readable(self):
        return not self.half_closed and super().readable()

    def send_continue(self):
        """Waitress's, except for a request its parser already refused (a declared body over
        the cap: 413): that one is answered at once. Waitress sent it ``100 Continue`` and
        marked it incomplete again, so the client uploaded the whole refused body before its
        413 (granian answers at once, as RFC 9110 §10.1.1 asks)."""
        if self.request.error is not None:
            self.request.expect_continue = False
            return
        super().send_continue()

    def service(self):
        super().service()
        if self.half_closed:
            with self.requests_lock:
                done = not self.requests
                if done:
                    self.close_when_flushed = True
            if done:
                self.server.pull_trigger()

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


def is_wait_request(method: str | None, path: str | None) -> bool:
    """Whether a request is a long wait (a long-poll or a live gradebook stream), by its
    path as the app routes it (doubled slashes folded, as ``TenantDispatcher`` does)."""
    if method not in ("GET", "HEAD"):
        return False
    return _WAIT_PATH.fullmatch(_SLASHES.sub("/", path or "")) is not None


def is_wait(request: Any) -> bool:
    """``is_wait_request`` for a request waitress has parsed."""
    return is_wait_request(getattr(request, "command", None), getattr(request, "path", None))


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
            waits_ended = self._lock.wait_for(lambda: self.waiting <= 0,
                                              timeout=max(0.0, deadline - time.monotonic()))
        # waitress's shutdown answers True when it cancels pending tasks, even with threads
        # still running past the timeout: those threads are what a caller closing stores needs
        return bool(done) and not self.workers.threads and waits_ended


def _problem_body(message: str, field: str, problem: str, hint: str) -> bytes:
    """An error body in the simulator's shape, for answers the server gives before the app."""
    return (dumps({"message": message, "errors": [{"field": field, "problem": problem,
                                                    "hint": hint}]}) + "\n").encode()


def _busy_answer(limit: int) -> bytes:
    body = _problem_body("Too many connections", "connection",
                         f"all {limit} connections this server accepts are busy with requests",
                         f"retry after {RETRY_AFTER_S} seconds")
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
            raise ClientDisconnected(DROP_MESSAGE) from None


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
    if type(server.trigger) is WaitressTrigger:
        unguarded, server.trigger = server.trigger, GuardedTrigger(server._map)
        unguarded.close()


class GuardedTrigger(WaitressTrigger):
    """Waitress's wake-up pipe, which a worker may pull while the server closes it.

    A worker that finishes an answer pulls the trigger (``os.write`` on the pipe) from its own
    thread; a stop closes the pipe in the I/O thread. Unguarded, a pull right after the close
    raised EBADF in the worker (a traceback on stderr), or worse, wrote its byte into whatever
    file had just been given the freed descriptor number (a database, in a test process that
    starts servers one after another). Here a pull and the close take turns, and a pull after
    the close does nothing: the loop it would wake is gone.
    """

    def __init__(self, map: dict) -> None:
        self._turns = threading.Lock()
        super().__init__(map)

    def _physical_pull(self) -> None:
        with self._turns:
            if not self._closed:
                super()._physical_pull()

    def _close(self) -> None:
        with self._turns:
            super()._close()


MALLOC_ARENAS = 2  # glibc heaps all threads share (``limit_malloc_arenas``)
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Let all threads share ``arenas`` glibc heaps, not one each (up to 8 per core): each
    arena keeps the memory its threads freed, so 16 workers grew RSS by ~10 MB more under
    mixed load (bench/soak.py). One arena saved ~1.7 MB more under the soak but cost 2–16 %
    more CPU per grade POST and ``/v3.0/me`` in bench/serving_layer.py (every figure, both
    servers; threads then wait on one heap's lock): not taken. Call before threads start;
    a no-op off glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)
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


# --- granian ------------------------------------------------------------------------------------

def granian_problem() -> str | None:
    """Why granian cannot serve in this process (None: it can)."""
    try:
        import granian
        from granian._granian import BUILD_GIL, ListenerSpec, WorkerSignal, WSGIWorker  # noqa: F401
    except ImportError as exc:  # no wheel for this platform, or not installed
        return f"granian is not installed ({exc})"
    version = tuple(int(p) for p in re.findall(r"\d+", granian.__version__)[:2])
    if version != GRANIAN_SERIES:
        return (f"granian {granian.__version__} is installed; the simulator drives granian "
                f"{GRANIAN_SERIES[0]}.{GRANIAN_SERIES[1]}.x")
    if not BUILD_GIL:
        return "this granian is the free-threaded build"
    return None


def describe_server(kind: str, requested: str = "auto") -> str:
    """The banner's line naming the server (and, on a fallback, why it is not granian)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = f"{kind} {version(kind)}"
    except PackageNotFoundError:
        text = kind
    text += " (Rust HTTP, WSGI)" if kind == "granian" else " (pure-Python WSGI)"
    if kind == "waitress" and requested == "auto":
        text += f"; not granian: {granian_problem()}"
    return text


def choose_server(name: str = "auto") -> str:
    """``granian`` or ``waitress`` for ``--server`` NAME: auto is granian where it can serve."""
    if name not in SERVERS:
        raise ServerUnavailable(f"unknown server {name!r}; choose one of {', '.join(SERVERS)}")
    if name == "waitress":
        return "waitress"
    problem = granian_problem()
    if problem is None:
        return "granian"
    if name == "granian":
        raise ServerUnavailable(f"{problem}; use --server waitress (or auto)")
    return "waitress"


class _Dropped(Exception):
    """Raised from a granian answer's body before its first byte (an injected ``drop``
    fault): granian then closes the connection. It has written the head already (granian
    offers no way to close a connection unanswered), so the head says 502 and promises a
    body that never comes: clients that read the answer fail as on a dropped connection,
    and one that looks only at the status sees a failure, never a success."""


class _QuietDrops(logging.Filter):
    """granian logs every exception a WSGI answer raises; a dropped connection is no error."""

    def filter(self, record: logging.LogRecord) -> bool:
        # granian's Rust side logs the traceback as the message text (no exc_info)
        if record.exc_info and isinstance(record.exc_info[1], _Dropped):
            return False
        return f"{_Dropped.__name__}: {DROP_MESSAGE}" not in str(record.msg)


DROP_MESSAGE = "connection dropped by an injected fault"


def _dropped_answer() -> Iterable[bytes]:
    raise _Dropped(DROP_MESSAGE)
    yield b""  # pragma: no cover - a generator, so the raise happens when granian reads it


def _drop(start_response: Callable) -> Iterable[bytes]:
    """granian writes a head before any body: a failing head, then no body (``_Dropped``)."""
    start_response("502 Bad Gateway", [("Content-Length", "1"), ("Connection", "close")])
    return _dropped_answer()


class FairSlots:
    """At most ``count`` holders at once, handed out first come, first served.

    ``threading.Semaphore`` lets a newcomer take a slot freed while a waiter is being
    woken; the woken waiter finds none and queues again at the back, so under a steady
    burst some requests wait round after round (the long tail at 32 connections). Here a
    freed slot goes straight to the longest waiter, each waiting on a lock of its own.
    """

    def __init__(self, count: int):
        self._free = count
        self._waiting: deque[threading.Lock] = deque()
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by __exit__ with the slot already ours

    @property
    def waiting(self) -> int:
        """Callers queued for a slot now."""
        return len(self._waiting)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1


class _GranianApp:
    """The bounds waitress keeps in its own machinery, as a WSGI wrapper for granian.

    * bodies declared over ``max_body`` get 413 before a byte of them is read;
    * long waits past ``cap`` are marked refused (``limits.WAIT_REFUSED``: the app answers
      503 + Retry-After); each admitted one holds a thread of its own until it ends;
    * ``limits.CLIENT_GONE`` tells a wait the server is stopping, so it ends first, and a
      request arriving once it stops gets a 503 without entering the app (``drain``);
    * ``ConnectionDropped`` closes the connection before the promised body (``_Dropped``).
    """

    def __init__(self, app: Any, max_body: int, cap: int, threads: int = DEFAULT_THREADS):
        self.app = app
        self.max_body = max_body
        self.cap = cap
        # At most ``threads`` requests in the app at once, as on waitress's workers: granian's
        # Python threads are ``threads`` + ``cap`` (for waits), and more threads running
        # Python at once only queue for the GIL (the rest wait here, asleep, in arrival order).
        self._slots = FairSlots(threads)
        self.waiting = 0
        self.running = 0  # requests in the app (the stop waits for them before stores close)
        self.stopping = threading.Event()
        self._lock = threading.Condition()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if not method.isupper() and method != method.upper():  # waitress's rule; granian
            # passes "get" on, which werkzeug then reads as GET
            return _refuse_method(method, start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        if length.isdigit() and int(length) > self.max_body:
            body = _problem_body("Request body too large", "(body)",
                                 f"is {length} bytes; this server accepts at most {self.max_body}",
                                 "send a smaller body")
            start_response("413 Request Entity Too Large", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("X-Content-Type-Options", "nosniff"), ("Connection", "close")])
            return [body]
        wait = is_wait_request(environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
        with self._lock:
            if self.stopping.is_set():  # granian still hands on requests it had read: past the
                return _stopping_answer(start_response)  # drain the stores close under them
            self.running += 1
            if wait:
                if self.waiting < self.cap:
                    self.waiting += 1
                else:
                    environ[limits.WAIT_REFUSED] = self.cap
                    wait = False
        environ[limits.CLIENT_GONE] = self.stopping.is_set
        environ[limits.WRITE_PROBE_S] = WRITE_PROBE_S  # a closed tab shows only on a write
        if wait:  # waits run on threads of their own, beside the ``threads`` for requests
            return self._serve_wait(environ, start_response)
        try:  # before taking a slot: a client that stalls its body holds no request thread
            self._buffer_body(environ, length)
        except BaseException:
            self._done(False)
            raise
        with self._slots:
            answer, dropped = self._call_app(environ, start_response, False)
            if dropped:
                return answer
            try:  # the answer is whole already: one bytes object is granian's fast path
                return [b"".join(answer)]
            finally:
                try:
                    close = getattr(answer, "close", None)
                    if close is not None:
                        close()
                finally:
                    self._done(False)

    def _serve_wait(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """A long-poll or live stream: sent as it comes; done when granian closes it."""
        answer, dropped = self._call_app(environ, start_response, True)
        return answer if dropped else _Finished(answer, lambda: self._done(True))

    def _call_app(self, environ: dict, start_response: Callable,
                  wait: bool) -> tuple[Iterable[bytes], bool]:
        """(the app's answer, whether it is a dropped connection); on a drop or an error
        the request is done here."""
        try:
            return self.app(environ, start_response), False
        except ConnectionDropped:
            self._done(wait)
            return _drop(start_response), True
        except BaseException:
            self._done(wait)
            raise

    def _buffer_body(self, environ: dict, length: str) -> None:
        """Read the body (at most ``max_body`` + 1 bytes: the app refuses more) into memory,
        as waitress does in its I/O thread before a worker sees the request."""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        want = int(length) if length.isdigit() else (self.max_body + 1 if chunked else 0)
        if want <= 0:
            return
        stream, parts, got = environ["wsgi.input"], [], 0
        while got < want:
            part = stream.read(want - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        environ["wsgi.input"] = io.BytesIO(b"".join(parts))

    def _done(self, wait: bool) -> None:
        with self._lock:
            self.running -= 1
            if wait:
                self.waiting -= 1
            self._lock.notify_all()

    def drain(self, timeout: float) -> bool:
        """Tell waits to end and refuse new requests (503), then wait until no request is
        in the app (or ``timeout``)."""
        self.stopping.set()
        with self._lock:
            return self._lock.wait_for(lambda: self.running <= 0, timeout=timeout)


def _stopping_answer(start_response: Callable) -> list[bytes]:
    """What a request that reaches a stopping granian server gets instead of the app: a
    503 (waitress closes such connections unanswered). Once ``drain`` has begun, nothing
    enters the app, so no request runs while the stores close (one reading an in-memory
    store as it closed crashed the process: tests/test_server_edges.py)."""
    body = _problem_body("Service unavailable", "(server)", "the simulator is stopping",
                         f"retry after {RETRY_AFTER_S} seconds, once it runs again")
    start_response("503 Service Unavailable", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
        ("Retry-After", str(RETRY_AFTER_S)), ("X-Content-Type-Options", "nosniff"),
        ("Connection", "close")])
    return [body]


def _refuse_method(method: str, start_response: Callable) -> list[bytes]:
    """What waitress answers a method that is not upper case, on granian."""
    body = _method_problem(method)
    start_response("400 Bad Request", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
        ("X-Content-Type-Options", "nosniff"), ("Connection", "close")])
    return [body]


class _Finished:
    """An answer's iterable that reports once when the server is done with it."""

    def __init__(self, answer: Iterable[bytes], done: Callable[[], None]):
        self._answer = answer
        self._it = iter(answer)
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> "_Finished":
        return self

    def __next__(self) -> bytes:
        return next(self._it)

    def close(self) -> None:
        try:
            close = getattr(self._answer, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


class GranianServer:
    """One granian WSGI worker in this process: the listening socket is bound on creation
    (``effective_port``), ``run()`` serves until ``close()`` (from any thread).

    Python threads: ``threads`` for requests plus ``cap`` for long waits (started as
    needed, ended when idle). Connections: up to ``connections`` at once; past that new
    ones wait in the listen backlog (no descriptor used) until one closes. granian cannot
    close an idle connection to make room as ``BoundedServer`` does, so a connection that
    sends no request head for ``GRANIAN_IDLE_S`` is closed (clients reconnect keep-alive
    connections by themselves).
    """

    def __init__(self, app: Any, host: str, port: int, threads: int = DEFAULT_THREADS,
                 max_body: int = MAX_BODY, waiters: int | None = None,
                 sock: socket.socket | None = None):
        from granian._granian import SocketHolder, WorkerSignal

        bounds = limits.current()
        self.cap = bounds.waiters if waiters is None else waiters
        self.threads = threads
        self.connections = bounds.connections
        self.max_body = max_body
        self.app = _GranianApp(app, max_body, self.cap, threads)
        # ``sock``: bound by ``listen`` already; else OSError here, as waitress's
        self._socket = sock if sock is not None else _listening_socket(one_address(host), port)
        self.effective_port = self._socket.getsockname()[1]
        self._handed = self._socket.dup().detach()  # granian's copy: it closes it when it stops
        self._listener = SocketHolder(self._handed, False, BACKLOG)
        self._signal = WorkerSignal()
        self._stopped = threading.Event()
        self._signal.add_cb(self._stopped.set)
        self._ran = False
        self._closing = False
        self._state = threading.Lock()  # run() and close() agree who closes granian's copy
        for name in ("_granian", "_granian.utils"):  # filters apply where a record is made
            logging.getLogger(name).addFilter(_QUIET_DROPS)

    def run(self) -> None:
        """Serve until ``close()``; a KeyboardInterrupt (Ctrl+C, SIGTERM in ``serve``) ends it."""
        import asyncio

        from granian._futures import _new_cbscheduler
        from granian._granian import WSGIWorker
        from granian.http import HTTP1Settings

        loop = asyncio.new_event_loop()  # granian's scheduler wants one; WSGI never runs on it
        try:
            worker = WSGIWorker(
                1, (None, self._listener), None,
                1, 512,  # one Rust runtime thread (the socket I/O); Rust's own blocking pool
                self.threads + self.cap, 30,  # Python threads, retired after 30 s idle
                self.connections,  # connections served at once
                "1", HTTP1Settings(header_read_timeout=GRANIAN_IDLE_S * 1000, keep_alive=True),
                None,
                None,  # no static files
                False, None, None, None, "tls1.3", None, [], False,  # no TLS
                (None, None))  # no metrics
            scheduler = _new_cbscheduler(loop, _granian_entry(self.app), impl_asyncio=True)
            with self._state:
                if self._closing:
                    return
                self._ran = True
            worker.serve_mtr(scheduler, loop, self._signal)
            while not self._stopped.wait(0.5):  # a timeout: Ctrl+C gets through on Windows too
                pass
        finally:
            self._signal.set()
            loop.close()

    def close(self, timeout: float = 5.0) -> bool:
        """Stop accepting, end running waits, and wait for requests in the app to finish;
        False when one was still running at ``timeout``."""
        with self._state:
            self._closing = True
            handed, self._handed = self._handed, None
            if not self._ran and handed is not None:  # never served: granian never took it
                socket.socket(fileno=handed).close()
        self._signal.set()
        idle = self.app.drain(timeout)
        self._socket.close()
        return idle


def _granian_entry(app: Callable) -> Callable:
    """What granian's worker calls per request: ``app`` with an environ of the request's own.

    granian's stock entry (``granian.wsgi._callback_wrapper``) starts every environ from a
    copy of the server process's ``os.environ``, so a variable such as ``HTTP_PROXY`` in the
    environment the server was started in read as a header every client had sent (shown in
    the journal and the inspector), and ``CONTENT_TYPE``/``CONTENT_LENGTH`` there as a body
    every bodiless request declared; each request also copied and the journal scanned
    those few dozen extra keys. Here the environ is the WSGI keys plus granian's scope."""
    from granian.wsgi import Response, ResponseIterWrap

    wsgi_keys = {"GATEWAY_INTERFACE": "CGI/1.1", "SCRIPT_NAME": "", "SERVER_SOFTWARE": "Granian",
                 "wsgi.errors": sys.stderr, "wsgi.input_terminated": True,
                 "wsgi.multiprocess": False, "wsgi.multithread": True, "wsgi.run_once": False,
                 "wsgi.version": (1, 0)}

    def serve(proto: Any, scope: dict) -> int:
        answer = Response()  # granian's start_response: keeps the status and headers
        body = app(wsgi_keys | scope, answer)
        if isinstance(body, list):  # whole already (``_GranianApp``): one write
            proto.response_bytes(answer.status, answer.headers, b"".join(body))
        else:
            proto.response_iter(answer.status, answer.headers, ResponseIterWrap(body))
        return answer.status

    return serve


BACKLOG = 1024
WRITE_PROBE_S = 1.0  # how often granian-served live streams write, to notice a closed tab
GRANIAN_IDLE_S = 10  # waitress closes idle connections after 30 s, and evicts them when full


def _listening_socket(host: str, port: int, v6only: bool = False) -> socket.socket:
    """A listening TCP socket on ``host`` (an address or a name: its first address);
    ``v6only``: an IPv6 one takes no IPv4 connections (as waitress binds them)."""
    found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        if v6only and family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if os.name != "nt":  # as waitress: a restart can reuse the port at once
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


_QUIET_DROPS = _QuietDrops()


# --- either server -------------------------------------------------------------------------------

@dataclass
class RunningServer:
    """A bound server; ``url`` is where to reach it, ``stop()`` closes it; ``kind`` names it."""

    app: Flask
    server: Any
    host: str
    port: int
    thread: threading.Thread | None = None
    kind: str = "waitress"

    @property
    def url(self) -> str:
        return local_url(self.host, self.port)

    @property
    def max_body(self) -> int:
        """The largest body the server lets reach the app."""
        if self.kind == "granian":
            return self.server.max_body
        return self.server.adj.max_request_body_size - 1  # see create_waitress

    @property
    def waiting(self) -> int:
        """Long waits (long-polls, live streams) running now."""
        if self.kind == "granian":
            return self.server.app.waiting
        return self.server.task_dispatcher.waiting

    def _end_streams(self, timeout: float = 2.0) -> None:
        """Live gradebook streams end, and the server sends their last chunk, before any
        connection is closed (the server writes it after the app is done with a stream)."""
        from .gradebook.routes import end_streams

        deadline = time.monotonic() + timeout
        waits = self.waiting
        ended = end_streams(self.app, timeout)
        while ended and self.waiting > waits - ended and time.monotonic() < deadline:
            time.sleep(0.01)

    def start(self) -> "RunningServer":
        """Serve (after ``bind``) in a daemon thread, so a test or demo process goes on."""
        self.thread = threading.Thread(target=self.server.run, name="clever-sim-server", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, then close every store, unless a request is still in the app after
        ``timeout``: its store stays open (closed with the process) rather than closing under
        it, which failed that request or crashed the process (SQLite used while it closed)."""
        from .tenants import close_app

        self._end_streams()
        if stop_server(self.server, self.thread, timeout):
            close_app(self.app)  # every tenant's store, then the root's
        else:
            log.warning("a request was still running %g s after the stop began: the "
                        "database is left open until the process ends", timeout)


def listen(host: str = "127.0.0.1", port: int = 8080, server: str = "waitress") -> socket.socket:
    """The listening socket for ``bind(..., sock=)`` on ``server``, bound before the app is
    built: a port that is taken (OSError) refuses a start before it has opened or changed a
    database. As each server binds its own: an IPv6 address is IPv6 only on waitress."""
    return _listening_socket(one_address(host), port, v6only=server == "waitress")


def bind(app: Flask, host: str = "127.0.0.1", port: int = 8080,
         threads: int = DEFAULT_THREADS, waiters: int | None = None,
         server: str | None = None, sock: socket.socket | None = None) -> RunningServer:
    """Bind the listening socket now (port 0 picks a free port; ``sock``: one ``listen``
    bound already, which the server then owns) without serving yet, on ``server``
    (``choose_server``; None: $CLEVER_SIM_SERVER, else waitress). Changes nothing
    interpreter-wide (``clever-sim serve`` calls ``tune_interpreter``)."""
    kind = choose_server(server or os.environ.get("CLEVER_SIM_SERVER") or "waitress")
    max_body = app.config["MAX_CONTENT_LENGTH"]
    if kind == "granian":
        bound: Any = GranianServer(app, host, port, threads, max_body, waiters, sock)
    else:
        bound = create_waitress(app, host, port, threads, max_body, waiters, sock)
    return RunningServer(app, bound, host, int(bound.effective_port), kind=kind)


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
                    max_body: int = MAX_BODY, waiters: int | None = None,
                    sock: socket.socket | None = None) -> Any:
    """The simulator's waitress server for any WSGI app (``bench/baseline_app.py`` serves
    its bare Flask app on the very same, so benchmarks compare like with like), listening
    on one address (``one_address``), with the bounds of ``limits`` (``waiters``: the
    cap on long waits, default from the descriptor limit).

    ``channel_request_lookahead=1`` keeps reading a connection while its request runs, so
    a closed browser tab is noticed at once (``waitress.client_disconnected``) and its
    live stream or long-poll ends and frees its place.

    Waitress refuses a body of ``max_request_body_size`` bytes or more (``>=``), so it is
    told ``max_body + 1``: a body of exactly ``max_body`` bytes reaches the app, as on granian.
    """
    bounds = limits.current()
    workers = ThreadedTaskDispatcher()
    workers.set_thread_count(threads)
    dispatcher = WaitDispatcher(workers, bounds.waiters if waiters is None else waiters)
    where = {"sockets": [sock]} if sock is not None else {"host": one_address(host), "port": port}
    server = create_server(_DropConnections(app), **where, threads=threads, ident="clever-sim",
                           max_request_body_size=max_body + 1, channel_timeout=30,
                           clear_untrusted_proxy_headers=True, asyncore_use_poll=True,
                           channel_request_lookahead=1, connection_limit=bounds.connections,
                           _dispatcher=dispatcher)
    tune_server(server)
    return server


def start_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0,
                    threads: int = DEFAULT_THREADS, waiters: int | None = None,
                    server: str | None = None) -> RunningServer:
    """Serve in a daemon thread (tests, the pytest plugin, the contract runner).

    ``server`` None: $CLEVER_SIM_SERVER, else waitress, whose injected ``drop`` faults close
    a connection unanswered (on granian a 502 head comes first, which a client that retries
    5xx answers takes for a server error: the contract check for retrying network errors
    would pass a partner that never retries them)."""
    return bind(app, host, port, threads, waiters,
                server or os.environ.get("CLEVER_SIM_SERVER") or "waitress").start()


def stop_server(server: Any, thread: threading.Thread | None, timeout: float = 5.0) -> bool:
    """Stop either server from any thread: no new requests, waits ended, requests finished;
    False when a request was still in the app at ``timeout``."""
    if isinstance(server, GranianServer):
        idle = server.close(timeout)
        if thread is not None:
            thread.join(timeout)
        return idle
    return stop_waitress(server, thread, timeout)


def stop_waitress(server: Any, thread: threading.Thread | None, timeout: float = 5.0) -> bool:
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
                    # an answer the app finished (a live stream's last chunk) goes out first
                    flush = getattr(dispatcher, "_flush_some_if_lockable", None)
                    if flush is not None and getattr(dispatcher, "total_outbufs_len", 0):
                        flush(do_close=False)
                    dispatcher.close()
                except OSError:
                    pass
        try:
            server.trigger.pull_trigger(_close_all)
        except OSError:
            server.close()
        thread.join(timeout)
    return server.task_dispatcher.shutdown(timeout=timeout) is not False
