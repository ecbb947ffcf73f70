"""`flywheel up | down | status`."""

from __future__ import annotations

import argparse
import json

from pipelines.devstack.manager import Stack, StackStatus
from pipelines.devstack.services import SERVICES
from pipelines.spec import load_spec


def _print_status(rows: list[StackStatus], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([r.to_json() for r in rows], indent=2))
        return
    if not rows:
        print("The Flywheel stack is not running. Start it with `flywheel up`.")
        return
    width = max(len(r.title) for r in rows)
    for r in rows:
        pid = f"pid {r.pid}" if r.pid else ""
        print(f"{r.title:<{width}}  {r.state:<14} {r.url:<28} {pid:<10} {r.note}")


def _up(args: argparse.Namespace) -> int:
    stack = Stack()
    spec = load_spec(args.spec)
    ports = {name: getattr(args, f"{name}_port") for name in SERVICES}
    services = args.services.split(",") if args.services else None
    rows = stack.up(
        with_dagster=args.with_dagster,
        ports=ports,
        services=services,
        topics=[(spec.topic.name, spec.topic.partitions)],
    )
    if args.format == "json":
        _print_status(rows, "json")
        return 0
    print("Flywheel stack is up:")
    _print_status(rows, "text")
    print(f"\nTopic '{spec.topic.name}' ({spec.topic.partitions} partitions) is ready.")
    print(f"Point any tool at the stack with: set -a; . {stack.env_file}; set +a")
    print("Note: the Kafka broker keeps messages in memory only; they are gone after `flywheel down`.")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = Stack().down()
    print(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing was running.")
    return 0


def _status(args: argparse.Namespace) -> int:
    rows = Stack().status()
    _print_status(rows, args.format)
    return 0 if rows and all(r.state == "running" for r in rows) else 1


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start the embedded stack (Kafka, lakeFS, MLflow; Dagster with --with-dagster)")
    up.add_argument("--with-dagster", action="store_true", help="also start `dagster dev` (web UI and daemon)")
    up.add_argument("--services", help=f"comma-separated subset of {','.join(SERVICES)}")
    up.add_argument("--spec", help="dataset spec whose topic is created (default: FLYWHEEL_SPEC or transactions)")
    for name, service in SERVICES.items():
        flags = dict.fromkeys([f"--{name.replace('_', '-')}-port", f"--{name}-port"])  # --spark-connect-port too
        up.add_argument(
            *flags, dest=f"{name}_port", type=int, help=f"port for {service.title} (default {service.default_port})"
        )
    up.add_argument("--format", choices=["text", "json"], default="text")
    up.set_defaults(func=_up)

    down = sub.add_parser("down", help="stop the embedded stack's processes (and only those)")
    down.set_defaults(func=_down)

    status = sub.add_parser("status", help="say what runs where; exit 1 when something is not running")
    status.add_argument("--format", choices=["text", "json"], default="text")
    status.set_defaults(func=_status)
