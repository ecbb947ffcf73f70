"""Malformed-event injection: what a buggy or hostile producer puts on a topic.

`Malformer` picks exactly round(n * rate) positions of an n-event stream (seeded) and a kind for each, and
corrupts the event at those positions when it is encoded. Every kind breaks the spec in a way the ingestion
checker (`pipelines.spec.events.EventChecker`) must reject with a reason, so the count of quarantined events
downstream can be checked against the count injected here. It works for any spec.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipelines.errors import FlywheelError
from pipelines.spec.model import CategoricalFeature, DatasetSpec, NumericFeature

MALFORMED_KINDS = (
    "truncated_json",  # the payload is cut short: not JSON at all
    "wrong_type",  # a feature of the wrong JSON type, e.g. amount "abc"
    "missing_field",  # a required field is absent
    "out_of_range",  # a numeric feature outside its min/max
    "unknown_category",  # a categorical value the spec does not allow
    "bad_timestamp",  # a timestamp that is not ISO 8601
)

_MALFORMED_KEY = 3
_BAD_TIMESTAMPS = ("2026-13-45T25:61:00Z", "yesterday", "31/02/2026 10:00", "")


# One encoder for every event: json.dumps with options would build a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def encode_json(event: Mapping[str, Any]) -> bytes:
    """Compact JSON; NaN/infinity are not JSON, so they must have become null before this point."""
    return _ENCODER.encode(event).encode()


class Malformer:
    """Corrupts exactly `round(n * rate)` of `n` events, at positions and with kinds fixed by the seed."""

    def __init__(self, spec: DatasetSpec, n: int, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0 or math.isnan(rate):
            raise FlywheelError(f"the malformed rate must be between 0 and 1, got {rate}")
        self.spec = spec
        self._bounded = [f for f in spec.numeric_features if f.min is not None or f.max is not None]
        self._categorical = spec.categorical_features
        self.kinds = tuple(
            k
            for k in MALFORMED_KINDS
            if (k != "out_of_range" or self._bounded) and (k != "unknown_category" or self._categorical)
        )
        count = round(n * rate)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_MALFORMED_KEY,)))
        positions = np.sort(rng.choice(n, size=count, replace=False)) if count else np.zeros(0, np.int64)
        kinds = rng.integers(0, len(self.kinds), count)
        # The details of each corruption (which field, which value, where to cut) are drawn up front, so the
        # result does not depend on the order in which events are encoded.
        draws = rng.random((count, 3))
        self._plan: dict[int, tuple[str, tuple[float, float, float]]] = {
            int(p): (self.kinds[int(k)], (float(d[0]), float(d[1]), float(d[2])))
            for p, k, d in zip(positions, kinds, draws, strict=True)
        }
        self.planned = Counter(kind for kind, _ in self._plan.values())
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        """How many of the n events will be malformed."""
        return len(self._plan)

    @property
    def positions(self) -> list[int]:
        return sorted(self._plan)

    def kind_at(self, index: int) -> str | None:
        plan = self._plan.get(index)
        return plan[0] if plan else None

    def encode(self, index: int, event: Mapping[str, Any]) -> tuple[bytes, str | None]:
        """The payload for the event at `index` in the stream, and the kind of corruption if any."""
        plan = self._plan.get(index)
        if plan is None:
            return encode_json(event), None
        kind, draws = plan
        self.counts[kind] += 1
        return corrupt(self.spec, event, kind, draws), kind


def _pick(items: list[Any] | tuple[Any, ...], u: float) -> Any:
    return items[min(int(u * len(items)), len(items) - 1)]


def _outside(f: NumericFeature, u_side: float, u_size: float) -> float | int:
    above = f.max is not None and (f.min is None or u_side < 0.5)
    bound = f.max if above else f.min
    assert bound is not None
    step = max(1.0, abs(bound)) * (1.0 + u_size)
    value = bound + step if above else bound - step
    if f.integer:
        return math.ceil(value) if above else math.floor(value)
    return round(value, 2)


def corrupt(spec: DatasetSpec, event: Mapping[str, Any], kind: str, draws: tuple[float, float, float]) -> bytes:
    """One malformed payload of the given kind, made from a valid event."""
    u0, u1, u2 = draws
    bad = dict(event)
    if kind == "truncated_json":
        text = encode_json(bad)
        # Any proper prefix of a JSON object is invalid JSON: the closing brace is the last byte.
        return text[: 1 + int(u0 * (len(text) - 2))]
    if kind == "wrong_type":
        f = _pick(spec.features, u0)
        if isinstance(f, NumericFeature):
            bad[f.name] = "abc"
        elif isinstance(f, CategoricalFeature):
            bad[f.name] = 12345
        else:
            bad[f.name] = "yes"
    elif kind == "missing_field":
        bad.pop(_pick(spec.event_fields, u0), None)
    elif kind == "out_of_range":
        f = _pick([f for f in spec.numeric_features if f.min is not None or f.max is not None], u0)
        bad[f.name] = _outside(f, u1, u2)
    elif kind == "unknown_category":
        f = _pick(spec.categorical_features, u0)
        value = f"unknown_{f.name}"
        while value in f.values:
            value += "_x"
        bad[f.name] = value
    elif kind == "bad_timestamp":
        bad[spec.timestamp] = _pick(_BAD_TIMESTAMPS, u0)
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; kinds: {', '.join(MALFORMED_KINDS)}")
    return encode_json(bad)
