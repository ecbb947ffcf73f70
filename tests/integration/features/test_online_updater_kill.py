"""The updater killed (SIGKILL) mid-stream and started again: every record is accounted exactly once, and the
store answers as one that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from online_world import lookup_all, make_updater, produce, stream

from pipelines.features.online.store import RedisOnlineStore
from pipelines.spec.samples import sample_events

ROOT = Path(__file__).resolve().parents[3]
N = 20_000


def updater_process(world: Any, url: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, **world.env, "FLYWHEEL_ONLINE_STORE_URL": url}
    command = [sys.executable, "-m", "pipelines.cli", "features", "update", "--spec", str(world.spec_path), *extra]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_killed_updater_neither_skips_nor_double_counts(world: Any, online_store: Any) -> None:
    spec, url = world.spec, online_store[0]
    events = sample_events(spec, N, seed=23, entities=300, step_ms=10_000)
    messages = stream(spec, events, seed=23)
    produce(world.bootstrap, spec.topic.name, messages)
    store = RedisOnlineStore(spec, url, timeout_s=10.0)

    proc = updater_process(world, url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and store.state().counters["applied"] < N // 4:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:] if proc.stdout else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # anywhere: between or during its Lua calls
    finally:
        proc.wait(timeout=30)
    killed_at = store.state()
    assert 0 < killed_at.counters["applied"] < len(messages)

    again = updater_process(world, url, "--until-caught-up", "--max-seconds", "120")
    output = again.communicate(timeout=180)[0].decode()
    assert again.returncode == 0, output[-2000:]
    done = store.state()
    counted = done.counters["applied"] + done.counters["duplicates"] + done.counters["rejected"]
    assert counted == len(messages)  # each record once: none skipped, none applied twice
    assert done.counters["rejected"] == sum(kind == "malformed" for _, _, kind in messages)

    keys = [str(e[spec.entity_key]) for e in events]
    times = [int(e[spec.timestamp]) for e in events]
    after_kill = lookup_all(store, keys, times)
    store.clear()
    updater = make_updater(spec, store, world.bootstrap)  # the same stream, never interrupted
    updater.catch_up()
    updater.close()
    assert lookup_all(store, keys, times) == after_kill


def test_two_worker_processes_answer_as_one_updater(world: Any, online_store: Any) -> None:
    """`--workers 2`: processes over shares of the partitions apply every record once, and the store answers
    as after a single updater."""
    import threading

    from pipelines.ingest.parallel import KafkaConsumerFactory
    from pipelines.online.parallel import run_workers
    from pipelines.online.updater import consumer_settings

    spec, url = world.spec, online_store[0]
    events = sample_events(spec, 8_000, seed=31, entities=200, step_ms=10_000)
    messages = stream(spec, events, seed=31)
    produce(world.bootstrap, spec.topic.name, messages)
    store = RedisOnlineStore(spec, url, timeout_s=10.0)
    factory = KafkaConsumerFactory({"bootstrap_servers": [world.bootstrap], **consumer_settings(spec)})
    stats = run_workers(store, factory, 2, threading.Event(), until_caught_up=True, max_seconds=120)
    assert stats.events == len(messages)
    counters = store.state().counters
    assert counters["applied"] + counters["duplicates"] + counters["rejected"] == len(messages)
    keys = [str(e[spec.entity_key]) for e in events]
    times = [int(e[spec.timestamp]) for e in events]
    parallel = lookup_all(store, keys, times)
    store.clear()
    updater = make_updater(spec, store, world.bootstrap)
    updater.catch_up()
    updater.close()
    assert lookup_all(store, keys, times) == parallel
