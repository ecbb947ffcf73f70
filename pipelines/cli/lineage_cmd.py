"""`flywheel lineage --model NAME [--version V] [--format json|md|html] [--output PATH]`: where a model came from.

Reads lakeFS, MLflow and the Dagster webserver (FLYWHEEL_DAGSTER_URL) named by the environment or
`.flywheel/stack.env`; serving's own view is added when FLYWHEEL_SERVING_URL answers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import FlywheelError

if TYPE_CHECKING:
    from pipelines.audit.trace import Sources


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lineage", help="the whole chain of a model version: data, runs, gate, rollout")
    parser.add_argument("--model", required=True, help="registered model name (the spec's model name)")
    parser.add_argument("--version", help="a version; without it, every version with its decision and state")
    parser.add_argument("--format", choices=("json", "md", "html"), default="md")
    parser.add_argument("--output", type=Path, help="write to this file instead of standard output")
    parser.set_defaults(func=_lineage)


def sources_from_env() -> Sources:
    from mlflow import MlflowClient

    from pipelines.audit.trace import Sources
    from pipelines.config import setting
    from pipelines.lake import Lake

    tracking = setting("MLFLOW_TRACKING_URI")
    if not tracking:
        raise FlywheelError("MLFLOW_TRACKING_URI is not set and no .flywheel/stack.env: run `flywheel up` first")
    return Sources(
        lake=Lake.from_env(),
        mlflow=MlflowClient(tracking_uri=tracking),
        dagster_url=setting("FLYWHEEL_DAGSTER_URL"),
        serving_url=setting("FLYWHEEL_SERVING_URL"),
        records_dir=_records_root(),
    )


def _records_root() -> Path:
    """Where the deployment records are: FLYWHEEL_RECORDS_DIR, else the Dagster instance's storage (the IO
    manager's default), else the state dir."""
    from pipelines.audit.report import records_root
    from pipelines.config import setting

    home = setting("DAGSTER_HOME")
    return records_root(str(Path(home) / "storage") if home else None)


def _lineage(args: argparse.Namespace) -> int:
    from pipelines.audit import render, trace

    sources = sources_from_env()
    if args.version is None:
        rows = trace.versions(sources, args.model)
        if args.format == "json":
            text = json.dumps(rows, indent=2)
        else:
            lines = [f"{'version':>7}  {'decision':9}  {'aliases':28}  reason"]
            lines += [
                f"{r['version']:>7}  {r['decision']!s:9}  {','.join(r['aliases']) or '-':28}  {r['reason']}"
                for r in rows
            ]
            text = "\n".join(lines) + "\n"
    else:
        chain = trace.trace(sources, args.model, args.version)
        if args.format == "json":
            text = json.dumps(chain, indent=2, sort_keys=True, default=str) + "\n"
        elif args.format == "html":
            text = render.html_page(chain)
        else:
            text = render.markdown(chain)
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0
