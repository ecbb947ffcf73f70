"""The lag sensor's retry breaker and settings: a failed run is retried after a cooldown, a few times at most."""

from __future__ import annotations

import pytest

from pipelines.errors import FlywheelError
from sensors.kafka_lag import MAX_ATTEMPTS, lag_threshold, retry_decision


def test_first_attempt_when_nothing_failed() -> None:
    assert retry_decision([], now=1000.0, cooldown_s=900) == (0, "")


def test_a_failure_waits_for_the_cooldown_then_retries() -> None:
    attempt, why = retry_decision([1000.0], now=1300.0, cooldown_s=900)
    assert attempt is None and "retrying in 600s (attempt 2)" in why
    assert retry_decision([1000.0], now=1901.0, cooldown_s=900) == (1, "")


def test_the_breaker_opens_after_max_attempts() -> None:
    attempt, why = retry_decision([1.0] * MAX_ATTEMPTS, now=1e9, cooldown_s=1)
    assert attempt is None and "run ingest_job by hand" in why


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_bad_threshold_is_one_sentence(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FLYWHEEL_INGEST_LAG_THRESHOLD", value)
    with pytest.raises(FlywheelError, match="FLYWHEEL_INGEST_LAG_THRESHOLD"):
        lag_threshold()


def test_threshold_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLYWHEEL_INGEST_LAG_THRESHOLD", raising=False)
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", "/nonexistent-flywheel-state")
    assert lag_threshold() == 10_000
    monkeypatch.setenv("FLYWHEEL_INGEST_LAG_THRESHOLD", "250")
    assert lag_threshold() == 250
