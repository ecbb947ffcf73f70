"""A small trained teacher on a synthetic transactions table, and one full optimization run shared by tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipelines import layout
from pipelines.optimize import OptimizationResult, build_and_measure
from pipelines.optimize.data import cpu_context, split_tensors
from pipelines.spec import load_spec
from pipelines.spec.model import DatasetSpec
from pipelines.training.loop import LoopConfig, Tensors, train
from pipelines.training.model import TabularNet
from pipelines.training.preprocess import Preprocessor
from pipelines.training.synthetic import synthetic_table

BASE = load_spec("transactions")
# Small and quick: batch 256 gives the 3.5k training rows enough steps; few latency repeats.
SPEC = BASE.model_copy(
    update={
        "model": BASE.model.model_copy(update={"batch_size": 256, "hidden_dims": [128, 64]}),
        "optimize": BASE.optimize.model_copy(update={"latency_repeats": 5, "student_epochs": 10, "finetune_epochs": 1}),
    }
)


@dataclass
class Trained:
    spec: DatasetSpec
    teacher: TabularNet
    architecture: dict
    prep: Preprocessor
    splits: dict[str, pd.DataFrame]
    data: dict[str, Tensors]


@pytest.fixture(scope="session")
def trained() -> Trained:
    table = synthetic_table(SPEC, 5000, seed=3)
    splits = {name: table[table[layout.SPLIT_COLUMN] == name] for name in layout.SPLITS}
    prep = Preprocessor.fit(SPEC, splits["train"])
    data = split_tensors(SPEC, prep, splits)
    architecture = {
        "numeric_width": prep.numeric_width,
        "cardinalities": prep.cardinalities,
        "hidden_dims": list(SPEC.model.hidden_dims),
        "embedding_dim": SPEC.model.embedding_dim,
        "dropout": SPEC.model.dropout,
    }
    torch.manual_seed(0)
    teacher = TabularNet(**architecture)
    cfg = LoopConfig(epochs=4, batch_size=256, learning_rate=3e-3, weight_decay=1e-5, patience=5, seed=1, bf16=False)
    train(teacher, data["train"], data["validation"], cfg, cpu_context())
    return Trained(SPEC, teacher.eval(), architecture, prep, splits, data)


@pytest.fixture(scope="session")
def optimized(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> OptimizationResult:
    workdir: Path = tmp_path_factory.mktemp("optimize")
    return build_and_measure(
        trained.teacher, trained.architecture, trained.prep, trained.splits, trained.spec, workdir, seed=5
    )
