"""`flywheel lakefs serve`: run the embedded lakeFS-compatible server alone, in the foreground.

flywheel lakefs serve                                   # data in .flywheel/lakefs, port 8000
flywheel lakefs serve --data-dir /data/lake --port 8001
flywheel lakefs credentials                             # LAKEFS_* lines for that data dir
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return args.data_dir.resolve()
    from pipelines.config import state_dir

    return state_dir() / "lakefs"  # the same place `flywheel up` uses


def _serve(args: argparse.Namespace) -> int:
    from pipelines.devstack.lakeserver.server import serve

    data_dir = _data_dir(args)
    print(f"lakeFS (embedded) on http://{args.host}:{args.port}, data in {data_dir}; Ctrl-C stops it")
    serve(data_dir, args.host, args.port, args.log_level)
    return 0


def _credentials(args: argparse.Namespace) -> int:
    from pipelines.devstack.lakeserver.process import read_credentials

    key, secret = read_credentials(_data_dir(args))
    print(f"LAKEFS_ENDPOINT=http://{args.host}:{args.port}")
    print(f"LAKEFS_ACCESS_KEY_ID={key}")
    print(f"LAKEFS_SECRET_ACCESS_KEY={secret}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lakefs",
        help="run the embedded lakeFS-compatible server alone",
        description="The embedded server that speaks the subset of the lakeFS v1 API Flywheel uses.",
    )
    actions = p.add_subparsers(dest="lakefs_command", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("serve", _serve, "run the server in the foreground"),
        ("credentials", _credentials, "print the LAKEFS_* settings for a data directory"),
    ):
        a = actions.add_parser(name, help=help_text)
        a.add_argument("--data-dir", type=Path, help="default: .flywheel/lakefs (as `flywheel up`)")
        a.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
        a.add_argument("--port", type=int, default=8000, help="default 8000")
        if name == "serve":
            a.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
        a.set_defaults(func=func)
