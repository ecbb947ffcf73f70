"""The GX suite comes from the spec; dataset checks catch leaks and quarantine excess."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.features.build import model_table_schema
from pipelines.features.split import split_of
from pipelines.layout import SPLIT_COLUMN, feature_table_columns
from pipelines.quality import dataset_checks, expectation_configs, validate_model_table
from pipelines.spec import load_spec

SPEC = load_spec("transactions")


def by_type(expectations) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in expectations:
        out.setdefault(e.expectation_type, []).append(e.configuration.kwargs)
    return out


def test_suite_is_generated_from_the_spec() -> None:
    kinds = by_type(expectation_configs(SPEC))
    assert kinds["expect_table_columns_to_match_ordered_list"][0]["column_list"] == feature_table_columns(SPEC)
    assert {"column": "event_id"} in [{"column": k["column"]} for k in kinds["expect_column_values_to_be_unique"]]
    between = {
        k["column"]: (k.get("min_value"), k.get("max_value")) for k in kinds["expect_column_values_to_be_between"]
    }
    assert between["amount"] == (0.01, 50000)
    assert between["hour_of_day"] == (0, 23)
    in_set = {k["column"]: k["value_set"] for k in kinds["expect_column_values_to_be_in_set"]}
    assert in_set["channel"] == SPEC.feature("channel").values
    assert in_set[SPLIT_COLUMN] == ["train", "validation", "test"]
    not_null = {k["column"] for k in kinds["expect_column_values_to_not_be_null"]}
    assert "device_age_days" not in not_null and "amount" in not_null
    mean = kinds["expect_column_mean_to_be_between"][0]
    assert (mean["min_value"], mean["max_value"]) == (SPEC.gates.label_rate_min, SPEC.gates.label_rate_max)
    # the row-count minimum is the dataset's (a batch may be small): a dataset check, not a GX expectation
    assert "expect_table_row_count_to_be_between" not in kinds


def table(n: int, *, fraud_every: int = 20, leak: bool = False) -> pa.Table:
    keys = [f"c{i % 50}" for i in range(n)]
    splits = [split_of(k, SPEC) for k in keys]
    if leak:
        splits[0] = next(s for s in ("train", "test") if s != splits[0])
    cols = {
        "event_id": [f"e{i}" for i in range(n)],
        "customer_id": keys,
        "event_time": [1_767_225_600_000 + i for i in range(n)],
        "is_fraud": [int(i % fraud_every == 0) for i in range(n)],
        "amount": [10.0] * n,
        "merchant_category": ["grocery"] * n,
        "country": ["US"] * n,
        "channel": ["chip"] * n,
        "device_age_days": [None] * n,
        "customer_tenure_days": [5] * n,
        "hour_of_day": [3] * n,
        "distance_from_home_km": [1.0] * n,
        "card_present": [True] * n,
        "is_international": [False] * n,
        "cust_txn_count_24h": [0.0] * n,
        "cust_amount_sum_24h": [0.0] * n,
        "cust_amount_max_7d": [0.0] * n,
        "cust_seconds_since_last": [-1.0] * n,
        SPLIT_COLUMN: splits,
    }
    return pa.table(cols).cast(model_table_schema(SPEC))


def test_dataset_checks_catch_leaks_and_quarantine() -> None:
    checks = dataset_checks(table(1200), SPEC, valid_in_batch=1200, quarantined_in_batch=12)
    ok = {c.name: c.success for c in checks}
    assert ok == {
        "row_count": True,
        "dataset_label_rate": True,
        "quarantine_fraction": True,
        "no_entity_in_two_splits": True,
        "split_is_deterministic_hash": True,
    }
    bad = {
        c.name: c.success
        for c in dataset_checks(table(1200, leak=True), SPEC, valid_in_batch=100, quarantined_in_batch=50)
    }
    assert bad == {
        "row_count": True,
        "dataset_label_rate": True,
        "quarantine_fraction": False,
        "no_entity_in_two_splits": False,
        "split_is_deterministic_hash": False,
    }


def test_dataset_checks_count_the_earlier_batches_from_their_summaries() -> None:
    """A small batch passes the row minimum on top of the earlier batches' rows; the dataset's label rate
    counts the earlier batches' labels, so a batch cannot hide a dataset drifting out of bounds."""
    small = table(100)  # 5 positive labels

    def checks(**before: int) -> dict[str, object]:
        found = dataset_checks(small, SPEC, valid_in_batch=100, quarantined_in_batch=0, **before)
        return {c.name: (c.success, c.observed) for c in found}

    assert checks()["row_count"] == (False, 100)
    assert checks(rows_before=950, labels_before=40)["row_count"] == (True, 1050)
    assert checks(rows_before=950, labels_before=40)["dataset_label_rate"] == (True, round(45 / 1050, 6))
    assert checks(rows_before=900, labels_before=400)["dataset_label_rate"][0] is False  # 405 / 1000 > 0.3


def test_gx_validation_passes_and_fails_with_reasons(tmp_path: Path) -> None:
    def validate(t: pa.Table, name: str):
        return validate_model_table(
            t, SPEC, valid_in_batch=t.num_rows, quarantined_in_batch=0, gx_dir=tmp_path, run_name=name
        )

    good = validate(table(1200), "ok")
    assert good.success, good.failures
    assert good.data_docs and Path(good.data_docs.removeprefix("file://")).exists()
    bad = validate(table(1200, fraud_every=1), "bad")
    assert not bad.success
    assert any("expect_column_mean_to_be_between[is_fraud]" in f for f in bad.failures)
    small = validate(table(10), "small")
    assert any(f.startswith("row_count: observed 10") for f in small.failures)


def test_stored_gx_suite_is_replaced_when_the_spec_changes(tmp_path: Path) -> None:
    """Runs reuse the stored suite and checkpoint only while the spec generates the same expectations."""
    t = table(1200)
    first = validate_model_table(t, SPEC, valid_in_batch=1200, quarantined_in_batch=0, gx_dir=tmp_path, run_name="a")
    assert first.success, first.failures
    stricter = SPEC.model_copy(update={"gates": SPEC.gates.model_copy(update={"min_rows": 5000})})
    second = validate_model_table(
        t, stricter, valid_in_batch=1200, quarantined_in_batch=0, gx_dir=tmp_path, run_name="b"
    )
    assert any(f.startswith("row_count:") for f in second.failures)
    # out-of-range values in a (nullable) integer column are still found value by value
    device = pa.array([5000] + [None] * 1199, pa.int64())
    bad = t.set_column(t.schema.get_field_index("device_age_days"), "device_age_days", device)
    third = validate_model_table(bad, SPEC, valid_in_batch=1200, quarantined_in_batch=0, gx_dir=tmp_path, run_name="c")
    assert any("expect_column_values_to_be_between[device_age_days]" in f for f in third.failures)


def test_gate_skips_only_gx_batch_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate skips GX's whole-frame fingerprint (a batch marker, ~1.3s per 1M rows) and nothing else: the
    same expectations with the same results as a run that computes it; GX's threshold is restored after."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    from pipelines.quality import validate as validate_module

    bad = table(1200, fraud_every=1)
    threshold = engine.HASH_THRESHOLD  # the name this relies on (a GX upgrade that drops it shows here)
    skipped, _ = validate_module.run_gx(bad, SPEC, tmp_path / "skipped", "skipped")
    assert threshold == engine.HASH_THRESHOLD
    assert "pandas_data_fingerprint" not in skipped.meta["batch_markers"]

    monkeypatch.setattr(validate_module, "_no_batch_fingerprint", contextlib.nullcontext)
    full, _ = validate_module.run_gx(bad, SPEC, tmp_path / "full", "full")
    assert "pandas_data_fingerprint" in full.meta["batch_markers"]

    def outcomes(result) -> list[tuple[str, str, bool, object]]:
        return [
            (r.expectation_config.type, str(r.expectation_config.kwargs.get("column")), r.success, r.result)
            for r in result.results
        ]

    assert not skipped.success and outcomes(skipped) == outcomes(full)
