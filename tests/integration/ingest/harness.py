"""Test harness for ingestion: a per-test topic (via a spec file) and lakeFS repository (helper module)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from eventgen import produce

from pipelines.spec import load_spec
from pipelines.spec.model import DatasetSpec


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


@dataclass
class IngestEnv:
    """One test's world: its own topic (via its own spec file) and its own lakeFS repository."""

    spec: DatasetSpec
    spec_path: Path
    bootstrap: str
    repository: str
    env: dict[str, str]  # LAKEFS_* + KAFKA + FLYWHEEL_* for subprocesses
    spark: Any

    @property
    def lake(self) -> Any:
        from pipelines.lake import Lake

        return Lake.from_env(self.env)

    def produce(self, n: int, **kwargs: Any) -> dict[str, int]:
        return produce(self.bootstrap, self.spec, n, **kwargs)

    def run(self, **kwargs: Any) -> Any:
        from pipelines.ingest.runner import kafka_consumer_factory, run_ingest

        return run_ingest(
            self.spec,
            lake=self.lake,
            consumer_factory=kafka_consumer_factory(self.bootstrap),
            spark=self.spark,
            **kwargs,
        )


def make_env(
    tmp_path: Path, spec: DatasetSpec, kafka_bootstrap: str, lakefs_env: dict[str, str], spark: Any
) -> IngestEnv:
    suffix = uuid.uuid4().hex[:8]
    data = spec.model_dump(mode="json")
    data["topic"]["name"] = f"{spec.topic.name}-{suffix}"
    spec_path = tmp_path / f"{spec.name}.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(spec_path)
    create_topic(kafka_bootstrap, spec.topic.name, spec.topic.partitions)
    repository = f"test-{suffix}"
    env = {**lakefs_env, "LAKEFS_REPOSITORY": repository, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    return IngestEnv(spec, spec_path, kafka_bootstrap, repository, env, spark)
