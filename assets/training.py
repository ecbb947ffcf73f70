"""trained_model: distributed PyTorch training on the exact lakeFS commit `main` points at when the run starts.

Thin: resolve the data version, hand the trainer (resources/training.py: local torchrun or Kubernetes)
the commit URI and the service endpoints, and turn the trainer's Pipes report into metadata and a
`TrainedModel` record (pipelines.lineage.records) for the optimize / evaluate / deploy stages.

Training logs a run and a model but registers nothing (optimized_model registers the candidate it picks), so a
retry never makes a duplicate version: the RetryPolicy covers transient failures (a lost pod, a broker hiccup);
a dead worker is already restarted inside the attempt (torchrun --max-restarts, resuming from the checkpoint).
"""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    RetryPolicy,
    asset,
)

from pipelines import layout
from pipelines.errors import FlywheelError
from pipelines.lake import lake_uri
from pipelines.lineage import keys
from pipelines.lineage.records import TrainedModel
from pipelines.spec import load_spec, spec_hash, spec_reference
from pipelines.training.data import pin_main
from pipelines.training.reporting import epoch_markdown
from pipelines.training.tracking import run_url
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource
from resources.training import TrainingLauncher


@asset(
    group_name="training",
    deps=[AssetKey("validated_dataset")],
    description="The spec's model trained with DDP on lakeFS main (pinned to its commit id), logged to MLflow "
    "(run + logged model; optimized_model registers the version).",
    retry_policy=RetryPolicy(max_retries=1, delay=30),
    kinds={"pytorch", "mlflow"},
)
def trained_model(
    context: AssetExecutionContext, trainer: TrainingLauncher, lakefs: LakeFSResource, mlflow: MLflowResource
) -> Output[TrainedModel]:
    spec = load_spec()
    try:
        commit = pin_main(lakefs.lake, spec)  # training reads this commit, whatever lands on main meanwhile
    except FlywheelError as exc:
        raise Failure(str(exc)) from exc
    repository = lakefs.repository
    table = layout.features_prefix(spec)
    data_uri = lake_uri(repository, commit)
    context.log.info(f"training {spec.name} on {data_uri} ({trainer.describe()})")

    env = {**mlflow.env(), **lakefs.env(), "DAGSTER_RUN_ID": context.run_id}
    args = ["--data", data_uri, "--spec", spec_reference(), "--experiment", mlflow.experiment]
    invocation = trainer.launch(context, args, env, extras={"lakefs_commit": commit, "spec_hash": spec_hash(spec)})

    reported = [r for r in invocation.get_results() if isinstance(r, MaterializeResult)]
    if not reported or "trained_model" not in (reported[-1].metadata or {}):
        raise Failure(
            "the trainer exited without reporting a result through Dagster Pipes: see the step's logs "
            "(stdout/stderr of the workers) for what happened"
        )
    metadata = dict(reported[-1].metadata or {})
    record = TrainedModel.from_dict(metadata["trained_model"].value)
    tracking_uri = mlflow.display_uri()  # links in metadata: no user:token@
    epochs = [m for m in invocation.get_custom_messages() if isinstance(m, dict) and m.get("type") == "epoch"]
    metadata.update(
        {
            "epochs": MetadataValue.md(epoch_markdown(epochs)),
            keys.RUN_ID: MetadataValue.text(context.run_id),
            keys.LAKEFS_COMMIT: MetadataValue.text(commit),
            keys.DATASET_URI: MetadataValue.text(lake_uri(repository, commit, table)),
            keys.SPEC_HASH: MetadataValue.text(record.spec_hash),
            "launcher": MetadataValue.text(trainer.describe()),
        }
    )
    # Links only to what exists: a run without MLflow (--no-mlflow) has none. Nothing is registered here.
    if record.mlflow_run_id:
        experiment = mlflow.client().get_run(record.mlflow_run_id).info.experiment_id
        metadata[keys.MLFLOW_RUN_ID] = MetadataValue.text(record.mlflow_run_id)
        metadata["mlflow_run"] = MetadataValue.url(run_url(tracking_uri, experiment, record.mlflow_run_id))
    if record.logged_model_uri:
        metadata[keys.MODEL_URI] = MetadataValue.text(record.model_uri)
    return Output(record, metadata=metadata, data_version=DataVersion(commit))
