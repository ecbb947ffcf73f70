"""The training building blocks without any service: preprocessing, model, checkpoints, data URIs, CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines import layout
from pipelines.errors import FlywheelError
from pipelines.spec import load_spec
from pipelines.training.checkpoint import CheckpointStore
from pipelines.training.data import LocalStore, parse_location, read_model_table, read_vocabularies
from pipelines.training.entry import build_parser
from pipelines.training.model import TabularNet, count_parameters
from pipelines.training.preprocess import Preprocessor
from pipelines.training.synthetic import synthetic_table, write_dataset

SPEC = load_spec("transactions")


def test_preprocessor_fits_on_train_and_handles_unknowns_and_nulls() -> None:
    df = synthetic_table(SPEC, 500, seed=1)
    train = df[df[layout.SPLIT_COLUMN] == "train"]
    prep = Preprocessor.fit(SPEC, train)
    numeric, _ = prep.transform(train)
    # standardized on the train split (device_age_days has nulls: imputed to 0 after scaling)
    assert np.allclose(numeric[:, : len(prep.numeric)].mean(axis=0), 0, atol=0.2)
    nullable = [s.name for s in prep.numeric if s.null_indicator]
    assert "device_age_days" in nullable and "cust_seconds_since_last" in nullable
    assert numeric.shape[1] == prep.numeric_width == len(SPEC.model_numeric_inputs) + len(nullable)
    assert prep.cardinalities == [len(f.values) + 1 for f in SPEC.categorical_features]

    odd = train.head(3).copy()
    odd["merchant_category"] = ["grocery", "never-seen", None]
    odd["device_age_days"] = pd.array([None, 5, None], dtype="Int64")
    num, cat = prep.transform(odd)
    col = prep.categorical_columns.index("merchant_category")
    assert cat[:, col].tolist() == [1, 0, 0]  # index 0 = unknown or null
    indicator = len(prep.numeric) + nullable.index("device_age_days")
    assert num[:, indicator].tolist() == [1.0, 0.0, 1.0]
    assert Preprocessor.from_dict(prep.to_dict()) == prep  # what the registered model carries


def test_vocabularies_json_orders_the_categories(tmp_path: Path) -> None:
    root = write_dataset(tmp_path, SPEC, 300, vocab=True)
    store = LocalStore(root)
    vocab = read_vocabularies(store, SPEC)
    table = read_model_table(store, SPEC)
    prep = Preprocessor.fit(SPEC, table[table[layout.SPLIT_COLUMN] == "train"], vocab)
    assert prep.vocabularies["country"] == vocab["country"]
    assert list(table[SPEC.event_id]) == sorted(table[SPEC.event_id])  # sorted, whatever the parts


def test_model_width_and_depth_come_from_the_spec() -> None:
    small = TabularNet.from_spec(SPEC.model, numeric_width=12, cardinalities=[11, 15, 6])
    logits = small(torch.randn(7, 12), torch.randint(0, 6, (7, 3)))
    assert logits.shape == (7,)
    assert count_parameters(small) < 20_000
    big_settings = SPEC.model.model_copy(update={"hidden_dims": [4096, 4096, 2048], "embedding_dim": 64})
    big = TabularNet.from_spec(big_settings, numeric_width=12, cardinalities=[11, 15, 6])
    assert count_parameters(big) > 25_000_000  # GPU-sized when the spec asks for it
    probs = small.predict_proba(torch.randn(4, 12), torch.zeros(4, 3, dtype=torch.long))
    assert ((probs > 0) & (probs < 1)).all()


def test_checkpoints_are_atomic_pruned_and_a_corrupt_one_is_skipped(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    for epoch in (1, 2, 3):
        store.save(epoch, {"epoch": epoch, "w": torch.ones(2) * epoch})
    assert store.epochs() == [2, 3]
    (tmp_path / "epoch-00003.pt").write_bytes(b"truncated")
    assert store.load_latest()["epoch"] == 2
    assert not list(tmp_path.glob("*.tmp"))
    store.write_value("mlflow_run_id", "abc")
    assert store.read_value("mlflow_run_id") == "abc"


def test_training_reads_commits_never_branches(tmp_path: Path) -> None:
    loc = parse_location("lakefs://flywheel/" + "a" * 64 + "/")
    assert (loc.repository, loc.commit) == ("flywheel", "a" * 64)
    assert loc.table_uri(SPEC) == f"lakefs://flywheel/{'a' * 64}/features/transactions/"
    with pytest.raises(FlywheelError, match="not a commit id"):
        parse_location("lakefs://flywheel/main/")
    with pytest.raises(FlywheelError, match="no such local dataset"):
        parse_location(str(tmp_path / "missing"))


def test_missing_model_table_says_to_run_ingest_first(tmp_path: Path) -> None:
    with pytest.raises(FlywheelError, match="run ingest_job first"):
        read_model_table(LocalStore(tmp_path), SPEC)


def test_code_version_is_the_git_sha_or_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.training.tracking import code_version

    monkeypatch.delenv("FLYWHEEL_CODE_VERSION", raising=False)
    assert code_version() != "unknown"  # this checkout
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))  # no git here (an image without .git)
    assert code_version() == "unknown"
    monkeypatch.setenv("FLYWHEEL_CODE_VERSION", "abc123")  # what an image build sets
    assert code_version() == "abc123"


def test_entry_options_survive_torchruns_own_parser() -> None:
    """torchrun's argparse matches abbreviations of its own options anywhere on the command line (e.g. a
    `--monitor` flag after `-m module` is taken for `--monitor-interval`), so no entry option may be a
    prefix of a torchrun option."""
    from torch.distributed.run import get_args_parser

    torchrun_options = {
        opt for action in get_args_parser()._actions for opt in action.option_strings if opt.startswith("--")
    }
    ours = {opt for action in build_parser()._actions for opt in action.option_strings if opt.startswith("--")}
    clashes = {o for o in ours for t in torchrun_options if t.startswith(o) and o != "--help"}
    assert not clashes
    assert isinstance(build_parser().parse_args(["--data", "x"]), argparse.Namespace)
