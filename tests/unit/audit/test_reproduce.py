"""The reproduction checks without servers: reference parsing, code and spec checks, the entry arguments built
from a record, and the metric comparison against the tolerance."""

import itertools
import math

import pytest

from pipelines.audit import reproduce
from pipelines.audit.reproduce import Record, ReproduceError


def record(**over) -> Record:
    values = dict(
        name="m", version="3", training_run_id="r1", repository="flywheel", commit="c0ffee", spec="transactions",
        spec_hash="abc", code_version="1" * 40,
        params={"epochs": "3", "batch_size": "256", "learning_rate": "0.001", "seed": "7", "monitor": "auc",
                "world_size": "2", "bf16": "False"},
        metrics={"test_auc": 0.9, "validation_auc": 0.8, "train_samples_per_second": 1e5, "best_epoch": 2.0},
        hardware="CPU x2",
    )  # fmt: skip
    values.update(over)
    return Record(**values)


def test_parse_ref() -> None:
    assert reproduce.parse_ref("transactions-model/12") == ("transactions-model", "12")
    for bad in ("model", "model/", "/3", "model/v3"):
        with pytest.raises(ReproduceError, match="NAME/VERSION"):
            reproduce.parse_ref(bad)


def test_code_check_warns_on_another_sha_or_a_dirty_tree() -> None:
    r = record()
    assert reproduce.check_code(r, "1" * 40) is None
    assert "differs" in reproduce.check_code(r, "2" * 40)
    assert "uncommitted" in reproduce.check_code(r, "1" * 40 + "-dirty")
    assert "unknown" in reproduce.check_code(r, "unknown")


def test_spec_check_refuses_unless_forced() -> None:
    assert reproduce.check_spec(record(), "abc", force=False) is None
    with pytest.raises(ReproduceError, match="--force"):
        reproduce.check_spec(record(), "def", force=False)
    assert "--force" in reproduce.check_spec(record(), "def", force=True)


def test_training_args_pin_the_recorded_settings() -> None:
    args = reproduce.training_args(record())
    pairs = dict(itertools.pairwise(args))  # each flag -> its value
    assert pairs["--data"] == "lakefs://flywheel/c0ffee/" and pairs["--spec"] == "transactions"
    assert (pairs["--epochs"], pairs["--batch-size"], pairs["--learning-rate"]) == ("3", "256", "0.001")
    assert (pairs["--seed"], pairs["--early-stopping-metric"], pairs["--device"]) == ("7", "auc", "cpu")
    assert "--no-mlflow" in args
    assert reproduce.training_args(record(hardware="cuda:0 NVIDIA H200"))[-3:] == ["--device", "cuda", "--no-bf16"]


def test_compare_skips_timing_and_judges_against_the_tolerance() -> None:
    r = record()
    same = reproduce.compare(r.metrics, {**r.metrics, "train_samples_per_second": 3.0}, 1e-6)
    assert [row[0] for row in same.rows] == ["best_epoch", "test_auc", "validation_auc"] and same.within
    off = reproduce.compare(r.metrics, {**r.metrics, "test_auc": 0.9 + 2e-6}, 1e-6)
    assert not off.within and "NO" in off.table()
    nan = reproduce.compare({"test_auc": math.nan}, {"test_auc": 0.5}, 1e-6)
    assert not nan.within
    assert not reproduce.compare({}, {"test_auc": 0.5}, 1e-6).within  # nothing to compare is not a reproduction
