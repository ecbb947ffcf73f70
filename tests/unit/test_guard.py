"""pipelines.guard: cooldown after failure, budget per window, consecutive-failure breaker."""

from __future__ import annotations

from pipelines.guard import GuardPolicy, PastRun


def run(start: float, failed: bool, end: float | None = None) -> PastRun:
    return PastRun(started_at=start, ended_at=start + 60 if end is None else end, failed=failed)


def test_a_success_resets_the_breaker() -> None:
    policy = GuardPolicy(cooldown_s=10, max_consecutive_failures=2)
    history = [run(0, True), run(100, True), run(200, False), run(300, True)]
    decision = policy.decide(history, now=1000)
    assert decision.allowed and decision.attempt == 1  # only the failure after the success counts


def test_consecutive_failures_open_the_breaker_until_a_person_acts() -> None:
    policy = GuardPolicy(cooldown_s=10, max_consecutive_failures=2, what="retrain run", by_hand="look at the gate")
    decision = policy.decide([run(0, True), run(100, True)], now=10_000_000)
    assert not decision.allowed and decision.reason == "2 retrain runs in a row failed; look at the gate"


def test_the_cooldown_counts_from_the_end_of_the_last_failure() -> None:
    policy = GuardPolicy(cooldown_s=300, max_consecutive_failures=5)
    assert not policy.decide([run(0, True, end=1000)], now=1200).allowed
    assert policy.decide([run(0, True, end=1000)], now=1301).allowed
    running = PastRun(started_at=1000, ended_at=None, failed=True)  # no end yet: count from its start
    assert not policy.decide([running], now=1100).allowed


def test_the_budget_limits_runs_per_window_successful_or_not() -> None:
    policy = GuardPolicy(cooldown_s=0, max_runs=3, window_s=3600, what="drift retrain")
    history = [run(0, False), run(1000, False), run(2000, False)]
    decision = policy.decide(history, now=3000)
    assert not decision.allowed and "budget spent: 3 drift retrains" in decision.reason
    assert "allowed in 600s" in decision.reason
    assert policy.decide(history, now=3601).allowed  # the first run left the window
