"""The `optimized_model` asset's entry function: build and measure the candidates of a trained model on its
pinned commit, log every candidate to MLflow (one run: the comparison table, the latency/accuracy plot, each
candidate's numbers), log the chosen one as a model and register it as a new version of the spec's model,
tagged with its form, the candidate table and the training run. The only place a version is registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines import layout, registry
from pipelines.lake import Lake
from pipelines.lineage import keys
from pipelines.lineage.records import OptimizedModel, TrainedModel
from pipelines.optimize import OptimizationResult, build_and_measure
from pipelines.optimize.packaging import FlywheelOptimizedModel, pip_requirements
from pipelines.spec.model import DatasetSpec
from pipelines.training import data as datasets

FORM_TAG = "flywheel.form"
CANDIDATES_TAG = "flywheel.optimize.candidates"
OPTIMIZE_RUN_TAG = "flywheel.optimize.run_id"


def optimize_workdir(run_id: str) -> Path:
    from pipelines.config import state_dir

    path = state_dir() / "optimize" / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def optimize_trained(
    trained: TrainedModel,
    spec: DatasetSpec,
    lake: Lake,
    *,
    workdir: Path,
    dagster_run_id: str,
    tracking_uri: str | None = None,
    experiment: str = "flywheel",
) -> tuple[OptimizedModel, OptimizationResult, str]:
    """Returns the registered candidate's record, the measurements, and the MLflow run that logged them."""
    import mlflow

    from pipelines.training.packaging import input_example, load_model, model_signature

    if not trained.mlflow_run_id:
        raise registry.RegistryError(
            "the trained model was not logged to MLflow (trained with --no-mlflow?): nothing to optimize or register"
        )
    teacher = load_model(trained.model_uri)
    location = datasets.DataLocation("lakefs", trained.lakefs_repository, trained.lakefs_commit, "")
    table = datasets.read_model_table(datasets.open_store(location, lake), spec)
    splits = {name: table[table[layout.SPLIT_COLUMN] == name] for name in layout.SPLITS}
    result = build_and_measure(teacher.module, teacher.architecture, teacher.preprocessor, splits, spec, workdir)

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    lineage = {
        keys.RUN_ID: dagster_run_id,
        keys.LAKEFS_REPOSITORY: trained.lakefs_repository,
        keys.LAKEFS_COMMIT: trained.lakefs_commit,
        keys.SPEC_HASH: trained.spec_hash,
        keys.TRAINING_RUN_ID: trained.mlflow_run_id,
    }
    with mlflow.start_run(run_name=f"optimize {trained.model_name}", tags=lineage) as run:
        for row in result.candidates:
            mlflow.log_metrics({f"{row['name']}.{k}": float(v) for k, v in row.items() if _number(v)})
        mlflow.log_artifact(str(result.table_path), "candidates")
        mlflow.log_artifact(str(result.json_path), "candidates")
        mlflow.log_artifact(str(result.plot_path), "candidates")
        mlflow.log_params({"chosen": result.chosen, "max_auc_drop": spec.optimize.max_auc_drop})
        chosen = result.built[result.chosen]
        example = input_example(spec, splits["validation"].head(5))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=FlywheelOptimizedModel(),
            artifacts=result.artifacts[result.chosen],
            signature=model_signature(spec),
            input_example=example,
            pip_requirements=pip_requirements(chosen),
            tags={**lineage, FORM_TAG: result.chosen},
        )
        optimize_run = str(run.info.run_id)
    version = registry.register(
        str(info.model_uri),
        trained.model_name,
        {
            **lineage,
            FORM_TAG: result.chosen,
            keys.MLFLOW_RUN_ID: optimize_run,
            OPTIMIZE_RUN_TAG: optimize_run,
            registry.DECISION_TAG: "pending",  # until the gate decides: a crash before it leaves no silent version
            "flywheel.optimize.reason": result.reason[:5000],
            CANDIDATES_TAG: _compact_table(result.candidates)[:5000],
        },
        tracking_uri,
    )
    record = OptimizedModel(
        model_name=trained.model_name,
        model_version=version,
        form=result.chosen,
        training_run_id=trained.mlflow_run_id,
        lakefs_repository=trained.lakefs_repository,
        lakefs_commit=trained.lakefs_commit,
        metrics=result.metrics,
        candidates=[{k: v for k, v in row.items() if k != "notes"} for row in result.candidates],
    )
    return record, result, optimize_run


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _compact_table(rows: list[dict[str, Any]]) -> str:
    """The candidate table in a version tag: name -> AUC, p50 latency at batch 1 (one thread), size."""
    return json.dumps(
        {
            r["name"]: {
                "auc": round(float(r["auc"]), 4),
                "p50_b1_ms": round(float(r.get("latency_b1_1t_p50_ms", float("nan"))), 3),
                "size_bytes": int(r["size_bytes"]),
                "chosen": bool(r.get("chosen")),
            }
            for r in rows
        },
        sort_keys=True,
    )
