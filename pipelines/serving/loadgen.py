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
    import aiohttp

    result = LoadResult(rate, duration_s)
    total = max(int(rate * duration_s), 1)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    send_headers = {"content-type": "application/json", **headers}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(i: int) -> None:
            scheduled = start + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            result.sent += 1
            try:
                async with session.post(url, data=bodies[i % len(bodies)], headers=send_headers) as response:
                    payload = await response.read()
                    status = response.status
            except Exception as exc:  # timeouts, refused connections: failures of the run, not of the test code
                result.statuses[type(exc).__name__] += 1
                if len(result.errors) < 20:
                    result.errors.append(f"request {i}: {type(exc).__name__}: {exc}")
                return
            result.statuses[str(status)] += 1
            if status == 200:
                result.ok += 1
                result.latencies_ms.append((loop.time() - scheduled) * 1000)
                if keep_answers:
                    import orjson

                    result.answers.append(orjson.loads(payload))
            elif len(result.errors) < 20:
                result.errors.append(f"request {i}: HTTP {status}: {payload[:300]!r}")

        await asyncio.gather(*(one(i) for i in range(total)))
        result.wall_s = loop.time() - start
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
