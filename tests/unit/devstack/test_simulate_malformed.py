"""Malformed-event injection: exact counts, seeded positions, and every kind rejected by the checker."""

from __future__ import annotations

import re

import pytest

from pipelines.devstack.produce.encode import frame_to_events
from pipelines.devstack.simulate import MALFORMED_KINDS, Malformer, generate_events
from pipelines.devstack.simulate.malformed import corrupt
from pipelines.errors import FlywheelError
from pipelines.spec import load_spec
from pipelines.spec.events import EventChecker
from pipelines.spec.loader import parse_spec

SPEC = load_spec("transactions")
EVENTS = frame_to_events(generate_events(400, seed=21), SPEC)

# What the checker must say for each kind (its reason names the failure).
REASONS = {
    "truncated_json": r"not valid JSON",
    "wrong_type": r"must be (a number|a string|true or false)",
    "missing_field": r"is missing|got None",  # the checker words a missing label as "got None"
    "out_of_range": r"is (below the minimum|above the maximum)",
    "unknown_category": r"is not an allowed value",
    "bad_timestamp": r"timestamp .*(not ISO 8601)",
}


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_kind_is_rejected_by_the_checker_with_a_reason(kind: str) -> None:
    checker = EventChecker(SPEC)
    for i, event in enumerate(EVENTS[:120]):
        # Sweep the draws so every field and variant of the kind gets its turn.
        draws = ((i % 40 + 0.5) / 40, (i % 3) / 3, (i % 7) / 7)
        result = checker.check(corrupt(SPEC, event, kind, draws))
        assert not result.ok, (kind, event)
        assert re.search(REASONS[kind], result.reason or ""), (kind, result.reason)


def test_exact_count_at_seeded_positions() -> None:
    n, rate = len(EVENTS), 0.05
    m = Malformer(SPEC, n, rate, seed=3)
    assert m.total == round(n * rate) == 20
    encoded = [m.encode(i, e) for i, e in enumerate(EVENTS)]
    kinds = [k for _, k in encoded if k is not None]
    assert len(kinds) == 20
    assert [i for i, (_, k) in enumerate(encoded) if k] == m.positions
    assert sum(m.counts.values()) == 20 and m.counts == m.planned
    checker = EventChecker(SPEC)
    accepted = sum(checker.check(payload).ok for payload, _ in encoded)
    assert accepted == n - 20
    # Same seed, same plan; another seed, other positions.
    again = Malformer(SPEC, n, rate, seed=3)
    assert again.positions == m.positions and [again.kind_at(p) for p in again.positions] == kinds
    assert Malformer(SPEC, n, rate, seed=4).positions != m.positions


def test_all_kinds_appear_and_the_plan_does_not_depend_on_encoding_order() -> None:
    m = Malformer(SPEC, len(EVENTS), 0.5, seed=1)
    assert set(m.planned) == set(MALFORMED_KINDS)
    forward = {i: m.encode(i, EVENTS[i])[0] for i in m.positions}
    other = Malformer(SPEC, len(EVENTS), 0.5, seed=1)
    backward = {i: other.encode(i, EVENTS[i])[0] for i in reversed(other.positions)}
    assert forward == backward


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 400), (0.0011, 0), (0.0013, 1)])
def test_rate_edges(rate: float, expected: int) -> None:
    assert Malformer(SPEC, 400, rate).total == expected


def test_invalid_rate_fails_clearly() -> None:
    with pytest.raises(FlywheelError, match="between 0 and 1"):
        Malformer(SPEC, 10, 1.5)


def test_works_for_a_spec_without_bounds_or_categories() -> None:
    spec = parse_spec(
        {
            "name": "flags",
            "topic": {"name": "flags"},
            "event_id": "id",
            "entity_key": "user",
            "timestamp": "ts",
            "label": "y",
            "features": [{"name": "flag", "type": "boolean"}, {"name": "score", "type": "numeric"}],
        },
        path=None,  # type: ignore[arg-type]
    )
    m = Malformer(spec, 200, 1.0, seed=2)
    assert set(m.kinds) == {"truncated_json", "wrong_type", "missing_field", "bad_timestamp"}
    checker = EventChecker(spec)
    event = {"id": "e1", "user": "u1", "ts": "2026-01-01T00:00:00Z", "y": 0, "flag": True, "score": 1.5}
    assert checker.check_obj(event).ok
    assert not any(checker.check(m.encode(i, event)[0]).ok for i in range(200))
