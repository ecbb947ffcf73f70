"""The feature updater: the spec's events topic -> the online store, exactly once.

Each poll's records of one partition go through the spec's event check (the one ingestion uses: a rejected
event is counted and skipped, it never reaches the state) and are applied with the partition's next
offset in one atomic Lua call (`store.RedisOnlineStore.apply_packed`). The calls go out in order from one
writer thread while this thread polls, decodes and checks the next records, so the server's work overlaps the
Kafka side; a failed call stops the ones queued behind it (they would jump over its records). On start the
updater seeks to the offsets stored in Redis, never to its consumer group's: the group
(`flywheel-features-<spec>`) only names it to the broker, and its committed offsets are informational (lag
tools). A restart after a kill at any point
therefore neither skips nor double-counts; a re-sent event (same id) is counted once by the store's dedup.

A topic recreated under the same name (a new topic id: e.g. the memory-only embedded broker restarted) is
read from its start, as ingestion does (pipelines.ingest.offsets.reconcile). The store being down or slow
pauses the updater, which then re-reads the stored offsets (retrying until it can: it never polls on before)
and goes on: nothing is lost or applied twice. Each call starts at the partition's expected position (the
seek, then the previous call's next offset; a topic may skip offsets): a store whose offset is below it lost
writes (a crash between fsyncs, a failover), refuses the call, and the updater reads again from its offset.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipelines.errors import FlywheelError
from pipelines.features.aggregates import aggregated_columns
from pipelines.features.online.api import OnlineStoreUnavailable
from pipelines.features.online.layout import encode_value, member
from pipelines.features.online.store import RedisOnlineStore
from pipelines.ingest.consume import topic_partitions
from pipelines.ingest.offsets import StoredOffsets, current_topic_id, reconcile
from pipelines.spec.events import checker_for
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)

MAX_EVENTS_PER_CALL = 2_000  # events per Lua call: bounds how long one call blocks the server (a few ms)
# Calls queued for the writer thread: deep enough that the Kafka fetch and decoding of a whole poll (5 calls'
# worth) go on while the server applies the previous poll's calls; each holds its records until applied.
MAX_CALLS_IN_FLIGHT = 8
NULL_VALUE = "event has no value (null Kafka record)"


def group_id(spec: DatasetSpec) -> str:
    return f"flywheel-features-{spec.name}"


def consumer_settings(spec: DatasetSpec) -> dict[str, Any]:
    """Explicit offsets (assign + seek), no auto commit, an error instead of a silent jump out of the log."""
    return {
        "group_id": group_id(spec),
        "client_id": f"flywheel-feature-updater-{spec.name}",
        "enable_auto_commit": False,
        "auto_offset_reset": "none",
        "request_timeout_ms": 30_000,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "allow_auto_create_topics": False,  # `flywheel up` / the producer create it with the spec's partitions
    }


@dataclass
class UpdaterStats:
    events: int = 0  # records read from Kafka
    applied: int = 0
    duplicates: int = 0
    trimmed: int = 0  # applied events that later fell out of the kept history
    rejected: int = 0
    conflicts: int = 0  # batches another updater had applied already (skipped)
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "events_per_second": round(self.events / self.seconds, 1) if self.seconds else None}


class OffsetsOutsideLog(FlywheelError):
    """The stored offsets are outside the topic's log (retention deleted events the store never saw)."""


class StoreFellBehind(OnlineStoreUnavailable):
    """The store's offset for a partition is below where the updater reads (it lost writes: a crash between
    fsyncs, a failover): the updater must seek back to the stored offset and read the events in between."""

    def __init__(self, partition: int, stored: int, first: int) -> None:
        self.partition, self.stored = partition, stored
        super().__init__(
            f"the online store's offset for partition {partition} is {stored} but the updater reads from {first}: "
            "the store lost writes (a restart between fsyncs, a failover); re-reading from the stored offset"
        )


@dataclass(frozen=True)
class _Chunk:
    """One Lua call's worth of one partition's records, checked and packed (`RedisOnlineStore.apply_packed`)."""

    partition: int
    records: Sequence[Any]  # offset order; kept to apply only the rest after a conflict
    first: int  # the partition's expected position (<= records[0].offset: a topic may skip offsets)
    packed: bytes
    count: int  # valid events in `packed`
    rejected: int


@dataclass(frozen=True)
class _Outcome:
    partition: int
    applied: int = 0
    duplicates: int = 0
    trimmed: int = 0
    rejected: int = 0
    conflicts: int = 0
    seek_to: int | None = None  # another updater is ahead on this partition: read on from here
    next_offset: int | None = None  # the partition's offset the store holds after this call


class Updater:
    """Keeps one spec's online state current from its topic. `run()` loops; tests drive `catch_up()`."""

    def __init__(
        self,
        spec: DatasetSpec,
        store: RedisOnlineStore,
        consumer_factory: Callable[[], Any],
        *,
        poll_timeout_ms: int = 200,
        max_records_per_poll: int = 10_000,
        commit_group_every_s: float = 5.0,
        partitions: Sequence[int] | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.topic = spec.topic.name
        self.consumer_factory = consumer_factory
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records_per_poll = max_records_per_poll
        self.commit_group_every_s = commit_group_every_s
        self.only = None if partitions is None else set(partitions)  # a worker's share (pipelines.online.parallel)
        self.checker = checker_for(spec)
        fields = spec.event_fields
        self._columns = [fields.index(c) for c in aggregated_columns(spec)]
        self._at = (fields.index(spec.event_id), fields.index(spec.entity_key), fields.index(spec.timestamp))
        self.stats = UpdaterStats()
        self.consumer: Any = None
        self._tps: dict[int, Any] = {}
        self._last_commit = 0.0
        self._group_commit_failed = False
        # One writer thread applies the calls in order while this thread polls, decodes and checks: the server
        # works on the other core, and redis-py waits for its replies without the GIL.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-online-apply")
        self._in_flight: deque[Future] = deque()
        self._failed = threading.Event()  # a call failed: the writer skips the calls queued after it
        # Per partition: where the next call starts (the seek position, then each queued call's next offset),
        # sent as the call's first offset so that the store can tell a gap from offsets the topic skipped.
        self._expected: dict[int, int] = {}
        self._applied_next: dict[int, int] = {}  # the store's offsets as far as this updater knows (group commit)

    # --- start ----------------------------------------------------------------------------------------
    def start(self, topic_timeout_s: float = 30.0) -> dict[int, int]:
        """Connect, record the layout, and seek every partition to the stored offset (else the log start)."""
        from kafka import TopicPartition

        state = self.store.state()
        self.consumer = self.consumer_factory()
        try:
            partitions = topic_partitions(self.consumer, self.topic, topic_timeout_s)
        except BaseException:
            self.consumer.close()
            self.consumer = None
            raise
        topic_id = current_topic_id(self.consumer, self.topic)
        offsets, reset = reconcile(self.topic, StoredOffsets(state.offsets, state.topic_id), topic_id)
        if reset is not None:
            log.warning("online store: %s", reset.describe())
            self.store.set_offsets({}, topic_id)
        self.store.init(self.topic, topic_id)
        if self.only is not None:
            partitions = [p for p in partitions if p in self.only]
        self._tps = {p: TopicPartition(self.topic, p) for p in partitions}
        self.consumer.assign(list(self._tps.values()))
        return self._seek(offsets)

    def _seek(self, stored: dict[int, int]) -> dict[int, int]:
        missing = [tp for p, tp in self._tps.items() if p not in stored]
        begin = self.consumer.beginning_offsets(missing) if missing else {}
        positions = {p: stored.get(p, begin.get(tp, 0)) for p, tp in self._tps.items()}
        for p, tp in self._tps.items():
            self.consumer.seek(tp, positions[p])
        self._expected = dict(positions)
        self._applied_next = {p: o for p, o in positions.items() if p in stored}
        log.info("feature updater for %s: reading %s from offsets %s", self.spec.name, self.topic, positions)
        return positions

    def resync(self) -> dict[int, int]:
        """Seek back to the offsets the store holds (after a store error: what was applied is in them)."""
        self._drain()
        return self._seek(self.store.state().offsets)

    def _drain(self) -> None:
        """Wait for every call in flight, whatever it gives (its outcome is in the stored offsets either way)."""
        while self._in_flight:
            call = self._in_flight.popleft()
            if call.exception() is None and call.result() is not None:
                self._account(call.result())
        self._failed.clear()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)
            if self.consumer is not None:  # also after a failed flush: what was applied is committed
                try:
                    self._commit_group(force=True)
                finally:
                    self.consumer.close()
                    self.consumer = None

    # --- one poll ---------------------------------------------------------------------------------------
    def poll_once(self, max_records: int | None = None) -> int:
        """Poll once and apply what came; returns the records read (0: nothing new within the poll timeout)."""
        from kafka.errors import OffsetOutOfRangeError

        try:
            polled = self.consumer.poll(
                timeout_ms=self.poll_timeout_ms, max_records=max_records or self.max_records_per_poll
            )
        except OffsetOutOfRangeError as exc:
            raise OffsetsOutsideLog(
                f"the online store's offsets for {self.topic!r} are outside the topic's log ({exc}): events were "
                "deleted by retention before the updater applied them; refill the store with "
                "`flywheel features bootstrap --force`"
            ) from None
        n = 0
        for tp, records in polled.items():
            if records:
                self.apply_records(tp.partition, records)
                n += len(records)
        self.stats.events += n
        self._commit_group()
        return n

    def apply_records(self, partition: int, records: Sequence[Any]) -> None:
        """Check and apply one partition's records (offset order), in calls of MAX_EVENTS_PER_CALL.

        The calls are queued for the writer thread (at most MAX_CALLS_IN_FLIGHT), which applies them in order;
        this thread goes on polling and checking. `flush()` waits for all of them. After a failed call the
        writer skips the ones queued behind it (applying them would jump over its records); the failure is
        raised here or by `flush()`, and `resync()` reads on from the offsets the store holds."""
        for start in range(0, len(records), MAX_EVENTS_PER_CALL):
            chunk = records[start : start + MAX_EVENTS_PER_CALL]
            packed, count, reasons = self._prepare(chunk)
            if reasons:
                counted = self.stats.reasons
                for reason in reasons:
                    kind = reason[:80]
                    counted[kind] = counted.get(kind, 0) + 1
            while len(self._in_flight) >= MAX_CALLS_IN_FLIGHT:
                self._settle_oldest()
            first = min(self._expected.get(partition, chunk[0].offset), chunk[0].offset)
            self._expected[partition] = chunk[-1].offset + 1
            self._in_flight.append(
                self._pool.submit(self._write, _Chunk(partition, chunk, first, packed, count, len(reasons)))
            )

    def flush(self) -> None:
        """Wait for the calls in flight and account for them; raises what one raised (e.g. OnlineStoreUnavailable)."""
        while self._in_flight:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        call = self._in_flight.popleft()
        try:
            outcome = call.result()
        except BaseException:
            self._drain()  # the calls behind it were skipped
            raise
        if outcome is not None:
            self._account(outcome)

    def _prepare(self, records: Sequence[Any]) -> tuple[bytes, int, list[str]]:
        """The event check on each record: the valid ones packed for the store as `store.pack_events` does
        (entity, event time, id, member), how many, and the reasons of the rejected ones (they never reach
        the store). Pure: the writer thread calls it too (after a conflict)."""
        values_of = self.checker.values
        columns = self._columns
        at_id, at_entity, at_ts = self._at
        flat: list[str] = []
        add = flat.append
        reasons: list[str] = []
        single = columns[0] if len(columns) == 1 else None
        for rec in records:
            value = rec.value
            row = values_of(value) if value is not None else NULL_VALUE
            if type(row) is tuple:
                ts = str(row[at_ts])
                eid = row[at_id]
                add(row[at_entity])
                add(ts)
                add(eid)
                if single is not None:  # the common spec: one aggregated column; layout.member, inlined
                    v = row[single]
                    add(f"{ts}|{repr(v) if type(v) is float and v == v else encode_value(v)}|{eid}")
                else:
                    add(member(row[at_ts], [row[c] for c in columns], eid))
            else:
                reasons.append(str(row))
        return orjson.dumps(flat), len(flat) // 4, reasons

    def _write(self, chunk: _Chunk) -> _Outcome | None:
        """The writer thread: apply one chunk, unless a call before it failed (None: skipped)."""
        if self._failed.is_set():
            return None
        try:
            return self._apply_chunk(chunk)
        except BaseException:
            self._failed.set()
            raise

    def _apply_chunk(self, chunk: _Chunk) -> _Outcome:
        records, packed, count, rejected = chunk.records, chunk.packed, chunk.count, chunk.rejected
        first, nxt = chunk.first, records[-1].offset + 1
        conflicts = 0
        while True:
            result = self.store.apply_packed(packed, count, chunk.partition, first, nxt, rejected)
            if result.gap_offset is not None:
                raise StoreFellBehind(chunk.partition, result.gap_offset, first)
            if result.conflict_offset is None:
                applied, dups, trimmed = result.applied, result.duplicates, result.trimmed
                return _Outcome(chunk.partition, applied, dups, trimmed, rejected, conflicts, next_offset=nxt)
            # Another updater (or this one before a lost reply) applied a prefix already: apply the rest only,
            # here, before the calls queued behind this one.
            conflicts += 1
            log.warning(
                "partition %d: offsets %d..%d were applied already (the store is at %d); applying only the rest",
                chunk.partition,
                records[0].offset,
                nxt - 1,
                result.conflict_offset,
            )
            first = result.conflict_offset  # the store's position: the rest starts there (offsets may skip)
            records = [r for r in records if r.offset >= first]
            if not records:
                ahead = max(first, nxt)
                return _Outcome(chunk.partition, conflicts=conflicts, seek_to=ahead, next_offset=first)
            packed, count, reasons = self._prepare(records)
            rejected = len(reasons)

    def _account(self, outcome: _Outcome) -> None:
        self.stats.applied += outcome.applied
        self.stats.duplicates += outcome.duplicates
        self.stats.trimmed += outcome.trimmed
        self.stats.rejected += outcome.rejected
        self.stats.conflicts += outcome.conflicts
        if outcome.next_offset is not None:
            self._applied_next[outcome.partition] = outcome.next_offset
        tp = self._tps.get(outcome.partition) if outcome.seek_to is not None else None
        if tp is not None and self.consumer.position(tp) < outcome.seek_to:
            self.consumer.seek(tp, outcome.seek_to)  # never back: what was read since is queued behind it
            self._expected[outcome.partition] = outcome.seek_to

    def _commit_group(self, force: bool = False) -> None:
        """Best effort: the group's committed offsets only inform lag tools (the store's offsets rule)."""
        now = time.monotonic()
        if self._group_commit_failed or (not force and now - self._last_commit < self.commit_group_every_s):
            return
        self._last_commit = now
        try:
            from kafka import OffsetAndMetadata

            # what the store applied, not the consumer's position (read ahead, maybe never applied)
            applied = self._applied_next
            offsets = {tp: OffsetAndMetadata(applied[p], "", -1) for p, tp in self._tps.items() if p in applied}
            if offsets:
                self.consumer.commit(offsets)
        except Exception as exc:  # the broker may not keep group offsets for assigned consumers
            self._group_commit_failed = True
            log.info("not committing consumer group offsets (informational only): %.200s", exc)

    # --- loops ------------------------------------------------------------------------------------------
    def caught_up(self) -> bool:
        """Every partition's position reached the high watermark of the last fetch (not ListOffsets, which
        Tansu answers short of the end), and what was read is applied."""
        self.flush()
        for tp in self._tps.values():
            hw = self.consumer.highwater(tp)
            if hw is None or self.consumer.position(tp) < hw:
                return False
        return True

    def catch_up(self, max_seconds: float = 120.0, max_events: int | None = None) -> UpdaterStats:
        """Apply until caught up with what the broker holds now (or a bound); returns the stats so far."""
        t0 = time.monotonic()
        deadline = t0 + max_seconds
        idle_polls = 0
        read = 0
        while time.monotonic() < deadline:
            budget = None if max_events is None else max_events - read
            if budget is not None and budget <= 0:
                break
            try:
                n = self.poll_once(budget)
                read += n
                if n:
                    idle_polls = 0
                    continue
                idle_polls += 1
                if idle_polls >= 1 and self.caught_up():
                    break
            except StoreFellBehind as exc:
                log.warning("feature updater: %s", exc)
                self.resync()
        self.flush()
        self.stats.seconds += time.monotonic() - t0
        return self.stats

    def _partition_lag(self, tp: Any) -> int:
        hw = self.consumer.highwater(tp)
        return 0 if hw is None else max(hw - self.consumer.position(tp), 0)

    def lag(self) -> int | None:
        """Events in the topic not applied yet, from the last fetches' high watermarks (None: not known)."""
        total = 0
        for tp in self._tps.values():
            hw = self.consumer.highwater(tp)
            if hw is None:
                return None
            total += max(hw - self.consumer.position(tp), 0)
        return total

    def run(
        self,
        stop: threading.Event | Any,  # or a multiprocessing Event (is_set, wait)
        heartbeat_s: float = 2.0,
        retry_s: float = 2.0,
        on_beat: Callable[[Updater], None] | None = None,
    ) -> UpdaterStats:
        """Apply until `stop` is set; survives a store outage by waiting and re-syncing to its offsets."""
        last_beat = 0.0
        t0 = time.monotonic()
        resync_due = False  # a failed call left the consumer past records the store never applied
        while not stop.is_set():
            if resync_due:
                try:
                    self.resync()
                    resync_due = False
                except OnlineStoreUnavailable as exc:
                    log.warning("feature updater paused: %s; retrying in %gs", exc, retry_s)
                    if stop.wait(retry_s):
                        break
                continue
            try:
                if not self.poll_once():
                    self.flush()  # nothing new: make what was read visible now, not at the next poll
                now = time.monotonic()
                if now - last_beat >= heartbeat_s:
                    self.flush()
                    lag = {f"lag_p{tp.partition}": self._partition_lag(tp) for tp in self._tps.values()}
                    self.store.heartbeat(**lag)
                    if on_beat is not None:
                        on_beat(self)
                    last_beat = now
            except StoreFellBehind as exc:
                log.warning("feature updater: %s", exc)
                resync_due = True  # at once: the store answers
            except OnlineStoreUnavailable as exc:
                log.warning("feature updater paused: %s; retrying in %gs", exc, retry_s)
                resync_due = True  # never poll on before the seek back to the stored offsets
                if stop.wait(retry_s):
                    break
        self.stats.seconds += time.monotonic() - t0
        return self.stats
