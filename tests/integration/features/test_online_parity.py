"""Parity of the online store with the offline model table, through the real path: events in event-time
order through Kafka (with re-sends and malformed events), the updater, lookups, ingestion into lakeFS and
pipelines.features.build.model_table in a local Spark session.

How "caught up before each lookup" is made exact: the stream is produced in stretches of CHUNK events; after
each stretch the updater applies everything the broker holds, then every event of that stretch is looked up
at its own event time. The state then holds all events strictly before each looked-up event (and some after
it, which the window [t - W, t - 1] excludes), and nothing it needs has been trimmed: a stretch spans less
than the store's lateness (LATENESS_MS), and history is kept for the longest window + lateness. So each
lookup equals the offline row, whose history is every event before it.
"""

from __future__ import annotations

from typing import Any

from online_world import assert_same, ingest_to_main, lookup_all, make_updater, offline_table, produce, stream

from pipelines.features.online.store import RedisOnlineStore
from pipelines.online.bootstrap import bootstrap
from pipelines.spec.samples import sample_events

HOUR = 3_600_000
N = 50_000
CHUNK = 5_000
STEP_MS = 17_000  # 50k events span ~9.8 days: beyond the 7-day window, so trimming is exercised
LATENESS_MS = 25 * HOUR  # > a stretch's span (CHUNK * STEP_MS, ~23.6 h)
TAIL = 2_000


def _lookups(store: RedisOnlineStore, spec: Any, events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    firsts = {e[spec.event_id]: e for e in events}  # a re-sent event is one offline row
    ids = list(firsts)
    values = lookup_all(
        store, [str(firsts[i][spec.entity_key]) for i in ids], [int(firsts[i][spec.timestamp]) for i in ids]
    )
    return dict(zip(ids, values, strict=True))


def test_online_equals_offline_through_kafka_restart_and_a_lost_store(
    world: Any, online_store: Any, spark: Any
) -> None:
    spec, bootstrap_servers = world.spec, world.bootstrap
    url, _ = online_store
    store = RedisOnlineStore(spec, url, timeout_s=10.0, lateness_ms=LATENESS_MS)
    events = sample_events(spec, N + TAIL, seed=11, entities=400, step_ms=STEP_MS)
    head, tail = events[:N], events[N:]

    online: dict[str, dict[str, float]] = {}
    malformed = 0
    updater = make_updater(spec, store, bootstrap_servers)
    read_before_restart = 0
    for k in range(0, N, CHUNK):
        chunk = head[k : k + CHUNK]
        messages = stream(spec, chunk, seed=k)
        malformed += sum(kind == "malformed" for _, _, kind in messages)
        produce(bootstrap_servers, spec.topic.name, messages)
        if k == 4 * CHUNK:
            # Restart mid-stream: stop after part of the stretch, throw the updater away, start a new one.
            updater.catch_up(max_events=CHUNK // 2 + 123)
            read_before_restart = updater.stats.events
            updater.close()
            updater = make_updater(spec, store, bootstrap_servers)
        updater.catch_up()
        assert updater.caught_up()
        online.update(_lookups(store, spec, chunk))
    total_messages = store.state().counters
    assert total_messages["rejected"] == malformed  # every malformed event was counted and skipped...
    leaked = [
        key
        for key in store.client.scan_iter(match=store.keys.prefix + "i:*")
        if any(eid.startswith(b"bad-") for eid in store.client.hkeys(key))
    ]
    assert not leaked  # ...and none reached the state
    kept = sum(store.client.zcard(key) for key in store.client.scan_iter(match=store.keys.prefix + "h:*"))
    assert kept < 0.95 * len(online)  # history beyond the longest window + lateness was trimmed
    assert read_before_restart > 0 and updater.stats.events < N  # the new updater went on from the stored offsets
    updater.close()

    lake = world.lake
    raw = ingest_to_main(lake, spec, bootstrap_servers)
    assert raw.quarantined == malformed

    # The store is lost; bootstrapped from lakeFS main, it answers the last stretch exactly as before.
    last = head[-CHUNK:]
    store.client.flushall()
    result = bootstrap(store, lake, spec)
    assert result.offsets == {int(p): o for p, o in raw.next_offsets.items()}
    assert _lookups(store, spec, last) == {e[spec.event_id]: online[e[spec.event_id]] for e in last}

    # ...and the updater continues exactly where the bootstrapped history ends.
    produce(bootstrap_servers, spec.topic.name, stream(spec, tail, seed=99))
    updater = make_updater(spec, store, bootstrap_servers)
    updater.catch_up()
    assert updater.stats.events == len(stream(spec, tail, seed=99))  # nothing before the recorded offsets
    online.update(_lookups(store, spec, tail))
    updater.close()

    ingest_to_main(lake, spec, bootstrap_servers)
    table = offline_table(spark, lake, spec)
    assert table.num_rows == len(online)
    assert assert_same(spec, online, table) >= 50_000
