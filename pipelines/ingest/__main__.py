"""`python -m pipelines.ingest`: one ingestion run without Dagster (same stages as ingest_job)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pipelines.errors import FlywheelError
from pipelines.ingest.runner import run_ingest
from pipelines.ingest.stages import IngestSettings
from pipelines.spec import load_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.ingest", description=__doc__)
    parser.add_argument("--spec", default=None, help="spec path or built-in name (default: FLYWHEEL_SPEC)")
    parser.add_argument("--max-events", type=int, default=None, help="stop after N events (default: all new)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop reading after S seconds")
    parser.add_argument(
        "--workers", type=int, default=0, help="reader processes (0 = one per partition, at most 2 per CPU)"
    )
    parser.add_argument("--run-id", default=None, help="names the branch ingest-<run id>")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        outcome = run_ingest(
            load_spec(args.spec),
            run_id=args.run_id,
            settings=IngestSettings(max_events=args.max_events, max_seconds=args.max_seconds, workers=args.workers),
        )
    except FlywheelError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(outcome.to_dict(), default=str, indent=2))
    elif outcome.status == "nothing_new":
        print(f"nothing new after offsets {outcome.raw.start_offsets}: no commit")
    else:
        p = outcome.published
        assert p is not None
        print(
            f"published {outcome.raw.valid} events ({outcome.raw.quarantined} quarantined) as {p.tag} "
            f"at main commit {p.commit}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
