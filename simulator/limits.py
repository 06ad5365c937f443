"""Per-process bounds that fit the file-descriptor limit, so no load can exhaust it.

Every client connection holds one descriptor and every open SQLite connection (WAL) holds
up to three (database, WAL, shared memory), across all tenants. Past the limit, accept()
and sqlite3.connect() fail; the bounds below keep the process inside it, and what would
go past a bound is answered with 503 + Retry-After instead.
"""

from __future__ import annotations

from dataclasses import dataclass

RESERVED_FDS = 64          # stdio, listening socket, the server's own, imports, files read
FDS_PER_SQLITE = 3         # database + WAL + shared memory (measured: 3, then 2 per extra)
MAX_CONNECTIONS = 1000     # client connections (waitress's default of 100 locks out too soon)
MAX_SQLITE = 512           # open SQLite connections, every store together
MAX_TENANTS = 200          # tenants (each holds a copy of the roster)
MAX_WAITERS = 256          # long-polls and live streams at once (one thread each)
RAISE_SOFT_TO = 65536      # how far ``clever-sim serve`` raises its soft limit (if allowed)
WAIT_REFUSED = "clever_sim.wait_refused"  # environ: the server's wait cap, when a wait is over it
CLIENT_GONE = "clever_sim.client_gone"  # environ: callable, true once the wait should end
# environ: seconds; a server that notices a closed connection only when it writes to it
# (granian) asks live streams to write (an SSE comment) at least this often.
WRITE_PROBE_S = "clever_sim.write_probe_s"
# environ: set by a view whose body runs after it returns (a live stream): its tenant counts
# the request in flight until the server closes the body, so the store outlives the stream
STREAMED = "clever_sim.streamed"


@dataclass(frozen=True)
class Bounds:
    """What the process serves at once, derived from its descriptor limit."""

    fd_limit: int
    connections: int
    sqlite_handles: int
    tenants: int
    waiters: int


def bounds_for(fd_limit: int) -> Bounds:
    """Half the usable descriptors for client connections (up to 1,000), the rest for
    SQLite; tenants up to one per SQLite handle; waiters up to half the connections."""
    usable = max(fd_limit - RESERVED_FDS, 64)
    connections = max(16, min(MAX_CONNECTIONS, usable // 2))
    sqlite_handles = max(8, min(MAX_SQLITE, (usable - connections) // FDS_PER_SQLITE))
    return Bounds(fd_limit, connections, sqlite_handles, tenants=min(MAX_TENANTS, sqlite_handles),
                  waiters=max(4, min(MAX_WAITERS, connections // 2)))


def fd_limit() -> int:
    """The process's soft RLIMIT_NOFILE (unlimited or unknown: as if 4096)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 4096
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 4096 if soft == resource.RLIM_INFINITY or soft <= 0 else soft


def raise_fd_limit(target: int = RAISE_SOFT_TO) -> int:
    """Raise the soft descriptor limit towards the hard one (at most ``target``); return it."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = target if hard == resource.RLIM_INFINITY else min(hard, target)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, OSError, ValueError):  # not POSIX, or not allowed: keep what we have
        pass
    return fd_limit()


def current() -> Bounds:
    """The bounds for this process's limit as it is now."""
    return bounds_for(fd_limit())
