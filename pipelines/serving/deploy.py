"""The `deployment` asset's entry function: start the rollout of the version that passed the gate and record it.

The rollout lives in the registry (aliases and the rollout tag, pipelines.serving.control), so serving replicas
pick it up by polling; when a serving process answers, it is asked to reload at once. With none reachable, the
plan is recorded (state `planned`) with how to start serving: the rollout begins when serving comes up.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from pipelines.errors import FlywheelError
from pipelines.lineage.records import Deployment, Evaluation
from pipelines.serving import control
from pipelines.spec.model import RolloutSpec

HOW_TO_SERVE = (
    "start serving with `flywheel serve` (or `flywheel up`, which starts it and writes FLYWHEEL_SERVING_URL to "
    ".flywheel/stack.env; in Kubernetes the deploy kit's serving Deployment): it follows the aliases, so the "
    "rollout begins as soon as it answers"
)


def serving_reachable(url: str | None, timeout_s: float = 3.0) -> bool:
    if not url:
        return False
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/healthz", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def ask_reload(url: str, token: str, timeout_s: float = 30.0) -> str:
    """POST /admin/reload; returns '' or why it did not work (serving polls anyway)."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/admin/reload", method="POST", headers={"Authorization": f"Bearer {token}"}, data=b""
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            json.loads(response.read() or b"{}")
            return ""
    except urllib.error.HTTPError as exc:
        return f"serving refused the reload (HTTP {exc.code}): it will pick the rollout up at its next poll"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"asking serving to reload failed ({exc}): it will pick the rollout up at its next poll"


def deploy(
    evaluation: Evaluation,
    plan: RolloutSpec,
    strategy: str | None = None,
    tracking_uri: str | None = None,
    serving_url: str | None = None,
    admin_token: str = "",
) -> Deployment:
    if not evaluation.passed:
        raise FlywheelError(
            f"{evaluation.model_name} version {evaluation.challenger_version} did not pass the gate: it is not "
            "rolled out (" + "; ".join(evaluation.reasons)[:500] + ")"
        )
    outcome = control.start_rollout(
        evaluation.model_name, plan, strategy, tracking_uri, version=str(evaluation.challenger_version)
    )
    rollout = outcome.rollout
    reachable = serving_reachable(serving_url)
    notes = [outcome.message]
    if reachable and serving_url and admin_token:
        problem = ask_reload(serving_url, admin_token)
        if problem:
            notes.append(problem)
    if not reachable:
        notes.append(f"no serving process answered at {serving_url or '(FLYWHEEL_SERVING_URL unset)'}: {HOW_TO_SERVE}")
    if outcome.action == "promoted_first":
        state = "promoted"
    elif outcome.action in ("started", "nothing"):
        state = "started" if reachable else "planned"
    else:
        state = outcome.action
    share = rollout.challenger_share if rollout is not None and rollout.active else 0.0
    traffic = {str(outcome.version): 1.0} if state == "promoted" else {str(outcome.version): share}
    if state != "promoted" and outcome.previous:
        traffic[outcome.previous] = 1.0 - share
    return Deployment(
        model_name=evaluation.model_name,
        version=str(outcome.version),
        strategy=rollout.strategy if rollout is not None else (strategy or plan.strategy),
        state=state,
        traffic=traffic,
        previous_version=outcome.previous,
        steps=list(rollout.steps) if rollout is not None else list(plan.steps),
        serving_url=serving_url if reachable else None,
        message=" ".join(notes),
        started_at=time.time(),
    )
