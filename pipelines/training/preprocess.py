"""Turning raw model-table columns into tensors: fitted on the train split only, serialized with the model.

Numeric inputs (numeric features, booleans as 0/1, aggregates): log1p where the value can't be negative
(amounts, counts and durations are heavy-tailed), then standardized with the train split's mean/std.
Nulls are imputed with the mean (0 after standardizing) and, where the spec allows nulls or the
aggregate is undefined for a first event, a 0/1 null-indicator input is added.
Categorical inputs: index 0 is "unknown or null"; known values are 1..V in vocabulary order
(features/<spec>/_meta/vocabularies.json when ingestion wrote one, else the spec's allowed values).

The fitted state is plain JSON, stored next to the weights, so serving needs nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from pipelines.spec import DatasetSpec

UNKNOWN_INDEX = 0


@dataclass
class NumericStats:
    name: str
    log1p: bool
    mean: float
    std: float
    null_indicator: bool


@dataclass
class Preprocessor:
    numeric: list[NumericStats] = field(default_factory=list)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)

    @property
    def numeric_columns(self) -> list[str]:
        return [s.name for s in self.numeric]

    @property
    def categorical_columns(self) -> list[str]:
        return list(self.vocabularies)

    @property
    def input_columns(self) -> list[str]:
        return [*self.numeric_columns, *self.categorical_columns]

    @property
    def numeric_width(self) -> int:
        """Numeric inputs plus null indicators: the width of the dense part of the model input."""
        return len(self.numeric) + sum(s.null_indicator for s in self.numeric)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes: the vocabulary plus index 0 for unknown/null."""
        return [len(v) + 1 for v in self.vocabularies.values()]

    @classmethod
    def fit(
        cls, spec: DatasetSpec, train: pd.DataFrame, vocabularies: dict[str, list[str]] | None = None
    ) -> Preprocessor:
        nullable = {f.name for f in spec.features if f.nullable}
        nullable |= {a.name for a in spec.aggregates if a.function == "seconds_since_last"}
        non_negative = {f.name for f in spec.numeric_features if f.min is not None and f.min >= 0}
        non_negative |= {a.name for a in spec.aggregates}
        numeric = []
        for name in spec.model_numeric_inputs:
            values = _as_float(train[name])
            use_log = name in non_negative
            if use_log:
                values = np.log1p(np.clip(values, 0, None))
            finite = values[np.isfinite(values)]
            mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size else 1.0
            numeric.append(NumericStats(name, use_log, mean, std if std > 1e-12 else 1.0, name in nullable))
        vocab = {}
        for feature in spec.categorical_features:
            known = (vocabularies or {}).get(feature.name) or list(feature.values)
            vocab[feature.name] = [str(v) for v in known]
        return cls(numeric=numeric, vocabularies=vocab)

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(numeric float32 [N, numeric_width], categorical int64 [N, len(vocabularies)])."""
        n = len(df)
        dense = np.zeros((n, self.numeric_width), dtype=np.float32)
        extra = len(self.numeric)
        for i, s in enumerate(self.numeric):
            dense[:, i], missing = scale_numeric(_as_float(df[s.name]), s)
            if s.null_indicator:
                dense[:, extra] = missing
                extra += 1
        cats = np.zeros((n, len(self.vocabularies)), dtype=np.int64)
        for j, (name, values) in enumerate(self.vocabularies.items()):
            index = {v: k + 1 for k, v in enumerate(values)}
            cats[:, j] = df[name].map(index).fillna(UNKNOWN_INDEX).to_numpy(dtype=np.int64)
        return dense, cats

    def to_dict(self) -> dict:
        return {"numeric": [asdict(s) for s in self.numeric], "vocabularies": self.vocabularies}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessor:
        return cls(
            numeric=[NumericStats(**s) for s in data["numeric"]],
            vocabularies={k: list(v) for k, v in data["vocabularies"].items()},
        )


def scale_numeric(values: np.ndarray, s: NumericStats) -> tuple[np.ndarray, np.ndarray]:
    """One numeric input as the model sees it (log1p if asked, standardized, clipped to +-20, 0 where missing)
    and its missing mask; the one definition training and serving (pipelines.serving.features) share."""
    if s.log1p:
        with np.errstate(invalid="ignore"):
            values = np.log1p(np.clip(values, 0, None))
    missing = ~np.isfinite(values)
    scaled = (values - s.mean) / s.std
    scaled[missing] = 0.0
    return np.clip(scaled, -20.0, 20.0), missing


def _as_float(column: pd.Series) -> np.ndarray:
    """Floats with NaN for nulls, from float, nullable-int or bool columns."""
    try:
        return column.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
