"""The updater's per-record path on a real redis-server: the event check (the one ingestion uses) decides
what reaches the state; offsets advance over rejected records too; late events as the README states."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pipelines.features.aggregates import definitions, reference_values
from pipelines.features.online.api import OnlineStoreUnavailable
from pipelines.features.online.store import RedisOnlineStore
from pipelines.online.updater import Updater
from pipelines.spec import load_spec
from pipelines.spec.samples import BASE_MS, sample_events

SPEC = load_spec("transactions")
T0 = BASE_MS  # event times in ms (the check reads small integers as seconds)


def updater_at(url: str) -> Updater:
    store = RedisOnlineStore(SPEC, url, timeout_s=2.0)
    store.init(SPEC.topic.name, None)
    return Updater(SPEC, store, consumer_factory=lambda: None)


def records(values: list[Any], first_offset: int = 0) -> list[SimpleNamespace]:
    return [SimpleNamespace(value=v, offset=first_offset + i) for i, v in enumerate(values)]


def good(entity: str, ts: int, eid: str, amount: float = 10.0) -> bytes:
    event = sample_events(SPEC, 1, seed=1)[0]
    event.update({SPEC.event_id: eid, SPEC.entity_key: entity, SPEC.timestamp: T0 + ts, "amount": amount})
    return json.dumps(event).encode()


def test_a_rejected_event_never_reaches_the_state(redis_url: str) -> None:
    updater = updater_at(redis_url)
    bad_amount = json.loads(good("c", 2_000, "bad-1"))
    bad_amount["amount"] = -5  # below the spec's minimum: ingestion quarantines it
    missing_key = json.loads(good("c", 2_500, "bad-2"))
    del missing_key[SPEC.entity_key]
    batch = [good("c", 1_000, "ok-1"), json.dumps(bad_amount).encode(), b"{not json", None]
    batch += [json.dumps(missing_key).encode(), good("c", 3_000, "ok-2", 20.0)]
    updater.apply_records(0, records(batch, first_offset=40))
    updater.flush()
    (values,) = updater.store.lookup(["c"], [T0 + 10_000])
    assert values["cust_txn_count_24h"] == 2.0 and values["cust_amount_sum_24h"] == 30.0
    assert not updater.store.client.hexists(updater.store.keys.ids("c"), "bad-1")
    state = updater.store.state()
    assert state.offsets == {0: 46}  # rejected records are read past, like ingestion's quarantine
    assert state.counters["rejected"] == 4 and updater.stats.rejected == 4
    assert updater.stats.applied == 2


def test_replayed_records_are_applied_once(redis_url: str) -> None:
    """A restart that polls records the store already applied (e.g. its reply was lost) skips them."""
    updater = updater_at(redis_url)
    batch = records([good("c", 1_000 + i, f"e{i}") for i in range(10)])
    updater.apply_records(1, batch[:6])
    updater.flush()
    updater.apply_records(1, batch)  # overlaps 0..5: only 6..9 are applied
    updater.flush()
    assert updater.store.state().offsets == {1: 10}
    (values,) = updater.store.lookup(["c"], [T0 + 100_000])
    assert values["cust_txn_count_24h"] == 10.0 and updater.stats.conflicts == 1


def test_late_events_online_versus_offline(redis_url: str) -> None:
    """Events of one entity arrive in the order t=1000, 3000, 2000 (2000 is late). Online, each is looked up
    when it arrives, with what arrived before it; offline, each row sees the whole batch. The late event's
    own aggregates agree; the event that arrived before it (3000) differs: online it could not count 2000."""
    updater = updater_at(redis_url)
    arrival = [(1_000, "a", 10.0), (3_000, "b", 30.0), (2_000, "late", 20.0)]
    online = []
    for offset, (ts, eid, amount) in enumerate(arrival):
        online.append(updater.store.lookup(["c"], [T0 + ts])[0])  # serving: the request arrives with the event
        updater.apply_records(0, records([good("c", ts, eid, amount)], first_offset=offset))
        updater.flush()
    all_ts = np.array([ts for ts, _, _ in arrival], dtype=np.int64)
    amounts = {"amount": np.array([a for _, _, a in arrival])}
    offline = [reference_values(definitions(SPEC), all_ts, amounts, ts) for ts, _, _ in arrival]
    assert online[0] == offline[0]  # t=1000: no history either way
    assert online[2] == offline[2]  # the late event itself: history 1000 in both
    assert online[1]["cust_txn_count_24h"] == 1.0 and offline[1]["cust_txn_count_24h"] == 2.0
    assert online[1]["cust_seconds_since_last"] == 2.0 and offline[1]["cust_seconds_since_last"] == 1.0
    # once applied, the late event counts online too, for every later lookup
    assert updater.store.lookup(["c"], [T0 + 3_000])[0] == offline[1]


def test_after_a_failed_call_the_calls_queued_behind_it_are_not_applied(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread applies queued calls in order; when one fails (the store went away), applying the
    ones behind it would move the offset past records never applied. They are skipped, the failure is raised,
    and a resync reads on from the stored offset: every event ends up applied once."""
    monkeypatch.setattr("pipelines.online.updater.MAX_EVENTS_PER_CALL", 4)
    updater = updater_at(redis_url)
    real = updater.store.apply_packed
    calls: list[int] = []

    def second_call_fails(packed: bytes, count: int, partition: Any, first: int, nxt: int, rejected: int) -> Any:
        calls.append(first)
        if len(calls) == 2:
            raise OnlineStoreUnavailable("the store went away (test)")
        return real(packed, count, partition, first, nxt, rejected)

    monkeypatch.setattr(updater.store, "apply_packed", second_call_fails)
    batch = records([good("c", 1_000 + i, f"e{i}") for i in range(12)])  # three calls: 0..3, 4..7, 8..11
    updater.apply_records(0, batch)
    with pytest.raises(OnlineStoreUnavailable):
        updater.flush()
    assert calls == [0, 4]  # the third call was never sent
    assert updater.store.state().offsets == {0: 4}
    updater.apply_records(0, batch[4:])  # what resync's seek would read again
    updater.flush()
    assert updater.store.state().offsets == {0: 12} and updater.stats.applied == 12
    (values,) = updater.store.lookup(["c"], [T0 + 100_000])
    assert values["cust_txn_count_24h"] == 12.0


class FakeConsumer:
    """A fake Kafka consumer (no broker in unit tests) over a list of records of partition 0: assign, seek,
    position, poll in offset order up to `available` (records may skip offsets, as a topic with transaction
    markers does), commit and close recorded."""

    def __init__(self, recs: list[SimpleNamespace], available: int | None = None, per_poll: int = 20) -> None:
        self.recs = recs
        self.available = recs[-1].offset + 1 if available is None else available
        self.per_poll = per_poll
        self.pos: dict[int, int] = {}
        self.seeks: list[int] = []
        self.committed: dict[int, int] = {}
        self.closed = False

    def assign(self, tps: list[Any]) -> None:
        pass

    def seek(self, tp: Any, offset: int) -> None:
        self.pos[tp.partition] = offset
        self.seeks.append(offset)

    def position(self, tp: Any) -> int:
        return self.pos[tp.partition]

    def highwater(self, tp: Any) -> int:
        return self.available

    def beginning_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: 0 for tp in tps}

    def commit(self, offsets: dict[Any, Any]) -> None:
        self.committed.update({tp.partition: meta.offset for tp, meta in offsets.items()})

    def close(self) -> None:
        self.closed = True

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[SimpleNamespace]]:
        from kafka import TopicPartition

        at = self.pos[0]
        got = [r for r in self.recs if at <= r.offset < self.available][: min(self.per_poll, max_records)]
        if not got:
            time.sleep(timeout_ms / 1000)
            return {}
        self.pos[0] = got[-1].offset + 1
        return {TopicPartition(SPEC.topic.name, 0): got}


def attached(updater: Updater, consumer: FakeConsumer) -> Updater:
    """The updater reading `consumer` from the offsets its store holds (what `start()` does with Kafka)."""
    from kafka import TopicPartition

    updater.consumer = consumer
    updater._tps = {0: TopicPartition(SPEC.topic.name, 0)}
    updater._seek(updater.store.state().offsets)
    return updater


def numbered(n: int, offsets: list[int] | None = None) -> list[SimpleNamespace]:
    """n valid events of entity c, one second apart, at the given offsets (default 0..n-1)."""
    at = offsets or list(range(n))
    return [SimpleNamespace(value=good("c", 1_000 * (i + 1), f"x{i}", 1.0), offset=at[i]) for i in range(n)]


def run_until(updater: Updater, done: Any, seconds: float = 20.0) -> None:
    """`updater.run()` in a thread until `done()` (or the time is up), then stopped and flushed."""
    stop = threading.Event()
    thread = threading.Thread(target=updater.run, args=(stop,), kwargs={"retry_s": 0.05, "heartbeat_s": 100})
    thread.start()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not done():
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    updater.flush()


def assert_applied_once(updater: Updater, n: int) -> None:
    state = updater.store.state()
    assert state.offsets == {0: n} and state.counters["applied"] == n and state.counters["duplicates"] == 0
    (values,) = updater.store.lookup(["c"], [T0 + 1_000 * (n + 1)])
    assert values["cust_txn_count_24h"] == float(n)


def test_run_reads_again_from_the_stored_offset_when_the_store_is_still_down_at_the_resync(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call fails (the store went away) and the store is still down when run() re-reads its offsets: run()
    must not poll on from where the consumer is (past the failed call's records and the ones skipped behind
    it) but keep retrying the resync; every event is applied exactly once."""
    monkeypatch.setattr("pipelines.online.updater.MAX_EVENTS_PER_CALL", 10)
    updater = updater_at(redis_url)
    consumer = FakeConsumer(numbered(100), available=60)
    attached(updater, consumer)
    real_apply, real_state = updater.store.apply_packed, updater.store.state
    calls = {"apply": 0, "state": 0}
    gaps: list[int] = []

    def third_call_fails(*args: Any) -> Any:
        calls["apply"] += 1
        if calls["apply"] == 3:
            raise OnlineStoreUnavailable("the store went away (test)")
        result = real_apply(*args)
        if result.gap_offset is not None:
            gaps.append(result.gap_offset)
        return result

    def first_read_fails() -> Any:
        calls["state"] += 1
        if calls["state"] == 1:
            raise OnlineStoreUnavailable("the store is still down at the resync (test)")
        return real_state()

    monkeypatch.setattr(updater.store, "apply_packed", third_call_fails)
    monkeypatch.setattr(updater.store, "state", first_read_fails)
    run_until(updater, lambda: calls["state"] >= 2 and real_state().offsets.get(0) == 60)
    consumer.available = 100  # the rest arrives once the store is back
    run_until(updater, lambda: real_state().offsets.get(0) == 100)
    monkeypatch.setattr(updater.store, "state", real_state)
    assert_applied_once(updater, 100)
    assert updater.stats.applied == 100
    assert calls["state"] >= 2  # the resync was retried
    assert gaps == []  # no call from past the stored offset (the store's gap check is the second line)


def test_a_store_that_lost_writes_is_refilled_from_its_offset(redis_url: str) -> None:
    """The store lost its last writes (a crash between fsyncs): its offset is 30 while the running updater
    reads from 60. The updater's next call is refused as a gap; it seeks back to 30 and applies 30..99."""
    updater = attached(updater_at(redis_url), FakeConsumer(numbered(100), available=60))
    run_until(updater, lambda: updater.store.state().offsets.get(0) == 60)
    updater.store.clear()  # what the store holds after the loss: events 0..29 and offset 30
    refill = attached(updater_at(redis_url), FakeConsumer(numbered(100), available=30))
    refill.catch_up(max_seconds=20)
    assert updater.store.state().offsets == {0: 30}
    updater.consumer.available = 100
    run_until(updater, lambda: updater.store.state().offsets.get(0) == 100)
    assert 30 in updater.consumer.seeks  # re-read from the stored offset
    assert_applied_once(updater, 100)


def test_offsets_the_topic_skips_are_no_gap(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A topic may skip offsets (transaction markers, compaction): the records at 0..9, 15..24 and 30..39,
    read from a seek to 10 that lands on a skipped offset, are applied with no gap reported."""
    monkeypatch.setattr("pipelines.online.updater.MAX_EVENTS_PER_CALL", 10)
    offsets = [*range(10), *range(15, 25), *range(30, 40)]
    recs = numbered(30, offsets)
    updater = attached(updater_at(redis_url), FakeConsumer(recs, available=12))
    # The fake's position stays at 10 below its high watermark of 12 (no record at 10 or 11), so this catch_up
    # ends at its bound: keep the bound short.
    updater.catch_up(max_seconds=2)
    assert updater.store.state().offsets == {0: 10}
    restarted = attached(updater_at(redis_url), FakeConsumer(recs, available=40))  # seeks to 10: no record there
    assert restarted.consumer.seeks == [10]
    restarted.catch_up(max_seconds=20)
    state = restarted.store.state()
    assert state.offsets == {0: 40} and state.counters["applied"] == 30 and restarted.stats.conflicts == 0


def test_the_group_commits_what_the_store_applied_even_when_close_fails(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer group's offsets (for lag tools) are what the store applied, not the consumer's position
    (read ahead); a failure while flushing in close() still commits them and closes the consumer."""
    monkeypatch.setattr("pipelines.online.updater.MAX_EVENTS_PER_CALL", 10)
    updater = attached(updater_at(redis_url), FakeConsumer(numbered(20)))
    real = updater.store.apply_packed
    calls: list[int] = []

    def second_call_fails(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise OnlineStoreUnavailable("the store went away (test)")
        return real(*args)

    monkeypatch.setattr(updater.store, "apply_packed", second_call_fails)
    updater.commit_group_every_s = 3600.0
    updater.poll_once()  # reads 0..19: the call of 10..19 fails
    assert updater.consumer.position(updater._tps[0]) == 20
    consumer = updater.consumer
    with pytest.raises(OnlineStoreUnavailable):
        updater.close()
    assert consumer.closed and consumer.committed == {0: 10}
