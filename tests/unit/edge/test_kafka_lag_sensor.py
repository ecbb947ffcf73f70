"""The lag sensor's guard and settings: a failed run is retried after a cooldown, a few times at most."""

from __future__ import annotations

import pytest

from pipelines.errors import FlywheelError
from pipelines.guard import Decision, PastRun
from sensors.kafka_lag import MAX_ATTEMPTS, guard_policy, lag_threshold


def failed_at(*ends: float) -> list[PastRun]:
    return [PastRun(started_at=end - 10, ended_at=end, failed=True) for end in ends]


def test_first_attempt_when_nothing_failed() -> None:
    assert guard_policy().decide([], now=1000.0) == Decision(True, 0)


def test_a_failure_waits_for_the_cooldown_then_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_INGEST_RETRY_COOLDOWN_S", "900")
    decision = guard_policy().decide(failed_at(1000.0), now=1300.0)
    assert not decision.allowed and "retrying in 600s (attempt 2)" in decision.reason
    assert guard_policy().decide(failed_at(1000.0), now=1901.0) == Decision(True, 1)


def test_the_breaker_opens_after_max_attempts() -> None:
    decision = guard_policy().decide(failed_at(*[1.0] * MAX_ATTEMPTS), now=1e9)
    assert not decision.allowed and "run ingest_job by hand" in decision.reason


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
