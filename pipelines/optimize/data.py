"""The model-table splits as CPU tensors, preprocessed exactly like training (the teacher's fitted Preprocessor)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from pipelines.errors import FlywheelError
from pipelines.spec import DatasetSpec
from pipelines.training.distributed import DistContext
from pipelines.training.loop import Tensors
from pipelines.training.preprocess import Preprocessor

CPU = torch.device("cpu")
NEEDED_SPLITS = ("train", "validation", "test")


def cpu_context() -> DistContext:
    """One process on the CPU: optimization runs where the model will be served, not on the training GPUs."""
    return DistContext(rank=0, world_size=1, local_rank=0, device=CPU, backend="none")


def split_tensors(spec: DatasetSpec, prep: Preprocessor, splits: Mapping[str, pd.DataFrame]) -> dict[str, Tensors]:
    """{train, validation, test} -> Tensors; every split must hold rows (fine-tuning, distillation, measuring)."""
    empty = [name for name in NEEDED_SPLITS if name not in splits or not len(splits[name])]
    if empty:
        raise FlywheelError(
            f"optimization needs rows in the train, validation and test splits; {', '.join(empty)} is empty: "
            "train on a dataset version with more rows (or a spec whose split shares leave every split rows)"
        )
    out = {}
    for name in NEEDED_SPLITS:
        numeric, categorical = prep.transform(splits[name])
        labels = splits[name][spec.label].astype("int64").to_numpy().astype(np.float32)
        out[name] = Tensors.from_arrays(numeric, categorical, labels, CPU)
    return out
