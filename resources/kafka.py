"""Kafka connection settings as a Dagster resource; clients are created per use with timeouts set."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from pipelines.config import setting
from pipelines.errors import FlywheelError


class KafkaResource(ConfigurableResource):
    """Where the broker is.

    Empty `bootstrap_servers` means: KAFKA_BOOTSTRAP_SERVERS, then `.flywheel/stack.env`.
    """

    bootstrap_servers: str = Field(default="", description="host:port[,host:port]; empty = from the environment")
    request_timeout_ms: int = Field(default=30_000, description="Timeout of every Kafka request")
    client_id: str = "flywheel"

    def resolved_bootstrap(self) -> str:
        value = self.bootstrap_servers or setting("KAFKA_BOOTSTRAP_SERVERS")
        if not value:
            raise FlywheelError(
                "no Kafka broker configured: run `flywheel up` (local profile) or set KAFKA_BOOTSTRAP_SERVERS"
            )
        return value

    def client_config(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.resolved_bootstrap().split(","),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
        }

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
