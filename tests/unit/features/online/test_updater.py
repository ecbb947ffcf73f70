"""The updater's per-record path on a real redis-server: the event check (the one ingestion uses) decides
what reaches the state; offsets advance over rejected records too; late events as the README states."""

from __future__ import annotations

import json
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
