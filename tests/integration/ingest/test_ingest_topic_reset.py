"""A topic recreated under the same name (what a restarted memory-only Tansu broker amounts to) is a new log:
ingestion detects it by its KIP-516 topic id, reads it from the start, records the reset and counts re-sent
events once. Offsets beyond the end of the same topic's log stay an error (that is real data loss)."""

from __future__ import annotations

import json
import logging
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from harness import IngestEnv

from pipelines import layout
from pipelines.ingest.consume import OffsetsError
from pipelines.ingest.lag import kafka_lag
from pipelines.ingest.offsets import offsets_document
from pipelines.ingest.parallel import kafka_consumer_factory
from pipelines.ingest.stages import IngestSettings
from pipelines.lake import MAIN
from pipelines.lakecache import local_copies

pytestmark = pytest.mark.integration


def topic_id(bootstrap: str, topic: str) -> str:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        return str(admin.describe_topics([topic])[0]["topic_id"])
    finally:
        admin.close()


def recreate_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Delete and create the topic again: same name, empty log, offsets from 0, a new topic id."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.delete_topics([topic])
        deadline = time.monotonic() + 30
        while True:  # deletion may take a moment to be visible
            try:
                admin.create_topics([NewTopic(topic, partitions, 1)])
                return
            except TopicAlreadyExistsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        admin.close()


def table_on_main(env: IngestEnv, prefix: str) -> pa.Table:
    return pa.concat_tables(pq.read_table(f) for f in local_copies(env.lake, MAIN, prefix))


def set_main_offsets(env: IngestEnv, document: dict) -> None:
    lake = env.lake
    lake.ensure_repository()
    wap = lake.wap("offsets", prefix="test").open()
    wap.write_json(layout.offsets_path(env.spec), document)
    wap.commit("offsets for the test")
    wap.publish("offsets for the test")


def test_recreated_topic_is_read_from_its_start_once(ingest_env: IngestEnv, caplog: pytest.LogCaptureFixture) -> None:
    env, spec = ingest_env, ingest_env.spec
    topic = spec.topic.name
    env.produce(1500)  # e-000000000 .. e-000001499
    first = env.run(settings=IngestSettings(workers=1))
    old_id = topic_id(env.bootstrap, topic)
    assert first.status == "published" and first.raw.topic_id == old_id and first.raw.topic_reset is None
    assert env.lake.read_json(MAIN, layout.offsets_path(spec))["topic_id"] == old_id

    recreate_topic(env.bootstrap, topic, spec.topic.partitions)
    new_id = topic_id(env.bootstrap, topic)
    assert new_id != old_id
    # the same stream again from its start (1500 identical events) plus 500 new ones, into a log from offset 0
    env.produce(2000)

    lag = kafka_lag(env.lake, kafka_consumer_factory(env.bootstrap), spec)
    assert lag.total == 2000  # everything in the new log, not "end minus main's old offsets"
    assert lag.topic_reset is not None and lag.topic_reset["previous_topic_id"] == old_id

    with caplog.at_level(logging.WARNING, logger="pipelines.ingest.stages"):
        second = env.run()  # the reader processes (the default) get the new topic id too
    assert second.status == "published"
    assert any("was recreated" in r.getMessage() and new_id in r.getMessage() for r in caplog.records)
    assert (second.raw.events, second.raw.topic_id) == (2000, new_id)
    reset = second.raw.topic_reset
    assert reset is not None and (reset["previous_topic_id"], reset["topic_id"]) == (old_id, new_id)
    assert sum(reset["previous_offsets"].values()) == 1500

    # recorded with the data: commit metadata on main and the offsets file (new id, offsets of the new log)
    meta = env.lake.commit_info(MAIN).metadata
    assert json.loads(meta["flywheel.topic_reset"]) == reset and meta["flywheel.topic_id"] == new_id
    recorded = env.lake.read_json(MAIN, layout.offsets_path(spec))
    assert recorded["topic_id"] == new_id and sum(recorded["offsets"].values()) == 2000

    # raw keeps both copies (it is the log of what was read); the model table counts every event once
    assert table_on_main(env, layout.raw_prefix(spec)).num_rows == 3500
    feats = table_on_main(env, layout.features_prefix(spec))
    assert feats.num_rows == 2000 == pc.count_distinct(feats.column(spec.event_id)).as_py()
    assert second.features is not None and second.features.duplicates_dropped == 1500

    # and with the id recorded, the next run has nothing to do
    assert env.run().status == "nothing_new"


def test_offsets_beyond_the_log_of_the_same_topic_still_fail(ingest_env: IngestEnv) -> None:
    env, spec = ingest_env, ingest_env.spec
    topic = spec.topic.name
    env.produce(50)
    beyond = {str(p): 10_000 for p in range(spec.topic.partitions)}

    # the same topic id as recorded: the log lost events main counted -> the strict error, main untouched
    set_main_offsets(env, offsets_document(topic, beyond, topic_id(env.bootstrap, topic)))
    head = env.lake.resolve(MAIN)
    with pytest.raises(OffsetsError, match="same topic id") as same:
        env.run(settings=IngestSettings(workers=1))
    assert "reset-offsets" in str(same.value)
    assert env.lake.resolve(MAIN) == head

    # an offsets file from before topic ids were recorded: unknown id, so also strict (reader processes)
    set_main_offsets(env, beyond)
    head = env.lake.resolve(MAIN)
    with pytest.raises(OffsetsError, match="reset-offsets"):
        env.run()
    assert env.lake.resolve(MAIN) == head
