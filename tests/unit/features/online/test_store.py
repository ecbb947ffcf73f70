"""The Redis store against the one definition (pipelines.features.aggregates.reference_values), on a real
redis-server: lookups, dedup by event id, trimming, atomic offsets, and the errors serving turns into 503."""

from __future__ import annotations

import time
from unittest import mock

import numpy as np
import pytest

from pipelines.features.aggregates import (
    NO_HISTORY,
    aggregated_columns,
    definitions,
    longest_window_ms,
    reference_values,
)
from pipelines.features.online import NoAggregates, StoreNotConfigured, connect
from pipelines.features.online.api import OnlineStoreUnavailable
from pipelines.features.online.layout import member
from pipelines.features.online.store import TRIM_EVERY, RedisOnlineStore
from pipelines.spec import load_spec

SPEC = load_spec("transactions")
HOUR = 3_600_000


def event(entity: str, ts: int, eid: str, amount: float | None) -> tuple[str, int, str, str]:
    return entity, ts, eid, member(ts, [amount], eid)


def eid(e: tuple[str, int, str, str]) -> str:
    return e[2]


def ts_of(e: tuple[str, int, str, str]) -> int:
    return e[1]


def store_at(url: str, lateness_ms: int = HOUR) -> RedisOnlineStore:
    store = RedisOnlineStore(SPEC, url, timeout_s=2.0, lateness_ms=lateness_ms)
    store.init(SPEC.topic.name, None)
    return store


def reference(entity_events: list[tuple[str, int, str, str]], amounts: dict[str, float | None], t: int) -> dict:
    ts = np.array([ts_of(e) for e in entity_events], dtype=np.int64)
    col = np.array([np.nan if amounts[eid(e)] is None else amounts[eid(e)] for e in entity_events], dtype=np.float64)
    return reference_values(definitions(SPEC), ts, {"amount": col}, t)


def test_lookups_equal_the_reference_definition(redis_url: str) -> None:
    """Random histories (nulls, equal event times, gaps beyond every window): each lookup equals the
    reference on the entity's events: exactly, but for sums (1e-12: numpy adds pairwise)."""
    store = store_at(redis_url, lateness_ms=10**13)  # keep everything: any lookup time is answered exactly
    rng = np.random.default_rng(7)
    n = 3000
    ts = np.sort(rng.integers(0, 30 * 24 * HOUR, n))
    ts[100:110] = ts[100]  # equal event times do not see each other (strictly before)
    entities = [f"c{i}" for i in rng.integers(0, 12, n)]
    amounts: dict[str, float | None] = {}
    events = []
    for i in range(n):
        amount = None if rng.random() < 0.15 else float(np.round(rng.random() * 500, 2))
        amounts[f"id{i}"] = amount
        events.append(event(entities[i], int(ts[i]), f"id{i}", amount))
    store.apply(events)
    queries = [(entities[i], int(ts[i]) + int(rng.integers(-5, 5))) for i in range(0, n, 3)]
    queries += [("c1", int(ts[-1]) + 200 * HOUR), ("nobody", int(ts[0]))]  # quiet entity, unknown entity
    got = store.lookup([q[0] for q in queries], [q[1] for q in queries])
    for (entity, t), values in zip(queries, got, strict=True):
        want = reference([e for e in events if e[0] == entity], amounts, t)
        assert set(values) == set(want)
        for name, expected in want.items():
            if name in ("cust_amount_sum_24h",):  # numpy sums pairwise, the store left to right (as Spark)
                assert values[name] == pytest.approx(expected, rel=1e-12, abs=0), (entity, t, name)
            else:
                assert values[name] == expected, (entity, t, name)
    assert got[-1] == {a.name: NO_HISTORY[a.function] for a in SPEC.aggregates}


def test_a_resent_event_counts_once_and_the_earliest_copy_wins(redis_url: str) -> None:
    store = store_at(redis_url)
    store.apply([event("c", 1_000, "a", 5.0), event("c", 2_000, "b", 7.0)])
    result = store.apply([event("c", 2_000, "b", 7.0), event("c", 3_000, "a", 9.0)])
    assert (result.applied, result.duplicates) == (0, 2)
    (values,) = store.lookup(["c"], [10_000])
    assert values["cust_txn_count_24h"] == 2.0 and values["cust_amount_sum_24h"] == 12.0
    store.apply([event("c", 500, "b", 7.0)])  # an earlier copy of b replaces the later one, as offline
    (values,) = store.lookup(["c"], [1_500])
    assert values["cust_txn_count_24h"] == 2.0


def test_history_is_trimmed_beyond_the_longest_window_plus_lateness(redis_url: str) -> None:
    """Trimming bounds memory only: an insert whose event time is a multiple of TRIM_EVERY trims its entity to
    the longest window + lateness before it; lookups from the newest event - lateness on stay exact."""
    store = store_at(redis_url, lateness_ms=HOUR)
    keep = longest_window_ms(SPEC) + HOUR
    events = [event("c", i * 6 * HOUR + 3 * i, f"e{i}", 1.0) for i in range(200)]  # 50 days, 4 a day
    for chunk in range(0, 200, 7):
        store.apply(events[chunk : chunk + 7])
    last_trim = max(ts_of(e) for e in events if ts_of(e) % TRIM_EVERY == 0)
    kept = store.client.zrange(store.keys.history("c"), 0, -1, withscores=True)
    assert min(score for _, score in kept) >= last_trim - keep
    assert len(kept) < 0.3 * len(events) and store.state().counters["trimmed"] == len(events) - len(kept)
    assert store.client.hlen(store.keys.ids("c")) == len(kept)  # the dedup ids go with their events
    newest = ts_of(events[-1])
    late = event("c", newest - keep - 1, "late", 1.0)  # too old to matter: kept until a trimming insert
    store.apply([late])
    trimming = event("c", newest + TRIM_EVERY - newest % TRIM_EVERY, "trims", 1.0)
    store.apply([trimming])
    assert store.client.zscore(store.keys.history("c"), late[3]) is None
    everything = [*events, late, trimming]
    for t in (ts_of(trimming) + 1, ts_of(trimming) - HOUR, ts_of(trimming) + 3 * 24 * HOUR):
        (values,) = store.lookup(["c"], [t])
        assert values == reference(everything, {eid(e): 1.0 for e in everything}, t)


def test_offsets_move_with_the_state_and_a_batch_is_never_applied_twice(redis_url: str) -> None:
    store = store_at(redis_url)
    assert store.apply([event("c", 1_000, "a", 1.0)], partition=2, first_offset=0, next_offset=1).applied == 1
    again = store.apply([event("c", 1_000, "x", 1.0)], partition=2, first_offset=0, next_offset=1)
    assert again.conflict_offset == 1 and again.applied == 0
    # records 3..3 after a skipped offset (a transaction marker at 1..2): the call starts at the expected
    # position (1), not at its first record, so it is no gap
    assert store.apply([event("c", 2_000, "b", 1.0)], partition=2, first_offset=1, next_offset=4).applied == 1
    state = store.state()
    assert state.offsets == {2: 4} and state.counters["applied"] == 2
    (values,) = store.lookup(["c"], [5_000])
    assert values["cust_txn_count_24h"] == 2.0  # x was not written


def test_a_batch_starting_above_the_stored_offset_is_refused_as_a_gap(redis_url: str) -> None:
    """The store lost writes (a crash between fsyncs, a failover): its offset is behind the updater's. A call
    from beyond it would jump over the lost events for good; it is refused, nothing written."""
    store = store_at(redis_url)
    store.apply([event("c", 1_000, "a", 1.0)], partition=0, first_offset=0, next_offset=5)
    gap = store.apply([event("c", 2_000, "b", 1.0)], partition=0, first_offset=8, next_offset=9)
    assert gap.gap_offset == 5 and gap.conflict_offset is None and gap.applied == 0
    state = store.state()
    assert state.offsets == {0: 5} and state.counters["applied"] == 1
    assert store.lookup(["c"], [5_000])[0]["cust_txn_count_24h"] == 1.0  # b was not written


def test_several_columns_equal_the_reference_definition(redis_url: str) -> None:
    """A spec aggregating three columns (means, sums, a max, a count, a 1 h seconds_since_last) with nulls,
    '|' in event ids and equal event times: every lookup equals the reference definition (exact for counts,
    maxima and times; 1e-9 relative for sums and means)."""
    cfg = SPEC.model_dump(mode="json")
    cfg["aggregates"] = [
        {"name": "c24", "function": "count", "column": None, "window_hours": 24.0},
        {"name": "dist_mean_24h", "function": "mean", "column": "distance_from_home_km", "window_hours": 24.0},
        {"name": "amt_sum_6h", "function": "sum", "column": "amount", "window_hours": 6.0},
        {"name": "dev_max_7d", "function": "max", "column": "device_age_days", "window_hours": 168.0},
        {"name": "amt_mean_7d", "function": "mean", "column": "amount", "window_hours": 168.0},
        {"name": "ssl_1h", "function": "seconds_since_last", "column": None, "window_hours": 1.0},
    ]
    spec = type(SPEC).model_validate(cfg)
    cols = aggregated_columns(spec)
    assert len(cols) == 3
    store = RedisOnlineStore(spec, redis_url, timeout_s=5.0, lateness_ms=10**13)
    store.init(spec.topic.name, None)
    rng = np.random.default_rng(3)
    n = 4000
    ts = np.sort(rng.integers(0, 20 * 24 * HOUR, n))
    ts[50:60] = ts[50]
    entities = [f"e{i}" for i in rng.integers(0, 8, n)]
    values = {
        c: [None if rng.random() < 0.2 else float(np.round(rng.random() * 900, 3)) for _ in range(n)] for c in cols
    }
    events = [
        (entities[i], int(ts[i]), f"id|{i}", member(int(ts[i]), [values[c][i] for c in cols], f"id|{i}"))
        for i in range(n)
    ]
    store.apply(events)
    queries = [(entities[i], int(ts[i]) + int(rng.integers(-3, 3))) for i in range(0, n, 2)] + [("nobody", 5)]
    got = store.lookup([q[0] for q in queries], [q[1] for q in queries])
    by_entity: dict[str, list[int]] = {}
    for i, e in enumerate(entities):
        by_entity.setdefault(e, []).append(i)
    for (entity, t), answer in zip(queries, got, strict=True):
        idx = by_entity.get(entity, [])
        columns = {c: np.array([np.nan if values[c][i] is None else values[c][i] for i in idx]) for c in cols}
        want = reference_values(definitions(spec), ts[idx], columns, t)
        assert set(answer) == set(want)
        for name, expected in want.items():
            if name in ("c24", "dev_max_7d", "ssl_1h"):
                assert answer[name] == expected, (entity, t, name)
            else:
                assert answer[name] == pytest.approx(expected, rel=1e-9, abs=0), (entity, t, name)


def test_one_round_trip_for_a_batch_of_256(redis_url: str) -> None:
    store = store_at(redis_url)
    store.apply([event(f"c{i}", 1_000 + i, f"e{i}", 2.0) for i in range(256)])
    store.lookup(["c0"], [10_000])  # the first call loads the script (NOSCRIPT, SCRIPT LOAD, EVALSHA)
    with mock.patch.object(store.client, "execute_command", wraps=store.client.execute_command) as command:
        got = store.lookup([f"c{i}" for i in range(256)], [10_000] * 256)
    assert command.call_count == 1  # one EVALSHA: one round trip
    assert all(v["cust_txn_count_24h"] == 1.0 and v["cust_amount_max_7d"] == 2.0 for v in got)


def test_a_store_without_state_or_with_another_layout_does_not_answer(redis_url: str) -> None:
    store = RedisOnlineStore(SPEC, redis_url, timeout_s=2.0)
    with pytest.raises(OnlineStoreUnavailable, match="holds no state"):
        store.lookup(["c"], [1])
    store.client.hset(store.keys.meta, "layout", '{"columns": ["other"]}')
    with pytest.raises(OnlineStoreUnavailable, match="another layout"):
        store.lookup(["c"], [1])


def test_a_store_that_is_down_raises_unavailable_quickly() -> None:
    from pipelines.devstack.net import free_port

    store = RedisOnlineStore(SPEC, f"redis://:pw@127.0.0.1:{free_port()}/0", timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(OnlineStoreUnavailable, match="did not answer"):
        store.lookup(["c"], [1])
    assert time.monotonic() - started < 2.0


def test_a_wrong_password_says_so(redis_url: str) -> None:
    wrong = redis_url.replace("redis://:", "redis://:not-", 1)
    with pytest.raises(OnlineStoreUnavailable, match="password"):
        RedisOnlineStore(SPEC, wrong, timeout_s=2.0).lookup(["c"], [1])


def test_connect_picks_the_store_by_the_spec(redis_url: str) -> None:
    no_aggregates = SPEC.model_copy(update={"aggregates": []})
    assert isinstance(connect(no_aggregates, None), NoAggregates)
    assert connect(no_aggregates, None).lookup(["c"], [1]) == [{}]
    with pytest.raises(StoreNotConfigured, match="FLYWHEEL_ONLINE_STORE_URL"):
        connect(SPEC, None)
    store = connect(SPEC, redis_url, timeout_s=1.0)
    assert isinstance(store, RedisOnlineStore) and store.timeout_s == 1.0
