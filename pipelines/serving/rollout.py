"""Rollouts as plain data: the state machine of a challenger's rollout and the analysis that decides its fate.

    rollout = start(plan, champion="3", challenger="4", now=time.time())    # state "progressing", step 0
    verdict = judge(plan, challenger_window, champion_window, auc=None)    # from the serving metrics (analysis.py)
    action  = next_action(rollout, verdict, now)                            # wait | advance | promote | rollback
    rollout = apply(rollout, action, now, reason)

Strategies: canary (the challenger answers steps[i] % of traffic, sticky by entity; one window per step),
blue-green (the challenger answers everything at once, the champion stays loaded to switch back), ab (a fixed
steps[0] % split for one window, per-arm metrics), shadow (the challenger scores every request, its answers are
logged, never returned). Pure: no I/O, so every transition is unit-tested; the state is stored as JSON in a
registered-model tag (state.py) that every replica and the analysis sensor read.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from pipelines.spec.model import RolloutSpec

Strategy = Literal["canary", "blue-green", "ab", "shadow"]
STRATEGIES: tuple[str, ...] = ("canary", "blue-green", "ab", "shadow")
PROGRESSING, PROMOTED, ROLLED_BACK = "progressing", "promoted", "rolled_back"
STATES = (PROGRESSING, PROMOTED, ROLLED_BACK)
Action = Literal["wait", "advance", "promote", "rollback"]


@dataclass(frozen=True)
class Rollout:
    strategy: str
    champion: str | None  # the version that answered before the rollout (None: the first model)
    challenger: str
    steps: tuple[float, ...]
    window_s: float
    step: int = 0
    state: str = PROGRESSING
    started_at: float = 0.0
    step_started_at: float = 0.0
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.state == PROGRESSING

    @property
    def challenger_share(self) -> float:
        """The share of answers the challenger gives (0..1) while the rollout progresses."""
        if not self.active:
            return 0.0
        if self.strategy == "blue-green":
            return 1.0
        if self.strategy == "shadow":
            return 0.0
        if self.strategy == "ab":
            return self.steps[0] / 100.0
        return self.steps[min(self.step, len(self.steps) - 1)] / 100.0

    @property
    def shadow(self) -> bool:
        return self.active and self.strategy == "shadow"

    @property
    def last_step(self) -> bool:
        """canary: the final step; every other strategy has one window."""
        return self.strategy != "canary" or self.step >= len(self.steps) - 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = list(self.steps)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["steps"] = tuple(float(s) for s in values.get("steps", ()))
        rollout = cls(**values)
        if rollout.strategy not in STRATEGIES or rollout.state not in STATES or not rollout.steps:
            raise ValueError(f"not a rollout: strategy {rollout.strategy!r}, state {rollout.state!r}")
        return rollout


def start(plan: RolloutSpec, champion: str | None, challenger: str, now: float, strategy: str | None = None) -> Rollout:
    chosen = strategy or plan.strategy
    if chosen not in STRATEGIES:
        raise ValueError(f"unknown rollout strategy {chosen!r}; choose one of {', '.join(STRATEGIES)}")
    return Rollout(
        strategy=chosen,
        champion=champion,
        challenger=challenger,
        steps=tuple(float(s) for s in plan.steps),
        window_s=float(plan.analysis_window_s),
        started_at=now,
        step_started_at=now,
    )


@dataclass(frozen=True)
class ArmWindow:
    """One model version's serving metrics over an analysis window (deltas of the Prometheus counters)."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx answers (the store down, a model failure) routed to this version
    latency: dict[float, float] = field(default_factory=dict)  # histogram: upper bound (s) -> cumulative count
    scores: dict[float, float] = field(default_factory=dict)  # histogram: upper bound -> cumulative count

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def p99_s(self) -> float | None:
        return quantile(self.latency, 0.99)


def quantile(cumulative: dict[float, float], q: float) -> float | None:
    """The upper bound of the bucket that holds quantile q (Prometheus' histogram_quantile without
    interpolation: conservative), None without observations."""
    if not cumulative:
        return None
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]]
    if total <= 0:
        return None
    for bound in bounds:
        if cumulative[bound] >= q * total:
            return bound
    return bounds[-1]


def psi(expected: dict[float, float], actual: dict[float, float], floor: float = 1e-4) -> float | None:
    """Population stability index between two cumulative histograms with the same buckets."""
    bounds = sorted(set(expected) & set(actual))
    if not bounds or expected[bounds[-1]] <= 0 or actual[bounds[-1]] <= 0:
        return None

    def shares(cumulative: dict[float, float]) -> list[float]:
        counts, before = [], 0.0
        for b in bounds:
            counts.append(max(cumulative[b] - before, 0.0))
            before = cumulative[b]
        total = sum(counts)
        return [max(c / total, floor) for c in counts]

    e, a = shares(expected), shares(actual)
    return float(sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True)))


@dataclass(frozen=True)
class Verdict:
    ok: bool | None  # None: not enough traffic yet to judge
    reasons: tuple[str, ...] = ()
    measures: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        if self.ok is None:
            return "waiting: " + "; ".join(self.reasons)
        return ("healthy" if self.ok else "unhealthy: " + "; ".join(self.reasons)) if self.reasons or self.ok else ""


def judge(
    plan: RolloutSpec,
    challenger: ArmWindow,
    champion: ArmWindow | None,
    auc: tuple[float, float, int] | None = None,
) -> Verdict:
    """Challenger against champion over one window: error rate, p99 latency, score shift, and label AUC
    (challenger AUC, champion AUC, labelled rows of the smaller arm) when labels arrived. Without champion
    traffic (blue-green, the first model) the challenger is judged on its own error rate."""
    measures: dict[str, float] = {"challenger_requests": challenger.requests}
    if challenger.requests < plan.min_requests:
        return Verdict(None, (f"the challenger answered {challenger.requests:.0f} of {plan.min_requests} requests",))
    compare = champion is not None and champion.requests >= plan.min_requests
    bad: list[str] = []
    base_rate = champion.error_rate if compare and champion is not None else 0.0
    measures.update(challenger_error_rate=challenger.error_rate, champion_error_rate=base_rate)
    if challenger.error_rate - base_rate > plan.max_error_rate_increase:
        bad.append(
            f"error rate {challenger.error_rate:.2%} vs {base_rate:.2%} (more than "
            f"{plan.max_error_rate_increase:.2%} above)"
        )
    if compare and champion is not None:
        measures["champion_requests"] = champion.requests
        mine, theirs = challenger.p99_s(), champion.p99_s()
        if mine is not None and theirs is not None:
            measures.update(challenger_p99_ms=mine * 1000, champion_p99_ms=theirs * 1000)
            limit = max(theirs * plan.max_p99_ratio, theirs + plan.p99_slack_ms / 1000)
            if mine > limit:
                bad.append(f"p99 latency {mine * 1000:.1f} ms vs the champion's {theirs * 1000:.1f} ms")
        shift = psi(champion.scores, challenger.scores)
        if shift is not None:
            measures["score_psi"] = shift
            if shift > plan.max_score_psi:
                bad.append(f"score distribution shifted: PSI {shift:.3f} > {plan.max_score_psi}")
    if auc is not None and auc[2] >= plan.min_labels:
        mine_auc, theirs_auc, _ = auc
        measures.update(challenger_auc=mine_auc, champion_auc=theirs_auc)
        if theirs_auc - mine_auc > plan.max_auc_drop:
            bad.append(f"label AUC {mine_auc:.3f} vs the champion's {theirs_auc:.3f}")
    return Verdict(not bad, tuple(bad), measures)


def next_action(rollout: Rollout, verdict: Verdict, now: float) -> Action:
    """What the analysis does with a verdict: a bad window rolls back at once; a good one advances the canary
    or, at the last step once the window has passed, promotes."""
    if not rollout.active:
        return "wait"
    if verdict.ok is False:
        return "rollback"
    if verdict.ok is None or now - rollout.step_started_at < rollout.window_s:
        return "wait"
    return "promote" if rollout.last_step else "advance"


def apply(rollout: Rollout, action: Action, now: float, reason: str = "") -> Rollout:
    if action == "wait" or not rollout.active:
        return rollout
    if action == "advance":
        return replace(rollout, step=rollout.step + 1, step_started_at=now, reason=reason)
    state = PROMOTED if action == "promote" else ROLLED_BACK
    return replace(rollout, state=state, step_started_at=now, reason=reason)
