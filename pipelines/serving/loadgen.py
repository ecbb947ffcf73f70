"""An open-loop HTTP load generator: requests are sent on a fixed schedule (rate per second) whatever the
server does, and each latency counts from the scheduled send time, so a server that falls behind shows it
in its percentiles (no coordinated omission). Used by the serving tests and benchmarks/serving_bench.py.

    result = run_load(url, bodies, rate=200, duration_s=20)     # bodies are cycled
    result.failed, result.p99_ms, result.achieved_rps
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    offered_rps: float
    duration_s: float
    sent: int = 0
    ok: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)  # of the successful requests
    errors: list[str] = field(default_factory=list)  # the first few failures, for the report
    wall_s: float = 0.0
    answers: list[Any] = field(default_factory=list)  # parsed bodies when keep_answers

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    @property
    def achieved_rps(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    def summary(self) -> dict[str, Any]:
        return {
            "offered_rps": self.offered_rps,
            "duration_s": self.duration_s,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "achieved_rps": round(self.achieved_rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "statuses": dict(self.statuses),
            "errors": self.errors[:5],
        }


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time: the answer's status and body (Content-Length
    or chunked framing). A lean client on purpose: the generator shares the machine with the server it
    measures, so its own CPU per request must stay small (aiohttp's was ~0.5 ms)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc or ConnectionResetError("the server closed the connection"))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        parsed = _parse_response(self._buffer)
        if parsed is None or self.answer is None or self.answer.done():
            return
        status, body, keep_alive = parsed
        if not keep_alive:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        self.answer.set_result((status, body))


def _parse_response(buffer: bytearray) -> tuple[int, bytes, bool] | None:
    """(status, body, keep-alive) once `buffer` holds a whole response; None while more is to come."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    keep_alive = headers.get("connection") != "close"
    start = end + 4
    if "content-length" in headers:
        size = int(headers["content-length"])
        return (status, bytes(buffer[start : start + size]), keep_alive) if len(buffer) >= start + size else None
    if headers.get("transfer-encoding") == "chunked":
        body, at = bytearray(), start
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
            if size == 0:
                return (status, bytes(body), keep_alive) if buffer.find(b"\r\n", line_end + 2) >= 0 else None
            if len(buffer) < line_end + 2 + size + 2:
                return None
            body += buffer[line_end + 2 : line_end + 2 + size]
            at = line_end + 2 + size + 2
    return (status, b"", False) if status in (204, 304) else None  # no framing: read to close (not used here)


async def _load(
    url: str,
    bodies: Sequence[bytes],
    rate: float,
    duration_s: float,
    connections: int,
    timeout_s: float,
    keep_answers: bool,
    headers: dict[str, str],
) -> LoadResult:
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    path = (target.path or "/") + (f"?{target.query}" if target.query else "")
    extra = "".join(f"{k}: {v}\r\n" for k, v in {"content-type": "application/json", **headers}.items())
    requests = [
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n{extra}content-length: {len(b)}\r\n\r\n".encode() + b
        for b in bodies
    ]
    result = LoadResult(rate, duration_s)
    total = max(int(rate * duration_s), 1)
    loop = asyncio.get_running_loop()
    idle: list[_Connection] = []
    opened = 0
    freed = asyncio.Condition()

    async def acquire() -> _Connection:
        nonlocal opened
        while True:
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    return conn
                opened -= 1
            if opened < connections:
                opened += 1
                try:
                    _, conn = await loop.create_connection(_Connection, host, port)
                except BaseException:
                    opened -= 1
                    raise
                return conn
            async with freed:
                await freed.wait()

    async def release(conn: _Connection) -> None:
        nonlocal opened
        if conn.closed:
            opened -= 1
        else:
            idle.append(conn)
        async with freed:
            freed.notify()

    async def one(i: int, scheduled: float) -> None:
        result.sent += 1
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout_s):
                conn = await acquire()
                status, payload = await conn.send(requests[i % len(requests)])
        except Exception as exc:  # timeouts, refused connections: failures of the run, not of the test code
            if conn is not None and conn.transport is not None:
                conn.transport.close()  # a late answer must not reach the next request on it
                conn.closed = True
            result.statuses[type(exc).__name__] += 1
            if len(result.errors) < 20:
                result.errors.append(f"request {i}: {type(exc).__name__}: {exc}")
            if conn is not None:
                await release(conn)
            return
        await release(conn)
        result.statuses[str(status)] += 1
        if status == 200:
            result.ok += 1
            result.latencies_ms.append((loop.time() - scheduled) * 1000)
            if keep_answers:
                import orjson

                result.answers.append(orjson.loads(payload))
        elif len(result.errors) < 20:
            result.errors.append(f"request {i}: HTTP {status}: {payload[:300]!r}")

    start = loop.time()
    tasks = []
    i = 0
    while i < total:  # open loop: every request due by now is started, whatever the earlier ones do
        now = loop.time()
        while i < total and start + i / rate <= now:
            tasks.append(asyncio.create_task(one(i, start + i / rate)))
            i += 1
        if i < total:
            await asyncio.sleep(max(start + i / rate - loop.time(), 0))
    await asyncio.gather(*tasks)
    result.wall_s = loop.time() - start
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    return result


def run_load(
    url: str,
    bodies: Sequence[bytes],
    rate: float,
    duration_s: float,
    connections: int = 64,
    timeout_s: float = 30.0,
    keep_answers: bool = False,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Send `rate` requests per second for `duration_s` seconds (bodies cycled); blocks until all answered."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    began = time.perf_counter()
    result = runner(_load(url, bodies, rate, duration_s, connections, timeout_s, keep_answers, headers or {}))
    result.wall_s = result.wall_s or time.perf_counter() - began
    return result
