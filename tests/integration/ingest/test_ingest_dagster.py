"""The ingestion assets under Dagster with the real resources, and the Kafka-lag sensor."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context, materialize
from harness import IngestEnv

from assets.ingest import features, raw_events, validated_dataset
from pipelines.lake import MAIN, list_branches
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource
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
    for name in mats:
        assert {"lakefs_commit", "lakefs_uri"} <= set(mats[name]), name
    assert {"offset_ranges", "quarantined", "valid", "events", "branch"} <= set(mats["raw_events"])
    published = mats["validated_dataset"]
    assert {"dataset_tag", "offsets", "validation", "data_docs", "rows", "quarantined"} <= set(published)
    head = env.lake.resolve(MAIN)
    assert published["lakefs_commit"].value == head
    assert published["lakefs_uri"].value.startswith(f"lakefs://{env.repository}/{head}/")
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("passes_expectations", True)]
    meta = env.lake.commit_info(MAIN).metadata
    assert meta["flywheel.run_id"] == result.run_id

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


def test_ingest_job_starts_spark_while_reading(ingest_env: IngestEnv, monkeypatch) -> None:
    """ingest_job (in-process executor): raw_events starts the session that features then takes."""
    from dagster import Definitions

    from jobs import ingest_job
    from pipelines import spark as spark_mod

    env = ingest_env
    env.produce(1200)
    taken: list[object] = []
    real_take = spark_mod.take_started

    def spy(timeout_s: float = 600.0):
        taken.append(real_take(timeout_s))
        return taken[-1]

    monkeypatch.setattr("resources.spark.take_started", spy)
    defs = Definitions(assets=[raw_events, features, validated_dataset], jobs=[ingest_job], resources=resources(env))
    result = defs.resolve_job_def("ingest_job").execute_in_process(
        run_config={"ops": {"raw_events": {"config": {"spec": str(env.spec_path)}}}},
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    assert len(taken) == 1 and taken[0] is not None  # the session raw_events started, not a new one
    assert env.lake.commit_info(MAIN).metadata["flywheel.run_id"] == result.run_id
