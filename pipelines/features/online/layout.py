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
# per lookup the k values joined by ',', lookups joined by ';', each exact: a count as an integer, a max as the
# member's own text, the rest %.17g. The arithmetic is the model table's in IEEE doubles
# (pipelines.features.build.aggregate_values): values added in ascending order, mean = sum / n, so both engines
# give the same bits. Members are parsed once per lookup (one pattern match for a one-column spec), and each
# window starts at the first member inside it (they come in time order): a fifth less server time than
# parsing values per aggregate.
LOOKUP = """
local layout = redis.call('HGET', KEYS[1], 'layout')
if not layout then return {0} end
if layout ~= ARGV[3] then return {1, layout} end
local call, find, sub, match, format, tonumber, sort, concat =
  redis.call, string.find, string.sub, string.match, string.format, tonumber, table.sort, table.concat
local prefix, ncols, longest, k = ARGV[1] .. 'h:', tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
local fns, cols, wins, defaults = {}, {}, {}, {}
for j = 1, k do
  local at = 5 + 4 * (j - 1)
  fns[j], cols[j], wins[j], defaults[j] = ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), ARGV[at + 4]
end
local out = {}
for i = 6 + 4 * k, #ARGV - 1, 2 do
  local t = tonumber(ARGV[i + 1])
  local members = call('ZRANGEBYSCORE', prefix .. ARGV[i], format('%d', t - longest), format('%d', t - 1))
  local n = #members
  -- times ascending (the sorted set's order); column values flat, member m's column c at (m - 1) * ncols + c:
  -- the number (false for null) and its text (a float's repr, which reads back as the same double)
  local times, nums, texts = {}, {}, {}
  for m = 1, n do
    local text = members[m]
    if ncols == 1 then  -- the common spec: one pattern match takes the time and the value
      local ts, v = match(text, '^([^|]*)|([^|]*)|')
      times[m], texts[m], nums[m] = tonumber(ts), v, v ~= '' and tonumber(v)
    else
      local bar = find(text, '|', 1, true)
      times[m] = tonumber(sub(text, 1, bar - 1))
      for c = (m - 1) * ncols + 1, m * ncols do
        local pos = bar + 1
        bar = find(text, '|', pos, true)
        local v = sub(text, pos, bar - 1)
        texts[c], nums[c] = v, v ~= '' and tonumber(v)
      end
    end
  end
  local row = {}
  for j = 1, k do
    local start, fn, result = t - wins[j], fns[j], nil
    local first = n + 1  -- the first member inside this window
    while first > 1 and times[first - 1] >= start do first = first - 1 end
    if fn == 'count' then
      result = n - first + 1  -- an integer: concat writes it exactly
    elseif fn == 'seconds_since_last' then
      if first <= n then result = format('%.17g', (t - times[n]) / 1000) end
    else
      local c = cols[j]
      if fn == 'max' then
        local best, at = nil, nil
        for m = first, n do
          local v = nums[(m - 1) * ncols + c]
          if v and (best == nil or v > best) then best, at = v, (m - 1) * ncols + c end
        end
        if at then result = texts[at] end  -- the value as stored: no formatting
      else
        local inside = {}
        for m = first, n do
          local v = nums[(m - 1) * ncols + c]
          if v then inside[#inside + 1] = v end
        end
        local count = #inside
        if count > 0 then
          sort(inside)  -- ascending, as the model table adds them: the same bits
          local sum = 0.0
          for x = 1, count do sum = sum + inside[x] end
          result = format('%.17g', fn == 'sum' and sum or sum / count)
        end
      end
    end
    if result == nil then row[j] = defaults[j] else row[j] = result end
  end
  out[#out + 1] = concat(row, ',')
end
return {2, concat(out, ';')}
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
