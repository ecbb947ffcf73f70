"""Hostile events: whatever one event holds, checking it gives a clean record or a reason, never an exception,
and an accepted record always fits the raw Parquet schema."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.ingest.parse import StagedWriter
from pipelines.spec import check_event, load_spec
from pipelines.spec import events as events_module
from pipelines.spec.events import EventChecker
from pipelines.spec.loader import parse_spec
from pipelines.spec.model import DatasetSpec
from tests.unit.spec.sample_event import good_event

SPEC = load_spec("transactions")
Record = namedtuple("Record", "value offset timestamp")


def nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


def payload_with(field: str, json_text: str) -> bytes:
    """A good event whose `field` holds the given JSON text verbatim."""
    event = good_event()
    event[field] = "__X__"
    return json.dumps(event).replace('"__X__"', json_text).encode()


def unbounded(field: str) -> DatasetSpec:
    """The built-in spec with `field`'s maximum removed."""
    data = SPEC.model_dump(mode="json")
    for feature in data["features"]:
        if feature["name"] == field:
            feature["max"] = None
    return parse_spec(data, Path(f"{field}-unbounded.yaml"))


def stage(spec: DatasetSpec, payloads: list[bytes], tmp_path: Path) -> tuple[Any, Any]:
    writer = StagedWriter(spec, tmp_path, "t")
    writer(0, [Record(p, n, 0) for n, p in enumerate(payloads)])
    staged = writer.close()
    raw = pq.read_table(staged.raw_files) if staged.raw_files else None
    q = pq.read_table(staged.quarantine_files) if staged.quarantine_files else None
    return raw, q


# 1. Deep nesting and totality


@pytest.mark.parametrize("depth", [1000, 1023])
def test_a_deeply_nested_label_is_rejected_with_a_short_reason(depth: int) -> None:
    result = check_event(SPEC, payload_with("is_fraud", nested(depth)))
    assert not result.ok
    assert result.reason.startswith("is_fraud must be true/false or 0/1, got a list [[[")
    assert len(result.reason) < 120


def test_deep_nesting_in_every_field_is_rejected_not_raised() -> None:
    checker = EventChecker(SPEC)
    for field in SPEC.event_fields:
        for inner in ("", '{"a": 1}', '"x"'):
            reason = checker.values(payload_with(field, nested(1000, inner)))
            named = "timestamp" if field == SPEC.timestamp else field
            assert isinstance(reason, str) and named in reason and len(reason) < 200, (field, reason)


def test_a_deeply_nested_event_is_quarantined_and_the_others_are_written(tmp_path: Path) -> None:
    payloads = [
        json.dumps(good_event(0)).encode(),
        payload_with("is_fraud", nested(1000)),
        json.dumps(good_event(2)).encode(),
    ]
    raw, q = stage(SPEC, payloads, tmp_path)
    assert raw.column("event_id").to_pylist() == ["e0", "e2"]
    assert q.column("offset").to_pylist() == [1]
    assert q.column("reason")[0].as_py().startswith("is_fraud must be true/false or 0/1, got a list")


def test_any_exception_while_checking_one_event_becomes_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(value: Any) -> int:
        raise ZeroDivisionError("a bug in the checker")

    checker = EventChecker(SPEC)
    monkeypatch.setattr(events_module, "to_epoch_ms", boom)  # looked up per call, as any inner bug would be
    raw = json.dumps(good_event()).encode()
    assert checker.values(raw) == "checking the event failed: ZeroDivisionError"
    assert checker.check(raw).reason == "checking the event failed: ZeroDivisionError"
    assert checker.check_obj(good_event()).reason == "checking the event failed: ZeroDivisionError"

    def too_deep(raw: bytes) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(events_module, "_loads", too_deep)
    checker = EventChecker(SPEC)  # the fast path binds the parser when it is generated
    assert checker.values(raw) == "checking the event failed: RecursionError"
    assert checker.check(raw).reason == "checking the event failed: RecursionError"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (-3, "-3"),
        (1.5, "1.5"),
        ("maybe", "'maybe'"),
        ("x" * 100, "'" + "x" * 40 + "'..."),
        (10**400, "an integer of 1329 bits"),
        ([1, "a", [2, [3, [4]]]], "a list [1, 'a', [2, [3, [...]]]]"),
        ({"k": {"k": {"k": {"k": 1}}}}, "an object {'k': {'k': {'k': {...}}}}"),
        (list(range(100)), "a list [0, 1, 2, 3, ...]"),
    ],
)
def test_describe_is_bounded(value: Any, expected: str) -> None:
    assert events_module.describe(value) == expected


def test_describe_of_any_depth_is_short() -> None:
    value: Any = []
    text = "x" * 1000
    for _ in range(100_000):  # far deeper than repr could go
        value = [value, text, {text: value}]
    assert len(events_module.describe(value)) <= 60


# 2. Integers in float features


def test_an_integer_in_an_unbounded_float_feature_is_stored_as_float(tmp_path: Path) -> None:
    spec = unbounded("distance_from_home_km")
    payloads = [
        json.dumps({**good_event(0), "distance_from_home_km": 9007199254740993}).encode(),
        json.dumps({**good_event(1), "distance_from_home_km": 2**64 - 1}).encode(),
        json.dumps({**good_event(2), "distance_from_home_km": 3}).encode(),
    ]
    values = EventChecker(spec).values(payloads[0])
    assert isinstance(values, tuple)
    stored = values[spec.event_fields.index("distance_from_home_km")]
    assert type(stored) is float and stored == 9007199254740992.0
    raw, q = stage(spec, payloads, tmp_path)
    assert q is None
    assert raw.column("distance_from_home_km").to_pylist() == [9007199254740992.0, 2.0**64, 3.0]


def test_numbers_a_float_cannot_hold_are_rejected() -> None:
    checker = EventChecker(unbounded("distance_from_home_km"))
    for value in (10**400, float("inf"), float("nan"), -float("inf")):
        result = checker.check_obj({**good_event(), "distance_from_home_km": value})
        assert not result.ok and result.reason.startswith("distance_from_home_km"), value
    assert "not finite" in checker.check_obj({**good_event(), "distance_from_home_km": float("nan")}).reason
    huge = checker.check_obj({**good_event(), "distance_from_home_km": 10**400})
    assert huge.reason == "distance_from_home_km=an integer of 1329 bits is too large for a 64-bit float"


def test_number_subclasses_are_checked_and_normalized() -> None:
    class Sneaky(float):
        pass

    checker = EventChecker(SPEC)
    assert "not finite" in checker.check_obj({**good_event(), "amount": Sneaky("nan")}).reason
    record = checker.check_obj({**good_event(), "amount": Sneaky(3.5)}).record
    assert type(record["amount"]) is float and record["amount"] == 3.5


# 4. Duplicate keys


@pytest.mark.parametrize(
    "payload",
    [
        b'{"amount": 1, "amount": 2}',
        b'{"amount" : 1, "amount"\n:2}',  # whitespace before the colon
        b'{"amount": 1, "\\u0061mount": 2}',  # the same key, escaped
        b'{"note": "say \\"hi\\"", "amount": 1, "amount": 2}',
    ],
)
def test_a_repeated_key_is_rejected_by_name(payload: bytes) -> None:
    event = json.dumps(good_event()).encode()
    del_amount = json.loads(event)
    del del_amount["amount"]
    raw = json.dumps(del_amount).encode()[:-1] + b", " + payload[1:]
    assert EventChecker(SPEC).values(raw) == "duplicate key 'amount'"
    assert check_event(SPEC, raw).reason == "duplicate key 'amount'"
    assert check_event(SPEC, raw.decode()).reason == "duplicate key 'amount'"


def test_a_repeated_key_inside_an_extra_field_is_rejected() -> None:
    raw = json.dumps(good_event()).encode()[:-1] + b', "extra": [{"a\\"b": 1, "a\\"b": 2}]}'
    assert check_event(SPEC, raw).reason == "duplicate key 'a\"b'"


@pytest.mark.parametrize(
    "extra",
    [
        b'"say \\"hi\\", \\"amount\\": 3"',  # escaped quotes and a key-like text inside a string
        b'{"amount": 1, "nested": {"amount": 2}}',  # the same name in different objects
        nested(1000, '"x"').encode(),  # deep, with strings: no recursion in the duplicate check
        b'[{"a": 1}, {"a": 2}]',
    ],
)
def test_no_false_duplicates(extra: bytes) -> None:
    raw = json.dumps(good_event()).encode()[:-1] + b', "extra": ' + extra + b"}"
    assert EventChecker(SPEC).values(raw) == EventChecker(SPEC).values(json.dumps(good_event()))


def test_plain_events_skip_the_duplicate_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path: an event without escapes, nesting or extra fields is settled by counting quotes."""
    parsed: list[str] = []

    class CountingDecoder:
        def decode(self, text: str) -> Any:
            parsed.append(text)
            return PAIRS.decode(text)

    data = SPEC.model_dump(mode="json")
    data["features"].append({"name": "tier", "type": "categorical", "values": ["gold", "silver"], "nullable": True})
    checker = EventChecker(parse_spec(data, Path("nullable.yaml")))
    monkeypatch.setattr(events_module, "_PAIRS", CountingDecoder())
    for key in ("c1", 17):
        for ts in ("2026-11-21T10:00:00+00:00", 1795255200000, 1795255200.5):
            for tier in ("gold", None):
                event = {**good_event(), "customer_id": key, "event_time": ts, "tier": tier}
                assert isinstance(checker.values(json.dumps(event).encode()), tuple), event
                assert isinstance(checker.values(json.dumps(event)), tuple), event
    assert parsed == []
    repeated = json.dumps({**good_event(), "tier": None}).encode()[:-1] + b', "amount": 3}'
    assert checker.values(repeated) == "duplicate key 'amount'"
    assert len(parsed) == 1


PAIRS = events_module._PAIRS


@pytest.mark.parametrize(
    ("text", "repeated"),
    [
        ('{"a": 1, "a": 2}', "a"),
        ('{"a": {"b": [1, {"c": 1, "c": 2}]}, "b": 1}', "c"),
        ('{"a\\"": 1, "a\\u0022": 2}', 'a"'),
        ('{"a": "{\\"a\\": 1}", "b": [{"a": 1}, {"a": 2}], "c": {"a": 3}}', None),
        ('{"k": ' + "[" * 2000 + '{"x": 1, "y": {"x": 2}}' + "]" * 2000 + "}", None),
        ('{"k": ' + "[" * 2000 + '{"x": 1, "x": 2}' + "]" * 2000 + "}", "x"),
    ],
)
def test_the_scan_without_recursion_finds_what_json_finds(text: str, repeated: str | None) -> None:
    """The fallback for nesting deeper than json's recursion limit gives the same answer at any depth."""
    assert events_module._scan_for_repeat(text) == repeated
    if text.count("[") < 500:  # the json route answers the same where it can
        assert events_module._repeated_key(text, -1) == repeated


def test_a_repeated_key_deeper_than_json_goes_is_found() -> None:
    raw = json.dumps(good_event()).encode()[:-1] + b', "extra": ' + nested(1000, '{"b": 1, "b": 2}').encode() + b"}"
    assert check_event(SPEC, raw).reason == "duplicate key 'b'"
