"""The trained_model asset materialized through Dagster: lakeFS main resolved to a commit, torchrun with two
workers through PipesSubprocessClient, results back through Pipes, metadata linking MLflow and lakeFS."""

import os
import signal
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from dagster import materialize
from mlflow import MlflowClient

from assets.training import trained_model
from pipelines.lake import Lake, LakeFSSettings
from pipelines.lineage import keys
from pipelines.lineage.records import TrainedModel
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource
from resources.training import LocalTrainingLauncher
from tests.integration.training.conftest import FAST, training_workers

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL_NAME = "transactions-asset-test"


def resources(repository: str, tracking_uri: str, nproc: int = 2) -> dict:
    return {
        "trainer": LocalTrainingLauncher(nproc_per_node=nproc, extra_args=[*FAST, "--model-name", MODEL_NAME]),
        "lakefs": LakeFSResource(
            endpoint=os.environ["LAKEFS_ENDPOINT"],  # exported by the session's stack (tests/conftest.py)
            access_key_id=os.environ["LAKEFS_ACCESS_KEY_ID"],
            secret_access_key=os.environ["LAKEFS_SECRET_ACCESS_KEY"],
            repository=repository,
        ),
        "mlflow": MLflowResource(tracking_uri=tracking_uri, experiment="training-asset-test"),
    }


def test_trained_model_materializes_with_lineage_metadata(lake_commit, mlflow_tracking_uri: str) -> None:
    lake, commit = lake_commit
    result = materialize([trained_model], resources=resources(lake.repository_id, mlflow_tracking_uri))
    assert result.success
    record = result.output_for_node("trained_model")
    assert isinstance(record, TrainedModel)
    assert record.lakefs_commit == commit and record.model_name == MODEL_NAME and record.model_version == ""
    assert record.metrics["test_auc"] > 0.75
    mat = result.asset_materializations_for_node("trained_model")[0]
    meta = mat.metadata
    assert meta[keys.LAKEFS_COMMIT].value == commit and meta[keys.RUN_ID].value == result.run_id
    assert meta[keys.MODEL_URI].value == record.logged_model_uri and record.logged_model_uri.startswith("models:/m-")
    assert record.mlflow_run_id in meta["mlflow_run"].value
    assert meta["world_size"].value == 2
    assert meta["epochs"].value.count("\n| ") == 1 + 3  # header rule + 3 epochs streamed through Pipes
    assert mat.tags.get("dagster/data_version") == commit
    tags = MlflowClient(mlflow_tracking_uri).get_run(record.mlflow_run_id).data.tags
    assert tags[keys.RUN_ID] == result.run_id
    assert tags[keys.LAKEFS_COMMIT] == commit


def test_a_worker_killed_under_dagster_resumes_and_the_run_succeeds(
    lake_commit, mlflow_tracking_uri: str, stack_env
) -> None:
    """torchrun --max-restarts=1 under Dagster Pipes: rank 0 re-opens Pipes after the restart."""
    lake, commit = lake_commit
    res = resources(lake.repository_id, mlflow_tracking_uri)
    res["trainer"] = LocalTrainingLauncher(
        nproc_per_node=2, max_restarts=1, extra_args=["--epochs", "4", "--batch-size", "256", "--throttle-s", "1.0"]
    )
    checkpoints = Path(os.environ["FLYWHEEL_STATE_DIR"]) / "checkpoints"
    before = set(checkpoints.glob("*")) if checkpoints.exists() else set()
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            fresh = [d for d in checkpoints.glob("*") if d not in before] if checkpoints.exists() else []
            if fresh and (fresh[0] / "epoch-00002.pt").exists():
                workers = training_workers(psutil.Process())
                if workers:
                    os.kill(workers[-1].pid, signal.SIGKILL)
                    killed.append(workers[-1].pid)
                return
            time.sleep(0.1)

    threading.Thread(target=kill_a_worker, daemon=True).start()
    result = materialize([trained_model], resources=res)
    assert killed, "no worker was killed"
    assert result.success
    meta = result.asset_materializations_for_node("trained_model")[0].metadata
    assert meta["resumed_from_epoch"].value >= 2 and meta["epochs_run"].value == 4
    assert result.output_for_node("trained_model").lakefs_commit == commit


def test_an_empty_main_fails_with_what_to_do(stack_env, mlflow_tracking_uri: str) -> None:
    empty = Lake(replace(LakeFSSettings.from_env(), repository=f"training-empty-{uuid.uuid4().hex[:8]}"))
    empty.ensure_repository()
    result = materialize(
        [trained_model], resources=resources(empty.repository_id, mlflow_tracking_uri), raise_on_error=False
    )
    assert not result.success
    text = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "run ingest_job first" in text
