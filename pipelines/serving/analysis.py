"""The canary analysis: serving's Prometheus metrics over a window -> a verdict -> promote, advance, roll back.

One call per sensor tick (`analyze`): it reads the rollout from the registry, scrapes serving's /metrics, and
compares the challenger's arm with the champion's over the window since the step's baseline (the cumulative
counters at the step's first tick, kept in the sensor's cursor). Nothing to do without a rollout in progress,
except for the first model ever: a challenger with no champion is promoted directly.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from typing import Any

from pipelines import registry
from pipelines.errors import FlywheelError
from pipelines.serving import control, state
from pipelines.serving.rollout import ArmWindow, Verdict, judge, next_action
from pipelines.serving.router import CHAMPION_ARM, SHADOW_ARM
from pipelines.spec.model import RolloutSpec

log = logging.getLogger(__name__)
Counters = dict[str, dict[str, Any]]  # "version|arm" -> {"requests", "errors", "latency": {le: n}, "scores": {le: n}}


class ServingUnreachable(FlywheelError):
    """Serving's /metrics could not be read."""


def parse_metrics(text: str) -> Counters:
    """The cumulative per-(version, arm) counters the analysis needs, from Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Counters = {}
    scores: dict[str, dict[float, float]] = {}

    def arm(version: str, name: str) -> dict[str, Any]:
        return out.setdefault(f"{version}|{name}", {"requests": 0.0, "errors": 0.0, "latency": {}, "scores": {}})

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "flywheel_serving_requests_total" and labels.get("model_version"):
                entry = arm(labels["model_version"], labels["arm"])
                entry["requests"] += sample.value
                if labels.get("status", "").startswith("5"):
                    entry["errors"] += sample.value
            elif sample.name == "flywheel_serving_model_latency_seconds_bucket":
                bound = float(labels["le"])
                arm(labels["model_version"], labels["arm"])["latency"][bound] = sample.value
            elif sample.name == "flywheel_serving_prediction_score_bucket":
                scores.setdefault(labels["model_version"], {})[float(labels["le"])] = sample.value
    for key, entry in out.items():
        entry["scores"] = dict(scores.get(key.split("|", 1)[0], {}))
    return out


def scrape(url: str, timeout_s: float = 5.0) -> Counters:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=timeout_s) as response:
            return parse_metrics(response.read().decode())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ServingUnreachable(
            f"serving's metrics at {url}/metrics could not be read ({exc}): is `flywheel serve` running "
            "(FLYWHEEL_SERVING_URL)?"
        ) from None


def window(before: Counters | None, after: Counters, key: str) -> ArmWindow:
    """The deltas of one arm between two scrapes (all of `after` without a baseline)."""
    now = after.get(key) or {"requests": 0.0, "errors": 0.0, "latency": {}, "scores": {}}
    then = (before or {}).get(key) or {"requests": 0.0, "errors": 0.0, "latency": {}, "scores": {}}

    def minus(a: dict[Any, float], b: dict[Any, float]) -> dict[float, float]:
        return {float(k): v - float(b.get(k, b.get(str(k), 0.0))) for k, v in a.items()}

    return ArmWindow(
        requests=now["requests"] - then["requests"],
        errors=now["errors"] - then["errors"],
        latency=minus(now["latency"], then["latency"]),
        scores=minus(now["scores"], then["scores"]),
    )


@dataclass
class AnalysisResult:
    action: str  # nothing | first_model | baseline | wait | advanced | promoted | rolled_back
    message: str
    version: str | None = None
    verdict: Verdict | None = None
    cursor: dict[str, Any] = field(default_factory=dict)  # what the next tick needs (JSON)


def _jsonable(counters: Counters) -> Counters:
    return {
        key: {**entry, "latency": {str(k): v for k, v in entry["latency"].items()},
              "scores": {str(k): v for k, v in entry["scores"].items()}}
        for key, entry in counters.items()
    }  # fmt: skip


def analyze(
    name: str,
    serving_url: str | None,
    plan: RolloutSpec,
    cursor: dict[str, Any] | None,
    tracking_uri: str | None = None,
    now: float | None = None,
    labels: Any = None,  # a labels.KafkaLabels (positions, window_auc); None: no label AUC
) -> AnalysisResult:
    now = time.time() if now is None else now
    rollout = state.read_rollout(name, tracking_uri)
    champion = registry.alias_version(name, registry.CHAMPION, tracking_uri)
    challenger = registry.alias_version(name, registry.CHALLENGER, tracking_uri)
    if champion is None and challenger is not None:
        outcome = control.start_rollout(name, plan, tracking_uri=tracking_uri, now=now)
        return AnalysisResult("first_model", outcome.message, outcome.version)
    if rollout is None or not rollout.active or rollout.challenger != challenger:
        return AnalysisResult("nothing", f"no rollout of model {name!r} in progress")
    if not serving_url:
        return AnalysisResult(
            "wait",
            "the rollout waits for serving: set FLYWHEEL_SERVING_URL (or start `flywheel serve`) so its metrics "
            "can be compared",
            rollout.challenger,
        )
    counters = scrape(serving_url)
    step_key = f"{rollout.challenger}:{rollout.step}:{rollout.started_at}"
    if not cursor or cursor.get("step_key") != step_key:
        return AnalysisResult(
            "baseline",
            f"window of step {rollout.step + 1} of version {rollout.challenger} starts now",
            rollout.challenger,
            cursor={
                "step_key": step_key,
                "since": now,
                "counters": _jsonable(counters),
                "labels": _label_positions(labels),
            },
        )
    before: Counters = cursor["counters"]
    arm = SHADOW_ARM if rollout.strategy == "shadow" else "challenger"
    mine = window(before, counters, f"{rollout.challenger}|{arm}")
    theirs = window(before, counters, f"{rollout.champion}|{CHAMPION_ARM}") if rollout.champion else None
    auc = None
    if labels is not None and rollout.champion and cursor.get("labels") is not None:
        try:
            auc = labels.window_auc(cursor["labels"], (rollout.challenger, arm), (rollout.champion, CHAMPION_ARM))
        except Exception as exc:  # labels are a bonus: the other checks still decide
            log.warning("label AUC of the canary window could not be computed: %s", exc)
    verdict = judge(plan, mine, theirs, auc)
    timed = replace(rollout, step_started_at=max(rollout.step_started_at, float(cursor["since"])))
    action = next_action(timed, verdict, now)
    if action == "wait":
        waited = now - timed.step_started_at
        why = f"healthy so far ({waited:.0f}s of {rollout.window_s:.0f}s)"
        if verdict.ok is None:
            why = "; ".join(verdict.reasons)
        return AnalysisResult("wait", why, rollout.challenger, verdict, cursor)
    reason = "; ".join(verdict.reasons) if verdict.ok is False else _healthy(verdict)
    outcome = control.decide(name, action, reason, tracking_uri, now)
    return AnalysisResult(outcome.action, outcome.message, rollout.challenger, verdict, {})


def _label_positions(labels: Any) -> dict[str, dict[str, int]] | None:
    if labels is None:
        return None
    try:
        return labels.positions()
    except Exception as exc:
        log.warning("the label window cannot start (Kafka unreachable?): %s", exc)
        return None


def _healthy(verdict: Verdict) -> str:
    shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(verdict.measures.items()))
    return f"canary analysis healthy over the window ({shown})"
