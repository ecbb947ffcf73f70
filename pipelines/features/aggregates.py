"""What a per-entity history aggregate means: the one definition both feature engines implement.

The offline engine (Spark, `pipelines.features.build`) and the online engine (the online store,
`pipelines.features.online`) compute the spec's aggregates; this module states their semantics once and
holds a plain NumPy reference implementation (`reference_values`) that tests hold both engines to.

For an event e of entity k at event time t (milliseconds), an aggregate with window W = window_hours:
- history: the events of k with event time in [t - W, t - 1], i.e. strictly before t and at most W
  before it, that the engine knew when e arrived (offline: ingested in the same or an earlier batch, after
  dedup by event id; online: applied to the store before the lookup);
- count: the number of history events; sum / mean / max: of the aggregated column over the history
  events where it is not null;
- seconds_since_last: (t - the latest history event time) / 1000; its window bounds the look-back, so a
  quiet entity has no history, as for the other aggregates;
- no history (or only nulls in the column): the defaults in NO_HISTORY, so the model table has no nulls.
An engine needs at most `longest_window_ms(spec)` of each entity's history: anything older can never enter
an aggregate of an event that comes later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pipelines.spec.model import DatasetSpec

NO_HISTORY: dict[str, float] = {"count": 0.0, "sum": 0.0, "mean": 0.0, "max": 0.0, "seconds_since_last": -1.0}
MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class AggregateDef:
    name: str
    function: str  # count | sum | mean | max | seconds_since_last
    column: str | None
    window_ms: int


def definitions(spec: DatasetSpec) -> list[AggregateDef]:
    """The spec's aggregates, windows in milliseconds (the unit of event time)."""
    return [AggregateDef(a.name, a.function, a.column, int(a.window_hours * MS_PER_HOUR)) for a in spec.aggregates]


def longest_window_ms(spec: DatasetSpec) -> int:
    """How much of an entity's history any aggregate can read (0 without aggregates)."""
    return max((d.window_ms for d in definitions(spec)), default=0)


def aggregated_columns(spec: DatasetSpec) -> list[str]:
    """The event columns the aggregates read, each once, in spec order."""
    return list(dict.fromkeys(a.column for a in spec.aggregates if a.column))


def reference_values(
    defs: list[AggregateDef],
    history_ts: np.ndarray,
    history_columns: Mapping[str, np.ndarray],
    event_ts: int,
) -> dict[str, float]:
    """The aggregates of one event from its entity's history (any order; event times in ms; column values
    as float arrays with NaN for null), by the definition above. Slow and obvious on purpose."""
    ts = np.asarray(history_ts, dtype=np.int64)
    out: dict[str, float] = {}
    for d in defs:
        in_window = (ts < event_ts) & (ts >= event_ts - d.window_ms)
        if d.function == "seconds_since_last":
            out[d.name] = float(event_ts - ts[in_window].max()) / 1000.0 if in_window.any() else NO_HISTORY[d.function]
            continue
        if d.function == "count":
            out[d.name] = float(in_window.sum())
            continue
        values = np.asarray(history_columns[d.column], dtype=np.float64)[in_window]  # type: ignore[index]
        values = values[~np.isnan(values)]
        if values.size == 0:
            out[d.name] = NO_HISTORY[d.function]
        elif d.function == "sum":
            out[d.name] = float(values.sum())
        elif d.function == "mean":
            out[d.name] = float(values.mean())
        else:
            out[d.name] = float(values.max())
    return out
