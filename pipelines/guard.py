"""One guard for everything that launches runs by itself (the Kafka-lag, drift and canary sensors): a cooldown
after a failure, a budget of runs per window, and a breaker that stops after consecutive failures, so an
automatic trigger never spins on a cause that needs a person.

    policy = GuardPolicy(cooldown_s=900, max_consecutive_failures=3, max_runs=6, window_s=86_400)
    decision = policy.decide(history, now=time.time())     # history: earlier runs of this trigger
    if not decision.allowed: skip with decision.reason     # else launch attempt number decision.attempt

Plain Python over plain records: the sensors turn Dagster run records into `PastRun`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PastRun:
    started_at: float  # epoch seconds
    ended_at: float | None  # None while it runs
    failed: bool


@dataclass(frozen=True)
class Decision:
    allowed: bool
    attempt: int  # 0 = first try; n = the n-th retry after n consecutive failures
    reason: str = ""


@dataclass(frozen=True)
class GuardPolicy:
    cooldown_s: float = 900.0  # wait this long after a failed run before the next try
    max_consecutive_failures: int = 3  # the breaker: this many failures in a row need a person
    max_runs: int | None = None  # the budget: at most this many runs started ...
    window_s: float = 86_400.0  # ... within this window
    what: str = "run"  # names the runs in reasons, e.g. "ingest run"
    by_hand: str = "fix the cause (see the last run's error) and launch it by hand"

    def decide(self, history: Sequence[PastRun], now: float) -> Decision:
        runs = sorted(history, key=lambda r: r.started_at, reverse=True)
        failures = 0
        for run in runs:
            if not run.failed:
                break
            failures += 1
        if failures >= self.max_consecutive_failures:
            return Decision(False, failures, f"{failures} {self.what}s in a row failed; {self.by_hand}")
        if failures:
            ended = runs[0].ended_at if runs[0].ended_at is not None else runs[0].started_at
            wait = self.cooldown_s - (now - ended)
            if wait > 0:
                return Decision(
                    False,
                    failures,
                    f"the last {self.what} failed; retrying in {wait:.0f}s (attempt {failures + 1})",
                )
        if self.max_runs is not None:
            recent = [r for r in runs if now - r.started_at < self.window_s]
            if len(recent) >= self.max_runs:
                oldest = min(r.started_at for r in recent)
                return Decision(
                    False,
                    failures,
                    f"budget spent: {len(recent)} {self.what}s in the last {self.window_s:.0f}s (at most "
                    f"{self.max_runs}); the next is allowed in {self.window_s - (now - oldest):.0f}s",
                )
        return Decision(True, failures)
