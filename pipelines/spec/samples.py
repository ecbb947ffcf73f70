"""The one generator of rows from a spec: valid events of the spec's types, within its ranges, whose label
follows a hidden logistic model of the features (so a working trainer learns it: AUC ~0.8-0.9). Deterministic
for a seed. Used by the synthetic model table (training tests, benchmarks) and the test
producers; the transactions simulator (pipelines.devstack.simulate) is the realistic, scenario-driven one.

    columns = sample_columns(spec, 1000, seed=3)    # {field: numpy array}, nulls as None / NaN-free masks
    events = sample_events(spec, 10, seed=3)        # JSON-ready dicts, as a producer would send them
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.spec.model import DatasetSpec

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NULL = None


def sample_columns(
    spec: DatasetSpec,
    n: int,
    *,
    seed: int = 0,
    start: int = 0,
    entities: int | None = None,
    label_rate: float = 0.2,
    null_rate: float = 0.1,
    prefix: str = "e",
    start_ms: int = BASE_MS,
    step_ms: int = 1000,
) -> dict[str, np.ndarray]:
    """n events numbered from `start`: ids `<prefix>-<number>`, timestamps `step_ms` apart (plus jitter),
    keys among `entities` (default n // 5). Nullable features are null at `null_rate` (an object array with
    None for categoricals, a float array with NaN for numerics, and `<name>__null` masks for all)."""
    rng = np.random.default_rng(seed)
    numbers = np.arange(start, start + n)
    cols: dict[str, np.ndarray] = {spec.event_id: np.array([f"{prefix}-{i:09d}" for i in numbers], dtype=object)}
    keys = rng.integers(0, max(entities or n // 5, 1), n)  # drawn without an entity key too: same data per seed
    if spec.entity_key:
        cols[spec.entity_key] = np.array([f"k{k:05d}" for k in keys], dtype=object)
    cols[spec.timestamp] = (start_ms + numbers * step_ms + rng.integers(0, max(step_ms, 1), n)).astype(np.int64)
    score = np.zeros(n)
    for f in spec.numeric_features:
        lo = f.min if f.min is not None else (0.0 if f.max is None else f.max - 1000.0)
        hi = f.max if f.max is not None else lo + 1000.0
        u = rng.random(n)
        values = lo + (hi - lo) * u**3  # skewed towards the low end, like amounts
        score += rng.normal() * (u - 0.5) * 3
        values = np.clip(np.round(values) if f.integer else np.round(values, 2), lo, hi)
        cols[f.name] = values.astype(np.int64) if f.integer else values
        if f.nullable:
            missing = rng.random(n) < null_rate
            score += missing * 0.8
            cols[f"{f.name}__null"] = missing
    for f in spec.categorical_features:
        effects = rng.normal(0, 1.2, len(f.values))
        idx = rng.integers(0, len(f.values), n)
        score += effects[idx]
        cols[f.name] = np.asarray(f.values, dtype=object)[idx]
        if f.nullable:
            cols[f"{f.name}__null"] = rng.random(n) < null_rate / 2
    for f in spec.boolean_features:
        flag = rng.random(n) < 0.5
        score += flag * rng.normal()
        cols[f.name] = flag
        if f.nullable:
            cols[f"{f.name}__null"] = rng.random(n) < null_rate / 2
    if n < 100:  # too few rows to calibrate the hidden model: labels at label_rate, no signal
        cols[spec.label] = (rng.random(n) < label_rate).astype(np.int64)
        return cols
    score = (score - score.mean()) / (score.std() + 1e-9) * 2.0
    offset = np.quantile(score, 1 - label_rate)
    prob = 1 / (1 + np.exp(-(score - offset) * 1.5))
    cols[spec.label] = (rng.random(n) < prob).astype(np.int64)
    return cols


def null_mask(columns: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    return columns.get(f"{name}__null")


def sample_events(spec: DatasetSpec, n: int, **options: Any) -> list[dict[str, Any]]:
    """`sample_columns` as JSON-ready event dicts (Python scalars, None for nulls, the label as a bool)."""
    cols = sample_columns(spec, n, **options)
    fields = spec.event_fields
    events = []
    for i in range(n):
        event: dict[str, Any] = {}
        for name in fields:
            mask = null_mask(cols, name)
            value = cols[name][i]
            event[name] = NULL if mask is not None and mask[i] else value.item() if hasattr(value, "item") else value
        event[spec.label] = bool(event[spec.label])
        events.append(event)
    return events
