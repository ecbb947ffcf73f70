"""The transactions simulator: deterministic per seed, valid per spec, realistic, and a drift that bites."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.devstack.produce.encode import iter_events
from pipelines.devstack.simulate import SCENARIOS, check_spec, generate_events, get_scenario, make_population
from pipelines.devstack.simulate.malformed import encode_json
from pipelines.errors import FlywheelError
from pipelines.spec import load_spec
from pipelines.spec.events import EventChecker
from pipelines.spec.loader import parse_spec

SPEC = load_spec("transactions")


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    return generate_events(30_000, "baseline", seed=11)


@pytest.fixture(scope="module")
def drift() -> pd.DataFrame:
    return generate_events(30_000, "drift", seed=11)


def psi(expected: pd.Series, actual: pd.Series) -> float:
    """Population stability index of a categorical column."""
    cats = sorted(set(expected) | set(actual))
    p = expected.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy() + 1e-4
    q = actual.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy() + 1e-4
    return float(np.sum((q - p) * np.log(q / p)))


# --- determinism -----------------------------------------------------------------------------------------


def test_same_seed_gives_identical_events() -> None:
    pd.testing.assert_frame_equal(generate_events(2_000, "drift", seed=7), generate_events(2_000, "drift", seed=7))


def test_different_seeds_and_scenarios_differ() -> None:
    a = generate_events(2_000, seed=1)
    b = generate_events(2_000, seed=2)
    c = generate_events(2_000, "drift", seed=1)
    assert not set(a.event_id) & set(b.event_id)
    assert not set(a.event_id) & set(c.event_id)
    assert not np.array_equal(a.amount.to_numpy(), b.amount.to_numpy())


def test_customer_traits_depend_on_the_seed_only() -> None:
    small, large = make_population(5, 50), make_population(5, 500)
    for trait in ("home", "spend", "online_affinity", "present_channel", "tenure_days", "device_age_days", "travel"):
        np.testing.assert_array_equal(getattr(small, trait), getattr(large, trait)[:50])


def test_zero_events_gives_an_empty_frame_with_the_spec_columns() -> None:
    frame = generate_events(0)
    assert frame.empty
    assert list(frame.columns) == SPEC.event_fields


def test_bad_arguments_fail_clearly() -> None:
    with pytest.raises(FlywheelError, match="unknown scenario 'nope'; pick one of: baseline, drift"):
        generate_events(10, "nope")
    with pytest.raises(FlywheelError, match="zero or more"):
        generate_events(-1)
    with pytest.raises(FlywheelError, match="no time zone"):
        generate_events(10, start=datetime(2026, 1, 1))


# --- validity and consistency ------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_event_passes_the_ingestion_checker(scenario: str) -> None:
    frame = generate_events(5_000, scenario, seed=3)
    checker = EventChecker(SPEC)
    rejected = [c.reason for c in (checker.check(encode_json(e)) for e in iter_events(frame, SPEC)) if not c.ok]
    assert rejected == []


def test_columns_follow_the_spec(baseline: pd.DataFrame) -> None:
    assert list(baseline.columns) == SPEC.event_fields
    for f in SPEC.numeric_features:
        values = baseline[f.name].dropna()
        assert values.min() >= f.min and values.max() <= f.max, f.name
    for f in SPEC.categorical_features:
        assert set(baseline[f.name]) <= set(f.values), f.name
    # Every allowed value shows up in a realistic volume of traffic.
    assert set(baseline.merchant_category) == set(SPEC.feature("merchant_category").values)
    assert set(baseline.channel) == set(SPEC.feature("channel").values)


def test_ids_keys_and_event_time(baseline: pd.DataFrame) -> None:
    assert baseline.event_id.is_unique
    assert baseline.event_id.str.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}").all()
    assert baseline.customer_id.str.fullmatch(r"c\d{6}").all()
    assert baseline.event_time.is_monotonic_increasing
    start = get_scenario("baseline").start
    assert baseline.event_time.min() >= start
    assert baseline.event_time.max() < start + timedelta(days=get_scenario("baseline").days)
    assert (baseline.hour_of_day == baseline.event_time.dt.hour).all()


def test_start_may_be_any_instant_and_hours_stay_consistent() -> None:
    start = datetime(2026, 5, 3, 17, 42, tzinfo=UTC)
    frame = generate_events(3_000, seed=4, start=start)
    assert frame.event_time.min() >= start
    assert frame.event_time.max() < start + timedelta(days=14)
    assert (frame.hour_of_day == frame.event_time.dt.hour).all()


def test_channel_device_and_geography_are_consistent(baseline: pd.DataFrame) -> None:
    in_store = baseline.channel.isin(["chip", "contactless", "swipe"])
    assert (baseline.card_present == in_store).all()
    assert baseline.device_age_days[baseline.card_present].isna().all()
    assert baseline.device_age_days[~baseline.card_present].notna().all()
    # A customer's domestic payments are all in one country (home); abroad means another country.
    domestic = baseline[~baseline.is_international]
    home = domestic.groupby("customer_id").country.agg(lambda s: s.mode().iloc[0])
    assert (domestic.groupby("customer_id").country.nunique() == 1).all()
    abroad = baseline[baseline.is_international]
    known = abroad.customer_id.isin(home.index)
    assert (abroad.country[known].to_numpy() != home[abroad.customer_id[known]].to_numpy()).all()
    # Paying abroad happens far from home; shops at home are close.
    assert baseline.distance_from_home_km[baseline.is_international].median() > 1000
    assert baseline.distance_from_home_km[~baseline.is_international & baseline.card_present].median() < 30


def test_customers_have_a_history(baseline: pd.DataFrame) -> None:
    per_customer = baseline.groupby("customer_id").size()
    assert per_customer.median() >= 10
    # Tenure grows with time for each customer; it never jumps backwards.
    assert (baseline.groupby("customer_id").customer_tenure_days.diff().dropna() >= 0).all()


def test_marginals_are_realistic(baseline: pd.DataFrame) -> None:
    assert 0.01 <= baseline.is_fraud.mean() <= 0.03
    night = baseline.hour_of_day < 6
    assert night.mean() < 0.08  # quiet nights
    assert baseline.is_fraud[night].mean() > 2 * baseline.is_fraud[~night].mean()
    median = baseline.groupby("merchant_category").amount.median()
    assert median["travel"] > median["electronics"] > median["grocery"] > median["digital_goods"]
    assert 0.6 < baseline.card_present.mean() < 0.8
    assert 0.02 < baseline.is_international.mean() < 0.1
    by_channel = baseline.groupby("channel").is_fraud.mean()
    assert by_channel["manual"] > by_channel["online"] > by_channel["chip"]


# --- drift --------------------------------------------------------------------------------------------------


def test_drift_shifts_what_it_claims(baseline: pd.DataFrame, drift: pd.DataFrame) -> None:
    online = (drift.channel == "online").mean() - (baseline.channel == "online").mean()
    assert online > 0.1
    assert np.log(drift.amount).mean() - np.log(baseline.amount).mean() > 0.25
    assert psi(baseline.country, drift.country) > 0.1
    assert drift.is_international.mean() > 2 * baseline.is_international.mean()
    assert drift.device_age_days.median() < 0.5 * baseline.device_age_days.median()

    # The new fraud pattern: small digital-goods payments from new devices.
    def pattern(frame: pd.DataFrame) -> pd.Series:
        return (
            (frame.merchant_category == "digital_goods") & (frame.amount < 20) & (frame.device_age_days <= 2)
        ).fillna(False)

    assert baseline.is_fraud[pattern(baseline)].mean() < 0.1
    assert drift.is_fraud[pattern(drift)].mean() > 0.3
    dg = "digital_goods"
    assert (
        drift.is_fraud[drift.merchant_category == dg].mean()
        > 3 * baseline.is_fraud[baseline.merchant_category == dg].mean()
    )


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "log_amount": np.log(frame.amount),
            "device_age": frame.device_age_days.astype(float).fillna(-1),
            "tenure": frame.customer_tenure_days,
            "hour": frame.hour_of_day,
            "log_distance": np.log1p(frame.distance_from_home_km),
            "card_present": frame.card_present.astype(float),
            "international": frame.is_international.astype(float),
        }
    )
    for f in SPEC.categorical_features:
        for value in f.values:
            out[f"{f.name}={value}"] = (frame[f.name] == value).astype(float)
    return out


def test_label_is_learnable_and_drift_costs_a_baseline_model_auc(baseline: pd.DataFrame, drift: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    holdout = generate_events(20_000, "baseline", seed=12)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(_features(baseline), baseline.is_fraud)
    auc_baseline = roc_auc_score(holdout.is_fraud, model.predict_proba(_features(holdout))[:, 1])
    auc_drift = roc_auc_score(drift.is_fraud, model.predict_proba(_features(drift))[:, 1])
    assert auc_baseline > 0.85
    assert auc_drift < auc_baseline - 0.07
    # ...and the drifted label is learnable too: retraining on drift data recovers.
    retrained = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(_features(drift), drift.is_fraud)
    fresh = generate_events(20_000, "drift", seed=13)
    assert roc_auc_score(fresh.is_fraud, retrained.predict_proba(_features(fresh))[:, 1]) > auc_drift + 0.05


# --- scenarios and specs ------------------------------------------------------------------------------------


def test_a_new_scenario_is_one_registry_entry() -> None:
    busy = dataclasses.replace(SCENARIOS["baseline"], name="busy", online_shift=2.0)
    frame = generate_events(3_000, busy, seed=1)
    assert (frame.channel == "online").mean() > 0.45
    assert get_scenario(busy) is busy
    with pytest.raises(ValueError, match="takeover_rate"):
        dataclasses.replace(SCENARIOS["baseline"], takeover_rate=0.9)


def test_check_spec_accepts_the_builtin_schema_under_another_topic() -> None:
    data = SPEC.model_dump(mode="json")
    data["topic"]["name"] = "payments"
    check_spec(parse_spec(data, path=None))  # type: ignore[arg-type]


def test_check_spec_rejects_another_schema() -> None:
    data = json.loads(json.dumps(SPEC.model_dump(mode="json")))
    data["features"][0]["max"] = 100.0
    other = parse_spec({**data, "name": "custom"}, path=None)  # type: ignore[arg-type]
    with pytest.raises(FlywheelError, match=r"--from-file PATH --spec custom"):
        check_spec(other)


def test_a_small_sample_still_has_several_customers() -> None:
    assert generate_events(10, seed=1).customer_id.nunique() > 3
