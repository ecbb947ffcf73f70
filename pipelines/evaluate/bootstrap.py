"""Paired bootstrap confidence intervals for the gate's metrics, vectorized with NumPy.

Paired: every resample draws one multiset of test rows and scores BOTH models on it, so the interval of the
difference (challenger - champion) reflects only how the models differ on the same rows, not the noise of
drawing different rows for each (far narrower than combining two separate intervals).

How it is fast: a resample is a vector of row counts (how often each row was drawn), so every metric is a
weighted metric of the original rows with those counts as weights. The scores are sorted once per model; for a
block of resamples the counts matrix (block x rows) is permuted into that order and every metric is a few
array operations over the block:
- AUC: weighted Mann-Whitney over groups of tied scores, sum_g pos_g * (neg below g + neg_g / 2) / (P * N);
- PR-AUC: average precision (as sklearn's average_precision_score), sum_g pos_g / P * precision at g;
- log loss, Brier: a matrix-vector product of the counts with each row's loss;
- ECE: the gate's 10 equal-width bins (pipelines.training.metrics.expected_calibration_error), which for a
  resample of n rows is sum_b |sum of (p - y) over the rows in bin b| / n, a counts x (rows x bins) product.

Resamples with a single class: AUC and PR-AUC are undefined on them. Such resamples are REDRAWN (with the same
seeded generator, so the result stays deterministic) until every resample holds both classes, and the number
redrawn is reported; all metrics use the same accepted resamples, so they stay paired. The intervals are thus
conditional on both classes being present, which matters only for test splits with a handful of positives
(where the gate's verdict is weak anyway); a split with fewer than 2 rows of either class is refused.

Intervals are percentile intervals: [q((1-c)/2), q((1+c)/2)] of the resampled values at confidence c.
ECE is biased upward under resampling (duplicated rows add binning noise, and |.| turns noise into error), so
its interval can sit above the full-split estimate: it is reported for context; the gate judges the estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

METRICS: tuple[str, ...] = ("auc", "pr_auc", "log_loss", "brier", "ece")
HIGHER_IS_BETTER: Mapping[str, bool] = {"auc": True, "pr_auc": True, "log_loss": False, "brier": False, "ece": False}
DEFAULT_SEED = 20_240_917  # fixed: the same data and scores always give the same intervals and gate decision
ECE_BINS = 10
EPS = 1e-7  # probabilities are clipped like pipelines.training.metrics.classification_metrics
_BLOCK_ELEMENTS = 2_000_000  # resamples x rows per block: bounds memory (a few float64 copies of ~16 MB)
_MAX_REDRAW_ROUNDS = 1_000


@dataclass(frozen=True)
class Interval:
    """A point estimate on the full test split and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class BootstrapResult:
    confidence: float
    samples: int  # resamples behind every interval
    redrawn: int  # resamples redrawn because they held a single class
    seed: int
    challenger: dict[str, Interval]
    champion: dict[str, Interval] | None  # None: no champion
    difference: dict[str, Interval] | None  # challenger - champion, on the same resamples

    def as_dict(self) -> dict[str, object]:
        def table(d: dict[str, Interval] | None) -> dict[str, dict[str, float]] | None:
            return None if d is None else {k: v.as_dict() for k, v in d.items()}

        return {
            "confidence": self.confidence,
            "samples": self.samples,
            "redrawn": self.redrawn,
            "seed": self.seed,
            "challenger": table(self.challenger),
            "champion": table(self.champion),
            "difference": table(self.difference),
        }


def check_inputs(labels: np.ndarray, **scores: np.ndarray | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels as 0/1 int64 and each model's scores as clipped float64; refuses what cannot be judged."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-d array, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1: map the spec's label to 0/1 before evaluating")
    y = y.astype(np.int64)
    positives = int(y.sum())
    if positives < 2 or y.size - positives < 2:
        raise ValueError(
            f"the test split has {positives} positive and {y.size - positives} negative rows: at least 2 of each "
            "are needed to judge a model (ingest more data before evaluating)"
        )
    out: dict[str, np.ndarray] = {}
    for name, s in scores.items():
        if s is None:
            continue
        p = np.asarray(s, dtype=np.float64)
        if p.shape != y.shape:
            raise ValueError(f"{name} scores have shape {p.shape} but the labels have {y.shape}: score every test row")
        if not np.isfinite(p).all():
            raise ValueError(f"{name} scores contain {int((~np.isfinite(p)).sum())} NaN/inf values: fix the model")
        out[name] = np.clip(p, EPS, 1 - EPS)
    return y, out


class _Sorted:
    """One model's scores sorted once (ascending), with the groups of tied scores."""

    def __init__(self, labels: np.ndarray, probs: np.ndarray) -> None:
        self.order = np.argsort(probs, kind="stable")
        s = probs[self.order]
        self.y = labels[self.order].astype(np.float64)
        self.starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each tie group
        self.loss_log = -(labels * np.log(probs) + (1 - labels) * np.log1p(-probs))
        self.loss_brier = (probs - labels) ** 2
        bins = np.clip(np.digitize(probs, np.linspace(0, 1, ECE_BINS + 1)[1:-1]), 0, ECE_BINS - 1)
        gap = np.zeros((probs.size, ECE_BINS))
        gap[np.arange(probs.size), bins] = probs - labels
        self.ece_gap = gap  # rows x bins: (p - y) in the row's bin

    def metrics(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Each metric for every resample (row of `counts`, each summing to the number of rows)."""
        n = counts.sum(axis=1)
        w = counts[:, self.order]
        pos_w = w * self.y
        pos_g = np.add.reduceat(pos_w, self.starts, axis=1)
        neg_g = np.add.reduceat(w, self.starts, axis=1) - pos_g
        P, N = pos_g.sum(axis=1), neg_g.sum(axis=1)
        neg_below = np.cumsum(neg_g, axis=1) - neg_g
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1) / (P * N)
            # average precision walks thresholds from the highest score down: flip the groups
            tp = np.cumsum(pos_g[:, ::-1], axis=1)
            fp = np.cumsum(neg_g[:, ::-1], axis=1)
            precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
            pr_auc = (pos_g[:, ::-1] * precision).sum(axis=1) / P
        return {
            "auc": auc,
            "pr_auc": pr_auc,
            "log_loss": counts @ self.loss_log / n,
            "brier": counts @ self.loss_brier / n,
            "ece": np.abs(counts @ self.ece_gap).sum(axis=1) / n,
        }


def point_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The five metrics on the full split (all weights 1), computed exactly as the resamples are."""
    y, p = check_inputs(labels, model=probs)
    values = _Sorted(y, p["model"]).metrics(np.ones((1, y.size)))
    return {k: float(v[0]) for k, v in values.items()}


def resample_counts(n: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """`samples` bootstrap resamples of n rows as row counts (samples x n, float64)."""
    idx = rng.integers(0, n, size=(samples, n))
    idx += np.arange(samples)[:, None] * n
    return np.bincount(idx.ravel(), minlength=samples * n).reshape(samples, n).astype(np.float64)


def _valid_counts(labels: np.ndarray, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Resamples holding both classes; single-class ones are redrawn (see the module docstring)."""
    counts = resample_counts(labels.size, samples, rng)
    redrawn = 0
    for _ in range(_MAX_REDRAW_ROUNDS):
        pos = counts @ labels
        bad = np.flatnonzero((pos == 0) | (pos == labels.size))
        if bad.size == 0:
            return counts, redrawn
        redrawn += int(bad.size)
        counts[bad] = resample_counts(labels.size, int(bad.size), rng)
    raise ValueError(
        f"bootstrap resamples kept holding a single class after {_MAX_REDRAW_ROUNDS} redraws "
        f"({int(labels.sum())} positives in {labels.size} rows): the test split is too small to judge"
    )


def paired_bootstrap(
    labels: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None = None,
    *,
    samples: int = 500,
    confidence: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> BootstrapResult:
    """Intervals for METRICS of the challenger, the champion and their difference, on the same resamples."""
    if samples < 2:
        raise ValueError(f"samples must be at least 2, got {samples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y, scores = check_inputs(labels, challenger=challenger, champion=champion)
    models = {name: _Sorted(y, p) for name, p in scores.items()}
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // y.size)
    resampled: dict[str, dict[str, list[np.ndarray]]] = {name: {m: [] for m in METRICS} for name in models}
    redrawn = 0
    yf = y.astype(np.float64)
    for start in range(0, samples, block):
        counts, r = _valid_counts(yf, min(block, samples - start), rng)
        redrawn += r
        for name, model in models.items():
            for metric, values in model.metrics(counts).items():
                resampled[name][metric].append(values)
    values = {name: {m: np.concatenate(v) for m, v in per.items()} for name, per in resampled.items()}
    ones = np.ones((1, y.size))
    estimates = {name: {m: float(v[0]) for m, v in model.metrics(ones).items()} for name, model in models.items()}
    q = ((1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100)

    def interval(estimate: float, draws: np.ndarray) -> Interval:
        low, high = np.percentile(draws, q)
        return Interval(estimate, float(low), float(high))

    def table(name: str) -> dict[str, Interval]:
        return {m: interval(estimates[name][m], values[name][m]) for m in METRICS}

    difference = None
    if "champion" in models:
        difference = {
            m: interval(
                estimates["challenger"][m] - estimates["champion"][m],
                values["challenger"][m] - values["champion"][m],
            )
            for m in METRICS
        }
    return BootstrapResult(
        confidence=confidence,
        samples=samples,
        redrawn=redrawn,
        seed=seed,
        challenger=table("challenger"),
        champion=table("champion") if "champion" in models else None,
        difference=difference,
    )
