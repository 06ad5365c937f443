"""Start `clever-sim serve` as a subprocess on a free port, the way a partner's CI does."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

_READY = re.compile(r"on (http://127\.0\.0\.1:\d+)")


class ServerProcess:
    """A running `clever-sim serve`; ``url`` once ready; always ``stop()`` it."""

    def __init__(self, args: list[str], *, exe: list[str] | None = None, cwd: str | Path | None = None,
                 env: dict | None = None, timeout: float = 20):
        cmd = (exe or [sys.executable, "-m", "simulator.cli"]) + ["serve", "--port", "0", *args]
        full_env = {**os.environ, **(env or {})}
        full_env.pop("CLEVER_SIM_CONFIG", None)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.output: list[str] = []
        self.url = self._await_url(timeout)
        self.ready_s = self._await_health(timeout)

    def _await_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        url = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            self.output.append(line)
            match = _READY.search(line)
            if match and url is None:
                url = match.group(1)
            if url and line.startswith("Ready in"):  # the banner is complete
                return url
        self.stop()
        raise RuntimeError("clever-sim serve did not start:\n" + "".join(self.output))

    def _await_health(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/_sim/health", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("clever-sim serve never answered /_sim/health")

    def read_rest(self) -> str:
        """Everything the server printed (call after stop)."""
        if self.proc.stdout:
            self.output.append(self.proc.stdout.read())
        return "".join(self.output)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class LineProcess:
    """Any server that prints its URL on a line: ``url`` is the pattern's group 1 once seen."""

    def __init__(self, cmd: list[str], pattern: str, *, env: dict | None = None,
                 cwd: str | Path | None = None, timeout: float = 20):
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.output: list[str] = []
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:  # never wait forever for the line
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline and sel.select(timeout=max(0.0, deadline - time.monotonic())):
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.output.append(line)
                match = re.search(pattern, line)
                if match:
                    self.url = match.group(1)
                    return
        self.stop()
        raise RuntimeError(f"{cmd[:3]} did not start:\n" + "".join(self.output))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc.stdout.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def node_or_skip() -> str:
    """Path of `node` for the Node.js partner; see tool_or_skip."""
    return tool_or_skip("node", "the Node.js partner (tests/partners/node_partner)")


def tool_or_skip(name: str, purpose: str) -> str:
    """Path of a command (`node`, `npm`); without it skip, except in CI
    (CLEVER_SIM_REQUIRE_NODE=1), where it fails: CI must run what needs it."""
    import shutil

    import pytest

    path = shutil.which(name)
    if path is None:
        why = f"{name} is not installed: {purpose} cannot run here"
        if os.environ.get("CLEVER_SIM_REQUIRE_NODE") == "1":
            pytest.fail(why + " (CLEVER_SIM_REQUIRE_NODE=1: CI must run it)")
        pytest.skip(why)
    return path


def demo_banner(stdout) -> str:
    """What `clever-sim demo` printed up to its last banner line (it is serving then)."""
    lines = []
    for line in stdout:
        lines.append(line)
        if line.startswith("Ctrl+C stops."):
            break
    return "".join(lines)
