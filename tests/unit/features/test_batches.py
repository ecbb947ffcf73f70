"""The batch catalog: what decides a rebuild (the feature definition, not thresholds), the refusal naming the
command, the event-time ranges that let a run skip batches, vocabularies from running counts, specs without
an entity key."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines import layout
from pipelines.features.batches import (
    BatchEntry,
    Catalog,
    FeatureDefinitionChangedError,
    add_counts,
    check_feature_definition,
    feature_hash,
    value_counts,
    vocabularies_from_counts,
)
from pipelines.features.build import model_table_schema, vocabularies
from pipelines.spec import load_spec
from pipelines.spec.model import DatasetSpec

SPEC = load_spec("transactions")


def entry(seq: int, min_ts: int | None, max_ts: int | None, rows: int = 10, spec: DatasetSpec = SPEC) -> BatchEntry:
    return BatchEntry(seq, f"run-{seq}", "h", feature_hash(spec), [], [], "", rows, 1, min_ts, max_ts)


def test_only_the_feature_definition_decides_a_rebuild() -> None:
    stricter = SPEC.model_copy(update={"gates": SPEC.gates.model_copy(update={"min_rows": 5})})
    assert feature_hash(stricter) == feature_hash(SPEC)
    data = SPEC.model_dump(mode="json")
    data["aggregates"][0]["window_hours"] = 12
    assert feature_hash(DatasetSpec.model_validate(data)) != feature_hash(SPEC)
    data = SPEC.model_dump(mode="json")
    data["split"]["salt"] = "other"
    assert feature_hash(DatasetSpec.model_validate(data)) != feature_hash(SPEC)


def test_a_run_refuses_another_feature_definition_and_names_the_command() -> None:
    catalog = Catalog("transactions", [entry(1, 0, 5), entry(2, 6, 9)])
    check_feature_definition(catalog, SPEC)  # same definition: fine
    check_feature_definition(Catalog("transactions"), SPEC)  # empty table: fine
    data = SPEC.model_dump(mode="json")
    data["aggregates"] = data["aggregates"][:2]
    with pytest.raises(FeatureDefinitionChangedError, match="flywheel dataset rebuild") as refused:
        check_feature_definition(catalog, DatasetSpec.model_validate(data))
    assert "batches 1-2" in str(refused.value)


def test_overlapping_batches_by_event_time() -> None:
    catalog = Catalog("t", [entry(1, 0, 100), entry(2, 50, 150), entry(3, 200, 300), entry(4, None, None, rows=0)])
    assert [b.seq for b in catalog.overlapping(120, 400)] == [2, 3]
    assert [b.seq for b in catalog.overlapping(301, 400)] == []
    assert catalog.next_seq == 5 and catalog.rows == 30 and catalog.before(3).rows == 20
    assert Catalog.from_json(catalog.to_json()) == catalog


def test_vocabularies_from_running_counts_equal_the_whole_table() -> None:
    schema = model_table_schema(SPEC)
    names = ["grocery", "fuel", "fuel", "travel", "fuel", "grocery"]
    rows = {f.name: [None] * 6 for f in schema}
    rows["merchant_category"] = names
    rows["country"], rows["channel"] = ["US", "GB", "US", "US", "DE", "GB"], ["chip"] * 6
    table = pa.table({name: rows[name] for name in schema.names}, schema=schema)
    halves = [table.slice(0, 3), table.slice(3)]
    counts: dict = {}
    for half in halves:
        counts = add_counts(counts, value_counts(half, SPEC))
    assert vocabularies_from_counts(counts, SPEC) == vocabularies(table, SPEC)


def test_a_spec_without_entity_key() -> None:
    data = SPEC.model_dump(mode="json")
    data.pop("entity_key")
    data["aggregates"] = []
    spec = DatasetSpec.model_validate(data)
    assert spec.entity_key is None and spec.split_key == spec.event_id
    assert spec.event_fields[:3] == ["event_id", "event_time", "is_fraud"]
    assert "customer_id" not in layout.feature_table_columns(spec)
    assert model_table_schema(spec).names == layout.feature_table_columns(spec)
    assert layout.raw_schema(spec).names[:3] == ["event_id", "event_time", "is_fraud"]
