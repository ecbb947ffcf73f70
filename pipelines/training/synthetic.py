"""A synthetic, learnable model table for any spec: tests, benchmarks and trying training without ingestion.

The label follows a hidden logistic model of the features, so a working trainer reaches a clearly
better-than-chance AUC (~0.8-0.9) within a few epochs. Written exactly as pipelines/layout.py describes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import layout
from pipelines.spec import DatasetSpec
from pipelines.spec.samples import null_mask, sample_columns


def synthetic_table(spec: DatasetSpec, rows: int, seed: int = 0, positive_rate: float = 0.2) -> pd.DataFrame:
    """A model table: the spec's events (pipelines.spec.samples, learnable labels) over 30 days, random
    aggregates and a random split."""
    month_ms = 86_400_000 * 30
    cols = sample_columns(
        spec, rows, seed=seed, label_rate=positive_rate, entities=max(rows // 5, 1), step_ms=month_ms // max(rows, 1)
    )
    rng = np.random.default_rng(seed + 1)
    frame: dict[str, object] = {}
    for name in spec.reserved_fields:
        frame[name] = cols[name]
    for f in spec.features:
        series = pd.Series(cols[f.name])
        mask = null_mask(cols, f.name)
        if mask is not None:
            kind = "Int64" if getattr(f, "integer", False) else "float64" if f in spec.numeric_features else "object"
            series = series.astype(kind).mask(mask)
        frame[f.name] = series
    for a in spec.aggregates:
        series = pd.Series(rng.exponential(10.0, rows))
        if a.function == "seconds_since_last":
            series = series.mask(rng.random(rows) < 0.05)
        frame[a.name] = series
    u = rng.random(rows)
    frame[layout.SPLIT_COLUMN] = np.where(
        u < spec.split.train, "train", np.where(u < spec.split.train + spec.split.validation, "validation", "test")
    )
    return pd.DataFrame(frame)[layout.feature_table_columns(spec)]


def write_dataset(root: Path, spec: DatasetSpec, rows: int, seed: int = 0, parts: int = 2, vocab: bool = False) -> Path:
    """root/features/<spec>/part-0000N.parquet (+ _meta/vocabularies.json when vocab=True); returns root."""
    df = synthetic_table(spec, rows, seed)
    prefix = root / layout.features_prefix(spec)
    prefix.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(np.array_split(np.arange(rows), parts)):
        df.iloc[chunk].to_parquet(prefix / f"part-{i:05d}.parquet", index=False)
    if vocab:
        meta = root / layout.vocabularies_path(spec)
        meta.parent.mkdir(parents=True, exist_ok=True)
        counts = {f.name: df[f.name].value_counts().index.tolist() for f in spec.categorical_features}
        meta.write_text(json.dumps(counts))
    return root
