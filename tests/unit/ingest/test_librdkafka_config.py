"""The librdkafka reader's configuration, taken from ingestion's kafka-python consumer factory, and how it
tells a read's events and errors apart."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from pipelines.errors import FlywheelError
from pipelines.ingest.consume import OffsetsError
from pipelines.ingest.librdkafka_read import _handle, librdkafka_config
from pipelines.ingest.parallel import kafka_consumer_factory


def test_ingestions_own_factory_maps_onto_librdkafka() -> None:
    config = librdkafka_config(kafka_consumer_factory("k1:9092,k2:9092").config)
    assert config is not None
    assert config["bootstrap.servers"] == "k1:9092,k2:9092"
    assert config["client.id"] == "flywheel-ingest" and config["socket.timeout.ms"] == 30_000
    # Reading from explicit offsets, failing outside the log, committed records only, never committing.
    assert config["auto.offset.reset"] == "error" and config["enable.auto.commit"] is False
    assert config["isolation.level"] == "read_committed" and config["enable.partition.eof"] is True
    assert config["queued.min.messages"] >= 100_000 and config["group.id"] == "flywheel-ingest"


def test_security_settings_are_carried_over() -> None:
    config = librdkafka_config(
        {
            "bootstrap_servers": ["k:9093"],
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "u",
            "sasl_plain_password": "p",
            "ssl_cafile": "/ca.pem",
        }
    )
    assert config is not None
    assert (config["security.protocol"], config["sasl.mechanism"]) == ("SASL_SSL", "PLAIN")
    assert (config["sasl.username"], config["sasl.password"], config["ssl.ca.location"]) == ("u", "p", "/ca.pem")


def test_an_unknown_setting_means_reading_with_kafka_python() -> None:
    assert librdkafka_config({"bootstrap_servers": ["k:9092"], "metadata_max_age_ms": 1000}) is None
    assert librdkafka_config({"client_id": "x"}) is None  # nowhere to connect


class ErrorMessage:
    """The shape of a consumed confluent-kafka error event."""

    def __init__(self, code: int, partition: int = 1, offset: int = 42) -> None:
        self._error, self._partition, self._offset = KafkaError(code), partition, offset

    def error(self) -> KafkaError:
        return self._error

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def test_a_partition_end_is_noted_and_a_lost_connection_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    ends: dict[int, int] = {}
    _handle("t", ErrorMessage(KafkaError._PARTITION_EOF), ends)
    assert ends == {1: 42}
    _handle("t", ErrorMessage(KafkaError._TRANSPORT, partition=-1), ends)  # librdkafka reconnects by itself
    _handle("t", ErrorMessage(KafkaError._ALL_BROKERS_DOWN, partition=-1), ends)
    assert ends == {1: 42} and "max_seconds" in caplog.text


def test_offsets_outside_the_log_and_permanent_errors_fail_the_read() -> None:
    with pytest.raises(OffsetsError, match="reset-offsets"):
        _handle("t", ErrorMessage(KafkaError._AUTO_OFFSET_RESET), {})
    with pytest.raises(FlywheelError, match=r"partition 1.*nothing was committed"):
        _handle("t", ErrorMessage(KafkaError.TOPIC_AUTHORIZATION_FAILED), {})
    with pytest.raises(FlywheelError, match="'t' failed"):
        _handle("t", ErrorMessage(KafkaError._AUTHENTICATION, partition=-1), {})
