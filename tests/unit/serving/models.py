"""Small in-process models for the serving tests: the spec's real preprocessing, a TabularNet with seeded
weights, wrapped as serving's LoadedModel (no MLflow), and an in-test registry source."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pipelines.serving.models import LoadedModel, RegistryView
from pipelines.spec import load_spec
from pipelines.training.model import TabularNet
from pipelines.training.preprocess import Preprocessor
from pipelines.training.synthetic import synthetic_table

SPEC = load_spec("transactions")


def make_model(version: str, seed: int = 0, constant: float | None = None) -> LoadedModel:
    """A model with seeded random weights; `constant` makes every score that value (to tell arms apart)."""
    table = synthetic_table(SPEC, 500, seed=1)
    prep = Preprocessor.fit(SPEC, table)
    torch.manual_seed(seed)
    net = TabularNet(prep.numeric_width, prep.cardinalities, [8]).eval()

    def predict(numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        if constant is not None:
            return np.full(len(numeric), constant)
        with torch.inference_mode():
            return net.predict_proba(torch.from_numpy(numeric), torch.from_numpy(categorical)).numpy()

    return LoadedModel("transactions", version, "test", prep, predict)


@dataclass
class InTestRegistry:
    """An in-test RegistrySource: the view is set by the test."""

    view: RegistryView = field(default_factory=lambda: RegistryView(None, None, None))

    def read(self) -> RegistryView:
        return self.view
