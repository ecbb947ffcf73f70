"""Property: for any spec and any JSON in any field, the event check accepts a value the Parquet writer then
writes, or quarantines the event with a reason; it never raises, and a batch of accepted events always writes.

Specs are drawn over every feature type of the model (numeric integer/float with and without bounds,
categorical, boolean, nullable or not); events put arbitrary JSON (big integers, floats, NaN/Infinity, deep
lists and objects, unicode, duplicate keys, odd whitespace) in the id, key, timestamp, label and feature
positions. Each example goes through the real sink (StagedWriter -> raw_schema Parquet) and is read back.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import namedtuple
from collections.abc import Sequence
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.ingest.parse import QUARANTINE_SCHEMA, StagedWriter
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN, raw_schema
from pipelines.spec.events import INT64_MAX, INT64_MIN, MAX_EPOCH_MS, MIN_EPOCH_MS, checker_for
from pipelines.spec.model import BooleanFeature, CategoricalFeature, DatasetSpec, NumericFeature

pytestmark = pytest.mark.slow  # seconds each: `make test-unit` leaves it to `make test`

Record = namedtuple("Record", "value offset timestamp")
RESERVED = {"event_id": "id", "entity_key": "key", "timestamp": "ts", "label": "label"}

# Numbers at the edges of what the columns hold: float64's exact integers, int64, orjson's u64, float64's range.
EDGE_INTS = [2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**308, 10**309]
EDGE_FLOATS = [1e308, -1e308, 5e-324, -0.0, 1.5, 1e11 + 0.5, float("nan"), float("inf"), float("-inf")]
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from(EDGE_INTS),
    st.floats(),  # NaN and infinities too: json.dumps writes NaN/Infinity, which is not JSON
    st.sampled_from(EDGE_FLOATS),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=30), st.sampled_from(["", "0", "1", "true"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
DEEP = [
    "[" * 1000 + "]" * 1000,
    "[" * 1023 + '"x"' + "]" * 1023,
    '{"a":' * 600 + "1" + "}" * 600,
    '{"a":' * 600 + '{"b": 1, "b": 2}' + "}" * 600,  # a repeated key deep down
]


class Raw:
    """JSON text to be put in an event verbatim (deep nesting that json.dumps cannot write)."""

    def __init__(self, text: str) -> None:
        self.text = text


bounds = st.one_of(st.none(), st.integers(-(10**20), 10**20), st.floats(-1e300, 1e300), st.sampled_from([0, 2**53]))


@st.composite
def features(draw: st.DrawFn, name: str) -> NumericFeature | CategoricalFeature | BooleanFeature:
    kind = draw(st.sampled_from(["numeric", "categorical", "boolean"]))
    nullable = draw(st.booleans())
    if kind == "numeric":
        lo, hi = draw(bounds), draw(bounds)
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        return NumericFeature(name=name, integer=draw(st.booleans()), min=lo, max=hi, nullable=nullable)
    if kind == "categorical":
        values = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4, unique=True))
        return CategoricalFeature(name=name, values=values, nullable=nullable)
    return BooleanFeature(name=name, nullable=nullable)


@st.composite
def specs(draw: st.DrawFn) -> DatasetSpec:
    n = draw(st.integers(1, 5))
    return DatasetSpec(
        name="prop",
        topic={"name": "prop"},
        **RESERVED,
        features=[draw(features(f"f{i}")) for i in range(n)],
    )


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` most of the time: batches need accepted events, not only rejections. (Hypothesis favours the
    smallest and the boundary integers, so `other` is tied to a value in the middle.)"""
    return st.integers(0, 9).flatmap(lambda i: other if i == 6 else valid)


valid_timestamps = st.one_of(
    st.integers(MIN_EPOCH_MS, MAX_EPOCH_MS).filter(lambda ms: abs(ms) > 10**11),
    st.integers(-(10**11), 10**11),  # epoch seconds
    st.floats(-1e11, 1e11),
    st.datetimes(timezones=st.just(UTC)).map(lambda dt: dt.isoformat().replace("+00:00", "Z")),
)
odd_timestamps = st.one_of(
    st.integers(),
    st.builds(  # offsets that push year 1 or 9999 out of range
        lambda dt, minutes: dt.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
        st.datetimes(),
        st.integers(-23 * 60 - 59, 23 * 60 + 59),
    ),
    st.datetimes().map(lambda dt: dt.isoformat()),  # no time zone
    st.text(max_size=30),
)


def plausible(spec: DatasetSpec, field: str) -> st.SearchStrategy[Any]:
    """Values of the field's own type, mostly valid, edges included."""
    if field == spec.event_id:
        return mostly(st.text(min_size=1, max_size=12), st.just(""))
    if field == spec.entity_key:
        return mostly(st.one_of(st.text(min_size=1, max_size=8), st.integers()), st.sampled_from(["", *EDGE_INTS]))
    if field == spec.timestamp:
        return mostly(valid_timestamps, odd_timestamps)
    if field == spec.label:
        return mostly(st.sampled_from([True, False, 0, 1, 1.0, 0.0]), st.sampled_from([2, -1, 0.5, None, "1"]))
    f = spec.feature(field)
    null = st.none() if f.nullable else st.nothing()
    if isinstance(f, NumericFeature):
        lo = f.min if f.min is not None else min(-1e6, f.max if f.max is not None else 0.0)
        hi = f.max if f.max is not None else max(1e6, lo)
        inside = st.integers(math.ceil(lo), math.floor(hi)) if math.ceil(lo) <= math.floor(hi) else st.nothing()
        valid = st.one_of(inside, st.nothing() if f.integer else st.floats(lo, hi), null)
        return mostly(valid, numbers)
    if isinstance(f, CategoricalFeature):
        return mostly(st.one_of(st.sampled_from(f.values), null), st.text(max_size=6))
    return mostly(st.one_of(st.booleans(), null), st.sampled_from([0, 1, "true"]))


ANY_VALUE = st.one_of(json_values, st.sampled_from(DEEP).map(Raw))


def encode(value: Any, ensure_ascii: bool) -> str:
    return value.text if isinstance(value, Raw) else json.dumps(value, ensure_ascii=ensure_ascii)


@st.composite
def payloads(draw: st.DrawFn, spec: DatasetSpec, fields: dict[str, st.SearchStrategy[Any]]) -> tuple[bytes, bool]:
    """One event as JSON bytes, and whether it holds a repeated top-level key; `fields`: `plausible` per field."""
    hostility = draw(st.sampled_from(["valid-ish", "valid-ish", "valid-ish", "one field", "any field"]))
    pairs: list[tuple[str, Any]] = []
    hostile_field = draw(st.sampled_from(spec.event_fields))
    for field in spec.event_fields:
        hostile = (hostility == "one field" and field == hostile_field) or (
            hostility == "any field" and draw(st.integers(0, 4)) == 2
        )
        if hostile and draw(st.integers(0, 4)) == 2:
            continue  # missing
        pairs.append((field, draw(ANY_VALUE if hostile else fields[field])))
    if draw(st.integers(0, 4)) == 2:  # extra fields
        pairs += draw(st.lists(st.tuples(st.text(max_size=6), json_values), max_size=2))
    if pairs and draw(st.integers(0, 7)) == 3:  # a repeated key, with the same or another value
        key, value = draw(st.sampled_from(pairs))
        pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(st.one_of(st.just(value), json_values))))
    item_sep, key_sep = draw(st.sampled_from([(", ", ": "), (",", ":"), (" ,\n", " \t: ")]))
    ascii_only = draw(st.booleans())
    text = "{" + item_sep.join(f"{encode(k, ascii_only)}{key_sep}{encode(v, ascii_only)}" for k, v in pairs) + "}"
    repeated = len({k for k, _ in pairs}) < len(pairs)
    return text.encode(), repeated


def assert_typed(spec: DatasetSpec, row: Sequence[Any]) -> None:
    """What an accepted record holds, whatever was sent: the column types and the spec's constraints."""
    record = dict(zip(spec.event_fields, row, strict=True))
    assert type(record[spec.event_id]) is str and record[spec.event_id]
    assert type(record[spec.entity_key]) is str and record[spec.entity_key]
    assert type(record[spec.timestamp]) is int and MIN_EPOCH_MS <= record[spec.timestamp] <= MAX_EPOCH_MS
    assert record[spec.label] in (0, 1) and type(record[spec.label]) is int
    for f in spec.features:
        v = record[f.name]
        if v is None:
            assert f.nullable
        elif isinstance(f, NumericFeature):
            assert type(v) is (int if f.integer else float)
            assert math.isfinite(v) and (not f.integer or INT64_MIN <= v <= INT64_MAX)
            assert (f.min is None or v >= f.min) and (f.max is None or v <= f.max)
        elif isinstance(f, CategoricalFeature):
            assert type(v) is str and v in f.values
        else:
            assert type(v) is bool


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for every example (a tag each): making and removing one per example costs more than the
    check."""
    return tmp_path_factory.mktemp("staging")


EXAMPLE = itertools.count()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_event_is_written_or_quarantined_with_a_reason(staging: Path, data: st.DataObject) -> None:
    spec = data.draw(specs())
    fields = {field: plausible(spec, field) for field in spec.event_fields}
    batch = data.draw(st.lists(payloads(spec, fields), min_size=1, max_size=6))
    checker = checker_for(spec)
    verdicts = [checker.values(raw) for raw, _ in batch]  # never raises: a raise fails the test

    for (raw, repeated), verdict in zip(batch, verdicts, strict=True):
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            assert isinstance(verdict, str) and verdict.startswith("not valid JSON"), (raw, verdict)
            continue
        if repeated:
            assert isinstance(verdict, str) and verdict.startswith("duplicate key "), (raw, verdict)
        elif isinstance(verdict, str):
            assert verdict and len(verdict) < 300, (raw, verdict)
        else:
            assert_typed(spec, verdict)

    writer = StagedWriter(spec, staging, f"p{next(EXAMPLE)}", rows_per_group=4)  # the real sink, one poll
    writer(3, [Record(raw, n, 0) for n, (raw, _) in enumerate(batch)])
    staged = writer.close()
    rows = pq.read_table(staged.raw_files).to_pylist() if staged.raw_files else []
    quarantine = pq.read_table(staged.quarantine_files) if staged.quarantine_files else None
    if staged.raw_files:
        assert pq.read_schema(staged.raw_files[0]) == raw_schema(spec)
    if quarantine is not None:
        assert quarantine.schema == QUARANTINE_SCHEMA

    accepted = [(n, v) for n, v in enumerate(verdicts) if isinstance(v, tuple)]
    assert [r[OFFSET_COLUMN] for r in rows] == [n for n, _ in accepted]
    assert all(r[PARTITION_COLUMN] == 3 for r in rows)
    for row, (_, values) in zip(rows, accepted, strict=True):
        assert tuple(row[name] for name in spec.event_fields) == values  # read back as checked
    rejected = [(n, v) for n, v in enumerate(verdicts) if isinstance(v, str)]
    if quarantine is None:
        assert rejected == []
    else:
        assert quarantine.column("offset").to_pylist() == [n for n, _ in rejected]
        assert quarantine.column("reason").to_pylist() == [v for _, v in rejected]
        assert quarantine.column("raw").to_pylist() == [batch[n][0] for n, _ in rejected]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_check_obj_never_raises(data: st.DataObject) -> None:
    """The parsed-object entry point too, on Python values JSON cannot carry (NaN, integers of 5000 digits)."""
    spec = data.draw(specs())
    strange = st.sampled_from([float("nan"), float("inf"), 10**5000, -(10**400), (1, 2), b"x"])
    event = {field: data.draw(st.one_of(plausible(spec, field), json_values, strange)) for field in spec.event_fields}
    result = checker_for(spec).check_obj(event)
    assert result.ok != bool(result.reason)
    if result.ok:
        assert_typed(spec, [result.record[name] for name in spec.event_fields])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_the_fast_path_answers_exactly_as_the_general_check(data: st.DataObject) -> None:
    """pipelines.spec.fastcheck: whatever the spec and the event, `values` (the generated fast path) gives the
    general check's answer: the same values with the same types, or the same reason."""
    spec = data.draw(specs())
    fields = {field: plausible(spec, field) for field in spec.event_fields}
    checker = checker_for(spec)
    for raw, _ in data.draw(st.lists(payloads(spec, fields), min_size=1, max_size=8)):
        fast, general = checker.values(raw), checker.general_values(raw)
        assert fast == general, (raw, fast, general)
        if not isinstance(fast, str):  # equal values of equal types: 1, True and 1.0 compare equal
            assert [type(v) for v in fast] == [type(v) for v in general], (raw, fast, general)
        assert checker.values(raw.decode("utf-8", "replace")) == checker.general_values(raw.decode("utf-8", "replace"))
