"""The ingestion assets under Dagster with the real resources, and the Kafka-lag sensor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context, materialize
from harness import IngestEnv

from assets.ingest import features, raw_events, validated_dataset
from pipelines.lake import MAIN, list_branches
from pipelines.lineage import keys
from pipelines.lineage.records import DatasetVersion
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource
from resources.records_io import RecordIOManager
from resources.spark import SparkResource
from sensors.kafka_lag import kafka_lag_sensor

pytestmark = pytest.mark.integration


def resources(env: IngestEnv) -> dict:
    return {
        "kafka": KafkaResource(bootstrap_servers=env.bootstrap),
        "lakefs": LakeFSResource(
            endpoint=env.env["LAKEFS_ENDPOINT"],
            access_key_id=env.env["LAKEFS_ACCESS_KEY_ID"],
            secret_access_key=env.env["LAKEFS_SECRET_ACCESS_KEY"],
            repository=env.repository,
        ),
        "spark": SparkResource(master="local[2]", shuffle_partitions=4),
        "io_manager": RecordIOManager(),  # records as JSON in the instance's storage, as in both profiles
    }


def run(env: IngestEnv, instance: DagsterInstance):
    return materialize(
        [raw_events, features, validated_dataset],
        resources=resources(env),
        run_config={"ops": {"raw_events": {"config": {"spec": str(env.spec_path)}}}},
        instance=instance,
        raise_on_error=False,
    )


def materializations(result) -> dict:
    events = result.get_asset_materialization_events()
    return {e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata for e in events}


def test_ingest_job_assets_publish_gate_and_nothing_new(ingest_env: IngestEnv) -> None:
    env = ingest_env
    instance = DagsterInstance.ephemeral()
    env.produce(1500, malformed_every=100)

    result = run(env, instance)
    assert result.success
    mats = materializations(result)
    assert set(mats) == {"raw_events", "features", "validated_dataset"}
    for name in mats:  # the same lineage keys as the lakeFS commits and MLflow tags
        assert {keys.LAKEFS_COMMIT, keys.DATASET_URI} <= set(mats[name]), name
        assert mats[name][keys.RUN_ID].value == result.run_id
    assert {keys.OFFSET_RANGES, "quarantined", "valid", "events", keys.LAKEFS_BRANCH} <= set(mats["raw_events"])
    published = mats["validated_dataset"]
    assert {keys.DATASET_TAG, keys.OFFSETS, keys.VALIDATION_SUMMARY, keys.DATA_DOCS, "rows", "quarantined"} <= set(
        published
    )
    head = env.lake.resolve(MAIN)
    assert published[keys.LAKEFS_COMMIT].value == head
    assert published[keys.DATASET_URI].value.startswith(f"lakefs://{env.repository}/{head}/")
    record = result.output_for_node("validated_dataset")
    assert isinstance(record, DatasetVersion) and record.commit == head and record.version >= 1
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("passes_expectations", True)]
    meta = env.lake.commit_info(MAIN).metadata
    assert meta[keys.RUN_ID] == result.run_id and meta[keys.DATASET_TAG] == record.tag

    # nothing new: the run succeeds, says so, and commits nothing
    again = run(env, instance)
    assert again.success
    assert again.get_asset_materialization_events() == []
    assert env.lake.resolve(MAIN) == head

    # a batch that breaks the gate: the run fails naming the kept branch; main is untouched
    env.produce(1500, start=1500, label_rate=1.0)
    bad = run(env, instance)
    assert not bad.success
    failed = bad.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in failed] == [("passes_expectations", False)]
    branch = f"ingest-{bad.run_id}"
    assert branch in failed[0].description and "main is untouched" in failed[0].description
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert branch in str(failure.step_failure_data.user_failure_data.description)
    assert env.lake.resolve(MAIN) == head
    assert branch in list_branches(env.lake, "ingest-")


def test_kafka_lag_sensor_uses_true_end_offsets(ingest_env: IngestEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    env = ingest_env
    env.produce(1200)
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), resources=resources(env))

    monkeypatch.setenv("FLYWHEEL_INGEST_LAG_THRESHOLD", "1200")
    first = kafka_lag_sensor(context)
    assert isinstance(first, RunRequest)
    assert first.tags["flywheel/lag"] == "1200"  # every produced event, not ListOffsets' short count
    second = kafka_lag_sensor(context)
    assert second.run_key == first.run_key  # same main commit and offsets: no duplicate run

    monkeypatch.setenv("FLYWHEEL_INGEST_LAG_THRESHOLD", "1201")
    assert isinstance(kafka_lag_sensor(context), SkipReason)

    env.run()
    monkeypatch.setenv("FLYWHEEL_INGEST_LAG_THRESHOLD", "1")
    skipped = kafka_lag_sensor(context)
    assert isinstance(skipped, SkipReason) and "lag 0" in skipped.skip_message
    env.produce(5, start=1200)
    later = kafka_lag_sensor(context)
    assert isinstance(later, RunRequest) and later.run_key != first.run_key


def test_ingest_job_without_a_spark_server_runs_in_process_and_says_so(ingest_env: IngestEnv, caplog) -> None:
    """No SPARK_REMOTE (a bare `dagster job execute` without `flywheel up`): ingest_job still publishes, on an
    in-process session, and its log says which Spark it used and how to get the warm one."""
    from dagster import Definitions

    from jobs import ingest_job

    env = ingest_env
    env.produce(1200)
    defs = Definitions(assets=[raw_events, features, validated_dataset], jobs=[ingest_job], resources=resources(env))
    with caplog.at_level("INFO", logger="pipelines.spark"):
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            run_config={"ops": {"raw_events": {"config": {"spec": str(env.spec_path)}}}},
            instance=DagsterInstance.ephemeral(),
        )
    assert result.success
    assert "no Spark Connect server (SPARK_REMOTE is not set): starting an in-process Spark session" in caplog.text
    assert env.lake.commit_info(MAIN).metadata["flywheel.run_id"] == result.run_id


ROOT = Path(__file__).resolve().parents[3]


def test_a_downstream_step_in_a_fresh_process_reads_its_inputs(ingest_env: IngestEnv, tmp_path: Path) -> None:
    """raw_events and features in one `dagster asset materialize`, validated_dataset alone in another process:
    the second reads its inputs back from the JSON records the first stored (no pickles, no shared memory)."""
    env = ingest_env
    env.produce(1500, malformed_every=100)
    home = tmp_path / "dagster-home"
    home.mkdir()
    run_env = {
        **os.environ,
        **env.env,
        "DAGSTER_HOME": str(home),
        "FLYWHEEL_SPEC": str(env.spec_path),
        "LAKEFS_REPOSITORY": env.repository,
        "SPARK_MASTER": "local[2]",
    }

    def materialize_in_new_process(selection: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "definitions", "--select", selection],
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    env.lake.ensure_repository()
    main_before = env.lake.resolve(MAIN)
    materialize_in_new_process("raw_events,features")
    records = home / "storage" / "flywheel-records"
    stored = {p.name: json.loads(p.read_text()) for p in records.glob("*.json")}
    assert {name: doc["kind"] for name, doc in stored.items()} == {
        "raw_events.json": "raw_batch",
        "features.json": "feature_batch",
    }
    raw, feats = stored["raw_events.json"]["record"], stored["features.json"]["record"]
    assert feats["branch"] == raw["branch"] and feats["commit"] != raw["commit"]  # features read raw's record
    assert env.lake.resolve(MAIN) == main_before  # nothing published by the first process

    materialize_in_new_process("validated_dataset")
    head = env.lake.resolve(MAIN)
    assert head != main_before
    published = json.loads((records / "validated_dataset.json").read_text())
    assert published["kind"] == "dataset_version" and published["record"]["commit"] == head
    assert env.lake.commit_info(MAIN).metadata[keys.RUN_ID] != ""
    assert published["record"]["metadata"][keys.VALID] == str(stored["raw_events.json"]["record"]["valid"])
