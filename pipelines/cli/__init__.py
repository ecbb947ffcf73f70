"""The `flywheel` command line.

Each subcommand lives in its own module exposing `register(subparsers)`; the module sets
`func` on its parser. Adding a command means adding its module name to COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pipelines.errors import FlywheelError

COMMANDS = [
    "pipelines.cli.stack_cmd",
    "pipelines.cli.produce_cmd",
    "pipelines.cli.dataset_cmd",
    "pipelines.cli.lakefs_cmd",
    "pipelines.cli.exporter_cmd",
    "pipelines.cli.lineage_cmd",
    "pipelines.cli.retrain_cmd",
    "pipelines.cli.serve_cmd",
    "pipelines.cli.features_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flywheel", description="Flywheel: a production ML loop on Dagster.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FlywheelError as exc:
        print(f"flywheel: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flywheel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
