"""The retraining guard of the drift sensor: cooldown, daily budget and circuit breaker, each on its own."""

from __future__ import annotations

from pipelines.monitoring.guard import FAILED, PASSED, REJECTED, RUNNING, UNJUDGED, RetrainRun, decide_retrain
from pipelines.spec.model import DriftSpec

CFG = DriftSpec(cooldown_minutes=60, daily_budget=3, max_consecutive_rejections=3)
NOW = 1_800_000_000.0
HOUR = 3600.0


def run(hours_ago: float, outcome: str, took_h: float = 0.25, by_drift: bool = True) -> RetrainRun:
    start = NOW - hours_ago * HOUR
    end = None if outcome == RUNNING else start + took_h * HOUR
    return RetrainRun(f"r{hours_ago}", start, end, outcome, by_drift)


def test_first_drift_is_allowed() -> None:
    decision = decide_retrain(CFG, [], NOW)
    assert decision.allowed and not decision.breaker_open


def test_never_while_a_drift_run_is_in_progress() -> None:
    decision = decide_retrain(CFG, [run(0.1, RUNNING)], NOW)
    assert not decision.allowed and "still in progress" in decision.reason


def test_cooldown_counts_from_the_end_of_the_last_drift_run_whatever_its_outcome() -> None:
    within = decide_retrain(CFG, [run(1.0, PASSED, took_h=0.5)], NOW)  # ended 30 minutes ago
    assert not within.allowed and within.reason.startswith("cooldown") and not within.breaker_open
    assert "next in 1800s" in within.reason
    after = decide_retrain(CFG, [run(2.0, PASSED, took_h=0.5)], NOW)  # ended 90 minutes ago
    assert after.allowed


def test_daily_budget() -> None:
    spent = [run(20, PASSED), run(12, REJECTED), run(5, PASSED)]  # 3 in 24 h, the last long ago enough
    decision = decide_retrain(CFG, spent, NOW)
    assert not decision.allowed and "budget spent" in decision.reason and decision.runs_last_day == 3
    older = [run(30, PASSED), run(12, REJECTED), run(5, PASSED)]  # one of them left the 24 h window
    assert decide_retrain(CFG, older, NOW).allowed


def test_breaker_opens_after_k_consecutive_rejections_and_a_pass_closes_it() -> None:
    two = [run(40, REJECTED), run(30, FAILED)]
    assert decide_retrain(CFG, two, NOW).allowed
    three = [*two, run(26, REJECTED)]
    decision = decide_retrain(CFG, three, NOW)
    assert not decision.allowed and decision.breaker_open and decision.consecutive_rejections == 3
    assert "circuit breaker open" in decision.reason
    # A person's run that passes the gate closes it (the reset).
    reset = decide_retrain(CFG, [*three, run(25, PASSED, by_drift=False)], NOW)
    assert reset.allowed and not reset.breaker_open and reset.consecutive_rejections == 0
    # A pass between rejections breaks the streak too.
    assert decide_retrain(CFG, [run(40, REJECTED), run(35, PASSED), run(30, REJECTED), run(26, REJECTED)], NOW).allowed


def test_a_persons_failed_run_does_not_count_towards_the_breaker() -> None:
    history = [run(40, REJECTED), run(30, REJECTED), run(28, FAILED, by_drift=False)]
    decision = decide_retrain(CFG, history, NOW)
    assert decision.allowed and decision.consecutive_rejections == 2


def test_a_run_the_gate_never_judged_neither_opens_nor_closes_the_breaker() -> None:
    three = [run(40, REJECTED), run(30, FAILED), run(26, REJECTED)]
    still_open = decide_retrain(CFG, [*three, run(25, UNJUDGED)], NOW)
    assert still_open.breaker_open and still_open.consecutive_rejections == 3
    two = decide_retrain(CFG, [run(30, REJECTED), run(26, REJECTED), run(5, UNJUDGED)], NOW)
    assert two.allowed and two.consecutive_rejections == 2 and two.runs_last_day == 1  # it counts to the budget
