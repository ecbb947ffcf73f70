"""Column profiles: the reference side of every drift statistic, computed once per champion, and the counts of a
current window on the same bins. Types come from the spec only: numeric features are binned on reference
quantiles and KS-tested, categorical features are counted over the spec's allowed values plus one `unseen`
bucket, booleans over false/true.

    ref = build_profile(reference_table, spec, bins=10, ks_max_samples=100_000)
    cur = column_values(current_table, spec.feature("amount"))     # float64 with NaN for nulls
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.spec.model import BooleanFeature, CategoricalFeature, DatasetSpec, NumericFeature

UNSEEN = "(unseen)"
BOOLEAN_CATEGORIES = ["false", "true"]
SCORE = "prediction_score"  # the column name the score profile goes by in reports and metrics


def as_table(data: Any) -> pa.Table:
    """A pyarrow Table from a Table or a pandas DataFrame."""
    if isinstance(data, pa.Table):
        return data
    return pa.Table.from_pandas(data, preserve_index=False)


def sample_for_ks(values: np.ndarray, cap: int) -> np.ndarray:
    """At most `cap` values, so a KS test sorts a bounded number: every k-th value (a systematic sample, spread
    over the whole window; a view, no copy; a random subset costs a permutation of the whole window)."""
    if len(values) <= cap:
        return values
    return values[:: -(-len(values) // cap)]


@dataclass
class NumericProfile:
    name: str
    edges: np.ndarray  # inner bin edges (reference quantiles); bin i holds edges[i-1] <= x < edges[i]
    counts: np.ndarray  # reference values per bin (len(edges) + 1)
    sorted_sample: np.ndarray  # reference values for KS, sorted, at most ks_max_samples
    nulls: int
    rows: int

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Values per bin (NaN left out): one comparison pass per edge counts the values at or above it, which
        beats a binary search per value for the few edges bins have (measured 1M values: ~15 ms vs ~60 ms)."""
        finite = len(values) - int(np.count_nonzero(np.isnan(values)))
        at_or_above = np.array([np.count_nonzero(values >= e) for e in self.edges], dtype=np.int64)
        return -np.diff(np.concatenate([[finite], at_or_above, [0]]))

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0


@dataclass
class CategoricalProfile:
    name: str
    categories: list[str]  # the spec's allowed values (false/true for booleans); counts[-1] is UNSEEN
    counts: np.ndarray
    nulls: int
    rows: int

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def labels(self) -> list[str]:
        return [*self.categories, UNSEEN]


@dataclass
class Profile:
    """The reference profile of every feature of a spec (and, when scored, of the champion's score)."""

    numeric: dict[str, NumericProfile] = field(default_factory=dict)
    categorical: dict[str, CategoricalProfile] = field(default_factory=dict)
    label_positives: int = 0
    label_rows: int = 0
    score: NumericProfile | None = None
    rows: int = 0

    @property
    def label_rate(self) -> float | None:
        return self.label_positives / self.label_rows if self.label_rows else None


def numeric_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values with NaN for nulls (ints, floats and decimals alike)."""
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def category_codes(column: pa.ChunkedArray | pa.Array, categories: list[str], boolean: bool) -> tuple[np.ndarray, int]:
    """(codes, nulls): codes index `categories` with len(categories) for an unseen value; nulls are left out."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    valid = pc.drop_null(column)
    nulls = len(column) - len(valid)
    if boolean:
        return pc.cast(pc.cast(valid, pa.bool_()), pa.int8()).to_numpy(zero_copy_only=False).astype(np.int64), nulls
    if not pa.types.is_string(valid.type) and not pa.types.is_large_string(valid.type):
        valid = pc.cast(valid, pa.string())
    idx = pc.index_in(valid, value_set=pa.array(categories, pa.string()))
    codes = pc.fill_null(idx, len(categories)).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, nulls


def categories_of(feature: CategoricalFeature | BooleanFeature) -> list[str]:
    return list(feature.values) if isinstance(feature, CategoricalFeature) else list(BOOLEAN_CATEGORIES)


def category_counts(table: pa.Table, feature: CategoricalFeature | BooleanFeature) -> tuple[np.ndarray, int]:
    categories = categories_of(feature)
    codes, nulls = category_codes(table.column(feature.name), categories, isinstance(feature, BooleanFeature))
    return np.bincount(codes, minlength=len(categories) + 1), nulls


def numeric_profile(name: str, values: np.ndarray, bins: int, ks_max_samples: int) -> NumericProfile:
    finite = values[~np.isnan(values)]
    if len(finite):
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        edges = np.array([], dtype=np.float64)
    profile = NumericProfile(
        name=name,
        edges=edges,
        counts=np.zeros(len(edges) + 1, dtype=np.int64),
        sorted_sample=np.sort(sample_for_ks(finite, ks_max_samples)),
        nulls=int(len(values) - len(finite)),
        rows=len(values),
    )
    profile.counts = profile.bin_counts(finite)
    return profile


def build_profile(
    data: Any, spec: DatasetSpec, *, bins: int, ks_max_samples: int, scores: np.ndarray | None = None
) -> Profile:
    """The reference profile of `data` (the champion's training rows) for every feature the spec lists."""
    table = as_table(data)
    profile = Profile(rows=table.num_rows)
    for f in spec.features:
        if isinstance(f, NumericFeature):
            values = numeric_values(table.column(f.name))
            profile.numeric[f.name] = numeric_profile(f.name, values, bins, ks_max_samples)
        else:
            counts, nulls = category_counts(table, f)
            profile.categorical[f.name] = CategoricalProfile(f.name, categories_of(f), counts, nulls, table.num_rows)
    if spec.label in table.column_names:
        labels = numeric_values(table.column(spec.label))
        labels = labels[~np.isnan(labels)]
        profile.label_positives, profile.label_rows = int((labels > 0).sum()), len(labels)
    if scores is not None:
        profile.score = numeric_profile(SCORE, np.asarray(scores, np.float64), bins, ks_max_samples)
    return profile


# ---- persistence: one .npz per reference (arrays) with the scalars as JSON inside ----------------------------


def to_arrays(profile: Profile) -> dict[str, np.ndarray]:
    import json

    meta: dict[str, Any] = {
        "rows": profile.rows,
        "label_positives": profile.label_positives,
        "label_rows": profile.label_rows,
        "numeric": {n: {"nulls": p.nulls, "rows": p.rows} for n, p in profile.numeric.items()},
        "categorical": {
            n: {"categories": p.categories, "nulls": p.nulls, "rows": p.rows} for n, p in profile.categorical.items()
        },
        "score": None if profile.score is None else {"nulls": profile.score.nulls, "rows": profile.score.rows},
    }
    arrays: dict[str, np.ndarray] = {"__meta__": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    numerics = dict(profile.numeric)
    if profile.score is not None:
        numerics["__score__"] = profile.score
    for name, p in numerics.items():
        arrays[f"n:{name}:edges"] = p.edges
        arrays[f"n:{name}:counts"] = p.counts
        arrays[f"n:{name}:sorted"] = p.sorted_sample
    for name, c in profile.categorical.items():
        arrays[f"c:{name}:counts"] = c.counts
    return arrays


def from_arrays(arrays: Any) -> Profile:
    import json

    meta = json.loads(bytes(arrays["__meta__"]).decode())

    def numeric(key: str, name: str, m: dict[str, int]) -> NumericProfile:
        return NumericProfile(
            name,
            arrays[f"n:{key}:edges"],
            arrays[f"n:{key}:counts"],
            arrays[f"n:{key}:sorted"],
            int(m["nulls"]),
            int(m["rows"]),
        )

    profile = Profile(
        rows=int(meta["rows"]), label_positives=int(meta["label_positives"]), label_rows=int(meta["label_rows"])
    )
    for name, m in meta["numeric"].items():
        profile.numeric[name] = numeric(name, name, m)
    for name, m in meta["categorical"].items():
        profile.categorical[name] = CategoricalProfile(
            name, list(m["categories"]), arrays[f"c:{name}:counts"], int(m["nulls"]), int(m["rows"])
        )
    if meta["score"] is not None:
        profile.score = numeric("__score__", SCORE, meta["score"])
    return profile
