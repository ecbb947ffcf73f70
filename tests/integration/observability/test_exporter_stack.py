"""`flywheel exporter` against the embedded stack, as the Deployment runs it (a process of its own, /metrics over
HTTP): the ingestion lag is read from real Kafka and lakeFS through pipelines/ingest/lag.py, the gate decisions
from the MLflow server's version tags, the rows from a stage record."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pipelines.devstack.net import free_port, http_ok, wait_until
from pipelines.lineage import keys
from pipelines.lineage.records import DatasetVersion, record_to_json
from pipelines.observability.exporter import RECORDS_FOLDER
from pipelines.registry import DECISION_TAG
from pipelines.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingest"))

from harness import make_env  # the ingestion tests' helper: a fresh topic and repository


def values(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_exporter_process_reads_kafka_lakefs_mlflow_and_records(
    tmp_path: Path,
    stack_env: dict[str, str],
    kafka_bootstrap: str,
    lakefs_env: dict[str, str],
    mlflow_tracking_uri: str,
) -> None:
    from mlflow import MlflowClient

    env = make_env(tmp_path, load_spec("transactions"), kafka_bootstrap, lakefs_env, spark=None)
    env.produce(300)
    model = f"exporter-test-{env.repository}"
    client = MlflowClient(tracking_uri=mlflow_tracking_uri)
    client.create_registered_model(model)
    run = client.create_run(experiment_id="0")  # the server accepts a run's artifact as a version's source
    for decision in ("rejected", "passed", "passed"):
        version = client.create_model_version(model, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        client.set_model_version_tag(model, version.version, DECISION_TAG, decision)
    records = tmp_path / "records"
    (records / RECORDS_FOLDER).mkdir(parents=True)
    published = DatasetVersion(repository=env.repository, commit="c", tag="t", version=1, spec=env.spec.name,
                               features_path="f/", metadata={keys.ROWS: "280"})  # fmt: skip
    (records / RECORDS_FOLDER / "validated_dataset.json").write_text(record_to_json(published))

    port = free_port()
    process_env = {**os.environ, **stack_env, **env.env, "FLYWHEEL_SPEC": str(env.spec_path)}
    process_env.pop("FLYWHEEL_RECORDS_DIR", None)
    cmd = [sys.executable, "-m", "pipelines.cli", "exporter", "--port", str(port), "--timeout", "30"]
    process = subprocess.Popen([*cmd, "--records-dir", str(records)], env=process_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: http_ok(f"{base}/healthz"), 60, alive=lambda: process.poll() is None)
        with urllib.request.urlopen(f"{base}/metrics", timeout=90) as resp:
            got = values(resp.read().decode())
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    sources = {dict(labels)["source"]: v for (name, labels), v in got.items() if name == "flywheel_exporter_source_up"}
    assert sources == {"records": 1, "drift": 1, "mlflow": 1, "kafka": 1}, output
    # nothing ingested yet: everything produced is lag
    assert got[("flywheel_ingest_lag_events", (("topic", env.spec.topic.name),))] == 300
    assert got[("flywheel_gate_decisions_total", (("decision", "passed"), ("model", model)))] == 2
    assert got[("flywheel_gate_decisions_total", (("decision", "rejected"), ("model", model)))] == 1
    assert got[("flywheel_ingest_rows", (("dataset", env.spec.name),))] == 280
