"""Stage records: JSON round trips, clear errors for what cannot be read, URIs at immutable commits."""

from __future__ import annotations

import json

import pytest

from pipelines.lineage import keys
from pipelines.lineage.records import (
    RECORD_TYPES,
    DatasetVersion,
    RecordError,
    TrainedModel,
    record_from_json,
    record_to_json,
)

VERSION = DatasetVersion(
    repository="flywheel",
    commit="c" * 64,
    tag="dataset-transactions-3",
    version=3,
    spec="transactions",
    features_path="features/transactions/",
    metadata={keys.RUN_ID: "r1"},
)


def test_every_record_kind_round_trips_through_json() -> None:
    assert record_from_json(record_to_json(VERSION)) == VERSION
    model = TrainedModel("m", "", "run1", "flywheel", "c" * 64, "h", {"test_auc": 0.9})
    assert record_from_json(record_to_json(model)) == model
    assert set(RECORD_TYPES) == {
        "raw_batch", "feature_batch", "dataset_version", "trained_model", "optimized_model", "evaluation", "deployment",
        "drift_report",
    }  # fmt: skip


def test_records_name_data_by_commit_and_models_by_mlflow_uri() -> None:
    assert VERSION.features_uri == f"lakefs://flywheel/{'c' * 64}/features/transactions/"
    assert TrainedModel("m", "4", "run1", "flywheel", "c" * 64).model_uri == "models:/m/4"
    assert TrainedModel("m", "", "run1", "flywheel", "c" * 64).model_uri == "runs:/run1/model"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not a Flywheel record"),
        (json.dumps({"kind": "pickle", "schema": 1, "record": {}}), "unknown record kind 'pickle'"),
        (json.dumps({"kind": "dataset_version", "schema": 99, "record": {}}), "newer than this code's"),
        (
            json.dumps({"kind": "dataset_version", "schema": 1, "record": {**VERSION.to_dict(), "extra": 1}}),
            r"no field\(s\) \['extra'\]",
        ),
    ],
)
def test_what_cannot_be_read_says_why(text: str, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        record_from_json(text, where="x.json")


def test_only_records_are_stored() -> None:
    with pytest.raises(RecordError, match="only stage records"):
        record_to_json({"commit": "abc"})  # type: ignore[arg-type]


def test_lineage_keys_are_unique_and_prefixed() -> None:
    names = keys.all_keys()
    assert len(names) == len(set(names)) and all(n.startswith("flywheel.") for n in names)
    assert set(keys.TRAINING_TAGS) <= set(names)
