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


# The aggregates of a batch of lookups, computed where the history is (one call, one short reply, instead of
# every history member through the client's RESP parser). KEYS: meta hash. ARGV: prefix, ncols, layout, longest
# window, number of aggregates k, k quadruples (function, column 1..ncols or 0, window ms, no-history value),
# then (entity, event time) pairs. Returns {0} (no state), {1, stored layout} (another layout) or {2, text}:
# per lookup the k values (%.17g: exact doubles) joined by ',', lookups joined by ';'. The arithmetic is the
# model table's in IEEE doubles (pipelines.features.build.aggregate_values): values added in ascending order,
# mean = sum / n, so both engines give the same bits.
LOOKUP = """
local layout = redis.call('HGET', KEYS[1], 'layout')
if not layout then return {0} end
if layout ~= ARGV[3] then return {1, layout} end
local prefix, ncols, longest, k = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
local fns, cols, wins, defaults = {}, {}, {}, {}
for j = 1, k do
  local at = 5 + 4 * (j - 1)
  fns[j], cols[j], wins[j], defaults[j] = ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), ARGV[at + 4]
end
local out = {}
for i = 6 + 4 * k, #ARGV - 1, 2 do
  local t = tonumber(ARGV[i + 1])
  local members = redis.call('ZRANGEBYSCORE', prefix .. 'h:' .. ARGV[i],
    string.format('%d', t - longest), string.format('%d', t - 1))
  local times, values = {}, {}  -- values flat: member m's column c at (m - 1) * ncols + c
  for m, text in ipairs(members) do
    local bar = string.find(text, '|', 1, true)
    times[m] = tonumber(string.sub(text, 1, bar - 1))
    for c = 1, ncols do
      local pos = bar + 1
      bar = string.find(text, '|', pos, true)
      values[(m - 1) * ncols + c] = string.sub(text, pos, bar - 1)
    end
  end
  local row = {}
  for j = 1, k do
    local start, fn, result = t - wins[j], fns[j], nil
    if fn == 'count' then
      local n = 0
      for m = 1, #members do if times[m] >= start then n = n + 1 end end
      result = n
    elseif fn == 'seconds_since_last' then
      local last = times[#members]
      if last ~= nil and last >= start then result = (t - last) / 1000 end
    else
      local inside = {}
      for m = 1, #members do
        local v = values[(m - 1) * ncols + cols[j]]
        if times[m] >= start and v ~= '' then inside[#inside + 1] = tonumber(v) end
      end
      local n = #inside
      if n > 0 then
        table.sort(inside)  -- ascending, as the model table adds them: the same bits
        if fn == 'max' then
          result = inside[n]
        else
          local sum = 0.0
          for _, v in ipairs(inside) do sum = sum + v end
          result = fn == 'sum' and sum or sum / n
        end
      end
    end
    row[j] = result == nil and defaults[j] or string.format('%.17g', result)
  end
  out[#out + 1] = table.concat(row, ',')
end
return {2, table.concat(out, ';')}
"""


class Aggregator:
    """The arguments of LOOKUP for a spec's aggregates, and its reply as one dict per lookup."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.defs: list[AggregateDef] = definitions(spec)
        columns = aggregated_columns(spec)
        self.ncols = len(columns)
        self.longest_ms = longest_window_ms(spec)
        self.names = [d.name for d in self.defs]
        self.plan: list[object] = [len(self.defs)]
        for d in self.defs:
            column = columns.index(d.column) + 1 if d.column else 0
            self.plan += [d.function, column, d.window_ms, repr(NO_HISTORY[d.function])]

    def parse(self, text: bytes, lookups: int) -> list[dict[str, float]]:
        names = self.names
        rows = text.decode().split(";") if lookups else []
        return [dict(zip(names, map(float, row.split(",")), strict=True)) for row in rows]
