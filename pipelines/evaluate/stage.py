"""The `evaluated_model` asset's entry function: the challenger (the version the optimization stage registered)
against the current champion (alias `champion`), both scored on the test split of the challenger's pinned lakeFS
commit; the gate decides, the version is tagged `passed`/`rejected` with the reason, a passing one becomes the
`challenger`, and the gate report is logged to MLflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines import layout, registry
from pipelines.evaluate.gate import GateDecision, decide, decision_table_markdown
from pipelines.evaluate.report import write_report
from pipelines.lake import Lake
from pipelines.lineage import keys
from pipelines.lineage.records import Evaluation, OptimizedModel
from pipelines.spec.model import DatasetSpec
from pipelines.training import data as datasets

log = logging.getLogger(__name__)
LATENCY_METRIC = "latency_b1_1t_p99_ms"  # what the latency budget judges (pipelines.optimize)


@dataclass
class GateOutcome:
    evaluation: Evaluation
    decision: GateDecision
    report: Path
    report_run_id: str  # the MLflow run holding the report


def gate_workdir(run_id: str) -> Path:
    """Where a run writes its gate report before logging it (under the state directory)."""
    from pipelines.config import state_dir

    path = state_dir() / "gate" / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def pinned_test_split(lake: Lake, spec: DatasetSpec, repository: str, commit: str) -> pd.DataFrame:
    """The test rows of the model table at an exact commit (never a branch head)."""
    location = datasets.DataLocation("lakefs", repository, commit, "")
    table = datasets.read_model_table(datasets.open_store(location, lake), spec)
    test = table[table[layout.SPLIT_COLUMN] == "test"].reset_index(drop=True)
    if test.empty or test[spec.label].nunique() < 2:
        raise registry.RegistryError(
            f"the test split at {repository}@{commit[:12]} has {len(test)} rows and cannot be judged (both classes "
            "are needed): ingest more data before evaluating"
        )
    return test


def score(model_uri: str, spec: DatasetSpec, test: pd.DataFrame) -> np.ndarray:
    """Probabilities from a registered model through its own pyfunc (each version carries its preprocessing)."""
    import mlflow.pyfunc

    from pipelines.training.packaging import OUTPUT_COLUMN, input_example

    predicted = mlflow.pyfunc.load_model(model_uri).predict(input_example(spec, test))
    return np.asarray(predicted[OUTPUT_COLUMN], dtype=np.float64)


def evaluate_challenger(
    optimized: OptimizedModel,
    spec: DatasetSpec,
    lake: Lake,
    *,
    workdir: Path,
    dagster_run_id: str,
    trigger: str,
    code_version: str,
    tracking_uri: str | None = None,
    experiment: str = "flywheel",
) -> GateOutcome:
    name, version = optimized.model_name, optimized.model_version
    test = pinned_test_split(lake, spec, optimized.lakefs_repository, optimized.lakefs_commit)
    labels = test[spec.label].to_numpy().astype(np.int64)
    challenger = score(f"models:/{name}/{version}", spec, test)
    champion_version = registry.alias_version(name, registry.CHAMPION, tracking_uri)
    champion = None
    if champion_version is not None and champion_version != version:
        champion = score(f"models:/{name}/{champion_version}", spec, test)  # the same rows, the same commit
    slices = test[spec.gates.slice_feature].to_numpy() if spec.gates.slice_feature else None
    decision = decide(labels, challenger, champion, slices, spec, optimized.metrics.get(LATENCY_METRIC))
    reason = "; ".join(decision.reasons) or "all gate checks passed"
    report = write_report(
        decision,
        workdir,
        model_name=name,
        challenger_version=version,
        champion_version=champion_version if champion is not None else None,
        lakefs_repository=optimized.lakefs_repository,
        lakefs_commit=optimized.lakefs_commit,
        code_version=code_version,
        dagster_run_id=dagster_run_id,
        trigger=trigger,
        labels=labels,
        challenger_scores=challenger,
        champion_scores=champion,
    )
    report_run = _log_report(report, decision, optimized, dagster_run_id, experiment, tracking_uri)
    registry.record_decision(
        name,
        version,
        decision.passed,
        reason,
        extra={
            keys.LAKEFS_COMMIT: optimized.lakefs_commit,
            keys.RUN_ID: dagster_run_id,
            "flywheel.gate.report_run_id": report_run,
            "flywheel.gate.champion_version": champion_version or "",
        },
        tracking_uri=tracking_uri,
    )
    if decision.passed:
        registry.make_challenger(name, version, tracking_uri)
    elif registry.withdraw_challenger(name, version, tracking_uri):  # passed once, rejected on a re-evaluation
        log.warning("%s version %s was the challenger and is rejected now: alias removed", name, version)
    evaluation = Evaluation(
        model_name=name,
        challenger_version=version,
        champion_version=champion_version if champion is not None else None,
        lakefs_repository=optimized.lakefs_repository,
        lakefs_commit=optimized.lakefs_commit,
        passed=decision.passed,
        reasons=list(decision.reasons),
        metrics=decision.record_metrics(),  # estimates with their interval bounds, and the difference
    )
    return GateOutcome(evaluation, decision, report, report_run)


def _log_report(
    report: Path,
    decision: GateDecision,
    optimized: OptimizedModel,
    dagster_run_id: str,
    experiment: str,
    tracking_uri: str | None,
) -> str:
    """An MLflow run named after the version, holding the report, its plots and the decision table."""
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    tags = {
        keys.RUN_ID: dagster_run_id,
        keys.LAKEFS_REPOSITORY: optimized.lakefs_repository,
        keys.LAKEFS_COMMIT: optimized.lakefs_commit,
        keys.MODEL_NAME: optimized.model_name,
        keys.MODEL_VERSION: optimized.model_version,
        registry.DECISION_TAG: "passed" if decision.passed else "rejected",
    }
    with mlflow.start_run(run_name=f"gate {optimized.model_name} v{optimized.model_version}", tags=tags) as run:
        mlflow.log_artifacts(str(report.parent), artifact_path="gate_report")
        mlflow.log_text(decision_table_markdown(decision), "gate_report/decision.md")
        return str(run.info.run_id)


def summary(outcome: GateOutcome) -> dict[str, Any]:
    """For logs and metadata: decision, reasons, the versions and the commit they were judged on."""
    e = outcome.evaluation
    return {
        "decision": "passed" if e.passed else "rejected",
        "reasons": e.reasons,
        "challenger_version": e.challenger_version,
        "champion_version": e.champion_version,
        "lakefs_commit": e.lakefs_commit,
    }
