"""`flywheel exporter`: serve the pipeline's Prometheus metrics (pipelines/observability/exporter.py).

flywheel exporter                                  # 127.0.0.1:9108, sources from the environment / stack.env
flywheel exporter --host 0.0.0.0 --port 9108       # in a container (deploy/k8s/observability/exporter.yaml)

Sources (each optional; one left unset is not read): stage records under FLYWHEEL_RECORDS_DIR (else
$DAGSTER_HOME/storage, else the local stack's), MLflow at MLFLOW_TRACKING_URI, Kafka lag when
KAFKA_BOOTSTRAP_SERVERS and lakeFS (LAKEFS_*) are set.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

DEFAULT_PORT = 9108


def records_base(explicit: Path | None) -> Path | None:
    """Where the stage records are: the option, FLYWHEEL_RECORDS_DIR, $DAGSTER_HOME/storage, the local stack."""
    from pipelines.config import setting, state_dir

    if explicit is not None:
        return explicit
    configured = setting("FLYWHEEL_RECORDS_DIR")
    if configured:
        return Path(configured)
    home = setting("DAGSTER_HOME")
    if home:
        return Path(home) / "storage"
    local = state_dir() / "dagster" / "storage"
    return local if local.exists() else None


def kafka_lag_reader(timeout_s: float) -> Callable[[], Mapping[str, int]] | None:
    """Events not yet ingested, per topic, via pipelines/ingest/lag.py; None when Kafka or lakeFS is unset."""
    from pipelines.config import setting

    if not setting("KAFKA_BOOTSTRAP_SERVERS") or not setting("LAKEFS_ENDPOINT"):
        return None

    def read() -> Mapping[str, int]:
        from pipelines.ingest.lag import kafka_lag
        from pipelines.ingest.parallel import kafka_consumer_factory
        from pipelines.lake import Lake
        from pipelines.spec.loader import load_spec

        timeout_ms = int(timeout_s * 1000)
        factory = kafka_consumer_factory(client_id="flywheel-exporter", request_timeout_ms=timeout_ms)
        lag = kafka_lag(Lake.from_env(), factory, load_spec(), timeout_s=timeout_s)
        return {lag.topic: lag.total}

    return read


def _run(args: argparse.Namespace) -> int:
    from pipelines.config import setting
    from pipelines.logs import configure
    from pipelines.observability.exporter import Exporter, readers_for, serve

    configure()  # text, or JSON lines with FLYWHEEL_LOG_FORMAT=json (the images set it)
    # MLflow's HTTP client reads its timeout and retries from the environment; a scrape must not wait minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, int(args.timeout))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    base = records_base(args.records_dir)
    readers = readers_for(base, setting("MLFLOW_TRACKING_URI"), kafka_lag_reader(args.timeout))
    exporter = Exporter(readers, timeout_s=args.timeout)
    try:
        server, _ = serve(exporter, args.host, args.port)
    except OSError as exc:
        print(f"flywheel exporter: cannot listen on {args.host}:{args.port} ({exc}); pick another --port")
        return 2
    sources = (
        ", ".join(sorted(readers)) or "none (set FLYWHEEL_RECORDS_DIR, MLFLOW_TRACKING_URI, KAFKA_BOOTSTRAP_SERVERS)"
    )
    print(f"flywheel exporter on http://{args.host}:{args.port}/metrics; sources: {sources}; Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    finally:
        server.shutdown()
        exporter.close()


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("exporter", help="serve the pipeline's Prometheus metrics (lag, rows, gate, drift)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds each source may take per scrape")
    parser.add_argument(
        "--records-dir", type=Path, default=None, help="base of the stage records (FLYWHEEL_RECORDS_DIR)"
    )
    parser.set_defaults(func=_run)
