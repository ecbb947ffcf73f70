"""`flywheel produce`: simulated or replayed events onto the spec's Kafka topic (or stdout).

flywheel produce --count 10000                          # baseline traffic to Kafka
flywheel produce --count 5000 --scenario drift --malformed-rate 0.01
flywheel produce --from-file data.parquet --spec my_spec.yaml --rate 500
flywheel produce --count 5 --stdout                     # JSON lines, nothing sent
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from pipelines.devstack.simulate.scenarios import scenario_names
from pipelines.errors import FlywheelError

if TYPE_CHECKING:  # heavy imports wait until the command runs, so `flywheel --help` stays fast
    from pipelines.devstack.produce.producer import ProduceResult, Progress


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if math.isnan(value) or value <= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _start(text: str) -> datetime:
    from datetime import UTC

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an ISO 8601 date or time, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _progress_printer(fmt: str):
    def report(p: Progress) -> None:
        if fmt == "json":
            line = json.dumps(
                {
                    "event": "produce.progress",
                    "sent": p.sent,
                    "total": p.total,
                    "malformed": p.malformed,
                    "events_per_second": round(p.events_per_second, 1),
                }
            )
        else:
            share = f" ({100 * p.sent / p.total:.0f}%)" if p.total else ""
            total = f"/{p.total:,}" if p.total is not None else ""
            line = (
                f"produce: {p.sent:,}{total} events{share}, {p.events_per_second:,.0f} events/s, "
                f"{p.malformed:,} malformed"
            )
        print(line, file=sys.stderr, flush=True)

    return report


def _summary(r: ProduceResult) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in r.malformed_kinds.items())
    malformed = f" ({r.malformed:,} malformed: {kinds})" if r.malformed else " (none malformed)"
    where = f"to topic {r.topic!r} at {r.destination.removeprefix('kafka://')}" if r.topic else "to stdout"
    source = f"scenario {r.scenario!r}, seed {r.seed}" if r.scenario else f"replay of {r.source}"
    lines = [
        f"Produced {r.produced:,} events{malformed} {where} in {r.seconds:.2f}s "
        f"({r.events_per_second:,.0f} events/s, {r.bytes / 1e6:.1f} MB); {source}."
    ]
    if r.partitions:
        parts = ", ".join(f"{p}: {n:,}" for p, n in sorted(r.partitions.items()))
        lines.append(f"Events per partition: {parts}.")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from pipelines.devstack.produce.encode import iter_events
    from pipelines.devstack.produce.producer import LineSink, ProducerSettings, kafka_sink, produce_events
    from pipelines.devstack.produce.replay import read_replay_frame
    from pipelines.devstack.simulate import check_spec, generate_events
    from pipelines.spec.loader import load_spec

    if args.from_file is not None:
        if args.scenario is not None or args.start is not None:
            raise FlywheelError(
                "--scenario and --start describe simulated events; drop them when replaying --from-file"
            )
    elif args.count is None:
        raise FlywheelError("say how many events to simulate with --count N (or replay a file with --from-file)")

    # Input first: a bad spec or file fails before any connection is made.
    spec = load_spec(args.spec)
    if args.from_file is not None:
        frame = read_replay_frame(args.from_file, spec, limit=args.count)
        scenario, source = None, str(args.from_file)
    else:
        check_spec(spec)
        scenario, source = args.scenario or "baseline", "simulator"
        frame = generate_events(args.count, scenario, seed=args.seed, start=args.start)

    if args.stdout:
        sink = LineSink()
    else:
        settings = ProducerSettings(
            timeout_s=args.timeout, compression=None if args.compression == "none" else args.compression
        )
        sink = kafka_sink(spec, bootstrap_servers=args.bootstrap_servers, topic=args.topic, settings=settings)

    try:
        result = produce_events(
            iter_events(frame, spec),
            spec,
            sink,
            count=len(frame),
            malformed_rate=args.malformed_rate,
            seed=args.seed,
            rate=args.rate,
            progress=_progress_printer(args.format),
            source=source,
            scenario=scenario,
        )
    except BrokenPipeError:
        # The reader of --stdout went away (e.g. `| head`): stop quietly, like any Unix filter.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

    out = sys.stderr if args.stdout else sys.stdout  # with --stdout, stdout carries only events
    if args.format == "json":
        print(json.dumps(result.to_dict()), file=out)
    else:
        print(_summary(result), file=out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "produce",
        help="send simulated or replayed events to the spec's Kafka topic",
        description=(
            "Send JSON events keyed by the spec's entity key to its Kafka topic (created if missing): "
            "simulated transactions of a scenario, or the rows of a CSV/Parquet file in event-time order. "
            "Progress goes to stderr about once a second; a summary ends the run."
        ),
    )
    p.add_argument(
        "--count",
        type=_count,
        metavar="N",
        help="events to simulate (required unless --from-file); with --from-file, the earliest N rows",
    )
    p.add_argument(
        "--scenario",
        choices=scenario_names(),
        help="simulated traffic regime (default baseline)",
    )
    p.add_argument(
        "--seed", type=_count, default=0, metavar="K", help="seed: the same seed gives the same events (default 0)"
    )
    p.add_argument(
        "--start",
        type=_start,
        metavar="TIME",
        help="event time of the first simulated day (ISO 8601; default per scenario)",
    )
    p.add_argument(
        "--malformed-rate",
        type=_fraction,
        default=0.0,
        metavar="R",
        help="share of events to corrupt (bad JSON, wrong types, missing fields, out of range...); default 0",
    )
    p.add_argument("--rate", type=_positive, metavar="EPS", help="at most EPS events per second (default: no limit)")
    p.add_argument("--from-file", metavar="PATH", help="replay a CSV or Parquet file instead of simulating")
    p.add_argument(
        "--spec", help="dataset spec: a YAML path or a built-in name (default FLYWHEEL_SPEC, else transactions)"
    )
    p.add_argument("--stdout", action="store_true", help="print JSON lines instead of sending to Kafka")
    p.add_argument("--format", choices=["text", "json"], default="text", help="summary and progress format")
    p.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="Kafka brokers (default KAFKA_BOOTSTRAP_SERVERS, else .flywheel/stack.env)",
    )
    p.add_argument("--topic", help="topic to send to (default: the spec's topic)")
    p.add_argument(
        "--timeout", type=_positive, default=10.0, metavar="S", help="seconds to wait for Kafka (default 10)"
    )
    p.add_argument(
        "--compression",
        choices=["gzip", "none", "lz4", "snappy", "zstd"],
        default="gzip",
        help="batch compression (gzip needs no extra library; default gzip)",
    )
    p.set_defaults(func=_run)
