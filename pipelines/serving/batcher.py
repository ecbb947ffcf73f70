"""Dynamic micro-batching across concurrent requests: records of many requests become one model call.

    batcher = MicroBatcher(process, max_batch=64, max_wait_s=0.002)
    results = await batcher.submit(items)      # one request's items; results in the same order

`process(items) -> results` runs in a worker thread (ONNX Runtime and numpy release the GIL), so the event loop
keeps accepting requests while a batch is scored; what arrives meanwhile forms the next batch. With
`workers=0` it runs on the event loop itself: no thread hand-off and no GIL contention per batch, which costs
less CPU when scoring is short (the loop waits for it; what arrives meanwhile still forms the next batch).
A batch closes when it holds `max_batch` items or `max_wait_s` after its first item arrived (bounded wait,
bounded batch). A request is never split: one larger than `max_batch` is a batch of its own. When `process`
raises, every request of that batch gets the exception (e.g. the online store is down: each answers 503).
Inline, the loop yields after each batch, so other tasks (probes, new requests) run between two queued batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class MicroBatcher:
    def __init__(
        self,
        process: Callable[[list[Any]], list[Any]],
        max_batch: int = 64,
        max_wait_s: float = 0.002,
        workers: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_s < 0 or workers < 0:
            raise ValueError("max_batch must be at least 1, workers and max_wait_s not negative")
        self.process = process
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.workers = workers
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Sequence[Any], asyncio.Future[list[Any]]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flywheel-batch") if workers else None
        )

    def start(self) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [asyncio.create_task(self._loop()) for _ in range(max(self.workers, 1))]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._queue = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        self.start()
        assert self._queue is not None
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        await self._queue.put((items, future))
        return await future

    def _take(self, batch: list[tuple[Sequence[Any], asyncio.Future[list[Any]]]], size: int) -> int:
        assert self._queue is not None
        while size < self.max_batch and not self._queue.empty():
            entry = self._queue.get_nowait()
            batch.append(entry)
            size += len(entry[0])
        return size

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            size = self._take(batch, len(first[0]))
            if size < self.max_batch and self.max_wait_s > 0:
                deadline = loop.time() + self.max_wait_s
                while size < self.max_batch:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        entry = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                    batch.append(entry)
                    size = self._take(batch, size + len(entry[0]))
            items = [item for entry, _ in batch for item in entry]
            try:
                if self._executor is None:
                    results = self.process(items)
                else:
                    results = await loop.run_in_executor(self._executor, self.process, items)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                if self.on_batch is not None:
                    self.on_batch(len(items))
                start = 0
                for entry, future in batch:
                    end = start + len(entry)
                    if not future.done():  # the client went away: nobody waits for this one
                        future.set_result(results[start:end])
                    start = end
            if self._executor is None:
                # Scored inline, the loop ran nothing else meanwhile; and with a backlog, `queue.get()` returns
                # without yielding, so without this the next batch would follow at once, batch after batch,
                # while /healthz, /metrics and new requests wait. Let them run between two batches.
                await asyncio.sleep(0)
