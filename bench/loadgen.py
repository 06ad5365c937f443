"""A small HTTP/1.1 keep-alive load generator (asyncio, no dependencies) for the benchmarks.

Each of ``concurrency`` connections sends one request after another for ``seconds``;
latencies are measured per request. Bounded in count and time; loopback only.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(round(p / 100 * (len(data) - 1))))]

    def summary(self) -> dict:
        return {"requests": self.requests, "errors": self.errors, "rps": round(self.rps, 1),
                "p50_ms": round(self.pct(50), 2), "p99_ms": round(self.pct(99), 2),
                "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else None}


def build_request(method: str, url: str, body: dict | None, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    payload = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1",
             f"Host: {parts.netloc}", "Connection: keep-alive", f"Content-Length: {len(payload)}"]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, make: Callable[[int], bytes], deadline: float,
                  max_requests: int, result: LoadResult, worker_id: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while time.perf_counter() < deadline and n < max_requests:
            req = make(worker_id * 1_000_000 + n)
            started = time.perf_counter()
            writer.write(req)
            await writer.drain()
            status = await _read_response(reader)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            if status >= 400:
                result.errors += 1
            n += 1
    finally:
        writer.close()


def run_load(url: str, make: Callable[[int], bytes], *, concurrency: int, seconds: float,
             max_requests_per_conn: int = 1_000_000) -> LoadResult:
    """Drive ``url``'s host with ``concurrency`` keep-alive connections for ``seconds``."""
    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost", "::1"), "benchmarks only target loopback"
    result = LoadResult(0, 0, 0.0, [])

    async def main() -> None:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(_worker(parts.hostname, parts.port, make, deadline,
                                       max_requests_per_conn, result, i) for i in range(concurrency)))
        result.seconds = time.perf_counter() - started

    asyncio.run(main())
    return result
