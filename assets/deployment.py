"""deployment (group "deployment", the end of retrain_job): start the rollout of the version that passed the gate
(strategy and steps from the spec's `rollout` section or this asset's config) and record it; the canary analysis
sensor then promotes or rolls it back. With no serving process reachable it records the plan and how to serve.
"""

from dagster import AssetExecutionContext, Config, MetadataValue, Output, RetryPolicy, asset
from pydantic import Field

from pipelines.lineage import keys
from pipelines.lineage.records import Deployment, Evaluation
from pipelines.serving.deploy import deploy
from pipelines.spec import load_spec
from pipelines.spec.model import RolloutSpec
from pipelines.training.tracking import model_version_url
from resources.mlflow import MLflowResource
from resources.serving import ServingResource


class DeploymentConfig(Config):
    strategy: str | None = Field(default=None, description="canary | blue-green | ab | shadow (default: the spec's)")
    steps: list[float] | None = Field(default=None, description="challenger share (%) per step (default: the spec's)")
    analysis_window_s: float | None = Field(default=None, gt=0, description="each step's window (default: the spec's)")


@asset(
    group_name="deployment",
    kinds={"mlflow"},
    retry_policy=RetryPolicy(max_retries=2, delay=10),  # starting a rollout twice changes nothing
    description="Starts the rollout of the new challenger in serving (canary / blue-green / A-B / shadow, from the "
    "spec's rollout section or this asset's config); the first model becomes the champion directly.",
)
def deployment(
    context: AssetExecutionContext,
    config: DeploymentConfig,
    evaluated_model: Evaluation,
    mlflow: MLflowResource,
    serving: ServingResource,
):
    spec = load_spec()
    plan = spec.rollout
    overrides = {k: v for k, v in (("steps", config.steps), ("analysis_window_s", config.analysis_window_s)) if v}
    if overrides:  # e.g. `make demo`'s shorter canary
        plan = RolloutSpec.model_validate({**plan.model_dump(), **overrides})
    tracking_uri = mlflow.configure()
    record: Deployment = deploy(
        evaluated_model, plan, config.strategy, tracking_uri, serving.url or None, serving.token()
    )
    context.log.info(f"deployment: {record.message}")
    meta = {
        keys.MODEL_NAME: MetadataValue.text(record.model_name),
        keys.MODEL_VERSION: MetadataValue.text(record.version),
        "strategy": MetadataValue.text(record.strategy),
        "state": MetadataValue.text(record.state),
        "traffic": MetadataValue.json(record.traffic),
        "previous_champion": MetadataValue.text(record.previous_version or "none"),
        "message": MetadataValue.text(record.message),
        "model_version": MetadataValue.url(model_version_url(mlflow.display_uri(), record.model_name, record.version)),
    }
    if record.serving_url:
        meta["serving_models"] = MetadataValue.url(f"{record.serving_url}/v1/models")
    yield Output(record, metadata=meta)
