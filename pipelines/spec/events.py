"""Parsing and checking one raw event against a spec.

Every event either becomes a clean record (typed, normalized) or a rejection with a reason that says
which field failed and why. Nothing is dropped silently: the caller quarantines rejections with the reason.
Normalization: timestamp -> epoch milliseconds (int), label -> 0/1, booleans -> bool, integers -> int.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.spec.model import BooleanFeature, CategoricalFeature, DatasetSpec, NumericFeature

try:  # orjson parses ~3x faster than json on the ingestion hot path; json is the fallback
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads


@dataclass(frozen=True, slots=True)
class EventCheck:
    record: dict[str, Any] | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.record is not None


class _Bad(Exception):
    pass


# Timestamps and integers are stored as 64-bit integers (Arrow, Spark): a value outside what they hold must be
# rejected here, with a reason, not crash the batch that writes it. Timestamps: years 1 to 9999, as datetime.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_EPOCH_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
MAX_EPOCH_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def to_epoch_ms(value: Any) -> int:
    """Accept ISO 8601 strings (with offset or Z) and epoch numbers (seconds, or milliseconds above 1e11)."""
    if isinstance(value, bool):
        raise _Bad("timestamp is a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _Bad("timestamp is not finite")
        return int(value) if abs(value) > 1e11 else int(value * 1000)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad(f"timestamp {value[:40]!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            raise _Bad(f"timestamp {value[:40]!r} has no time zone")
        return int(dt.timestamp() * 1000)
    raise _Bad(f"timestamp has type {type(value).__name__}")


def _numeric(f: NumericFeature) -> Callable[[Any], Any]:
    # Settings bound to locals and an exact-type fast path: this runs for every feature of every event.
    name, nullable, integer, lo, hi = f.name, f.nullable, f.integer, f.min, f.max
    isfinite = math.isfinite
    # Integers beyond the spec's bounds that int64 cannot hold: checked only when the bounds leave room for them.
    wide = integer and (lo is None or lo < INT64_MIN or hi is None or hi > INT64_MAX)

    def check(v: Any) -> Any:
        t = type(v)
        if t is not float and t is not int:
            if v is None:
                if nullable:
                    return None
                raise _Bad(f"{name} is null")
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise _Bad(f"{name} must be a number, got {type(v).__name__}")
        if t is float and not isfinite(v):  # ints are always finite (and isfinite overflows on huge ones)
            raise _Bad(f"{name} is not finite")
        if integer:
            if v != int(v):
                raise _Bad(f"{name} must be an integer, got {v}")
            v = int(v)
            if wide and not INT64_MIN <= v <= INT64_MAX:
                raise _Bad(f"{name}={v} is outside the 64-bit integer range")
        if lo is not None and v < lo:
            raise _Bad(f"{name}={v} is below the minimum {lo:g}")
        if hi is not None and v > hi:
            raise _Bad(f"{name}={v} is above the maximum {hi:g}")
        return v

    return check


def _categorical(f: CategoricalFeature) -> Callable[[Any], Any]:
    allowed = frozenset(f.values)

    def check(v: Any) -> Any:
        if v is None:
            if f.nullable:
                return None
            raise _Bad(f"{f.name} is null")
        if not isinstance(v, str):
            raise _Bad(f"{f.name} must be a string, got {type(v).__name__}")
        if v not in allowed:
            raise _Bad(f"{f.name}={v[:40]!r} is not an allowed value")
        return v

    return check


def _boolean(f: BooleanFeature) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None:
            if f.nullable:
                return None
            raise _Bad(f"{f.name} is null")
        if not isinstance(v, bool):
            raise _Bad(f"{f.name} must be true or false, got {type(v).__name__}")
        return v

    return check


class EventChecker:
    """Compiled once per spec; `check(raw_bytes)` is the hot path of ingestion."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        checks: list[tuple[str, Callable[[Any], Any]]] = []
        for f in spec.features:
            if isinstance(f, NumericFeature):
                checks.append((f.name, _numeric(f)))
            elif isinstance(f, CategoricalFeature):
                checks.append((f.name, _categorical(f)))
            else:
                checks.append((f.name, _boolean(f)))
        self._checks = checks
        self._reserved = (spec.event_id, spec.entity_key, spec.timestamp, spec.label)
        self._fields = spec.event_fields

    def check_obj(self, obj: Any) -> EventCheck:
        values = self.values_obj(obj)
        if isinstance(values, str):
            return EventCheck(None, values)
        return EventCheck(dict(zip(self._fields, values, strict=True)), None)

    def values_obj(self, obj: Any) -> list[Any] | str:
        """The normalized values in `spec.event_fields` order, or the rejection reason (a str).

        A list, not a dict: ingestion appends them to columns, so no per-event dict is built.
        """
        eid_f, key_f, ts_f, label_f = self._reserved
        if not isinstance(obj, dict):
            return f"event is a JSON {type(obj).__name__}, not an object"
        try:
            event_id = obj.get(eid_f)
            if not isinstance(event_id, str) or not event_id:
                raise _Bad(f"{eid_f} is missing or not a non-empty string")
            key = obj.get(key_f)
            if isinstance(key, bool) or not isinstance(key, str | int) or key == "":
                raise _Bad(f"{key_f} is missing or not a string/integer")
            if ts_f not in obj:
                raise _Bad(f"{ts_f} is missing")
            ts = obj[ts_f]
            ts = ts if type(ts) is int and ts > 100_000_000_000 else to_epoch_ms(ts)  # epoch ms: as is
            if not MIN_EPOCH_MS <= ts <= MAX_EPOCH_MS:
                raise _Bad(f"{ts_f} {obj[ts_f]!r:.40} is out of range (years 1 to 9999)")
            if label_f not in obj:
                raise _Bad(f"{label_f} is missing")
            label = obj[label_f]
            if label is True or label == 1:
                label = 1
            elif label is False or label == 0:
                label = 0
            else:
                raise _Bad(f"{label_f} must be true/false or 0/1, got {label!r:.40}")
            values = [event_id, key if type(key) is str else str(key), ts, label]
            append = values.append
            for name, check in self._checks:
                if name not in obj:
                    raise _Bad(f"{name} is missing")
                append(check(obj[name]))
        except _Bad as bad:
            return str(bad)
        return values

    def check(self, raw: bytes | str) -> EventCheck:
        try:
            obj = _loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return EventCheck(None, f"not valid JSON: {exc}")
        return self.check_obj(obj)

    def values(self, raw: bytes | str) -> list[Any] | str:
        """`check` for the ingestion hot path: values in `spec.event_fields` order, or the reason."""
        try:
            obj = _loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return f"not valid JSON: {exc}"
        return self.values_obj(obj)


_CHECKERS: dict[int, EventChecker] = {}


def checker_for(spec: DatasetSpec) -> EventChecker:
    """One compiled checker per spec object (specs hold lists, so they are not hashable)."""
    checker = _CHECKERS.get(id(spec))
    if checker is None or checker.spec is not spec:
        if len(_CHECKERS) > 32:
            _CHECKERS.clear()
        checker = _CHECKERS[id(spec)] = EventChecker(spec)
    return checker


def check_event(spec: DatasetSpec, raw: bytes | str) -> EventCheck:
    return checker_for(spec).check(raw)
