"""pipelines.spec.samples: the one generator of rows from a spec."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.spec import load_spec
from pipelines.spec.events import checker_for
from pipelines.spec.samples import sample_columns, sample_events

SPEC = load_spec("transactions")


def test_every_sample_passes_the_event_check_and_respects_nullability() -> None:
    checker = checker_for(SPEC)
    events = sample_events(SPEC, 500, seed=4)
    for event in events:
        result = checker.check(json.dumps(event).encode())
        assert result.ok, (event, result)
    nullable = {f.name for f in SPEC.features if f.nullable}
    nulls = {name for e in events for name, value in e.items() if value is None}
    assert nulls <= nullable and nulls  # some nullable feature is null, no other field ever is


def test_deterministic_for_a_seed_and_numbered_from_start() -> None:
    a = sample_events(SPEC, 5, seed=9, start=100, prefix="x")
    assert a == sample_events(SPEC, 5, seed=9, start=100, prefix="x")
    assert [e[SPEC.event_id] for e in a] == [f"x-{i:09d}" for i in range(100, 105)]
    assert a != sample_events(SPEC, 5, seed=10, start=100, prefix="x")


@pytest.mark.parametrize("rate", [0.05, 0.3])
def test_labels_follow_the_rate_and_depend_on_the_features(rate: float) -> None:
    cols = sample_columns(SPEC, 20_000, seed=1, label_rate=rate)
    label = cols[SPEC.label]
    assert abs(label.mean() - rate) < 0.05
    amount = cols[SPEC.numeric_features[0].name].astype(float)
    corr = abs(np.corrcoef(amount, label)[0, 1])
    categorical = SPEC.categorical_features[0].name
    rates = [label[cols[categorical] == v].mean() for v in SPEC.categorical_features[0].values]
    assert corr > 0.01 or max(rates) - min(rates) > 0.05  # a learnable signal, not coin flips
