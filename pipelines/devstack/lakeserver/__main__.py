"""`python -m pipelines.devstack.lakeserver --data-dir DIR [--host 127.0.0.1] [--port 8000]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.errors import FlywheelError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.devstack.lakeserver",
        description="Embedded lakeFS-compatible server (the subset of the lakeFS v1 API Flywheel uses).",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="where objects and metadata live")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other lets other machines in, and Basic auth is "
        "clear text unless TLS terminates in front)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    from pipelines.devstack.lakeserver.server import serve  # after parsing, so --help stays instant

    try:
        serve(args.data_dir.resolve(), args.host, args.port, args.log_level)
    except FlywheelError as exc:
        print(f"lakeserver: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
