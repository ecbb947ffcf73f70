"""The drift decision on simulated traffic: baseline windows do not alarm (the false-alarm rate is measured over
many windows and bounded), the `drift` scenario does, a feature drifting alone is the one named, an unseen
category is counted, small windows decide nothing; and all of it on a second, differently shaped spec."""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pytest

from pipelines.devstack.produce.encode import frame_to_events
from pipelines.devstack.simulate.transactions import generate_events
from pipelines.monitoring.check import check_drift
from pipelines.monitoring.profile import build_profile, from_arrays, to_arrays
from pipelines.monitoring.window import Message, events_window
from pipelines.spec import load_spec
from pipelines.spec.model import DatasetSpec
from pipelines.spec.samples import sample_events

SPEC = load_spec("transactions")
WINDOW = 20_000  # the default drift.window_events


def table(frame) -> pa.Table:
    return pa.Table.from_pandas(frame.drop(columns=[SPEC.timestamp]), preserve_index=False)


def as_messages(events: list[dict]) -> list[Message]:
    return [Message(0, i, 1_700_000_000_000 + i, orjson.dumps(e)) for i, e in enumerate(events)]


@pytest.fixture(scope="module")
def reference():
    return build_profile(table(generate_events(100_000, "baseline", seed=1)), SPEC, bins=10, ks_max_samples=100_000)


@pytest.mark.slow  # many windows: make test runs it, make test-unit does not
def test_baseline_streams_do_not_alarm_and_the_false_alarm_rate_is_bounded(reference) -> None:
    """40 fresh baseline streams (other seeds: other customers, so more than sampling noise) of a default window."""
    alarms, worst = 0, 0.0
    for seed in range(2, 42):
        result = check_drift(reference, table(generate_events(WINDOW, "baseline", seed=seed)), SPEC)
        alarms += result.drifted
        worst = max(worst, max(c.severity for c in result.columns))
    print(f"baseline windows: {alarms}/40 alarms, largest severity {worst:.2f}")
    assert alarms == 0
    assert worst < 1.0  # no effect size reached its threshold in any window


@pytest.mark.slow  # many windows: make test runs it, make test-unit does not
def test_false_alarm_rate_of_the_tests_alone_is_at_most_alpha() -> None:
    """Windows drawn row by row from one baseline pool (the null hypothesis exactly): with the effect-size
    thresholds set to ~0 the decision is the corrected tests alone, whose false-alarm rate BH bounds by alpha."""
    rng = np.random.default_rng(0)
    # Shuffled: event time orders the stream, and tenure and device age grow with it.
    pool = table(generate_events(200_000, "baseline", seed=2)).take(rng.permutation(200_000))
    pool_profile = build_profile(pool.slice(0, 100_000), SPEC, bins=10, ks_max_samples=100_000)
    tests_only = SPEC.model_copy(
        update={"drift": SPEC.drift.model_copy(update={"psi_threshold": 1e-9, "js_threshold": 1e-9})}
    )
    rest = pool.slice(100_000)
    windows = 200
    alarms = sum(
        check_drift(pool_profile, rest.take(rng.choice(rest.num_rows, 5000, replace=False)), tests_only).drifted
        for _ in range(windows)
    )
    print(f"tests alone: {alarms}/{windows} false alarms at alpha={SPEC.drift.alpha}")
    # alpha = 0.01 -> about 2 expected; 7 or more has probability < 0.5% under the null.
    assert alarms / windows <= 3 * SPEC.drift.alpha


def test_the_drift_scenario_alarms(reference) -> None:
    result = check_drift(reference, table(generate_events(WINDOW, "drift", seed=9)), SPEC)
    assert result.drifted and result.decision == "drift"
    assert "device_age_days" in result.drifted_columns
    assert result.label.drifted  # fraud ~2% -> ~5%
    assert result.columns[0].drifted  # most severe first


def test_a_feature_drifting_alone_is_named_as_the_cause(reference) -> None:
    frame = generate_events(WINDOW, "baseline", seed=5)
    frame["distance_from_home_km"] = (frame["distance_from_home_km"] * 3).clip(upper=20_000)
    result = check_drift(reference, table(frame), SPEC)
    assert result.drifted_columns == ["distance_from_home_km"]
    assert result.columns[0].name == "distance_from_home_km"
    assert "distance_from_home_km" in result.reasons[0]


def test_unseen_categories_are_counted_through_the_kafka_path(reference) -> None:
    events = frame_to_events(generate_events(5000, "baseline", seed=6), SPEC)
    for event in events[:1500]:
        event["channel"] = "crypto_wallet"  # not in the spec's list: ingestion would quarantine it
    window = events_window(as_messages(events), SPEC)
    assert window.rows == 5000 and window.quality.quarantined == 1500
    result = check_drift(reference, window.table, SPEC, quality=window.quality)
    channel = next(c for c in result.columns if c.name == "channel")
    assert channel.unseen == 1500 and channel.drifted
    assert result.drifted_columns == ["channel"]
    assert any("quarantined" in alert for alert in result.quality.alerts)


def test_out_of_range_and_null_rates_are_reported_not_retrained_on(reference) -> None:
    events = frame_to_events(generate_events(5000, "baseline", seed=7), SPEC)
    for event in events[:200]:
        event["amount"] = -5.0  # below the spec's minimum: quarantined, counted as out of range
    window = events_window(as_messages(events), SPEC)
    assert window.quality.out_of_range["amount"] == 200
    result = check_drift(reference, window.table, SPEC, quality=window.quality)
    assert any(alert.startswith("amount:") for alert in result.quality.alerts)
    assert not result.drifted


def test_a_window_below_min_samples_decides_nothing(reference) -> None:
    frame = generate_events(SPEC.drift.min_samples - 1, "drift", seed=3)
    result = check_drift(reference, table(frame), SPEC)
    assert result.decision == "insufficient data" and not result.drifted


def test_profile_survives_its_cache_format(reference) -> None:
    again = from_arrays(dict(to_arrays(reference)))
    frame = table(generate_events(5000, "drift", seed=4))
    a, b = check_drift(reference, frame, SPEC), check_drift(again, frame, SPEC)
    assert [c.to_dict() for c in a.columns] == [c.to_dict() for c in b.columns]


# ---- a second, differently shaped spec: other names and types, no aggregates, no entity key -------------------

SENSORS = DatasetSpec.model_validate(
    {
        "name": "pump_readings",
        "topic": {"name": "pump-readings", "partitions": 2},
        "event_id": "reading_id",
        "timestamp": "measured_at",
        "label": "failed_within_7d",
        "features": [
            {"name": "pressure_bar", "type": "numeric", "min": 0, "max": 400},
            {"name": "vibration_mm_s", "type": "numeric", "min": 0, "max": 100, "nullable": True},
            {"name": "rpm", "type": "numeric", "integer": True, "min": 0, "max": 6000},
            {"name": "mode", "type": "categorical", "values": ["idle", "normal", "boost", "service"]},
            {"name": "housing_open", "type": "boolean"},
        ],
        "drift": {"min_samples": 500, "window_events": 3000},
    }
)


def pump_window(seed: int, shift: dict | None = None):
    events = sample_events(SENSORS, 3000, seed=seed)
    for event in events:
        for name, change in (shift or {}).items():
            event[name] = change(event[name])
    return events_window(as_messages(events), SENSORS)


def test_a_second_spec_uses_its_own_types_and_names() -> None:
    assert not SENSORS.aggregates and SENSORS.entity_key is None
    ref_window = pump_window(seed=1)
    reference = build_profile(ref_window.table, SENSORS, bins=10, ks_max_samples=100_000)
    assert set(reference.numeric) == {"pressure_bar", "vibration_mm_s", "rpm"}
    assert set(reference.categorical) == {"mode", "housing_open"}

    # An independent window of the same stream (identical samples could never drift).
    calm = check_drift(reference, pump_window(seed=2).table, SENSORS)
    assert calm.decision == "no drift"
    kinds = {c.name: (c.kind, c.test) for c in calm.columns}
    assert kinds["rpm"] == ("numeric", "ks") and kinds["housing_open"] == ("boolean", "chi2")
    assert kinds["mode"] == ("categorical", "chi2")

    # The same stream with the pumps under more pressure: only pressure_bar moves.
    hot = pump_window(seed=2, shift={"pressure_bar": lambda v: min(400.0, v * 1.8 + 40)})
    result = check_drift(reference, hot.table, SENSORS, quality=hot.quality)
    assert result.drifted_columns == ["pressure_bar"]


def test_spec_settings_drive_the_decision() -> None:
    loose = SENSORS.model_copy(update={"drift": SENSORS.drift.model_copy(update={"psi_threshold": 50.0})})
    reference = build_profile(pump_window(seed=1).table, loose, bins=10, ks_max_samples=100_000)
    hot = pump_window(seed=1, shift={"pressure_bar": lambda v: min(400.0, v * 1.8 + 40)})
    # PSI alone no longer crosses; JS and KS still do: the column drifts, named by what crossed.
    result = check_drift(reference, hot.table, loose)
    assert result.columns[0].name == "pressure_bar" and "psi" not in result.columns[0].crossed


def test_a_few_percent_of_unseen_categories_is_drift_by_itself(reference) -> None:
    """2% of values outside the spec's list: PSI and JS stay below their thresholds, the unseen share does not."""
    frame = generate_events(WINDOW, "baseline", seed=8)
    frame.loc[frame.index[: WINDOW // 50], "merchant_category"] = "crypto"
    result = check_drift(reference, table(frame), SPEC)
    column = next(c for c in result.columns if c.name == "merchant_category")
    assert column.psi < SPEC.drift.psi_threshold and column.js < SPEC.drift.js_threshold
    assert column.crossed == ["unseen"] and result.drifted_columns == ["merchant_category"]
