"""How the online store lays out the spec's aggregate state in Redis, and how aggregates come out of it.

Per entity k of spec s, two keys:
- `flywheel:<s>:h:<k>`, a sorted set: one member per event, scored by its event time (ms); the member is
  `<ts>|<value of each aggregated column>|<event id>` (a value is Python's repr of the float, empty for
  null; the id comes last so that any character may appear in it). A lookup of (k, t) is one
  ZRANGEBYSCORE over [t - longest window, t - 1], and every aggregate is computed from those members by
  the definition in pipelines.features.aggregates;
- `flywheel:<s>:i:<k>`, a hash: event id -> member, for the dedup by event id (a re-sent event is stored
  once, the copy with the earliest event time wins, as in the offline table).
An entity keeps its events within `longest window + lateness` of its newest event: older ones can only
enter aggregates of lookups more than `lateness` before that newest event (see README, late events).
Per spec: `flywheel:<s>:offsets` (partition -> next Kafka offset to apply) and `flywheel:<s>:meta`
(layout, topic, topic id, counters, the bootstrap's lakeFS commit), written in the same Lua call as the
state, so state and offsets can never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pipelines.features.aggregates import NO_HISTORY, AggregateDef, aggregated_columns, definitions, longest_window_ms
from pipelines.spec.model import DatasetSpec

SEPARATOR = b"|"
LAYOUT_VERSION = 1


class Keys:
    """Redis key names of one spec's state."""

    def __init__(self, spec_name: str) -> None:
        self.prefix = f"flywheel:{spec_name}:"
        self.offsets = self.prefix + "offsets"
        self.meta = self.prefix + "meta"

    def history(self, entity: str) -> str:
        return f"{self.prefix}h:{entity}"

    def ids(self, entity: str) -> str:
        return f"{self.prefix}i:{entity}"


def layout_signature(spec: DatasetSpec) -> str:
    """What a store's content must match to answer for `spec`: member columns and the history kept."""
    return json.dumps(
        {"version": LAYOUT_VERSION, "columns": aggregated_columns(spec), "longest_window_ms": longest_window_ms(spec)},
        sort_keys=True,
    )


def encode_value(value: object) -> str:
    """An aggregated column's value in a member: repr of the float (round-trips exactly), '' for null."""
    if value is None:
        return ""
    f = float(value)  # type: ignore[arg-type]
    return "" if f != f else repr(f)  # NaN is null, as in the reference


def member(ts: int, values: Sequence[object], event_id: str) -> str:
    return "|".join((str(ts), *(encode_value(v) for v in values), event_id))


class Aggregator:
    """Computes a spec's aggregates from the members of one lookup (event times ascending)."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.defs: list[AggregateDef] = definitions(spec)
        columns = aggregated_columns(spec)
        self.ncols = len(columns)
        self.longest_ms = longest_window_ms(spec)
        # (name, function, index of the column in a member's values or -1, window)
        self._plan = [(d.name, d.function, columns.index(d.column) if d.column else -1, d.window_ms) for d in self.defs]

    def compute(self, members: Sequence[bytes], event_ts: int) -> dict[str, float]:
        """The aggregates at `event_ts` from members with event times in [event_ts - longest, event_ts - 1]."""
        ncols = self.ncols
        rows: list[tuple[int, list[bytes]]] = []
        for m in members:
            parts = m.split(SEPARATOR, ncols + 1)
            rows.append((int(parts[0]), parts[1 : ncols + 1]))
        out: dict[str, float] = {}
        for name, function, col, window in self._plan:
            start = event_ts - window
            if function == "count":
                out[name] = float(sum(1 for ts, _ in rows if start <= ts < event_ts))
                continue
            if function == "seconds_since_last":
                last = max((ts for ts, _ in rows if start <= ts < event_ts), default=None)
                out[name] = NO_HISTORY[function] if last is None else (event_ts - last) / 1000.0
                continue
            values = [float(v[col]) for ts, v in rows if start <= ts < event_ts and v[col]]
            if not values:
                out[name] = NO_HISTORY[function]
            elif function == "sum":
                out[name] = _sum(values)
            elif function == "mean":
                out[name] = _sum(values) / len(values)
            else:
                out[name] = max(values)
        return out


def _sum(values: list[float]) -> float:
    total = 0.0
    for v in values:  # left to right in event-time order, as Spark's window frame adds them
        total += v
    return total
