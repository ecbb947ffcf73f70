"""Parsing and checking one raw event against a spec.

Every event either becomes a clean record (typed, normalized) or a rejection with a reason that says
which field failed and why. Nothing is dropped silently: the caller quarantines rejections with the reason.
Normalization: timestamp -> epoch milliseconds (int), label -> 0/1, booleans -> bool, integers -> int,
other numbers -> float.

The check is total: whatever one event holds (nesting ~1000 deep, numbers no column can store, repeated keys,
or a bug in a check), it ends as a record or a reason, never as an exception that would fail the whole read
and stop the stream on the same record at every retry. Reasons describe values with `describe`, which is
bounded in length and depth (repr of a deeply nested value raises RecursionError).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from pipelines.spec.fastcheck import compile_fast_path
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


_MISSING = object()


_PREVIEW_CHARS = 40  # of a string shown in a reason
_PREVIEW_ITEMS = 4  # of a list or object shown in a reason
_PREVIEW_DEPTH = 3  # levels of nesting shown; deeper ones become [...] / {...}


def _preview(value: Any, depth: int) -> str:
    t = type(value)
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if isinstance(value, int):
        # str() of an int over 4300 digits raises ValueError (and is useless in a reason anyway)
        return str(int(value)) if value.bit_length() <= 128 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, str):
        return repr(value[:_PREVIEW_CHARS]) + ("..." if len(value) > _PREVIEW_CHARS else "")
    if isinstance(value, list | tuple | dict):
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        if depth <= 0:
            return f"{opening}...{closing}"
        if isinstance(value, dict):
            shown = [f"{_preview(k, 0)}: {_preview(v, depth - 1)}" for k, v in islice(value.items(), _PREVIEW_ITEMS)]
        else:
            shown = [_preview(v, depth - 1) for v in islice(value, _PREVIEW_ITEMS)]
        more = ", ..." if len(value) > _PREVIEW_ITEMS else ""
        return f"{opening}{', '.join(shown)}{more}{closing}"
    return f"a {t.__name__}"


def describe(value: Any) -> str:
    """A JSON value for a rejection reason: a short preview that never recurses deeper than 3 levels.

    Scalars as JSON-ish text ('maybe', 1.5, null), containers as "a list [...]" / "an object {...}".
    """
    if isinstance(value, list | tuple):
        text = "a list " + _preview(value, _PREVIEW_DEPTH)
    elif isinstance(value, dict):
        text = "an object " + _preview(value, _PREVIEW_DEPTH)
    else:
        text = _preview(value, 0)
    return text if len(text) <= 60 else text[:57] + "..."


def _failed(exc: BaseException) -> str:
    """The reason for an event whose check raised: the exception's type (its message may hold the event)."""
    return f"checking the event failed: {type(exc).__name__}"


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
            t = float if isinstance(v, float) else int  # a subclass (numpy, enum): checked and stored as the base
            v = t(v)
        if t is float and not isfinite(v):  # ints are always finite (and isfinite overflows on huge ones)
            raise _Bad(f"{name} is not finite")
        if integer:
            if t is float and not v.is_integer():
                raise _Bad(f"{name} must be an integer, got {v}")
            n = int(v)
            if wide and not INT64_MIN <= n <= INT64_MAX:
                raise _Bad(f"{name}={describe(v)} is outside the 64-bit integer range")
        if lo is not None and v < lo:  # exact comparisons (int with float), on the value as sent
            raise _Bad(f"{name}={describe(v)} is below the minimum {lo:g}")
        if hi is not None and v > hi:
            raise _Bad(f"{name}={describe(v)} is above the maximum {hi:g}")
        if integer:
            return n
        if t is int:
            # The column is float64: store the float, so Arrow never meets an int it cannot represent exactly
            # (9007199254740993 fails the whole batch). Rounding is monotonic: the float stays within the bounds.
            try:
                return float(v)
            except OverflowError:
                raise _Bad(f"{name}={describe(v)} is too large for a 64-bit float") from None
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
            raise _Bad(f"{f.name}={describe(v)} is not an allowed value")
        return str(v)  # a str subclass is stored as str

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
        # The '"'s of an accepted event without extra fields (the duplicate-key test in `_values`): two per key
        # and two per string value: the event id, the entity key and timestamp (less 2 each when sent as
        # numbers) and every categorical. 0 (no such shortcut) when a categorical may be null.
        nullable = any(f.nullable for f in spec.categorical_features)
        strings = 3 if spec.entity_key else 2  # the event id, the entity key (if any) and the timestamp
        self._quotes = 0 if nullable else 2 * (len(self._fields) + strings + len(spec.categorical_features))
        # `values`: the ingestion hot path, a generated fast path that hands every unusual event to
        # `general_values` (the same answers, half the CPU on clean events; see pipelines.spec.fastcheck).
        self.values: Callable[[bytes | str], tuple[Any, ...] | str] = compile_fast_path(
            spec,
            general=self.general_values,
            decided=self._row,
            loads=_loads,
            failed=_failed,
            max_epoch_ms=MAX_EPOCH_MS,
        )

    def check_obj(self, obj: Any) -> EventCheck:
        values = self.values_obj(obj)
        if isinstance(values, str):
            return EventCheck(None, values)
        return EventCheck(dict(zip(self._fields, values, strict=True)), None)

    def values_obj(self, obj: Any) -> list[Any] | str:
        """The normalized values in `spec.event_fields` order, or the rejection reason (a str). Never raises.

        A list, not a dict (no per-event dict is built); a list, not `values`' tuple, since the monitoring
        window replaces values in it.
        """
        return self._values(obj, None)

    def check(self, raw: bytes | str) -> EventCheck:
        values = self.values(raw)
        if isinstance(values, str):
            return EventCheck(None, values)
        return EventCheck(dict(zip(self._fields, values, strict=True)), None)

    def general_values(self, raw: bytes | str) -> tuple[Any, ...] | str:
        """Values in `spec.event_fields` order (a tuple), or the reason. Never raises. `values` gives the same
        answers faster; this is the check it falls back to."""
        try:
            obj = _loads(raw)
        except ValueError as exc:  # orjson's JSONDecodeError (invalid UTF-8 included) is a ValueError
            return f"not valid JSON: {exc}"
        except Exception as exc:
            return _failed(exc)
        return self._row(obj, raw)

    def _row(self, obj: Any, raw: bytes | str) -> tuple[Any, ...] | str:
        values = self._values(obj, raw)
        return values if type(values) is str else tuple(values)

    def _values(self, obj: Any, raw: bytes | str | None) -> list[Any] | str:
        """`values_obj`; with `raw` (what `obj` was parsed from), repeated keys are rejected too."""
        eid_f, key_f, ts_f, label_f = self._reserved
        if not isinstance(obj, dict):
            return f"event is a JSON {type(obj).__name__}, not an object"
        try:
            get = obj.get  # one lookup per field (a sentinel for "missing", not `in` and then [])
            event_id = get(eid_f)
            if type(event_id) is not str:
                if not isinstance(event_id, str):
                    raise _Bad(f"{eid_f} is missing or not a non-empty string")
                event_id = str(event_id)  # a str subclass (check_obj) is stored as str
            if not event_id:
                raise _Bad(f"{eid_f} is missing or not a non-empty string")
            key = get(key_f) if key_f is not None else ""  # no entity key: nothing to check, nothing stored
            if key_f is not None and (isinstance(key, bool) or not isinstance(key, str | int) or key == ""):
                raise _Bad(f"{key_f} is missing or not a string/integer")
            sent_ts = get(ts_f, _MISSING)
            if sent_ts is _MISSING:
                raise _Bad(f"{ts_f} is missing")
            ts = sent_ts if type(sent_ts) is int and sent_ts > 100_000_000_000 else to_epoch_ms(sent_ts)  # ms: as is
            if not MIN_EPOCH_MS <= ts <= MAX_EPOCH_MS:
                raise _Bad(f"{ts_f} {describe(sent_ts)} is out of range (years 1 to 9999)")
            label = get(label_f, _MISSING)
            if label is _MISSING:
                raise _Bad(f"{label_f} is missing")
            if label is True or label == 1:
                label = 1
            elif label is False or label == 0:
                label = 0
            else:
                raise _Bad(f"{label_f} must be true/false or 0/1, got {describe(label)}")
            if key_f is None:
                values = [event_id, ts, label]
            else:
                values = [event_id, key if type(key) is str else _key_text(key), ts, label]
            append = values.append
            for name, check in self._checks:
                v = get(name, _MISSING)
                if v is _MISSING:
                    raise _Bad(f"{name} is missing")
                append(check(v))
            if raw is not None:
                quotes = self._quotes
                if quotes and type(raw) is bytes and len(obj) == len(values):
                    # The hot path: accepted, no extra fields, so the string values are known (see `_quotes`)
                    # and one count of '"' shows that no key repeats.
                    if type(key) is not str:
                        quotes -= 2
                    if type(sent_ts) is not str:
                        quotes -= 2
                    if raw.count(b'"') == quotes:
                        return values
                repeated = _duplicate(raw, obj)
                if repeated is not None:
                    return repeated
        except _Bad as bad:
            # A repeated key comes first: the value checked may not be the one the producer meant.
            return (_duplicate(raw, obj) if raw is not None else None) or str(bad)
        except Exception as exc:  # a value no check foresaw must not escape: it would stop the stream
            return _failed(exc)
        return values


def _duplicate(raw: bytes | str, obj: dict[str, Any]) -> str | None:
    """The reason for `raw` (parsed as `obj`) when a key repeats in one of its objects, else None. Never raises."""
    try:
        repeated = _repeated_key(raw, 2 * (len(obj) + list(map(type, obj.values())).count(str)))
    except Exception as exc:
        return _failed(exc)
    return None if repeated is None else f"duplicate key {describe(repeated)}"


def _key_text(key: int) -> str:
    return str(int(key))  # an int subclass (bool excluded by the check) as its plain digits


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_repeats(pairs: list[tuple[str, Any]]) -> None:
    """object_pairs_hook: raises _Repeated on the first key seen twice in one object (nothing is kept)."""
    if len(pairs) > 1 and len(dict(pairs)) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Repeated(key)
            seen.add(key)


_PAIRS = json.JSONDecoder(object_pairs_hook=_no_repeats)

# A JSON string or one structural character; numbers, literals and whitespace fall between the matches.
# Possessive quantifiers: linear on any input, no backtracking.
_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[{}\[\]:]', re.DOTALL)


def _repeated_key(raw: bytes | str, quotes: int) -> str | None:
    """A key that appears twice in one object of `raw`, or None; `quotes`: 2 x (keys + string values) of the
    object orjson parsed from it (repeats collapsed).

    orjson keeps the last of repeated keys silently; a producer that repeats keys is broken. A cheap test
    first: every '"' of raw delimits a key or a string value, unless it is escaped or nested. When the top
    level has exactly as many as its keys and string values need, there is no other key, so none repeats.
    Only events with escaped quotes, nested strings or repeats pay for a second parse that names the key.
    """
    if raw.count('"' if isinstance(raw, str) else b'"') == quotes:
        return None
    text = raw if isinstance(raw, str) else bytes(raw).decode()  # orjson accepted it: valid UTF-8
    try:
        _PAIRS.decode(text)  # json's C scanner, the hook sees every object's pairs
    except _Repeated as repeated:
        return repeated.key
    except RecursionError:  # nesting that orjson takes (1024) and json does not: a scan without recursion
        return _scan_for_repeat(text)
    return None


def _scan_for_repeat(text: str) -> str | None:
    """`_repeated_key` for any depth: one set of keys per open object (None for an array), in a loop."""
    stack: list[set[str] | None] = []
    last_string = ""
    for token in _TOKENS.findall(text):
        first = token[0]
        if first == '"':
            last_string = token
        elif first == ":":  # the string just before a colon is a key of the innermost object
            key = last_string[1:-1] if "\\" not in last_string else json.loads(last_string)
            keys = stack[-1]
            if keys is not None:
                if key in keys:
                    return key
                keys.add(key)
        elif first == "{":
            stack.append(set())
        elif first == "[":
            stack.append(None)
        else:
            stack.pop()
    return None


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
