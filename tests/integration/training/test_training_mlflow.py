"""Training on a lakeFS commit of the embedded stack, logged to a real MLflow server: every lineage tag,
per-epoch metrics, the dataset input with its lakefs:// URI, plots, and a registered model that serving
loads with nothing but the model URI."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from pipelines import layout
from pipelines.lineage import keys
from pipelines.spec import load_spec
from pipelines.training.packaging import OUTPUT_COLUMN, input_example, load_model
from pipelines.training.synthetic import synthetic_table
from tests.integration.training.conftest import FAST, torchrun

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL_NAME = "transactions-training-test"


@pytest.fixture(scope="module")
def trained(lake_commit, mlflow_tracking_uri: str, tmp_path_factory: pytest.TempPathFactory):
    lake, commit = lake_commit
    run = torchrun(
        f"lakefs://{lake.repository_id}/{commit}/",
        tmp_path_factory.mktemp("mlflow-run"),
        nproc=2,
        args=[*FAST, "--experiment", "training-tests", "--model-name", MODEL_NAME],
        env={"DAGSTER_RUN_ID": "dagster-run-lineage-test", "MLFLOW_TRACKING_URI": mlflow_tracking_uri},
    )
    assert run.returncode == 0, run.output[-4000:]
    return lake, commit, run.result, MlflowClient(mlflow_tracking_uri)


def test_mlflow_run_carries_every_lineage_tag(trained) -> None:
    lake, commit, result, client = trained
    record = result["trained_model"]
    assert record["lakefs_commit"] == commit and record["model_name"] == MODEL_NAME
    tags = client.get_run(record["mlflow_run_id"]).data.tags
    missing = [t for t in keys.TRAINING_TAGS if t not in tags]
    assert not missing
    assert tags[keys.LAKEFS_REPOSITORY] == lake.repository_id
    assert tags[keys.LAKEFS_COMMIT] == commit
    assert tags[keys.DATASET_URI] == f"lakefs://{lake.repository_id}/{commit}/features/transactions/"
    assert tags[keys.RUN_ID] == "dagster-run-lineage-test"
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", tags[keys.CODE_VERSION])
    assert tags[keys.WORLD_SIZE] == "2" and tags[keys.BACKEND] == "gloo"
    assert "CPU" in tags[keys.HARDWARE]


def test_params_epoch_metrics_dataset_input_and_plots(trained) -> None:
    _, commit, result, client = trained
    run_id = result["trained_model"]["mlflow_run_id"]
    run = client.get_run(run_id)
    assert run.data.params["hidden_dims"] == "[64, 32]" and run.data.params["batch_size"] == "256"
    assert len(client.get_metric_history(run_id, "val_auc")) == 3  # one per epoch
    assert run.data.metrics["test_auc"] > 0.75
    inputs = run.inputs.dataset_inputs
    contexts = {next(t.value for t in i.tags if t.key == "mlflow.data.context") for i in inputs}
    assert {"train", "eval", "test"} <= contexts
    assert all(commit in i.dataset.source for i in inputs)
    plots = {Path(a.path).name for a in client.list_artifacts(run_id, "plots")}
    assert {"loss_curves.png", "roc_test.png", "pr_test.png", "calibration_test.png"} <= plots


def test_the_logged_model_loads_and_predicts_from_raw_columns_and_nothing_is_registered(trained) -> None:
    _, commit, result, client = trained
    record = result["trained_model"]
    assert record["model_version"] == "" and record["logged_model_uri"].startswith("models:/m-")
    assert client.search_model_versions(f"name='{MODEL_NAME}'") == []  # registering is optimization's decision
    logged = mlflow.get_logged_model(record["logged_model_uri"].removeprefix("models:/"))
    assert logged.tags[keys.LAKEFS_COMMIT] == commit and logged.source_run_id == record["mlflow_run_id"]
    spec = load_spec("transactions")
    raw = input_example(spec, synthetic_table(spec, 50, seed=11))
    raw.loc[0, "merchant_category"] = "not-a-category"  # unknown value
    raw.loc[1, "device_age_days"] = np.nan  # null
    uri = record["logged_model_uri"]
    served = mlflow.pyfunc.load_model(uri).predict(raw)  # what serving does: nothing but the URI
    assert list(served.columns) == [OUTPUT_COLUMN] and len(served) == 50
    assert served[OUTPUT_COLUMN].between(0, 1).all()
    loaded = load_model(uri)  # what evaluation/optimization use: module + preprocessor too
    assert np.allclose(loaded.predict_proba(raw), served[OUTPUT_COLUMN].to_numpy(), atol=1e-6)
    assert loaded.module.numeric_width == loaded.preprocessor.numeric_width


def test_model_signature_matches_the_spec(trained) -> None:
    _, _, result, _ = trained
    uri = result["trained_model"]["logged_model_uri"]
    inputs = mlflow.models.get_model_info(uri).signature.inputs.input_names()
    spec = load_spec("transactions")
    assert set(inputs) == set(spec.model_numeric_inputs) | set(spec.model_categorical_inputs)
    assert layout.SPLIT_COLUMN not in inputs and spec.label not in inputs
    assert isinstance(pd.DataFrame(columns=inputs), pd.DataFrame)
