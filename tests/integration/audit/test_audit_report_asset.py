"""audit_report on the embedded stack: retrain_job's assets take a first model to champion (the deployment
promotes the first model directly), then audit_report writes its lineage report as Markdown, HTML and JSON,
linked from the materialization, with the chain read back from lakeFS, MLflow and the deployment record.

No `from __future__ import annotations`: Dagster reads the assets' annotations at definition time.
"""

import json
import uuid
from pathlib import Path

import dagster as dg
import pytest

from assets.audit import audit_report
from assets.deployment import deployment
from assets.evaluate import evaluated_model
from assets.optimize import optimized_model
from assets.training import trained_model
from pipelines import registry
from resources.serving import ServingResource
from resources.training import LocalTrainingLauncher
from tests.integration.evaluate.test_gate_asset import stack_resources
from tests.integration.training.conftest import FAST

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_audit_report_writes_the_chain_of_every_promoted_version(
    lake_commit, mlflow_tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, commit = lake_commit
    name = f"audit-{uuid.uuid4().hex[:6]}"
    records = tmp_path / "records"
    monkeypatch.setenv("FLYWHEEL_RECORDS_DIR", str(records))  # where the asset finds the deployment records
    monkeypatch.delenv("FLYWHEEL_DAGSTER_URL", raising=False)
    resources = {
        **stack_resources(lake, mlflow_tracking_uri, records),
        "trainer": LocalTrainingLauncher(nproc_per_node=1, extra_args=[*FAST, "--model-name", name]),
        "serving": ServingResource(url=""),
    }
    loop = dg.materialize([trained_model, optimized_model, evaluated_model, deployment], resources=resources)
    assert loop.success
    version = loop.output_for_node("optimized_model").model_version
    assert registry.alias_version(name, registry.CHAMPION, mlflow_tracking_uri) == version

    result = dg.materialize(
        [audit_report],
        resources=resources,
        run_config={"ops": {"audit_report": {"config": {"model_name": name}}}},
    )
    assert result.success
    meta = result.asset_materializations_for_node("audit_report")[0].metadata
    assert meta["promoted_versions"].value == 1
    folder = records / "flywheel-records" / "reports" / "lineage" / name / f"v{version}"
    assert meta["newest_report"].value == (folder / "lineage.html").resolve().as_uri()
    assert (folder / "lineage.md").as_uri() in meta["reports"].value

    chain = json.loads((folder / "lineage.json").read_text())
    assert chain["dataset"]["commit"] == commit and chain["training"]["status"] == "FINISHED"
    assert chain["gate"]["decision"] == "passed" and "champion" in chain["now"]["aliases"]
    assert chain["rollout"]["flywheel.rollout.decision"] == "promoted"  # the rollout's tag on the version
    assert chain["rollout"]["flywheel.rollout"]["state"] == "promoted"  # its steps, from the model's tag
    [deployed] = chain["deployments"]  # the deployment asset's record, with the run that wrote it
    assert deployed["state"] == "promoted" and deployed["dagster_run_id"] == loop.run_id
    assert loop.run_id in chain["dagster_runs"]
    text = (folder / "lineage.md").read_text()
    assert commit in text and "promoted" in text and loop.run_id[:8] in text
    assert "<html>" in (folder / "lineage.html").read_text()
