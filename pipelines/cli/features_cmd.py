"""`flywheel features`: the online store of the spec's aggregates.

flywheel features update [--until-caught-up]       # the updater: events topic -> online store (runs until stopped)
flywheel features bootstrap [--ref main] [--force] # fill the store from lakeFS raw history + offsets
flywheel features status [--format json]           # offsets, counters, memory of the store
flywheel features lookup --entity K [--time MS]    # what serving would get for an event of K at MS

The store is FLYWHEEL_ONLINE_STORE_URL (environment, else .flywheel/stack.env); Kafka is
KAFKA_BOOTSTRAP_SERVERS; the spec is --spec or FLYWHEEL_SPEC. A spec without aggregates needs no store:
every subcommand says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from typing import Any

from pipelines.config import profile, setting
from pipelines.errors import FlywheelError
from pipelines.features.online import URL_SETTING, StoreNotConfigured, needs_store
from pipelines.spec import load_spec

log = logging.getLogger("pipelines.online")
HOUR_MS = 3_600_000


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("features", help="the online feature store: updater, bootstrap, status, lookup")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    cmds = parser.add_subparsers(dest="features_command", metavar="SUBCOMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--spec", default=None, help="spec path or built-in name (default: FLYWHEEL_SPEC)")
        p.add_argument("--url", default=None, help=f"online store URL (default: {URL_SETTING})")

    update = cmds.add_parser("update", help="apply the events topic to the online store until stopped")
    common(update)
    update.add_argument("--until-caught-up", action="store_true", help="stop once caught up with the topic")
    update.add_argument("--max-seconds", type=float, default=600.0, help="bound of --until-caught-up")
    update.add_argument(
        "--lateness-hours", type=float, default=1.0, help="history kept beyond the longest window (default 1)"
    )
    update.add_argument("--wait-s", type=float, default=60.0, help="how long to wait for the store and the topic")
    update.add_argument(
        "--workers", type=int, default=1, help="processes, each over a share of the partitions (default 1)"
    )
    update.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    update.add_argument(
        "--metrics-host",
        default=None,
        help="address the metrics listen on (default 127.0.0.1; 0.0.0.0 in the k8s profile, for probes and scraping)",
    )
    update.set_defaults(func=_update)

    boot = cmds.add_parser("bootstrap", help="fill the store from lakeFS raw history and offsets")
    common(boot)
    boot.add_argument("--ref", default="main", help="lakeFS ref (default main), resolved to one commit")
    boot.add_argument("--force", action="store_true", help="replace the store's state of the spec")
    boot.add_argument("--lateness-hours", type=float, default=1.0)
    boot.add_argument("--format", choices=("text", "json"), default="text")
    boot.set_defaults(func=_bootstrap)

    status = cmds.add_parser("status", help="the store's offsets, counters and memory")
    common(status)
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(func=_status)

    lookup = cmds.add_parser("lookup", help="the aggregates serving would get for an event")
    common(lookup)
    lookup.add_argument("--entity", required=True, help="entity key")
    lookup.add_argument("--time", type=int, default=None, help="event time in ms since the epoch (default: now)")
    lookup.set_defaults(func=_lookup)


def _store(args: argparse.Namespace, timeout_s: float = 5.0) -> Any:
    """(spec, store) or None when the spec needs no store (said on stdout)."""
    from pipelines.features.online.store import DEFAULT_LATENESS_MS, RedisOnlineStore

    spec = load_spec(args.spec)
    if not needs_store(spec):
        print(f"spec {spec.name!r} has no aggregates: it needs no online store, nothing to do")
        return None
    url = args.url or setting(URL_SETTING)
    if not url:
        raise StoreNotConfigured(
            f"no online store URL: set {URL_SETTING} or pass --url (`flywheel up` writes it to .flywheel/stack.env)"
        )
    hours = getattr(args, "lateness_hours", None)
    lateness = DEFAULT_LATENESS_MS if hours is None else int(hours * HOUR_MS)
    if lateness < 0:
        raise FlywheelError(f"--lateness-hours must be 0 or more, got {hours}")
    return RedisOnlineStore(spec, url, timeout_s=timeout_s, lateness_ms=lateness)


def _wait(what: str, attempt: Any, wait_s: float, stop: threading.Event) -> Any:
    """attempt() until it returns without FlywheelError or wait_s passed (then its error stands)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return attempt()
        except FlywheelError as exc:
            if time.monotonic() >= deadline or stop.is_set():
                raise
            log.info("waiting for %s: %s", what, exc)
            stop.wait(1.0)


def _update(args: argparse.Namespace) -> int:
    from pipelines.config import kafka_bootstrap
    from pipelines.online.metrics import UpdaterMetrics
    from pipelines.online.updater import Updater, consumer_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = args.metrics_host or ("0.0.0.0" if profile() == "k8s" else "127.0.0.1")  # a pod: probes, scraping
    metrics = UpdaterMetrics.serve(args.metrics_port, host) if args.metrics_port else None
    store = _store(args)
    if store is None:
        return 0
    spec = store.spec
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def make_consumer() -> Any:
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        servers = kafka_bootstrap()
        try:
            return KafkaConsumer(bootstrap_servers=servers.split(","), **consumer_settings(spec))
        except KafkaError as exc:
            raise FlywheelError(
                f"Kafka at {servers} is not reachable ({exc}); is it running (`flywheel status`)?"
            ) from None

    if args.workers < 1:
        raise FlywheelError(f"--workers must be at least 1, got {args.workers}")
    updater = Updater(spec, store, make_consumer)
    _wait("the online store", store.ping, args.wait_s, stop)
    if args.workers > 1:
        from pipelines.ingest.parallel import KafkaConsumerFactory
        from pipelines.online.parallel import run_workers

        _wait(f"topic {spec.topic.name!r}", lambda: updater.start(topic_timeout_s=5.0), args.wait_s, stop)
        updater.close()  # the topic exists: the workers take over
        factory = KafkaConsumerFactory({"bootstrap_servers": kafka_bootstrap().split(","), **consumer_settings(spec)})
        stats = run_workers(
            store,
            factory,
            args.workers,
            stop,
            until_caught_up=args.until_caught_up,
            max_seconds=args.max_seconds,
            on_beat=metrics.observe_store if metrics else None,
        )
        print(json.dumps(stats.to_dict(), indent=2))
        return 0
    _wait(f"topic {spec.topic.name!r}", lambda: updater.start(topic_timeout_s=5.0), args.wait_s, stop)
    print(f"feature updater: {spec.topic.name} -> online store at {store.where} (spec {spec.name})", flush=True)
    try:
        if args.until_caught_up:
            stats = updater.catch_up(max_seconds=args.max_seconds)
        else:
            stats = updater.run(stop, on_beat=metrics.observe if metrics else None)
    finally:
        updater.close()
    print(json.dumps(stats.to_dict(), indent=2))
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from pipelines.lake import Lake
    from pipelines.online.bootstrap import bootstrap

    store = _store(args, timeout_s=30.0)
    if store is None:
        return 0
    result = bootstrap(store, Lake.from_env(), store.spec, ref=args.ref, force=args.force)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(
            f"online store filled from {result.source}: {result.events_loaded} of {result.events_read} events "
            f"(within the longest window + lateness of the newest), offsets {result.to_dict()['offsets']}; "
            "the updater goes on from there"
        )
    return 0


def _status(args: argparse.Namespace) -> int:
    store = _store(args)
    if store is None:
        return 0
    state = store.state()
    report = {"url": store.where, "spec": store.spec.name, **state.__dict__, **store.memory()}
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        for key, value in report.items():
            print(f"{key:>12}: {value}")
    return 0 if state.layout else 1


def _lookup(args: argparse.Namespace) -> int:
    store = _store(args)
    if store is None:
        return 0
    t = args.time if args.time is not None else int(time.time() * 1000)
    (values,) = store.lookup([args.entity], [t])
    json.dump({"entity": args.entity, "event_time_ms": t, "aggregates": values}, sys.stdout, indent=2)
    print()
    return 0
