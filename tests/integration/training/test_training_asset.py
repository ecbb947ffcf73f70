"""The trained_model asset materialized through Dagster: lakeFS main resolved to a commit, torchrun with two
workers through PipesSubprocessClient, results back through Pipes, metadata linking MLflow and lakeFS."""

import uuid
from dataclasses import replace

import pytest
from dagster import materialize
from mlflow import MlflowClient

from assets.training import trained_model
from pipelines.lake import Lake, LakeFSSettings
from pipelines.training import TrainedModel, tracking
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource
from resources.training import LocalTrainingLauncher
from tests.integration.training.conftest import FAST

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL_NAME = "transactions-asset-test"


def resources(repository: str, tracking_uri: str, nproc: int = 2) -> dict:
    return {
        "trainer": LocalTrainingLauncher(nproc_per_node=nproc, extra_args=[*FAST, "--model-name", MODEL_NAME]),
        "lakefs": LakeFSResource(repository=repository),
        "mlflow": MLflowResource(tracking_uri=tracking_uri, experiment="training-asset-test"),
    }


def test_trained_model_materializes_with_lineage_metadata(lake_commit, mlflow_tracking_uri: str) -> None:
    lake, commit = lake_commit
    result = materialize([trained_model], resources=resources(lake.repository_id, mlflow_tracking_uri))
    assert result.success
    record = result.output_for_node("trained_model")
    assert isinstance(record, TrainedModel)
    assert record.lakefs_commit == commit and record.model_name == MODEL_NAME and record.model_version
    assert record.metrics["test_auc"] > 0.75
    mat = result.asset_materializations_for_node("trained_model")[0]
    meta = mat.metadata
    assert meta["lakefs_commit"].value == commit
    assert meta["model_uri"].value == f"models:/{MODEL_NAME}/{record.model_version}"
    assert record.mlflow_run_id in meta["mlflow_run"].value
    assert meta["world_size"].value == 2
    assert mat.tags.get("dagster/data_version") == commit
    tags = MlflowClient(mlflow_tracking_uri).get_run(record.mlflow_run_id).data.tags
    assert tags[tracking.TAG_DAGSTER_RUN] == result.run_id
    assert tags[tracking.TAG_COMMIT] == commit


def test_an_empty_main_fails_with_what_to_do(stack_env, mlflow_tracking_uri: str) -> None:
    empty = Lake(replace(LakeFSSettings.from_env(), repository=f"training-empty-{uuid.uuid4().hex[:8]}"))
    empty.ensure_repository()
    result = materialize(
        [trained_model], resources=resources(empty.repository_id, mlflow_tracking_uri), raise_on_error=False
    )
    assert not result.success
    text = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "run ingest_job first" in text
