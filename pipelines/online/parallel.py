"""Several updater processes, one per share of the topic's partitions (`flywheel features update --workers N`).

One Python process spends most of its time in kafka-python's decoding and the spec's event check; each
partition's offsets and state are written by one atomic Lua call, so processes that own disjoint partitions
need no coordination beyond the store. The parent reconciles the stored offsets with the topic once (a
recreated topic is reset there, not by every worker), then starts the workers and reports the store's
counters on its metrics.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from pipelines.errors import FlywheelError
from pipelines.features.online.store import RedisOnlineStore
from pipelines.ingest.parallel import KafkaConsumerFactory, shares
from pipelines.online.updater import Updater, UpdaterStats
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerJob:
    spec_config: dict[str, Any]
    url: str
    lateness_ms: int
    consumer: KafkaConsumerFactory
    partitions: list[int]
    until_caught_up: bool
    max_seconds: float


def _work(job: WorkerJob, stop: Any, results: Any) -> None:
    """One worker: its partitions until caught up (or until `stop`); puts its stats (or its error) on `results`."""
    try:
        spec = DatasetSpec.model_validate(job.spec_config)
        store = RedisOnlineStore(spec, job.url, timeout_s=5.0, lateness_ms=job.lateness_ms)
        updater = Updater(spec, store, job.consumer, partitions=job.partitions)
        updater.start()
        try:
            stats = updater.catch_up(job.max_seconds) if job.until_caught_up else updater.run(stop)
        finally:
            updater.close()
        results.put(("ok", job.partitions, stats.to_dict()))
    except BaseException as exc:  # reported by the parent, which fails the command
        results.put(("error", job.partitions, f"{type(exc).__name__}: {exc}"))


def run_workers(
    store: RedisOnlineStore,
    consumer: KafkaConsumerFactory,
    workers: int,
    stop: threading.Event,
    *,
    until_caught_up: bool = False,
    max_seconds: float = 600.0,
    on_beat: Callable[[RedisOnlineStore], None] | None = None,
    beat_s: float = 2.0,
) -> UpdaterStats:
    """Reconcile once, then run `workers` processes over shares of the partitions; returns the summed stats."""
    spec = store.spec
    probe = Updater(spec, store, consumer)
    positions = probe.start()  # the one reconcile (and reset) of stored offsets with the topic
    probe.close()
    jobs = [
        WorkerJob(
            spec.model_dump(mode="json"), store.url, store.lateness_ms, consumer, share, until_caught_up, max_seconds
        )
        for share in shares(sorted(positions), workers)
    ]
    context = multiprocessing.get_context("spawn")  # clean interpreters: no threads of the parent copied
    stop_all = context.Event()
    results = context.Queue()
    procs = [
        context.Process(target=_work, args=(job, stop_all, results), name="flywheel-feature-updater") for job in jobs
    ]
    t0 = time.monotonic()
    for proc in procs:
        proc.start()
    log.info("feature updater: %d workers on partitions %s", len(jobs), [j.partitions for j in jobs])
    outcomes: list[tuple[str, list[int], Any]] = []
    last_beat = 0.0
    while len(outcomes) < len(procs):
        if stop.is_set():
            stop_all.set()
        try:
            outcomes.append(results.get(timeout=0.2))
        except Exception:  # queue.Empty: nothing finished yet
            if not any(p.is_alive() for p in procs) and results.empty():
                break
        if on_beat is not None and time.monotonic() - last_beat >= beat_s:
            on_beat(store)
            last_beat = time.monotonic()
    stop_all.set()
    for proc in procs:
        proc.join(timeout=30)
    errors = [f"partitions {parts}: {what}" for status, parts, what in outcomes if status == "error"]
    if len(outcomes) < len(procs):
        errors.append(f"{len(procs) - len(outcomes)} worker(s) died without a word (killed?)")
    if errors:
        raise FlywheelError("feature updater workers failed: " + "; ".join(errors))
    total = UpdaterStats()
    for _, _, stats in outcomes:
        for f in fields(UpdaterStats):
            if f.name in ("events", "applied", "duplicates", "trimmed", "rejected", "conflicts"):
                setattr(total, f.name, getattr(total, f.name) + stats[f.name])
        for reason, n in stats["reasons"].items():
            total.reasons[reason] = total.reasons.get(reason, 0) + n
    total.seconds = time.monotonic() - t0
    return total
