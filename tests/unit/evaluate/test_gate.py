"""The evaluation gate's decision: each rule rejects what it should, names the measured value and the
threshold, and the champion comparison is judged on the paired interval (noise never rejects, a tie passes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.evaluate.gate import GateDecision, decide, decision_table_markdown, slice_table_markdown
from pipelines.spec import load_spec
from pipelines.spec.model import DatasetSpec

BASE = load_spec("transactions")  # min_auc 0.75, max_auc_regression 0.005, max_ece 0.1, slices of channel


def spec_with(**gates: object) -> DatasetSpec:
    return BASE.model_copy(update={"gates": BASE.gates.model_copy(update=gates)})


SPEC = spec_with(slice_feature=None, bootstrap_samples=300)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Labels drawn from the scores themselves: a calibrated model with AUC about 0.8."""
    rng = np.random.default_rng(seed)
    logit = -1.0 + 1.6 * rng.normal(size=n)
    labels = (rng.random(n) < sigmoid(logit)).astype(np.int64)
    return labels, logit, rng


def check(decision: GateDecision, name: str):
    matches = [c for c in decision.checks if c.name == name]
    assert len(matches) == 1, f"no single check {name!r} in {[c.name for c in decision.checks]}"
    return matches[0]


def test_a_clearly_worse_challenger_is_rejected_naming_auc() -> None:
    labels, logit, rng = calibrated(4000, 1)
    champion = sigmoid(logit)
    worse = sigmoid(logit[rng.permutation(labels.size)])  # scores of other rows: AUC about 0.5
    decision = decide(labels, worse, champion, None, SPEC, None)
    assert not decision.passed
    assert not check(decision, "min_auc").passed
    assert not check(decision, "max_auc_regression").passed
    assert any("AUC" in r and "0.7500" in r for r in decision.reasons)  # names the measured value and minimum
    assert any("champion" in r and "0.0050" in r for r in decision.reasons)
    assert "REJECTED" in decision_table_markdown(decision)


def test_a_confident_regression_beyond_the_budget_rejects_on_its_own() -> None:
    # good in absolute terms, but worse than the champion by ~0.015 AUC on 20k rows: the whole interval is below
    labels, logit, rng = calibrated(20_000, 2)
    challenger = sigmoid(logit + 0.5 * rng.normal(size=labels.size))
    decision = decide(labels, challenger, sigmoid(logit), None, SPEC, None)
    regression = check(decision, "max_auc_regression")
    assert decision.metrics["difference"]["auc"].high < -SPEC.gates.max_auc_regression
    assert check(decision, "min_auc").passed and not regression.passed
    assert [r for r in decision.reasons if "champion" in r] == decision.reasons


def test_a_better_challenger_passes() -> None:
    labels, logit, rng = calibrated(4000, 3)
    champion = sigmoid(logit + 0.8 * rng.normal(size=labels.size))  # the champion is the noisier one
    decision = decide(labels, sigmoid(logit), champion, None, SPEC, None)
    assert decision.passed, decision.reasons
    assert decision.reasons == []
    assert decision.metrics["difference"]["auc"].low > 0
    assert "PASSED" in decision_table_markdown(decision)


def test_a_tie_passes() -> None:
    labels, logit, _ = calibrated(3000, 4)
    scores = sigmoid(logit)
    decision = decide(labels, scores, scores.copy(), None, SPEC, None)
    assert decision.passed
    diff = decision.metrics["difference"]["auc"]
    assert diff.estimate == diff.low == diff.high == 0.0


def test_a_drop_beyond_the_budget_is_rejected_even_when_the_interval_is_wide() -> None:
    # A small test split gives a wide interval; a model measurably worse than the champion still never passes.
    labels, logit, rng = calibrated(600, 11)
    challenger = sigmoid(logit + 0.3 * rng.normal(size=labels.size))
    decision = decide(labels, challenger, sigmoid(logit), None, spec_with(slice_feature=None), None)
    diff = decision.metrics["difference"]["auc"]
    assert diff.estimate < -SPEC.gates.max_auc_regression < diff.high  # the interval alone would have let it pass
    assert not check(decision, "max_auc_regression").passed
    assert not decision.passed and "worse than the champion" in " ".join(decision.reasons)


def test_a_drop_within_the_budget_passes() -> None:
    labels, logit, rng = calibrated(3000, 12)
    challenger = sigmoid(logit + 0.02 * rng.normal(size=labels.size))
    decision = decide(labels, challenger, sigmoid(logit), None, spec_with(slice_feature=None), None)
    assert -SPEC.gates.max_auc_regression <= decision.metrics["difference"]["auc"].estimate
    assert check(decision, "max_auc_regression").passed


def test_the_first_model_is_judged_on_absolute_thresholds_only() -> None:
    labels, logit, _ = calibrated(3000, 5)
    decision = decide(labels, sigmoid(logit), None, None, SPEC, None)
    assert decision.passed
    assert not decision.has_champion
    assert {c.name for c in decision.checks} == {"min_auc", "max_ece"}
    assert any("no champion" in n for n in decision.notes)
    assert set(decision.record_metrics()) == {"challenger"}


def test_the_first_model_below_min_auc_fails() -> None:
    labels, logit, _ = calibrated(3000, 6)
    strict = spec_with(slice_feature=None, bootstrap_samples=100, min_auc=0.95)
    decision = decide(labels, sigmoid(logit), None, None, strict, None)
    auc = decision.metrics["challenger"]["auc"].estimate
    assert not decision.passed
    assert decision.reasons == [r for r in decision.reasons if f"{auc:.4f}" in r and "0.9500" in r]
    assert len(decision.reasons) == 1


def test_an_overconfident_challenger_fails_calibration() -> None:
    labels, logit, _ = calibrated(3000, 7)
    overconfident = sigmoid(3 * logit)  # same ranking, same AUC, far from calibrated
    decision = decide(labels, overconfident, None, None, SPEC, None)
    ece = check(decision, "max_ece")
    assert not ece.passed and ece.measured > 0.1 and ece.threshold == 0.1
    assert check(decision, "min_auc").passed
    assert len(decision.reasons) == 1 and "calibration" in decision.reasons[0]


@pytest.mark.parametrize(("budget", "measured", "passes"), [(5.0, 2.5, True), (5.0, 8.0, False), (5.0, None, False)])
def test_latency_budget(budget: float, measured: float | None, passes: bool) -> None:
    labels, logit, _ = calibrated(2000, 8)
    spec = spec_with(slice_feature=None, bootstrap_samples=100, max_latency_ms=budget)
    decision = decide(labels, sigmoid(logit), None, None, spec, measured)
    row = check(decision, "max_latency_ms")
    assert row.passed is passes and decision.passed is passes
    assert row.measured == measured and row.threshold == budget
    if not passes:
        assert "latency" in decision.reasons[0] and "5 ms" in decision.reasons[0]


def test_no_latency_budget_is_not_judged() -> None:
    labels, logit, _ = calibrated(2000, 8)
    decision = decide(labels, sigmoid(logit), None, None, SPEC, 10_000.0)
    assert "max_latency_ms" not in {c.name for c in decision.checks}
    assert any("latency not judged" in n for n in decision.notes)


def sliced(bad_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """6000 rows over channel values; the challenger is random on the `manual` slice of `bad_rows` rows."""
    labels, logit, rng = calibrated(6000, seed)
    channel = rng.choice(np.array(["chip", "contactless", "online", "swipe"]), size=labels.size)
    channel[:bad_rows] = "manual"
    scores = sigmoid(logit)
    bad = np.arange(bad_rows)
    scores[bad] = scores[rng.permutation(bad)]  # shuffled inside the slice: AUC about 0.5 there
    return labels, scores, channel


def test_a_small_bad_slice_is_reported_not_judged() -> None:
    labels, scores, channel = sliced(bad_rows=120, seed=9)
    decision = decide(labels, scores, None, channel, spec_with(bootstrap_samples=100), None)
    manual = next(s for s in decision.slices if s.value == "manual")
    assert manual.rows == 120 and not manual.judged and manual.passed is None
    assert manual.challenger_auc < 0.6  # bad, yet too small to judge
    assert decision.passed, decision.reasons
    judged = {c.name for c in decision.checks if c.name.startswith("slice_auc")}
    assert judged == {f"slice_auc[channel={v}]" for v in ("chip", "contactless", "online", "swipe")}
    assert "manual" in slice_table_markdown(decision) and "fewer than 200 rows" in slice_table_markdown(decision)


def test_missing_slice_values_form_their_own_slice() -> None:
    labels, scores, channel = sliced(bad_rows=0, seed=14)
    values = channel.astype(object)
    values[:300] = None
    values[300:350] = float("nan")
    values[350:400] = pd.NA  # pandas' nullable string/categorical columns
    decision = decide(labels, scores, None, values, spec_with(bootstrap_samples=100), None)
    missing = next(s for s in decision.slices if s.value == "(missing)")
    assert missing.rows == 400 and missing.judged


def test_a_large_bad_slice_rejects() -> None:
    labels, scores, channel = sliced(bad_rows=800, seed=10)
    decision = decide(labels, scores, None, channel, spec_with(bootstrap_samples=100), None)
    assert check(decision, "min_auc").passed  # overall fine: only the slice fails
    assert not check(decision, "slice_auc[channel=manual]").passed
    assert not decision.passed
    assert len(decision.reasons) == 1 and "channel=manual" in decision.reasons[0] and "0.6000" in decision.reasons[0]


def test_slice_values_are_required_when_the_spec_judges_slices() -> None:
    labels, logit, _ = calibrated(1000, 12)
    with pytest.raises(ValueError, match="channel"):
        decide(labels, sigmoid(logit), None, None, BASE, None)


def test_the_decision_is_deterministic() -> None:
    labels, logit, rng = calibrated(2000, 13)
    champion = sigmoid(logit + 0.3 * rng.normal(size=labels.size))
    first = decide(labels, sigmoid(logit), champion, None, SPEC, None)
    assert decide(labels, sigmoid(logit), champion, None, SPEC, None).as_dict() == first.as_dict()
