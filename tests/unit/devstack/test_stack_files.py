"""Stack state files and topic creation errors, without starting any service."""

from __future__ import annotations

import stat

import pytest

from pipelines.devstack.manager import Stack
from pipelines.devstack.net import free_port
from pipelines.errors import FlywheelError


def test_stack_env_is_private(tmp_path) -> None:
    stack = Stack(state_dir=tmp_path, project_root=tmp_path)
    stack._write_env({"LAKEFS_SECRET_ACCESS_KEY": "s3cr3t"})
    stack._write_env({"LAKEFS_SECRET_ACCESS_KEY": "again"})  # a rewrite over an existing file works too
    assert stat.S_IMODE(stack.env_file.stat().st_mode) == 0o600
    assert "LAKEFS_SECRET_ACCESS_KEY=again" in stack.env_file.read_text()


def test_unreachable_kafka_when_creating_topics_is_one_sentence(tmp_path, monkeypatch) -> None:
    import kafka
    from kafka.errors import KafkaTimeoutError

    def no_broker(**_: object) -> None:
        raise KafkaTimeoutError("Bootstrap failed")

    monkeypatch.setattr(kafka, "KafkaAdminClient", no_broker)  # what kafka-python raises after its retries
    stack = Stack(state_dir=tmp_path, project_root=tmp_path)
    with pytest.raises(FlywheelError, match=r"cannot reach Kafka at 127\.0\.0\.1:\d+ within 15s.*flywheel up"):
        stack._create_topics(f"127.0.0.1:{free_port()}", [("events", 1)])
