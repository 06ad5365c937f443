"""The Docker image's HEALTHCHECK: ``python -m simulator.healthcheck``.

The image runs ``clever-sim serve`` by default, but also ``clever-sim contract``,
``fixtures`` or ``snapshot`` (``docker run clever-sim clever-sim contract …``); a check
that always probed port 8080 called those containers unhealthy. This one reads the
container's main process (PID 1, or the command docker-init or ``sh -c`` starts there):
a ``serve`` or ``demo`` is probed at the address and port it was given (flags, then its
``CLEVER_SIM_HOST``/``CLEVER_SIM_PORT``); any other command has no server, so there is
nothing to check and the answer is healthy (exit 0). No Flask here: it starts in a blink.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import urllib.request
from pathlib import Path
from typing import Mapping, Sequence

SERVING = ("serve", "demo")
WILDCARD = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1", "[::]": "::1"}


def _clever_sim_words(argv: Sequence[str]) -> list[str] | None:
    """The words after ``clever-sim`` (or ``python -m simulator.cli``) in a command line,
    looking inside a ``sh -c '…'`` string too; None when it runs no clever-sim."""
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == "clever-sim":
            return list(argv[i + 1:])
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] == "simulator.cli":
            return list(argv[i + 2:])
        if "clever-sim" in arg and any(c.isspace() for c in arg):
            try:
                inner = _clever_sim_words(shlex.split(arg))
            except ValueError:  # unbalanced quotes: not a command line we can read
                inner = None
            if inner is not None:
                return inner
    return None


def _option(words: Sequence[str], name: str) -> str | None:
    """The last value given to ``--name`` (``--name V`` or ``--name=V``), as click takes it."""
    value = None
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            value = words[i + 1]
        elif word.startswith(name + "="):
            value = word[len(name) + 1:]
    return value


def serving_target(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, int] | None:
    """(host, port) to probe for the server a process with this command line and
    environment runs; None when it runs no clever-sim server (another command, --help)."""
    words = _clever_sim_words(argv)
    if not words:
        return None
    command = next((w for w in words if not w.startswith("-")), None)
    if command not in SERVING or "--help" in words:
        return None
    rest = words[words.index(command) + 1:]
    host = "127.0.0.1" if command == "demo" else (
        _option(rest, "--host") or environ.get("CLEVER_SIM_HOST") or "127.0.0.1")
    port = _option(rest, "--port") or environ.get("CLEVER_SIM_PORT") or "8080"
    return WILDCARD.get(host, host), int(port) if port.isdigit() else 0


def _process(pid: int) -> tuple[list[str], dict[str, str]] | None:
    """The command line and environment of ``pid`` (/proc); None where they cannot be read."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    try:
        pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # another user's process: its flags still say where it listens
        pairs = []
    environ = dict(p.decode("utf-8", "replace").split("=", 1) for p in pairs if b"=" in p)
    return [a.decode("utf-8", "replace") for a in argv if a], environ


def probe(host: str, port: int, timeout: float = 2.0) -> str | None:
    """None when ``/_sim/health`` answers 200 with status ok, else what went wrong."""
    where = f"[{host}]" if ":" in host else host
    url = f"http://{where}:{port}/_sim/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - http to itself
            status = json.loads(answer.read()).get("status")
    except (OSError, ValueError, AttributeError) as exc:
        return f"{url}: {exc}"
    return None if status == "ok" else f"{url}: status {status!r}"


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the container's server is healthy or it runs none, 1 when it does not
    answer; ``--pid N`` reads another process than PID 1 (tests, ``docker exec``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m simulator.healthcheck",
                                     description="The image's health check.")
    parser.add_argument("--pid", type=int, default=1,
                        help="the process to read instead of PID 1 (a whole number)")
    pid = parser.parse_args(sys.argv[1:] if argv is None else argv).pid  # a bad one: exit 2
    found = _process(pid)
    if found is None:  # no /proc: probe where the image's own command serves
        port = os.environ.get("CLEVER_SIM_PORT", "8080")
        target: tuple[str, int] | None = ("127.0.0.1", int(port) if port.isdigit() else 0)
        what = "clever-sim serve"
    else:
        target = serving_target(*found)
        what = " ".join(found[0])
    if target is None:
        print(f"healthy: nothing to check (process {pid} runs no clever-sim server: {what})")
        return 0
    host, port = target
    if port <= 0:
        print(f"healthy: nothing to check ({what}: port 0 or not a number, nothing to probe)")
        return 0
    problem = probe(host, port)
    if problem is not None:
        print(f"unhealthy: {problem}")
        return 1
    print(f"healthy: {host}:{port} answers /_sim/health")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
