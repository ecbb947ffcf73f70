"""Kafka connection settings as a Dagster resource; clients are created per use with timeouts set."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from pipelines.errors import FlywheelError
from pipelines.ingest.parallel import READER_SETTINGS, KafkaConsumerFactory


class KafkaResource(ConfigurableResource):
    """Where the broker is (resources/profiles.py sets it from KAFKA_BOOTSTRAP_SERVERS)."""

    bootstrap_servers: str = Field(description="host:port[,host:port]")
    request_timeout_ms: int = Field(default=30_000, description="Timeout of every Kafka request")
    client_id: str = "flywheel"

    def resolved_bootstrap(self) -> str:
        value = self.bootstrap_servers.strip()
        if not value:
            raise FlywheelError(
                "KafkaResource.bootstrap_servers is empty: set KAFKA_BOOTSTRAP_SERVERS (or run `flywheel up`)"
            )
        return value

    def client_config(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.resolved_bootstrap().split(","),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
        }

    def reader_factory(self) -> KafkaConsumerFactory:
        """A picklable factory of ingestion readers (explicit offsets, no group commits, bulk fetches), so
        reader processes, one per share of partitions, can build their own consumers."""
        return KafkaConsumerFactory({**self.client_config(), **READER_SETTINGS})

    def consumer(self, **overrides: Any):
        from kafka import KafkaConsumer

        # A short max_poll_interval keeps group joins fast (seconds instead of minutes on small brokers).
        config = {
            **self.client_config(),
            "enable_auto_commit": False,
            "max_poll_interval_ms": 10_000,
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 3_000,
            **overrides,
        }
        return KafkaConsumer(**config)

    def producer(self, **overrides: Any):
        from kafka import KafkaProducer

        return KafkaProducer(**{**self.client_config(), "acks": "all", "max_block_ms": 30_000, **overrides})

    def admin(self):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(**self.client_config())
