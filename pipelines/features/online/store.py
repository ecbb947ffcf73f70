"""The online store in Redis: atomic writes of events with their Kafka offsets, and batched lookups.

Writes go through one Lua script (`APPLY`): a batch of one Kafka partition's events, the partition's next
offset and the counters are applied in one atomic call, so a process killed at any instant leaves state
and offsets consistent (a restart neither skips nor double-counts). The script refuses a batch whose first
offset is below the stored next offset (a second updater, or a stale one, cannot apply events twice) and one
whose first offset is above it (the store lost writes: the events in between would never be applied).
Lookups are one pipeline (one round trip) for any number of entities. The layout: `layout.py`.

Every call has a socket timeout; connection errors, timeouts and a store that holds no (or another
spec's) state raise OnlineStoreUnavailable with the reason.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipelines.features.aggregates import longest_window_ms
from pipelines.features.online import DEFAULT_TIMEOUT_S
from pipelines.features.online.api import OnlineStoreUnavailable
from pipelines.features.online.layout import LOOKUP, Aggregator, Keys, layout_signature
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)

DEFAULT_LATENESS_MS = 3_600_000  # history kept beyond the longest window: exact lookups up to 1 h late
TRIM_EVERY = 8  # an entity's history is trimmed at about one insert in 8 (see APPLY)

# KEYS: offsets hash, meta hash. ARGV: prefix, keep_ms, ncols, partition ('' = no offset), first offset,
# next offset, rejected count, and the events as one flat JSON array of strings, four per event: entity,
# event time, event id, member (`pack_events`; packed by orjson and unpacked by the server's cjson, both in C,
# flat because a table per event cost the server more than the decoding itself). Returns {applied,
# duplicates, trimmed}, or, writing nothing, {-1, stored offset} when the batch starts below the stored offset
# (it was applied already) and {-2, stored offset} when it starts above it (a gap: the store lost writes, e.g. a
# crash with appendfsync everysec or a failover, and the events in between must be read again). The first
# offset is the partition's expected position (where the reader sought, or the previous call's next offset),
# not the first record's: a topic may skip offsets (transaction markers, compaction).
# Two calls per event in the common case (HSETNX of the id, ZADD). Trimming only bounds memory (a lookup
# reads its window by score, so older members never change an answer): an entity is trimmed at about one
# insert in TRIM_EVERY (event time modulo, deterministic), so it holds at most a few events beyond the kept
# history.
APPLY = """
local offsets, meta = KEYS[1], KEYS[2]
local prefix, keep, ncols = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local partition = ARGV[4]
if partition ~= '' then
  local stored = redis.call('HGET', offsets, partition)
  if stored then
    stored = tonumber(stored)
    local first = tonumber(ARGV[5])
    if stored > first then return {-1, stored} end
    if stored < first then return {-2, stored} end
  end
end
local call, find, sub, format, unpack = redis.call, string.find, string.sub, string.format, unpack
local function event_id(m)
  local pos = 0
  for _ = 0, ncols do pos = find(m, '|', pos + 1, true) end
  return sub(m, pos + 1)
end
local hprefix, iprefix = prefix .. 'h:', prefix .. 'i:'
local applied, dups, trimmed = 0, 0, 0
local events = cjson.decode(ARGV[8])
for i = 1, #events, 4 do
  local entity, ts_text, eid, m = events[i], events[i + 1], events[i + 2], events[i + 3]
  local hkey, ikey = hprefix .. entity, iprefix .. entity
  local ts = tonumber(ts_text)
  local add = true
  if call('HSETNX', ikey, eid, ts_text) == 0 then
    local prev = tonumber(call('HGET', ikey, eid))
    if prev <= ts then
      add = false
      dups = dups + 1
    else  -- the earlier copy of a re-sent event wins, as offline: drop the later one
      for _, old in ipairs(call('ZRANGEBYSCORE', hkey, prev, prev)) do
        if event_id(old) == eid then call('ZREM', hkey, old) end
      end
      call('HSET', ikey, eid, ts_text)
    end
  end
  if add then
    call('ZADD', hkey, ts_text, m)
    applied = applied + 1
    if ts % TRIM_EVERY == 0 then
      local cut = format('(%d', ts - keep)
      repeat  -- in slices: unpack has a bounded stack
        local gone = call('ZRANGEBYSCORE', hkey, '-inf', cut, 'LIMIT', 0, 1000)
        if #gone > 0 then
          local ids = {}
          for j, g in ipairs(gone) do ids[j] = event_id(g) end
          call('ZREM', hkey, unpack(gone))
          call('HDEL', ikey, unpack(ids))
          trimmed = trimmed + #gone
        end
      until #gone < 1000
    end
  end
end
if partition ~= '' then
  call('HSET', offsets, partition, ARGV[6])
end
call('HINCRBY', meta, 'applied', applied)
call('HINCRBY', meta, 'duplicates', dups)
call('HINCRBY', meta, 'trimmed', trimmed)
call('HINCRBY', meta, 'rejected', tonumber(ARGV[7]))
return {applied, dups, trimmed}
""".replace("TRIM_EVERY", str(TRIM_EVERY))


def pack_events(events: Sequence[tuple[str, int, str, str]]) -> bytes:
    """APPLY's events argument: one flat JSON array, four strings per event (entity, event time, id, member)."""
    import orjson

    flat: list[str] = []
    for entity, ts, eid, m in events:
        flat += (entity, str(ts), eid, m)
    return orjson.dumps(flat)


@dataclass(frozen=True)
class ApplyResult:
    applied: int
    duplicates: int
    trimmed: int  # events that fell out of the kept history (longest window + lateness before the newest)
    conflict_offset: int | None = None  # set when the batch was already applied (nothing written)
    gap_offset: int | None = None  # set when the store is behind the batch's first offset (nothing written)


@dataclass(frozen=True)
class StoredState:
    """What the store says about itself: its layout, topic, offsets and counters."""

    layout: str | None
    topic: str | None
    topic_id: str | None
    offsets: dict[int, int]
    counters: dict[str, int]
    source: str | None  # "bootstrap <commit>" when it was filled from lakeFS
    lateness_ms: int | None


def redis_client(url: str, timeout_s: float) -> Any:
    """A client with a socket timeout on every call and at most one immediate retry (a pooled connection
    that the server closed): never redis-py's default backoff of seconds."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )


def describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


class RedisOnlineStore:
    """One spec's online state in Redis: `lookup` for serving (OnlineFeatures), `apply` for the updater."""

    def __init__(
        self,
        spec: DatasetSpec,
        url: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        lateness_ms: int = DEFAULT_LATENESS_MS,
        client: Any = None,
    ) -> None:
        self.spec = spec
        self.url = url
        self.where = describe_url(url)
        self.timeout_s = timeout_s
        self.keys = Keys(spec.name)
        self.aggregator = Aggregator(spec)
        self.layout = layout_signature(spec)
        self.keep_ms = longest_window_ms(spec) + lateness_ms
        self.lateness_ms = lateness_ms
        self.client = client or redis_client(url, timeout_s)
        self._apply = self.client.register_script(APPLY)
        self._lookup = self.client.register_script(LOOKUP)

    @contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        import redis

        try:
            yield
        except redis.AuthenticationError as exc:
            raise OnlineStoreUnavailable(
                f"online store at {self.where} refused the password ({exc}) while {what}; check "
                "FLYWHEEL_ONLINE_STORE_URL (`flywheel up` writes it to .flywheel/stack.env)"
            ) from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise OnlineStoreUnavailable(
                f"online store at {self.where} did not answer within {self.timeout_s:g}s while {what} ({exc}); "
                "is it running (`flywheel status`)?"
            ) from exc
        except redis.RedisError as exc:
            raise OnlineStoreUnavailable(f"online store at {self.where} failed while {what}: {exc}") from exc

    # --- serving ---------------------------------------------------------------------------------------
    def lookup(self, entities: Sequence[str], event_times: Sequence[int]) -> list[dict[str, float]]:
        """The aggregates of each (entity, event time ms): one call (one round trip) for the whole batch."""
        if len(entities) != len(event_times):
            raise ValueError(f"{len(entities)} entities but {len(event_times)} event times")
        if not entities:
            return []
        agg = self.aggregator
        args: list[Any] = [self.keys.prefix, agg.ncols, self.layout, agg.longest_ms, *agg.plan]
        for entity, t in zip(entities, event_times, strict=True):
            args += [str(entity), int(t)]
        with self._calls(f"looking up {len(entities)} entities"):
            reply = self._lookup(keys=[self.keys.meta], args=args)
        if reply[0] != 2:
            self._check_layout(reply[1] if len(reply) > 1 else None)
        return agg.parse(reply[1], len(entities))

    def _check_layout(self, stored: bytes | None) -> None:
        if stored is None:
            raise OnlineStoreUnavailable(
                f"online store at {self.where} holds no state for spec {self.spec.name!r} yet: start the updater "
                "(`flywheel features update`, started by `flywheel up`) or fill it from lakeFS with "
                "`flywheel features bootstrap`"
            )
        if stored.decode() != self.layout:
            raise OnlineStoreUnavailable(
                f"online store at {self.where} holds state of another layout for spec {self.spec.name!r} "
                f"({stored.decode()}, this spec needs {self.layout}): the spec's aggregates changed; refill it "
                "with `flywheel features bootstrap --force`"
            )

    def ping(self) -> None:
        """Raises OnlineStoreUnavailable unless the store answers."""
        with self._calls("pinging"):
            self.client.ping()

    # --- writing -----------------------------------------------------------------------------------------
    def init(self, topic: str, topic_id: str | None) -> None:
        """Record the layout and topic (first start or bootstrap); refuses another spec layout's state."""
        state = self.state()
        if state.layout is not None and state.layout != self.layout:
            raise OnlineStoreUnavailable(
                f"online store at {self.where} holds state of another layout for spec {self.spec.name!r}: "
                "the spec's aggregates changed; refill it with `flywheel features bootstrap --force`"
            )
        with self._calls("recording the layout"):
            self.client.hset(
                self.keys.meta,
                mapping={
                    "layout": self.layout,
                    "topic": topic,
                    "topic_id": topic_id or "",
                    "lateness_ms": self.lateness_ms,
                },
            )

    def apply(
        self,
        events: Sequence[tuple[str, int, str, str]],
        partition: int | None = None,
        first_offset: int = 0,
        next_offset: int = 0,
        rejected: int = 0,
    ) -> ApplyResult:
        """Apply (entity, event time, event id, member) events (`layout.member`) and, with a partition, move
        its offset, atomically."""
        return self.apply_packed(pack_events(events), len(events), partition, first_offset, next_offset, rejected)

    def apply_packed(
        self,
        packed: bytes,
        count: int,
        partition: int | None = None,
        first_offset: int = 0,
        next_offset: int = 0,
        rejected: int = 0,
    ) -> ApplyResult:
        """`apply` of `count` events already packed (`pack_events`, or the updater's own packing of the same
        format)."""
        args = [
            self.keys.prefix,
            self.keep_ms,
            self.aggregator.ncols,
            "" if partition is None else partition,
            first_offset,
            next_offset,
            rejected,
            packed,
        ]
        with self._calls(f"applying {count} events"):
            reply = self._apply(keys=[self.keys.offsets, self.keys.meta], args=args)
        if reply[0] == -1:
            return ApplyResult(0, 0, 0, conflict_offset=int(reply[1]))
        if reply[0] == -2:
            return ApplyResult(0, 0, 0, gap_offset=int(reply[1]))
        return ApplyResult(int(reply[0]), int(reply[1]), int(reply[2]))

    def set_offsets(self, offsets: dict[int, int], topic_id: str | None, source: str | None = None) -> None:
        with self._calls("writing offsets"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.keys.offsets)
            if offsets:
                pipe.hset(self.keys.offsets, mapping={str(p): o for p, o in offsets.items()})
            pipe.hset(self.keys.meta, mapping={"topic_id": topic_id or "", "source": source or ""})
            pipe.execute()

    def heartbeat(self, **fields: Any) -> None:
        with self._calls("writing the updater's heartbeat"):
            self.client.hset(self.keys.meta, mapping={"updated_ms": int(time.time() * 1000), **fields})

    def meta(self) -> dict[str, str]:
        """The meta hash as text (counters, heartbeat fields such as each partition's lag `lag_p<n>`)."""
        with self._calls("reading the store's meta"):
            return {k.decode(): v.decode() for k, v in self.client.hgetall(self.keys.meta).items()}

    def state(self) -> StoredState:
        with self._calls("reading the store's state"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self.keys.meta)
            pipe.hgetall(self.keys.offsets)
            meta_raw, offsets_raw = pipe.execute()
        meta = {k.decode(): v.decode() for k, v in meta_raw.items()}
        counters = {k: int(meta.get(k, 0)) for k in ("applied", "duplicates", "trimmed", "rejected")}
        return StoredState(
            layout=meta.get("layout"),
            topic=meta.get("topic"),
            topic_id=meta.get("topic_id") or None,
            offsets={int(p): int(o) for p, o in offsets_raw.items()},
            counters=counters,
            source=meta.get("source") or None,
            lateness_ms=int(meta["lateness_ms"]) if meta.get("lateness_ms") else None,
        )

    def clear(self) -> int:
        """Delete this spec's state (every key under its prefix); returns how many keys went."""
        deleted = 0
        with self._calls("deleting the spec's state"):
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=self.keys.prefix + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += self.client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += self.client.unlink(*batch)
        return deleted

    def memory(self) -> dict[str, Any]:
        with self._calls("reading INFO memory"):
            info = self.client.info("memory")
            keys = self.client.dbsize()
        return {"used_memory": int(info["used_memory"]), "keys": int(keys)}

    def describe(self) -> str:
        return json.dumps({"url": self.where, "spec": self.spec.name})
