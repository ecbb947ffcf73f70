"""evaluated_model on the embedded stack: the first model passes on absolute thresholds and becomes the
challenger; a deliberately worse challenger (the same preprocessing, random weights) is rejected, tagged with the
reason, gets no alias, and nothing downstream runs in that run; an equal one passes against the champion.

No `from __future__ import annotations`: Dagster reads the assets' annotations at definition time.
"""

import os
import uuid
from pathlib import Path

import dagster as dg
import mlflow
import pytest
import torch
from mlflow import MlflowClient

from assets.evaluate import evaluated_model
from pipelines import registry
from pipelines.lineage.records import Evaluation, OptimizedModel
from pipelines.training.packaging import FlywheelTabularModel, load_model, save_artifacts
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource
from resources.records_io import RecordIOManager
from tests.integration.training.conftest import FAST, torchrun

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = f"gate-test-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def good_model(lake_commit, mlflow_tracking_uri: str, tmp_path_factory: pytest.TempPathFactory):
    lake, commit = lake_commit
    out = torchrun(
        f"lakefs://{lake.repository_id}/{commit}/",
        tmp_path_factory.mktemp("gate-train"),
        args=[*FAST, "--experiment", "gate-tests", "--model-name", MODEL],
        env={"LAKEFS_REPOSITORY": lake.repository_id},
    )
    assert out.returncode == 0, out.output[-3000:]
    return lake, commit, out.result["trained_model"]


def register(logged_uri: str, record: dict, lake, commit: str) -> OptimizedModel:
    version = registry.register(logged_uri, MODEL, {"flywheel.form": "fp32"})
    return OptimizedModel(
        model_name=MODEL,
        model_version=version,
        form="fp32",
        training_run_id=record["mlflow_run_id"],
        lakefs_repository=lake.repository_id,
        lakefs_commit=commit,
        metrics={"latency_b1_1t_p99_ms": 1.0},
    )


def worse_copy(logged_uri: str, tmp: Path) -> str:
    """The same preprocessing, random weights: a model that scores like a coin."""
    loaded = load_model(logged_uri)
    torch.manual_seed(0)
    for layer in loaded.module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    artifacts = save_artifacts(tmp, loaded.module, loaded.preprocessor, loaded.architecture)
    with mlflow.start_run(run_name="worse challenger"):
        return mlflow.pyfunc.log_model(name="model", python_model=FlywheelTabularModel(), artifacts=artifacts).model_uri


def stack_resources(lake, tracking_uri: str, records: Path) -> dict:
    """The session's embedded lakeFS (this test's repository) and MLflow, and the records IO manager."""
    return {
        "lakefs": LakeFSResource(
            endpoint=os.environ["LAKEFS_ENDPOINT"],  # exported by the session's stack (tests/conftest.py)
            access_key_id=os.environ["LAKEFS_ACCESS_KEY_ID"],
            secret_access_key=os.environ["LAKEFS_SECRET_ACCESS_KEY"],
            repository=lake.repository_id,
        ),
        "mlflow": MLflowResource(tracking_uri=tracking_uri, experiment="gate-tests"),
        "io_manager": RecordIOManager(base_dir=str(records)),
    }


@dg.asset(deps=["evaluated_model"])
def after_the_gate() -> None:
    """Stands for deployment: must not run when the gate rejects."""


def run_gate(optimized: OptimizedModel, lake, tracking_uri: str, records: Path):
    @dg.asset(name="optimized_model")
    def stub() -> OptimizedModel:
        return optimized

    resources = stack_resources(lake, tracking_uri, records)
    return dg.materialize([stub, evaluated_model, after_the_gate], resources=resources, raise_on_error=False)


def test_the_gate_passes_the_first_model_rejects_a_worse_one_and_stops_downstream(
    good_model, mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    lake, commit, record = good_model
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    client = MlflowClient(mlflow_tracking_uri)

    first = register(record["logged_model_uri"], record, lake, commit)
    result = run_gate(first, lake, mlflow_tracking_uri, tmp_path / "records")
    assert result.success
    evaluation = result.output_for_node("evaluated_model")
    assert isinstance(evaluation, Evaluation) and evaluation.passed and evaluation.champion_version is None
    assert registry.alias_version(MODEL, registry.CHALLENGER) == first.model_version
    assert result.asset_materializations_for_node("after_the_gate")  # passed: downstream ran
    registry.promote(MODEL, first.model_version)

    worse = register(worse_copy(record["logged_model_uri"], tmp_path / "worse"), record, lake, commit)
    result = run_gate(worse, lake, mlflow_tracking_uri, tmp_path / "records")
    assert not result.success  # the blocking check failed ...
    assert not result.asset_materializations_for_node("after_the_gate")  # ... and nothing downstream ran
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("passes_gate", False)]
    tags = client.get_model_version(MODEL, worse.model_version).tags
    assert tags[registry.DECISION_TAG] == "rejected" and "AUC" in tags[registry.REASON_TAG]
    assert client.get_model_version(MODEL, worse.model_version).aliases == []
    assert registry.alias_version(MODEL, registry.CHAMPION) == first.model_version
    report_run = tags["flywheel.gate.report_run_id"]
    report = client.download_artifacts(report_run, "gate_report")
    text = next(Path(report).rglob("gate_report.md")).read_text()
    assert commit in text  # the report names the exact commit both models were scored on

    same = register(record["logged_model_uri"], record, lake, commit)  # as good as the champion: a tie passes
    result = run_gate(same, lake, mlflow_tracking_uri, tmp_path / "records")
    assert result.success and result.output_for_node("evaluated_model").champion_version == first.model_version
    assert registry.alias_version(MODEL, registry.CHALLENGER) == same.model_version


def test_optimized_model_registers_the_chosen_candidate_with_its_form_and_table(
    good_model, mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    from assets.optimize import optimized_model
    from pipelines.lineage.records import TrainedModel
    from pipelines.optimize.stage import CANDIDATES_TAG, FORM_TAG

    lake, commit, record = good_model
    trained = TrainedModel.from_dict(record)

    @dg.asset(name="trained_model")
    def stub() -> TrainedModel:
        return trained

    result = dg.materialize([stub, optimized_model], resources=stack_resources(lake, mlflow_tracking_uri, tmp_path))
    optimized = result.output_for_node("optimized_model")
    assert isinstance(optimized, OptimizedModel) and optimized.lakefs_commit == commit
    assert {c["name"] for c in optimized.candidates} >= {"fp32", "int8", "onnx-fp32"}
    version = MlflowClient(mlflow_tracking_uri).get_model_version(trained.model_name, optimized.model_version)
    assert version.tags[FORM_TAG] == optimized.form and optimized.form in version.tags[CANDIDATES_TAG]
    assert version.tags["flywheel.training_run_id"] == trained.mlflow_run_id
    assert version.tags["flywheel.gate.decision"] == "pending"  # until evaluated_model decides
    served = mlflow.pyfunc.load_model(optimized.model_uri)  # the registered form serves raw columns
    assert served.metadata.get_input_schema() is not None


def test_retrain_carries_a_model_through_optimization_and_the_gate_to_challenger(
    lake_commit, mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    """retrain_job's assets end to end on the embedded stack: train (logs, registers nothing), optimize (registers
    the chosen form), evaluate (first model: absolute thresholds) -> the version is the `challenger`."""
    from assets.optimize import optimized_model
    from assets.training import trained_model
    from resources.training import LocalTrainingLauncher
    from tests.integration.training.conftest import FAST

    lake, commit = lake_commit
    name = f"retrain-{uuid.uuid4().hex[:6]}"
    resources = {
        **stack_resources(lake, mlflow_tracking_uri, tmp_path / "records"),
        "trainer": LocalTrainingLauncher(nproc_per_node=1, extra_args=[*FAST, "--model-name", name]),
    }
    result = dg.materialize([trained_model, optimized_model, evaluated_model], resources=resources)
    assert result.success
    trained = result.output_for_node("trained_model")
    optimized = result.output_for_node("optimized_model")
    evaluation = result.output_for_node("evaluated_model")
    assert trained.model_version == "" and optimized.lakefs_commit == trained.lakefs_commit == commit
    assert evaluation.passed and evaluation.challenger_version == optimized.model_version
    assert registry.alias_version(name, registry.CHALLENGER, mlflow_tracking_uri) == optimized.model_version
    versions = MlflowClient(mlflow_tracking_uri).search_model_versions(f"name='{name}'")
    assert [v.version for v in versions] == [optimized.model_version]  # one version: optimization's, none from training

    # `flywheel lineage` reads the same chain back from the systems themselves
    from pipelines.audit import render
    from pipelines.audit.trace import Sources, trace

    client = MlflowClient(mlflow_tracking_uri)
    chain = trace(Sources(lake=lake, mlflow=client), name, optimized.model_version)
    assert chain["dataset"]["commit"] == commit and chain["dataset"]["spec"] == "transactions"
    assert chain["training"]["run_id"] == trained.mlflow_run_id and chain["training"]["status"] == "FINISHED"
    assert chain["training"]["code_version"] and chain["training"]["metrics"]
    assert chain["optimization"]["chosen"] == optimized.form and optimized.form in chain["optimization"]["candidates"]
    assert chain["optimization"]["run"]["status"] == "FINISHED"
    assert chain["gate"]["decision"] == "passed" and chain["gate"]["report_run"]["status"] == "FINISHED"
    assert "challenger" in chain["now"]["aliases"]
    run_ids = {chain["training"]["dagster_run_id"], chain["gate"]["report_run"]["dagster_run_id"]}
    assert run_ids <= set(chain["dagster_runs"]) and None not in run_ids
    text = render.markdown(chain)
    assert f"version {optimized.model_version}" in text and "**passed**" in text
