"""Routing is sticky and the same everywhere; the rollout state machine and its analysis decide as specified."""

from __future__ import annotations

from pipelines.serving import rollout as r
from pipelines.serving.router import CHALLENGER_ARM, CHAMPION_ARM, bucket, route
from pipelines.spec.model import RolloutSpec


def test_routing_is_sticky_by_key_and_grows_monotonically_with_the_share() -> None:
    keys = [f"customer-{i}" for i in range(5000)]
    at = {share: {k for k in keys if route(k, "7", share, False).arm == CHALLENGER_ARM} for share in (0.1, 0.5, 1.0)}
    assert at[0.1] <= at[0.5] <= at[1.0] == set(keys)  # an entity on the challenger stays there as the step grows
    assert 0.07 < len(at[0.1]) / len(keys) < 0.13 and 0.45 < len(at[0.5]) / len(keys) < 0.55
    assert all(route(k, "7", 0.1, False) == route(k, "7", 0.1, False) for k in keys[:200])  # same answer each time
    assert bucket("c1", "7") == bucket("c1", "7") != bucket("c1", "8")  # blake2b: the same in every process


def test_no_challenger_or_shadow_always_answers_with_the_champion() -> None:
    assert route("c1", None, 1.0, False).arm == CHAMPION_ARM
    shadow = route("c1", "7", 0.0, True)
    assert shadow.arm == CHAMPION_ARM and shadow.shadow


def test_canary_advances_step_by_step_and_promotes_after_the_last_window() -> None:
    plan = RolloutSpec(steps=[10, 50, 100], analysis_window_s=60)
    ro = r.start(plan, "1", "2", now=0.0)
    assert ro.challenger_share == 0.1 and not ro.last_step
    healthy = r.Verdict(True)
    assert r.next_action(ro, healthy, now=30) == "wait"  # the window has not passed
    ro = r.apply(ro, r.next_action(ro, healthy, now=61), now=61)
    assert ro.step == 1 and ro.challenger_share == 0.5
    ro = r.apply(ro, "advance", now=130)
    assert ro.last_step and r.next_action(ro, healthy, now=200) == "promote"
    assert r.apply(ro, "promote", 200).state == r.PROMOTED
    assert r.Rollout.from_dict(ro.to_dict()) == ro


def test_a_bad_window_rolls_back_at_once_and_too_little_traffic_waits() -> None:
    plan = RolloutSpec()
    ro = r.start(plan, "1", "2", now=0.0)
    assert r.next_action(ro, r.Verdict(False, ("errors",)), now=1) == "rollback"
    assert r.next_action(ro, r.Verdict(None, ("few",)), now=10_000) == "wait"
    assert r.start(plan, "1", "2", 0, "blue-green").challenger_share == 1.0
    assert r.start(plan, "1", "2", 0, "shadow").challenger_share == 0.0
    assert r.start(RolloutSpec(steps=[30]), "1", "2", 0, "ab").challenger_share == 0.3


def _window(requests: float, errors: float, p99_bucket: float, score_counts: list[float]) -> r.ArmWindow:
    latency = {0.001: 0.0, p99_bucket: requests, 2.5: requests}
    cumulative, total = {}, 0.0
    for i, c in enumerate(score_counts):
        total += c
        cumulative[round(0.25 * (i + 1), 2)] = total
    return r.ArmWindow(requests, errors, latency, cumulative)


def test_judge_catches_errors_latency_score_shift_and_auc() -> None:
    plan = RolloutSpec(min_requests=50)
    champion = _window(1000, 0, 0.005, [700, 200, 80, 20])
    same = _window(200, 0, 0.005, [140, 40, 16, 4])
    assert r.judge(plan, same, champion).ok is True
    assert r.judge(plan, _window(20, 0, 0.005, [20, 0, 0, 0]), champion).ok is None
    errors = r.judge(plan, _window(200, 20, 0.005, [140, 40, 16, 4]), champion)
    assert errors.ok is False and "error rate" in errors.reasons[0]
    slow = r.judge(plan, _window(200, 0, 0.5, [140, 40, 16, 4]), champion)
    assert slow.ok is False and "p99" in slow.reasons[0]
    coin = r.judge(plan, _window(200, 0, 0.005, [10, 40, 100, 50]), champion)
    assert coin.ok is False and "PSI" in coin.reasons[0]
    worse = r.judge(plan, same, champion, auc=(0.55, 0.85, 500))
    assert worse.ok is False and "AUC" in worse.reasons[0]
    assert r.judge(plan, same, champion, auc=(0.55, 0.85, 10)).ok is True  # too few labels: not judged


def test_quantile_and_psi() -> None:
    assert r.quantile({0.01: 98, 0.1: 99, 1.0: 100}, 0.99) == 0.1
    assert r.quantile({}, 0.99) is None
    same = {0.5: 50.0, 1.0: 100.0}
    assert r.psi(same, same) == 0.0 and r.psi(same, {0.5: 95.0, 1.0: 100.0}) > 0.5
