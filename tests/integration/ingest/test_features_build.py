"""The Spark model table on a hand-made history: windows strictly before the event, dedup, split, types."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines.features.build import build_model_table, model_table_schema, to_arrow, vocabularies
from pipelines.features.split import split_of
from pipelines.ingest.parse import OFFSET_COLUMN, PARTITION_COLUMN, raw_schema
from pipelines.layout import feature_table_columns
from pipelines.spec import load_spec

pytestmark = pytest.mark.integration
SPEC = load_spec("transactions")
H = 3_600_000


def raw_rows() -> pa.Table:
    # (event_id, customer, hours, amount); e2 and e2b share a timestamp; e2 arrives twice (re-sent)
    events = [
        ("e1", "a", 0, 10.0),
        ("e2", "a", 1, 20.0),
        ("e2b", "a", 1, 5.0),
        ("e3", "a", 30, 40.0),
        ("e4", "b", 2, 7.0),
        ("e2", "a", 1, 999.0),
    ]
    n = len(events)
    cols = {
        "event_id": [e[0] for e in events],
        "customer_id": [e[1] for e in events],
        "event_time": [1_767_225_600_000 + e[2] * H for e in events],
        "is_fraud": [0, 1, 0, 0, 0, 1],
        "amount": [e[3] for e in events],
        "merchant_category": ["grocery", "fuel", "fuel", "travel", "grocery", "fuel"],
        "country": ["US"] * n,
        "channel": ["chip"] * n,
        "device_age_days": [None, 3, 4, None, 1, 3],
        "customer_tenure_days": [1] * n,
        "hour_of_day": [0, 1, 1, 6, 2, 1],
        "distance_from_home_km": [0.5] * n,
        "card_present": [True] * n,
        "is_international": [False] * n,
        PARTITION_COLUMN: [0, 0, 1, 0, 2, 1],
        OFFSET_COLUMN: [0, 1, 0, 2, 0, 9],
    }
    return pa.table(cols).cast(raw_schema(SPEC))


def test_model_table_semantics(spark) -> None:
    table = to_arrow(build_model_table(spark.createDataFrame(raw_rows()), SPEC), SPEC)
    assert table.schema == model_table_schema(SPEC)
    assert table.column_names == feature_table_columns(SPEC)
    rows = {r["event_id"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["e1", "e2", "e2b", "e3", "e4"]  # the re-sent e2 dropped
    assert rows["e2"]["amount"] == 20.0  # first occurrence (lowest partition/offset) kept

    # e1: no history
    assert (rows["e1"]["cust_txn_count_24h"], rows["e1"]["cust_seconds_since_last"]) == (0.0, -1.0)
    # e2 and e2b at the same instant: neither sees the other (strictly before), both see e1
    for eid in ("e2", "e2b"):
        assert rows[eid]["cust_txn_count_24h"] == 1.0
        assert rows[eid]["cust_amount_sum_24h"] == 10.0
        assert rows[eid]["cust_seconds_since_last"] == 3600.0
    # e3 at 30h: the 24h window holds nothing (e2/e2b are 29h back), the 7d max sees 20
    assert rows["e3"]["cust_txn_count_24h"] == 0.0 and rows["e3"]["cust_amount_sum_24h"] == 0.0
    assert rows["e3"]["cust_amount_max_7d"] == 20.0
    assert rows["e3"]["cust_seconds_since_last"] == 29 * 3600.0
    # other entities never mix in
    assert rows["e4"]["cust_txn_count_24h"] == 0.0
    # split by entity hash
    assert {r["split"] for r in rows.values() if r["customer_id"] == "a"} == {split_of("a", SPEC)}

    vocab = vocabularies(table, SPEC)
    assert vocab["merchant_category"][:2] == ["fuel", "grocery"]  # most frequent first
    assert set(vocab["merchant_category"]) == set(SPEC.feature("merchant_category").values)
