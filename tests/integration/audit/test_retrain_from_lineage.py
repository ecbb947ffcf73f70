"""`flywheel retrain --from-lineage NAME/V` on the embedded stack: a model trained on a lakeFS commit and
registered as optimization registers it is retrained from what MLflow recorded (commit, spec hash, seed and
parameters) and reproduces the recorded metrics within the CPU tolerance (1e-6, see pipelines/audit/reproduce.py);
with the recorded spec hash no longer matching, the command refuses before training."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipelines import registry
from pipelines.lineage import keys
from tests.integration.training.conftest import FAST, ROOT, torchrun

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = f"retrain-lineage-{uuid.uuid4().hex[:6]}"


def flywheel(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        env=dict(os.environ),  # the session's stack.env values (exported by the stack_env fixture)
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_retrain_from_lineage_reproduces_the_recorded_metrics(
    lake_commit, mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    lake, commit = lake_commit
    out = torchrun(
        f"lakefs://{lake.repository_id}/{commit}/",
        tmp_path / "train",
        args=[*FAST, "--experiment", "retrain-tests", "--model-name", MODEL],
        env={"LAKEFS_REPOSITORY": lake.repository_id, "MLFLOW_TRACKING_URI": mlflow_tracking_uri},
    )
    assert out.returncode == 0, out.output[-3000:]
    trained = out.result["trained_model"]
    version = registry.register(
        trained["logged_model_uri"],
        MODEL,
        {keys.TRAINING_RUN_ID: trained["mlflow_run_id"], keys.LAKEFS_COMMIT: commit},
        mlflow_tracking_uri,
    )

    done = flywheel("retrain", "--from-lineage", f"{MODEL}/{version}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(done.stdout)  # the comparison table (shown with pytest -s)
    assert f"lakefs://{lake.repository_id}/{commit}/" in done.stdout
    table = [line.split() for line in done.stdout.splitlines() if line.startswith(("test_", "validation_"))]
    assert {row[0] for row in table} >= {"test_auc", "validation_auc", "test_log_loss"}
    recorded = MlflowClient(mlflow_tracking_uri).get_run(trained["mlflow_run_id"]).data.metrics
    for metric, old, new, _diff, within in table:
        assert float(old) == pytest.approx(recorded[metric], abs=1e-8)
        assert abs(float(new) - float(old)) <= 1e-6 and within == "yes", done.stdout

    # The spec the version was trained with is no longer today's: refuse, before any training
    MlflowClient(mlflow_tracking_uri).set_tag(trained["mlflow_run_id"], keys.SPEC_HASH, "0000000000000000")
    refused = flywheel("retrain", "--from-lineage", f"{MODEL}/{version}", timeout=120)
    assert refused.returncode == 2 and "--force" in refused.stderr and "changed" in refused.stderr, refused.stderr
    assert "retrained" not in refused.stdout
