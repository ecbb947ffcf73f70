"""When a detected drift may launch a retraining run: the shared guard (pipelines.guard) applied three times.

    breaker   `drift.max_consecutive_rejections` drift-triggered runs in a row that did not produce a passing
              model (the gate rejected it, or the run failed) open the breaker: no more runs, an alert instead.
              It closes when a retraining run passes the gate (a person's run counts: that is the reset).
    budget    at most `drift.daily_budget` drift-triggered runs started in 24 hours.
    cooldown  `drift.cooldown_minutes` after the last drift-triggered run ended, whatever its outcome.
And never while a drift-triggered run is still going. Plain Python over plain records; sensors/drift.py turns
Dagster runs into `RetrainRun`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.guard import GuardPolicy, PastRun
from pipelines.spec.model import DriftSpec

RUNNING, PASSED, REJECTED, FAILED = "running", "passed", "rejected", "failed"
# Ended without the gate judging a model (e.g. ingestion found nothing new, so every later step was skipped):
# neither a pass that closes the breaker nor a rejection that opens it; it still counts to budget and cooldown.
UNJUDGED = "unjudged"
DAY_S = 86_400.0
_NEVER = 1_000_000  # failures that never trip a policy used only for its budget


@dataclass(frozen=True)
class RetrainRun:
    run_id: str
    started_at: float  # epoch seconds
    ended_at: float | None
    outcome: str  # running | passed | rejected | failed | unjudged
    by_drift: bool = True  # False: launched by a person or a schedule (counts only to reset the breaker)


@dataclass(frozen=True)
class RetrainDecision:
    allowed: bool
    reason: str
    breaker_open: bool
    consecutive_rejections: int
    runs_last_day: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _consecutive_failures(history: Sequence[RetrainRun]) -> int:
    """Finished runs that did not pass, newest first, up to the latest passing run of any trigger."""
    count = 0
    for run in sorted(history, key=lambda r: r.started_at, reverse=True):
        if run.outcome in (RUNNING, UNJUDGED):
            continue
        if run.outcome == PASSED:
            break
        if run.by_drift:
            count += 1
    return count


def decide_retrain(cfg: DriftSpec, history: Sequence[RetrainRun], now: float) -> RetrainDecision:
    drift_runs = [r for r in history if r.by_drift]
    recent = sum(1 for r in drift_runs if now - r.started_at < DAY_S)
    failures = _consecutive_failures(history)

    def verdict(allowed: bool, reason: str = "", breaker: bool = False) -> RetrainDecision:
        return RetrainDecision(allowed, reason, breaker, failures, recent)

    running = [r for r in drift_runs if r.outcome == RUNNING]
    if running:
        return verdict(False, f"drift retrain run {running[0].run_id} is still in progress")
    breaker = GuardPolicy(
        cooldown_s=0.0,
        max_consecutive_failures=cfg.max_consecutive_rejections,
        what="drift-triggered retrain",
        by_hand="circuit breaker open: inspect the gate reports, then run pipeline_job by hand; a run that passes "
        "the gate closes the breaker",
    )
    # Only the streak matters to the breaker: it is fed exactly the runs since the last pass, all failed.
    streak = [PastRun(float(i), float(i), failed=True) for i in range(failures)]
    decision = breaker.decide(streak, now)
    if not decision.allowed:
        return verdict(False, decision.reason, breaker=True)
    budget = GuardPolicy(
        max_consecutive_failures=_NEVER, max_runs=cfg.daily_budget, window_s=DAY_S, what="drift-triggered retrain"
    )
    decision = budget.decide([PastRun(r.started_at, r.ended_at, failed=False) for r in drift_runs], now)
    if not decision.allowed:
        return verdict(False, decision.reason)
    cooldown_s = cfg.cooldown_minutes * 60.0
    if cooldown_s > 0:
        # A budget of one run per cooldown, counted from each run's end: the same guard, another window.
        cooldown = GuardPolicy(max_consecutive_failures=_NEVER, max_runs=1, window_s=cooldown_s)
        ended = [PastRun(r.ended_at or r.started_at, r.ended_at, False) for r in drift_runs]
        if not cooldown.decide(ended, now).allowed:
            last = max(p.started_at for p in ended)
            return verdict(
                False,
                f"cooldown: the last drift retrain ended {now - last:.0f}s ago; drift.cooldown_minutes allows the "
                f"next in {cooldown_s - (now - last):.0f}s",
            )
    return verdict(True)
