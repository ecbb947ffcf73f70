"""`flywheel retrain --from-lineage NAME/V [--force] [--tolerance T]`: reproduce a registered version.

Reads the version's training record from MLflow (lakeFS commit, spec and its hash, code version, parameters and
seed), retrains on that commit with those settings through the pipeline's training entry point, and prints the
recorded and retrained metrics side by side. Exit 0 when every metric is within the tolerance, 1 when one is
not, 2 when the record cannot be retrained (missing, or the spec changed and no --force). See
pipelines/audit/reproduce.py for why CPU training is compared at 1e-6.
"""

from __future__ import annotations

import argparse
import sys

from pipelines.errors import FlywheelError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("retrain", help="retrain a model version from its lineage and compare the metrics")
    parser.add_argument("--from-lineage", required=True, metavar="NAME/V", help="registered model name and version")
    parser.add_argument("--force", action="store_true", help="retrain even when the spec's hash differs")
    parser.add_argument(
        "--tolerance", type=float, default=None, help="largest absolute metric difference accepted (default: 1e-6 "
        "for a CPU-trained record, 1e-3 for a GPU-trained one)"
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before the retraining is stopped")
    parser.set_defaults(func=_retrain)


def _retrain(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from pipelines.audit import reproduce
    from pipelines.config import setting
    from pipelines.spec import load_spec, spec_hash
    from pipelines.training.tracking import code_version

    tracking = setting("MLFLOW_TRACKING_URI")
    if not tracking:
        raise FlywheelError("MLFLOW_TRACKING_URI is not set and no .flywheel/stack.env: run `flywheel up` first")
    name, version = reproduce.parse_ref(args.from_lineage)
    record = reproduce.read_record(MlflowClient(tracking_uri=tracking), name, version)
    print(
        f"{name}/{version}: training run {record.training_run_id}, data {record.data_uri}, spec {record.spec} "
        f"({record.spec_hash}), code {record.code_version}, seed {record.params.get('seed')}, "
        f"world size {record.params.get('world_size', '1')}"
    )
    try:
        current_spec = spec_hash(load_spec(record.spec))
    except FlywheelError as exc:
        raise reproduce.ReproduceError(f"the recorded spec {record.spec!r} cannot be loaded here: {exc}") from exc
    for warning in (
        reproduce.check_spec(record, current_spec, args.force),
        reproduce.check_code(record, code_version()),
    ):
        if warning:
            print(f"WARNING: {warning}", file=sys.stderr)
    tolerance = args.tolerance
    if tolerance is None:
        tolerance = reproduce.GPU_TOLERANCE if record.on_gpu else reproduce.CPU_TOLERANCE
    now = reproduce.retrain(record, timeout_s=args.timeout)
    result = reproduce.compare(record.metrics, now, tolerance)
    print(result.table())
    if not result.rows:
        print("no recorded metric to compare with: the training run logged no final metrics", file=sys.stderr)
        return 1
    if result.within:
        print(f"reproduced: every metric within {tolerance:g} (largest difference {result.worst:.2e})")
        return 0
    print(f"NOT reproduced: largest difference {result.worst:.2e} exceeds {tolerance:g}", file=sys.stderr)
    return 1
