"""optimized_model (group "optimization"): the trained model's faster forms measured on its pinned commit, the
Pareto-best within the spec's accuracy budget registered as a new version of the spec's model in MLflow."""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from pipelines.lineage import keys
from pipelines.lineage.records import OptimizedModel, TrainedModel
from pipelines.optimize.stage import optimize_trained, optimize_workdir
from pipelines.spec import load_spec
from pipelines.training.tracking import model_version_url, run_url
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource


@asset(
    group_name="optimization",
    kinds={"pytorch", "onnx", "mlflow"},
    description="Candidates from the trained model (fp32, int8, pruned, distilled student, ONNX fp32/int8) measured "
    "on the pinned test split; the fastest within optimize.max_auc_drop is registered as a model version.",
)
def optimized_model(
    context: AssetExecutionContext, trained_model: TrainedModel, lakefs: LakeFSResource, mlflow: MLflowResource
) -> Output[OptimizedModel]:
    spec = load_spec()
    tracking_uri = mlflow.configure()
    record, result, optimize_run = optimize_trained(
        trained_model,
        spec,
        lakefs.lake,
        workdir=optimize_workdir(context.run_id),
        dagster_run_id=context.run_id,
        tracking_uri=tracking_uri,
        experiment=mlflow.experiment,
    )
    context.log.info(f"registered {record.model_name} version {record.model_version} ({record.form}): {result.reason}")
    shown = mlflow.display_uri()
    experiment = mlflow.client().get_run(optimize_run).info.experiment_id
    return Output(
        record,
        metadata={
            keys.RUN_ID: MetadataValue.text(context.run_id),
            keys.LAKEFS_COMMIT: MetadataValue.text(record.lakefs_commit),
            keys.MODEL_NAME: MetadataValue.text(record.model_name),
            keys.MODEL_VERSION: MetadataValue.text(record.model_version),
            keys.MODEL_URI: MetadataValue.text(record.model_uri),
            "form": MetadataValue.text(record.form),
            "why": MetadataValue.text(result.reason),
            "candidates": MetadataValue.md(result.table_markdown),
            "optimize_run": MetadataValue.url(run_url(shown, experiment, optimize_run)),
            "model_version": MetadataValue.url(model_version_url(shown, record.model_name, record.model_version)),
        },
    )
