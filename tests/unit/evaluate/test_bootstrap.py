"""The paired bootstrap: exact weighted metrics, deterministic, fast, single-class resamples redrawn, and
intervals that cover the true AUC difference at about their stated confidence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from pipelines.evaluate.bootstrap import METRICS, _Sorted, paired_bootstrap, point_metrics, resample_counts
from pipelines.training.metrics import classification_metrics


def binormal(rng: np.random.Generator, n: int, d1: float, d2: float, rho: float, rate: float = 0.3):
    """Two correlated models with known AUCs Phi(d / sqrt 2): s = d * y + noise, noises correlated by rho."""
    y = (rng.random(n) < rate).astype(np.int64)
    e1, e2 = rng.normal(size=n), rng.normal(size=n)
    s1 = d1 * y + e1
    s2 = d2 * y + rho * e1 + np.sqrt(1 - rho**2) * e2
    return y, 1 / (1 + np.exp(-s1)), 1 / (1 + np.exp(-s2))


def true_auc(d: float) -> float:
    return float(norm.cdf(d / np.sqrt(2)))


def test_point_metrics_match_the_training_metrics_with_ties() -> None:
    rng = np.random.default_rng(0)
    y, a, _ = binormal(rng, 3000, 1.0, 1.0, 0.0)
    for scores in (a, np.round(a, 2)):  # rounding creates many tied scores
        ours, reference = point_metrics(y, scores), classification_metrics(y, scores)
        for metric in METRICS:
            assert ours[metric] == pytest.approx(reference[metric], abs=1e-12), metric


def test_every_resample_is_the_weighted_metric_of_its_rows() -> None:
    # a resample is a vector of row counts: AUC and PR-AUC must equal sklearn's with those counts as weights
    rng = np.random.default_rng(1)
    y, a, _ = binormal(rng, 2000, 1.0, 1.0, 0.0)
    a = np.round(a, 2)
    counts = resample_counts(y.size, 4, rng)
    assert (counts.sum(axis=1) == y.size).all()
    got = _Sorted(y, a).metrics(counts)
    for i in range(4):
        assert got["auc"][i] == pytest.approx(roc_auc_score(y, a, sample_weight=counts[i]), abs=1e-12)
        assert got["pr_auc"][i] == pytest.approx(average_precision_score(y, a, sample_weight=counts[i]), abs=1e-12)
        rows = np.repeat(np.arange(y.size), counts[i].astype(int))  # the resample written out row by row
        reference = classification_metrics(y[rows], a[rows])
        for metric in ("log_loss", "brier", "ece"):
            assert got[metric][i] == pytest.approx(reference[metric], abs=1e-12), metric


def test_deterministic_for_a_seed() -> None:
    y, a, b = binormal(np.random.default_rng(2), 1000, 1.0, 1.2, 0.5)
    first = paired_bootstrap(y, a, b, samples=100, seed=7)
    assert paired_bootstrap(y, a, b, samples=100, seed=7) == first
    assert paired_bootstrap(y, a, b, samples=100, seed=8).difference != first.difference


def test_500_resamples_of_20k_rows_run() -> None:
    """A gate-sized run completes (its speed, ~1 s on one busy core, is measured, not asserted)."""
    y, a, b = binormal(np.random.default_rng(3), 20_000, 1.0, 1.2, 0.5, rate=0.1)
    result = paired_bootstrap(y, a, b, samples=500)
    assert result.samples == 500


def test_single_class_resamples_are_redrawn() -> None:
    # 2 positives in 40 rows: about 1 resample in 8 holds no positive; they are redrawn, never NaN
    y = np.zeros(40, dtype=np.int64)
    y[[3, 17]] = 1
    scores = np.linspace(0.05, 0.95, 40)
    result = paired_bootstrap(y, scores, scores[::-1].copy(), samples=300)
    assert result.redrawn > 0
    for table in (result.challenger, result.champion, result.difference):
        assert table is not None
        assert all(np.isfinite([iv.low, iv.high, iv.estimate]).all() for iv in table.values())


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        (np.array([0, 0, 0, 1]), np.full(4, 0.5), "1 positive"),
        (np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.2, 0.3]), "NaN"),
        (np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3]), "shape"),
        (np.array([0, 2, 0, 1]), np.full(4, 0.5), "0/1"),
    ],
)
def test_refuses_what_cannot_be_judged(labels: np.ndarray, scores: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(labels, scores)


def test_intervals_cover_the_true_auc_and_difference() -> None:
    # 40 independent test splits; at 90% confidence the intervals should hold the truth about 36 times
    d1, d2 = 1.2, 1.4
    truth = true_auc(d1) - true_auc(d2)
    covered_difference = covered_challenger = 0
    widths = []
    for i in range(40):
        y, a, b = binormal(np.random.default_rng(1000 + i), 1500, d1, d2, rho=0.8)
        result = paired_bootstrap(y, a, b, samples=200, confidence=0.9, seed=i)
        assert result.difference is not None
        diff, chal = result.difference["auc"], result.challenger["auc"]
        covered_difference += diff.low <= truth <= diff.high
        covered_challenger += chal.low <= true_auc(d1) <= chal.high
        widths.append((diff.high - diff.low, chal.high - chal.low))
    assert covered_difference / 40 >= 0.85
    assert covered_challenger / 40 >= 0.85
    # pairing: correlated models differ far less than each model's own noise
    assert np.mean([w[0] for w in widths]) < 0.7 * np.mean([w[1] for w in widths])
