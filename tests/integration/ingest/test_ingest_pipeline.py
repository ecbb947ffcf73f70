"""Ingestion end to end on the real embedded services: Tansu Kafka -> Spark -> GX -> embedded lakeFS."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from harness import IngestEnv, make_env

from pipelines import layout
from pipelines.cli import main as flywheel
from pipelines.ingest.stages import IngestSettings, ValidationFailedError
from pipelines.lake import MAIN, list_branches
from pipelines.lakecache import local_copies
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN
from pipelines.spec import load_spec

pytestmark = pytest.mark.integration


def read_table(env: IngestEnv, ref: str, prefix: str) -> pa.Table:
    files = local_copies(env.lake, ref, prefix)
    return pa.concat_tables(pq.read_table(f) for f in files) if files else pa.table({})


def snapshot(env: IngestEnv) -> tuple[str, list[tuple[str, str]]]:
    """main's commit id and (path, checksum) of every object on it."""
    lake = env.lake
    return lake.resolve(MAIN), [(o.path, o.checksum) for o in lake.list_objects(MAIN)]


def test_happy_path_quarantine_and_nothing_new(ingest_env: IngestEnv, capsys: pytest.CaptureFixture[str]) -> None:
    env, spec = ingest_env, ingest_env.spec
    counts = env.produce(3000, malformed_every=100)  # exactly 1% malformed
    assert counts == {"valid": 2970, "malformed": 30}

    outcome = env.run(settings=IngestSettings(workers=1))  # the in-process reader; later runs use processes
    assert outcome.status == "published"
    raw, published = outcome.raw, outcome.published
    assert (raw.events, raw.valid, raw.quarantined) == (3000, 2970, 30)
    lake = env.lake
    head = lake.resolve(MAIN)
    assert published.commit == head
    assert lake.resolve(published.tag) == head

    # valid events on main, exactly once, with their Kafka provenance
    raw_t = read_table(env, MAIN, layout.raw_prefix(spec))
    assert raw_t.num_rows == 2970
    assert pc.count_distinct(raw_t.column(spec.event_id)).as_py() == 2970
    assert {PARTITION_COLUMN, OFFSET_COLUMN} <= set(raw_t.column_names)

    # the malformed ones quarantined with reason, raw bytes and position
    q = read_table(env, MAIN, layout.quarantine_prefix(spec))
    assert q.num_rows == 30
    assert all(q.column("reason").to_pylist())
    assert set(q.column("topic").to_pylist()) == {spec.topic.name}
    reasons = " | ".join(q.column("reason").to_pylist())
    for fragment in ("not valid JSON", f"{spec.timestamp} is missing", f"{spec.label} must be"):
        assert fragment in reasons
    positions = set(zip(q.column("partition").to_pylist(), q.column("offset").to_pylist(), strict=True))
    assert len(positions) == 30
    assert not positions & set(
        zip(raw_t.column(PARTITION_COLUMN).to_pylist(), raw_t.column(OFFSET_COLUMN).to_pylist(), strict=True)
    )
    assert all(b for b in q.column("raw").to_pylist())

    # the model table: exact layout columns, one split per entity, vocabularies
    feats = read_table(env, MAIN, layout.features_prefix(spec))
    assert feats.column_names == layout.feature_table_columns(spec)
    assert feats.num_rows == 2970
    assert set(feats.column(layout.SPLIT_COLUMN).to_pylist()) == set(layout.SPLITS)
    vocab = lake.read_json(MAIN, layout.vocabularies_path(spec))
    assert set(vocab) == {f.name for f in spec.categorical_features}

    # offsets committed with the data: the true end of every partition
    recorded = lake.read_json(MAIN, layout.offsets_path(spec))
    offsets = recorded["offsets"]
    assert sum(offsets.values()) == 3000
    assert recorded["topic"] == spec.topic.name and recorded["topic_id"]  # Tansu reports KIP-516 topic ids

    # commit metadata, as `flywheel dataset show` reports it
    meta = lake.commit_info(MAIN).metadata
    assert meta["flywheel.valid"] == "2970" and meta["flywheel.quarantined"] == "30"
    assert json.loads(meta["flywheel.offsets"]) == offsets
    assert json.loads(meta["flywheel.validation_summary"])["success"] is True
    assert flywheel(["dataset", "show", "--spec", str(env.spec_path), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["commit"] == head and shown["tag"] == published.tag and shown["quarantined"] == 30
    assert shown["rows"] == 2970 and shown["validation"]["success"] is True
    assert outcome.validation.data_docs and outcome.validation.data_docs.startswith("file://")

    # a rerun with nothing new: no branch, no commit
    before = snapshot(env)
    again = env.run()
    assert again.status == "nothing_new" and again.raw.branch is None
    assert snapshot(env) == before
    assert list_branches(lake, "ingest-") == []

    # the next batch appends: history accumulates across runs, still exactly once
    env.produce(1200, start=3000)
    third = env.run()
    assert third.status == "published" and third.published.version == published.version + 1
    feats = read_table(env, MAIN, layout.features_prefix(spec))
    assert feats.num_rows == 2970 + 1200
    assert pc.count_distinct(feats.column(spec.event_id)).as_py() == feats.num_rows


def test_failed_expectations_leave_main_untouched(ingest_env: IngestEnv) -> None:
    env = ingest_env
    env.produce(1500)
    assert env.run().status == "published"
    before = snapshot(env)

    env.produce(1500, start=1500, label_rate=1.0)  # every new event is fraud: the label rate gate fails
    with pytest.raises(ValidationFailedError) as failure:
        env.run(run_id="bad-batch")
    message = str(failure.value)
    assert "ingest-bad-batch" in message and "main is untouched" in message
    assert "expect_column_mean_to_be_between" in message

    assert snapshot(env) == before  # same commit, same objects
    lake = env.lake
    assert "ingest-bad-batch" in list_branches(lake, "ingest-")
    kept = lake.commit_info("ingest-bad-batch").metadata
    assert kept["flywheel.validation"] == "failed"
    # the next run reads the same events again from main's offsets (nothing was lost)
    with pytest.raises(ValidationFailedError):
        env.run(run_id="bad-batch-again")
    assert snapshot(env) == before


def test_user_spec_for_another_stream(
    tmp_path, kafka_bootstrap: str, lakefs_env: dict[str, str], spark, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec written by a user (sensor readings, integer keys, no categorical nulls) ingests unchanged."""
    spec_file = tmp_path / "sensors.yaml"
    spec_file.write_text(
        """
name: sensor_faults
topic: {name: sensor-readings, partitions: 2}
event_id: reading_id
entity_key: sensor_id
timestamp: read_at
label: faulty
features:
  - {name: temperature_c, type: numeric, min: -40, max: 150}
  - {name: vibration_mm_s, type: numeric, min: 0, max: 100}
  - {name: rpm, type: numeric, integer: true, min: 0, max: 20000}
  - {name: site, type: categorical, values: [north, south, east, west]}
  - {name: maintenance_mode, type: boolean}
aggregates:
  - {name: temp_mean_6h, function: mean, column: temperature_c, window_hours: 6}
  - {name: readings_1h, function: count, window_hours: 1}
  - {name: secs_since_reading, function: seconds_since_last}
split: {train: 0.6, validation: 0.2, test: 0.2, salt: sensors}
gates: {min_rows: 500, label_rate_min: 0.01, label_rate_max: 0.4, max_quarantine_fraction: 0.1}
"""
    )
    env = make_env(tmp_path, load_spec(spec_file), kafka_bootstrap, lakefs_env, spark)
    monkeypatch.setenv("LAKEFS_REPOSITORY", env.repository)
    env.produce(1200, malformed_every=50)
    outcome = env.run()
    assert outcome.status == "published"
    assert (outcome.raw.valid, outcome.raw.quarantined) == (1176, 24)
    feats = read_table(env, MAIN, layout.features_prefix(env.spec))
    assert feats.column_names == layout.feature_table_columns(env.spec)
    assert feats.schema.field("temp_mean_6h").type == pa.float64()
    assert feats.num_rows == 1176


def test_a_failed_model_table_upload_waits_for_the_gate_and_raises_its_own_error(
    ingest_env: IngestEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.ingest import runner
    from pipelines.lake import WriteAuditPublish

    env = ingest_env
    env.produce(1500)
    gates: list[runner._GateAlongside] = []
    start = runner._GateAlongside.start

    def keep(self: runner._GateAlongside, table: object, catalog: object) -> None:
        gates.append(self)
        start(self, table, catalog)

    upload = WriteAuditPublish.upload_file

    def failing(self: WriteAuditPublish, path: str, source: object, content_type: str | None = None) -> None:
        if path.startswith(layout.features_prefix(env.spec)):
            raise OSError(f"injected upload failure of {path}")
        upload(self, path, source, content_type)

    monkeypatch.setattr(runner._GateAlongside, "start", keep)
    monkeypatch.setattr(WriteAuditPublish, "upload_file", failing)
    with pytest.raises(OSError, match="injected upload failure"):
        env.run(run_id="failed-upload")
    assert len(gates) == 1 and gates[0].future is not None
    assert gates[0].future.done()  # awaited (or cancelled) before the error left the run
    assert not env.lake.list_paths(MAIN, layout.features_prefix(env.spec))  # nothing reached main
