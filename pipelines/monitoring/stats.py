"""Drift statistics, vectorized over NumPy arrays of counts and values (no per-row Python).

    psi(ref_counts, cur_counts)          population stability index over the same bins
    js_distance(ref_counts, cur_counts)  Jensen-Shannon distance, base 2 (0 = same, 1 = disjoint)
    ks_from_sorted(ref_sorted, cur)      two-sample Kolmogorov-Smirnov statistic and asymptotic p-value
    chi2_homogeneity(ref_counts, cur_counts)  chi-squared test that both count vectors share one distribution
    adjust_pvalues(p, method)            Benjamini-Hochberg or Bonferroni over a family of tests

The tests check each against SciPy (tests/unit/monitoring/test_stats.py). P-values come from SciPy's
distribution functions (scipy is installed with scikit-learn); the statistics are computed here.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import special
from scipy.stats import distributions

# Proportions of empty bins are floored at this, so PSI and its logarithms stay finite (a bin the reference
# never saw but the current window fills is large drift, not infinite drift).
EPSILON = 1e-4
KSTWO_MAX_N = 10_000  # effective KS sample sizes above this use the limiting distribution (see ks_from_sorted)


def proportions(counts: np.ndarray, floor: float = EPSILON) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.full(counts.shape, 1.0 / max(len(counts), 1))
    p = np.maximum(counts / total, floor)
    return p / p.sum()


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """sum((cur - ref) * ln(cur / ref)) over bins, proportions floored at EPSILON (a symmetric KL divergence)."""
    r, c = proportions(ref_counts), proportions(cur_counts)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """The Jensen-Shannon distance in base 2 (the square root of the divergence), exact zeros kept."""
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return 0.0
    r, c = r / r.sum(), c / c.sum()
    m = (r + c) / 2
    divergence = (np.sum(special.rel_entr(r, m)) + np.sum(special.rel_entr(c, m))) / 2
    return float(np.sqrt(max(divergence, 0.0) / np.log(2)))


def ks_from_sorted(ref_sorted: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """(D, p) of the two-sample KS test: ref_sorted is sorted and NaN-free (cached per reference); cur is any
    NaN-free array. D is the largest gap between the two empirical CDFs, evaluated at every value of both
    samples; p is the asymptotic two-sided p-value SciPy's ks_2samp(method='asymp') gives (kstwo at the
    effective size n*m/(n+m)), and beyond KSTWO_MAX_N that distribution's limit."""
    n, m = len(ref_sorted), len(cur)
    if n == 0 or m == 0:
        return 0.0, 1.0
    cur_sorted = np.sort(cur, kind="quicksort")
    points = np.concatenate([ref_sorted, cur_sorted])
    cdf_ref = np.searchsorted(ref_sorted, points, side="right") / n
    cdf_cur = np.searchsorted(cur_sorted, points, side="right") / m
    d = float(np.max(np.abs(cdf_ref - cdf_cur)))
    en = n * m / (n + m)
    # Beyond KSTWO_MAX_N its limit, Kolmogorov's distribution: kstwo costs ~50 ms a call at n ~ 50k, this microseconds.
    p = distributions.kstwo.sf(d, np.round(en)) if en <= KSTWO_MAX_N else special.kolmogorov(np.sqrt(en) * d)
    return d, float(np.clip(p, 0.0, 1.0))


def chi2_homogeneity(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, int]:
    """(statistic, p, dof) of the chi-squared test on the 2 x K table [ref; cur]; categories empty in both are
    dropped (as scipy.stats.chi2_contingency needs). A category only the current window has (unseen) counts."""
    table = np.vstack([np.asarray(ref_counts, np.float64), np.asarray(cur_counts, np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return stat, float(special.chdtrc(dof, stat)), dof


def two_proportions(ref_hits: int, ref_n: int, cur_hits: int, cur_n: int) -> tuple[float, float]:
    """(chi-squared statistic, p) of the 2 x 2 test that two rates are equal (no continuity correction)."""
    stat, p, _ = chi2_homogeneity(np.array([ref_n - ref_hits, ref_hits]), np.array([cur_n - cur_hits, cur_hits]))
    return stat, p


def adjust_pvalues(p: np.ndarray, method: Literal["benjamini-hochberg", "bonferroni"]) -> np.ndarray:
    """P-values adjusted for testing len(p) hypotheses at once: compare the result with alpha.

    Bonferroni controls the chance of any false alarm (p * m); Benjamini-Hochberg the expected share of false
    alarms among the alarms (step-up: min over j >= i of p_(j) * m / j), which is also the chance of any false
    alarm when no column drifts at all, the case a monitor is mostly in.
    """
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(ranked, 1.0)
    return adjusted


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC by ranks (ties get their average rank); None without both classes."""
    labels = np.asarray(labels).astype(bool)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))
