"""Table rows -> JSON-ready events typed per spec (shared by the simulator and file replay).

Values become what the spec says they are: integers as int, other numbers as float, categories as str,
booleans as bool, the timestamp as ISO 8601 UTC with milliseconds ("2026-01-01T08:15:00.000Z"). Missing
values (None, NaN, NaT) and infinities (JSON has none) become null. A value that cannot be typed (say "abc"
in a numeric column) is passed through unchanged, so the ingestion checker quarantines it with a reason
instead of the producer silently fixing or dropping it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipelines.spec.model import BooleanFeature, CategoricalFeature, DatasetSpec, NumericFeature

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def timestamps_iso(values: pd.Series) -> list[str | None]:
    """Datetimes (aware, any unit) -> ISO 8601 UTC strings with milliseconds; NaT -> None."""
    ts = pd.to_datetime(values, utc=True)
    ms = ts.dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    text = np.char.add(np.datetime_as_string(ms, unit="ms"), "Z").tolist()
    if ts.isna().any():
        for i in np.flatnonzero(ts.isna().to_numpy()):
            text[i] = None
    return text


def _numbers(values: pd.Series, integer: bool) -> list[Any]:
    if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
        return [_number(v, integer) for v in values.tolist()]
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(arr)
    if integer:
        whole = finite & (arr == np.round(arr))
        out: list[Any] = np.where(whole, arr, 0).astype(np.int64).tolist()
        for i in np.flatnonzero(~whole):
            out[i] = float(arr[i]) if finite[i] else None  # a fraction stays visible; the checker rejects it
        return out
    out = arr.tolist()
    for i in np.flatnonzero(~finite):
        out[i] = None
    return out


def _number(v: Any, integer: bool) -> Any:
    """One value of a numeric column that pandas could not type (e.g. a CSV column holding "abc")."""
    if _is_missing(v):
        return None
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return v  # not a number: left for the checker to reject
    if isinstance(v, bool | np.bool_):
        return v
    if isinstance(v, int | np.integer | float | np.floating):
        f = float(v)
        if not np.isfinite(f):
            return None
        return int(f) if integer and f == int(f) else f
    return v


def _boolean(v: Any) -> Any:
    if _is_missing(v):
        return None
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer | float | np.floating) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    return v


def _booleans(values: pd.Series) -> list[Any]:
    if pd.api.types.is_bool_dtype(values) and not values.isna().any():
        return values.astype(bool).tolist()
    return [_boolean(v) for v in values.tolist()]


def _text(v: Any) -> Any:
    if _is_missing(v):
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))  # a category read as 1.0 means "1"
    return str(v)


def _texts(values: pd.Series) -> list[Any]:
    return [v if type(v) is str else _text(v) for v in values.tolist()]


def _key(v: Any) -> Any:
    if _is_missing(v):
        return None
    if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
        return int(v)
    return _text(v)


def _label(v: Any) -> Any:
    if _is_missing(v):
        return None
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer | float | np.floating) and v in (0, 1):
        return int(v)
    return _boolean(v) if isinstance(v, str) else v


def typed_columns(frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, list[Any]]:
    """Each spec field of `frame` as a list of JSON-ready values (the frame must have every field)."""
    cols: dict[str, list[Any]] = {
        spec.event_id: [None if _is_missing(v) else str(v) for v in frame[spec.event_id].tolist()],
        spec.timestamp: timestamps_iso(frame[spec.timestamp]),
        spec.label: [_label(v) for v in frame[spec.label].tolist()],
    }
    if spec.entity_key:
        cols[spec.entity_key] = [_key(v) for v in frame[spec.entity_key].tolist()]
    for f in spec.features:
        values = frame[f.name]
        if isinstance(f, NumericFeature):
            cols[f.name] = _numbers(values, f.integer)
        elif isinstance(f, CategoricalFeature):
            cols[f.name] = _texts(values)
        elif isinstance(f, BooleanFeature):
            cols[f.name] = _booleans(values)
    return cols


def iter_events(frame: pd.DataFrame, spec: DatasetSpec, chunk_rows: int = 20_000) -> Iterator[dict[str, Any]]:
    """The rows of `frame` as event dicts in row order, converted a chunk at a time to bound memory."""
    names = spec.event_fields
    for lo in range(0, len(frame), chunk_rows):
        cols = typed_columns(frame.iloc[lo : lo + chunk_rows], spec)
        for row in zip(*(cols[n] for n in names), strict=True):
            yield dict(zip(names, row, strict=True))


def frame_to_events(frame: pd.DataFrame, spec: DatasetSpec) -> list[dict[str, Any]]:
    return list(iter_events(frame, spec))


def event_key(event: Mapping[str, Any], spec: DatasetSpec) -> bytes | None:
    """The Kafka message key: the entity key as UTF-8, so all events of an entity share a partition (None
    without an entity key: the producer spreads the events)."""
    value = event.get(spec.entity_key) if spec.entity_key else None
    return None if value is None else str(value).encode()
