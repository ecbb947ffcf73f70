"""Incremental ingestion on the real stack (Tansu Kafka, embedded lakeFS, Spark, GX): each run appends its own
batch, reads only the history it needs, drops ids earlier runs published, never rewrites earlier files; the
table equals one full build of the same batches; a failed gate leaves main with the earlier batches exactly;
a changed feature definition is refused until `flywheel dataset rebuild`."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from harness import IngestEnv, make_env
from streams import send, stream

from pipelines import layout
from pipelines.cli import main as flywheel
from pipelines.features.batches import Catalog, FeatureDefinitionChangedError
from pipelines.features.build import read_raw
from pipelines.features.rebuild import full_model_table
from pipelines.ingest.stages import ValidationFailedError
from pipelines.lake import MAIN
from pipelines.lakecache import local_copies_of
from pipelines.lineage import keys
from pipelines.spec import load_spec
from pipelines.spec.model import DatasetSpec

pytestmark = pytest.mark.integration


def small_batch_spec() -> DatasetSpec:
    """The transactions spec with gates for batches of ~150 events."""
    spec = load_spec("transactions")
    gates = spec.gates.model_copy(update={"min_rows": 100, "label_rate_min": 0.01, "label_rate_max": 0.6})
    return spec.model_copy(update={"gates": gates})


@pytest.fixture
def env(tmp_path, kafka_bootstrap: str, lakefs_env: dict[str, str], spark, monkeypatch) -> IngestEnv:
    made = make_env(tmp_path, small_batch_spec(), kafka_bootstrap, lakefs_env, spark)
    monkeypatch.setenv("LAKEFS_REPOSITORY", made.repository)
    monkeypatch.setenv("FLYWHEEL_SPEC", str(made.spec_path))
    return made


def catalog_at(env: IngestEnv, ref: str) -> Catalog:
    return Catalog.from_json(env.lake.read_json(ref, layout.batches_path(env.spec)))


def batch_tables(env: IngestEnv, ref: str, spec: DatasetSpec | None = None) -> list[pa.Table]:
    """The model table at ref, one table per batch, from the batch files the catalog names."""
    spec = spec or env.spec
    out = []
    for b in catalog_at(env, ref).batches:
        files = local_copies_of(env.lake, ref, b.feature_paths)
        out.append(pa.concat_tables(pq.read_table(f) for f in files))
    return out


def raw_batches(env: IngestEnv, ref: str, spec: DatasetSpec | None = None) -> list[pa.Table]:
    spec = spec or env.spec
    return [read_raw(local_copies_of(env.lake, ref, b.raw_paths), spec) for b in catalog_at(env, ref).batches]


def run_with(env: IngestEnv, spec: DatasetSpec, run_id: str):
    from pipelines.ingest.runner import kafka_consumer_factory, run_ingest

    factory = kafka_consumer_factory(env.bootstrap)
    return run_ingest(spec, lake=env.lake, consumer_factory=factory, spark=env.spark, run_id=run_id)


def objects(env: IngestEnv, ref: str) -> dict[str, str]:
    return {o.path: o.checksum for o in env.lake.list_objects(ref)}


def test_runs_append_batches_equal_to_one_full_build(env: IngestEnv, capsys) -> None:
    spec, lake = env.spec, env.lake
    batches = stream(spec, batches=4)
    seen: dict[str, str] = {}
    for n, raw in enumerate(batches, start=1):
        send(env.bootstrap, spec, raw)
        outcome = env.run(run_id=f"batch-{n}")
        assert outcome.status == "published", outcome.validation and outcome.validation.failures
        feats = outcome.features
        assert feats.batch == n and feats.rows == 150
        # re-sends of the previous batch (10) were dropped across runs, 3 within the batch, and counted
        assert feats.duplicates_across_batches == (10 if n >= 3 else 0)
        assert feats.duplicates_dropped == (13 if n >= 3 else 0)
        meta = lake.commit_info(MAIN).metadata
        assert json.loads(meta[keys.DUPLICATES]) == {
            "in_batch": 3 if n >= 3 else 0,
            "across_batches": feats.duplicates_across_batches,
        }
        assert (meta[keys.BATCH], meta[keys.NEW_ROWS], meta[keys.ROWS]) == (str(n), "150", str(150 * n))
        # append, never rewrite: every object of the previous version is unchanged; new model-table
        # objects are exactly this batch's files
        now = objects(env, MAIN)
        assert all(
            now.get(path) == checksum
            for path, checksum in seen.items()
            if path.startswith("features/") and "_meta" not in path
        )
        table_prefix = layout.features_prefix(spec)
        added = sorted(p for p in set(now) - set(seen) if p.startswith(table_prefix) and "/_meta/" not in p)
        assert added == sorted(feats.paths)
        if n > 1:  # history came only from overlapping earlier batches
            assert 0 < feats.history_rows < 150 * (n - 1)
        seen = now

    # the incremental table equals one full build of the same batches, row for row
    incremental = batch_tables(env, MAIN)
    full = full_model_table(env.spark, spec, raw_batches(env, MAIN))
    for b, (one, other) in enumerate(zip(incremental, full, strict=True)):
        assert one.equals(other), f"batch {b + 1} differs from the full build"
    ids = pa.concat_tables(incremental).column(spec.event_id)
    assert len(ids) == pc.count_distinct(ids).as_py() == 600

    # nothing new: no branch, no commit
    head = lake.resolve(MAIN)
    assert env.run().status == "nothing_new" and lake.resolve(MAIN) == head

    # `flywheel dataset rebuild` publishes the same rows as a new version through the gate
    version = int(lake.commit_info(MAIN).metadata[keys.DATASET_VERSION])
    assert flywheel(["dataset", "rebuild", "--spec", str(env.spec_path), "--run-id", "verify"]) == 0
    assert "rebuilt" in capsys.readouterr().out
    after = lake.commit_info(MAIN).metadata
    assert int(after[keys.DATASET_VERSION]) == version + 1 and after[keys.VALIDATION] == "passed"
    for one, other in zip(incremental, batch_tables(env, MAIN), strict=True):
        assert one.equals(other)
    assert catalog_at(env, MAIN).batches[2].duplicates_across_batches == 10


def test_failed_gate_on_the_third_batch_leaves_main_with_the_first_two(env: IngestEnv, tmp_path, capsys) -> None:
    spec, lake = env.spec, env.lake
    batches = stream(spec, batches=3)
    for n, raw in enumerate(batches[:2], start=1):
        send(env.bootstrap, spec, raw)
        assert env.run(run_id=f"good-{n}").status == "published"
    before = objects(env, MAIN)
    head = lake.resolve(MAIN)
    third = batches[2].set_column(
        batches[2].schema.get_field_index(spec.label), spec.label, pa.array([1] * batches[2].num_rows, pa.int32())
    )
    send(env.bootstrap, spec, third)  # every event fraud: the batch's label rate fails its gate
    with pytest.raises(ValidationFailedError, match="main is untouched"):
        env.run(run_id="bad-3")
    assert lake.resolve(MAIN) == head and objects(env, MAIN) == before
    assert [b.seq for b in catalog_at(env, MAIN).batches] == [1, 2]
    tables = batch_tables(env, MAIN)
    assert [t.num_rows for t in tables] == [150, 150]
    assert catalog_at(env, "ingest-bad-3").batches[-1].seq == 3  # kept for inspection on its branch
    capsys.readouterr()
    assert flywheel(["dataset", "show", "--spec", str(env.spec_path), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["batch"], shown["new_rows"], shown["rows"]) == ("2", 150, 300)

    # a rebuild goes through the same gate: one that fails it leaves main as it was
    data = spec.model_dump(mode="json")
    data["gates"]["label_rate_max"] = 0.02
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(data, sort_keys=False))
    assert flywheel(["dataset", "rebuild", "--spec", str(strict), "--run-id", "strict"]) == 1
    assert "failed the gate" in capsys.readouterr().err
    assert lake.resolve(MAIN) == head and objects(env, MAIN) == before


def test_changed_feature_definition_is_refused_until_rebuild(env: IngestEnv, tmp_path) -> None:
    spec, lake = env.spec, env.lake
    batches = stream(spec, batches=3)
    for n, raw in enumerate(batches[:2], start=1):
        send(env.bootstrap, spec, raw)
        assert env.run(run_id=f"v1-{n}").status == "published"

    # the same stream, a 12h count window instead of 24h: the rows mean something else now
    data = spec.model_dump(mode="json")
    data["aggregates"][0]["window_hours"] = 12
    changed_path = tmp_path / "changed.yaml"
    changed_path.write_text(yaml.safe_dump(data, sort_keys=False))
    changed = load_spec(changed_path)
    send(env.bootstrap, spec, batches[2])
    head = lake.resolve(MAIN)
    with pytest.raises(FeatureDefinitionChangedError, match="flywheel dataset rebuild") as refused:
        run_with(env, changed, "v2-refused")
    assert "feature definition" in str(refused.value)
    assert lake.resolve(MAIN) == head

    assert flywheel(["dataset", "rebuild", "--spec", str(changed_path), "--run-id", "to-v2"]) == 0
    rebuilt = batch_tables(env, MAIN, changed)
    assert rebuilt == full_model_table(env.spark, changed, raw_batches(env, MAIN, changed))
    assert rebuilt[1].column("cust_txn_count_24h") != batch_tables(env, head)[1].column("cust_txn_count_24h")
    assert {b.feature_hash for b in catalog_at(env, MAIN).batches} == {catalog_at(env, MAIN).batches[0].feature_hash}
    # and the new batch is appended with the new definition
    outcome = run_with(env, changed, "v2-3")
    assert outcome.status == "published" and outcome.features.batch == 3
