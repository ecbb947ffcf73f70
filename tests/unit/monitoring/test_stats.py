"""The drift statistics against SciPy on known distributions: KS (statistic and asymptotic p-value), chi-squared
homogeneity (unseen categories included), Jensen-Shannon distance, PSI by its definition, the two corrections,
and the rank AUC against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import roc_auc_score

from pipelines.monitoring import stats


@pytest.mark.parametrize(
    ("shift", "scale", "n", "m"),
    [(0.0, 1.0, 3000, 2000), (0.1, 1.0, 5000, 1500), (0.0, 1.5, 800, 4000), (1.0, 1.0, 2000, 2000)],
)
def test_ks_matches_scipy(shift: float, scale: float, n: int, m: int) -> None:
    rng = np.random.default_rng(7)
    ref = rng.normal(size=n)
    cur = rng.normal(shift, scale, size=m)
    d, p = stats.ks_from_sorted(np.sort(ref), cur)
    expected = sps.ks_2samp(ref, cur, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)


def test_ks_with_ties_matches_scipy() -> None:
    """Integer features (hour of day) have many ties: the CDFs are compared at every value of both samples."""
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 24, 4000).astype(float)
    cur = np.clip(rng.integers(0, 24, 3000) + rng.integers(0, 2, 3000), 0, 23).astype(float)
    d, p = stats.ks_from_sorted(np.sort(ref), cur)
    expected = sps.ks_2samp(ref, cur, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)


def test_chi2_matches_scipy_with_unseen_and_empty_categories() -> None:
    ref = np.array([500, 300, 150, 50, 0, 0])  # the last two: a category nobody used, and the unseen bucket
    cur = np.array([420, 330, 160, 40, 0, 25])  # 25 values outside the spec's list
    stat, p, dof = stats.chi2_homogeneity(ref, cur)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    expected = sps.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-8)
    assert dof == expected.dof == 4


def test_chi2_sampled_from_one_distribution_is_not_significant_on_average() -> None:
    rng = np.random.default_rng(11)
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    draws = [(rng.multinomial(5000, probs), rng.multinomial(2000, probs)) for _ in range(300)]
    pvalues = [stats.chi2_homogeneity(ref, cur)[1] for ref, cur in draws]
    # Under the null the p-value is uniform: about 5% below 0.05.
    assert 0.01 <= np.mean(np.array(pvalues) < 0.05) <= 0.10


def test_js_distance_matches_scipy() -> None:
    ref = np.array([10.0, 20.0, 30.0, 40.0, 0.0])
    cur = np.array([25.0, 25.0, 25.0, 20.0, 5.0])
    assert stats.js_distance(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2), rel=1e-10)
    assert stats.js_distance(ref, ref) == pytest.approx(0.0, abs=1e-7)
    assert stats.js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_psi_by_its_definition_and_known_values() -> None:
    ref = np.array([100, 200, 300, 400])
    cur = np.array([150, 250, 250, 350])
    r, c = ref / ref.sum(), cur / cur.sum()
    assert stats.psi(ref, cur) == pytest.approx(np.sum((c - r) * np.log(c / r)), rel=1e-9)
    assert stats.psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    # PSI is the symmetric KL divergence: KL(c||r) + KL(r||c).
    assert stats.psi(ref, cur) == pytest.approx(sps.entropy(c, r) + sps.entropy(r, c), rel=1e-9)
    # A bin empty in the reference stays finite (floored), and large.
    assert 1.0 < stats.psi(np.array([100, 0]), np.array([50, 50])) < np.inf


def test_bonferroni_and_benjamini_hochberg_match_scipy() -> None:
    p = np.array([0.001, 0.2, 0.03, 0.04, 0.5, 0.0001, 0.012])
    assert np.allclose(stats.adjust_pvalues(p, "benjamini-hochberg"), sps.false_discovery_control(p, method="bh"))
    assert np.allclose(stats.adjust_pvalues(p, "bonferroni"), np.minimum(p * len(p), 1.0))
    assert stats.adjust_pvalues(np.array([]), "bonferroni").size == 0


def test_two_proportions_matches_scipy() -> None:
    stat, p = stats.two_proportions(20, 1000, 45, 1000)
    expected = sps.chi2_contingency(np.array([[980, 20], [955, 45]]), correction=False)
    assert p == pytest.approx(expected.pvalue, rel=1e-8)
    assert stat == pytest.approx(expected.statistic, rel=1e-10)


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(3000) < 0.1
    score = np.round(rng.random(3000) * 0.5 + y * 0.3, 2)  # rounded: many ties
    assert stats.auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert stats.auc(np.zeros(10), np.arange(10)) is None


def test_ks_beyond_kstwo_uses_its_limit_and_stays_close_to_scipy() -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(size=40_000), rng.normal(0.01, 1.0, size=30_000)
    d, p = stats.ks_from_sorted(np.sort(ref), cur)
    expected = sps.ks_2samp(ref, cur, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, abs=0.01)


def test_bin_counts_put_ties_in_the_upper_bin_like_a_right_sided_search() -> None:
    from pipelines.monitoring.profile import numeric_profile

    rng = np.random.default_rng(4)
    ref = rng.integers(0, 24, 5000).astype(float)
    profile = numeric_profile("hour", ref, bins=10, ks_max_samples=1000)
    cur = np.concatenate([rng.integers(0, 24, 3000).astype(float), [np.nan] * 7])
    finite = cur[~np.isnan(cur)]
    expected = np.bincount(np.searchsorted(profile.edges, finite, side="right"), minlength=len(profile.edges) + 1)
    assert profile.bin_counts(cur).tolist() == expected.tolist()
    assert profile.counts.sum() == 5000 and len(profile.sorted_sample) == 1000
