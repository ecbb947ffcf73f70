"""Fixtures for the ingestion tests: real Tansu Kafka and embedded lakeFS (shared stack from tests/conftest.py),
one Spark session for the whole test session, and per test a fresh topic and lakeFS repository."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import IngestEnv, make_env

from pipelines.spec import load_spec


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from pipelines.spark import spark_session

    session = spark_session(master="local[2]", shuffle_partitions=4, app_name="flywheel-ingest-tests")
    yield session
    session.stop()


@pytest.fixture
def ingest_env(
    tmp_path: Path, kafka_bootstrap: str, lakefs_env: dict[str, str], spark: Any, monkeypatch: pytest.MonkeyPatch
) -> IngestEnv:
    env = make_env(tmp_path, load_spec("transactions"), kafka_bootstrap, lakefs_env, spark)
    monkeypatch.setenv("LAKEFS_REPOSITORY", env.repository)
    monkeypatch.setenv("FLYWHEEL_SPEC", str(env.spec_path))
    return env
