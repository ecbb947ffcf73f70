"""evaluated_model (group "evaluation"): the challenger against the champion on the same pinned commit, with the
blocking check `passes_gate`. A rejected version is recorded (tags, report, the Evaluation record) and nothing
downstream runs in the same run; a passing one gets the MLflow alias `challenger`.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MetadataValue,
    Output,
    asset,
)
from pipelines.evaluate.gate import decision_table_markdown

from pipelines.evaluate.stage import evaluate_challenger, gate_workdir, summary
from pipelines.lineage import keys
from pipelines.lineage.records import Evaluation, OptimizedModel
from pipelines.spec import load_spec
from pipelines.training.tracking import code_version, model_version_url, run_url
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource


def trigger_of(tags: dict[str, str]) -> str:
    """What started the run: a schedule, a sensor, or a person (UI, CLI, CI)."""
    if tags.get("dagster/schedule_name"):
        return f"schedule {tags['dagster/schedule_name']}"
    if tags.get("dagster/sensor_name"):
        return f"sensor {tags['dagster/sensor_name']}"
    return "manual"


@asset(
    group_name="evaluation",
    kinds={"mlflow"},
    check_specs=[
        AssetCheckSpec(
            "passes_gate",
            asset="evaluated_model",
            blocking=True,
            description="challenger vs champion on one commit: AUC (paired bootstrap), calibration, latency, slices",
        )
    ],
    description="The registered candidate judged against the champion (MLflow alias) on the same pinned lakeFS "
    "commit; a passing version becomes the `challenger`, every version is tagged passed/rejected with its reason.",
)
def evaluated_model(
    context: AssetExecutionContext, optimized_model: OptimizedModel, lakefs: LakeFSResource, mlflow: MLflowResource
):
    spec = load_spec()
    tracking_uri = mlflow.configure()
    outcome = evaluate_challenger(
        optimized_model,
        spec,
        lakefs.lake,
        workdir=gate_workdir(context.run_id),
        dagster_run_id=context.run_id,
        trigger=trigger_of(context.run.tags),
        code_version=code_version(),
        tracking_uri=tracking_uri,
        experiment=mlflow.experiment,
    )
    evaluation: Evaluation = outcome.evaluation
    shown = mlflow.display_uri()
    experiment = mlflow.client().get_run(outcome.report_run_id).info.experiment_id
    meta = {
        keys.RUN_ID: MetadataValue.text(context.run_id),
        keys.LAKEFS_COMMIT: MetadataValue.text(evaluation.lakefs_commit),
        keys.MODEL_NAME: MetadataValue.text(evaluation.model_name),
        keys.MODEL_VERSION: MetadataValue.text(evaluation.challenger_version),
        "champion_version": MetadataValue.text(evaluation.champion_version or "none (first model)"),
        "decision": MetadataValue.text("passed" if evaluation.passed else "rejected"),
        "decision_table": MetadataValue.md(decision_table_markdown(outcome.decision)),
        "gate_report": MetadataValue.url(run_url(shown, experiment, outcome.report_run_id)),
        "model_version": MetadataValue.url(
            model_version_url(shown, evaluation.model_name, evaluation.challenger_version)
        ),
    }
    context.log.info(f"gate: {summary(outcome)}")
    yield Output(evaluation, metadata=meta)
    yield AssetCheckResult(
        check_name="passes_gate",
        passed=evaluation.passed,
        severity=AssetCheckSeverity.ERROR,
        description=("passed" if evaluation.passed else "rejected: " + "; ".join(evaluation.reasons))[:2000],
        metadata={"decision_table": MetadataValue.md(decision_table_markdown(outcome.decision))},
    )
