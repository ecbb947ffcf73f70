"""`make demo`'s canary act: the retrained challenger rolls out through serving while requests flow, and the canary
analysis (serving's metrics, pipelines.serving.analysis) advances, promotes or rolls it back.

With the Dagster daemon running (the demo starts `dagster dev` with the stack) the `canary_analysis_sensor` decides
on its ticks and the UI shows them; without it the demo calls the same analysis itself on the same cadence.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from pipelines.devstack.demo_progress import bar, console
from pipelines.devstack.demo_serving import demo_events
from pipelines.errors import FlywheelError
from pipelines.spec.model import DatasetSpec

POLL_S = 3.0


class Traffic:
    """Requests to serving in a background thread (a few a second) so each arm's window fills."""

    def __init__(self, url: str, spec: DatasetSpec, per_request: int = 16, rate: float = 8.0) -> None:
        self.url, self.rate = url, rate
        self.batches = [demo_events(spec, 64 * per_request, seed=41)[i::64] for i in range(64)]
        self.sent = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-traffic", daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            i = 0
            while not self._stop.wait(1.0 / self.rate):
                try:
                    ok = client.post(f"{self.url}/v1/predict", json={"records": self.batches[i % 64]}).status_code
                    self.sent, self.failed = self.sent + 1, self.failed + (ok != 200)
                except httpx.HTTPError:
                    self.failed += 1
                i += 1

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def watch_canary(
    env: dict[str, str], spec: DatasetSpec, name: str, daemon: bool, timeout_s: float = 600.0
) -> dict[str, Any]:
    """Send traffic until the rollout of the current challenger is decided; returns its outcome."""
    from pipelines.serving import analysis, state

    tracking, url = env["MLFLOW_TRACKING_URI"], env.get("FLYWHEEL_SERVING_URL")
    rollout = state.read_rollout(name, tracking)
    if rollout is None or not rollout.active:
        return {"outcome": "no rollout in progress", "version": None}
    if not url:
        raise FlywheelError("the rollout needs serving (FLYWHEEL_SERVING_URL): restart the stack with `flywheel up`")
    who = "the canary_analysis_sensor (Dagster daemon)" if daemon else "the canary analysis (run by the demo)"
    console.print(
        f"  {rollout.strategy} rollout of version {rollout.challenger} against champion {rollout.champion}: "
        f"steps {list(rollout.steps)}% of traffic, {rollout.window_s:.0f}s window each; {who} decides"
    )
    cursor: dict[str, Any] | None = None
    deadline = time.monotonic() + timeout_s
    next_heartbeat = time.monotonic() + 30
    with Traffic(url, spec) as traffic, bar("canary", total=len(rollout.steps)) as update:
        while time.monotonic() < deadline:
            if not daemon:
                result = analysis.analyze(name, url, spec.rollout, cursor, tracking)
                cursor = result.cursor or cursor
            current = state.read_rollout(name, tracking) or rollout
            text = f"canary of version {current.challenger}: step {current.step + 1}/{len(current.steps)} "
            text += f"({current.challenger_share:.0%} of traffic), {traffic.sent} requests sent"
            update(current.step, text)
            if not current.active:
                update(len(current.steps), f"canary of version {current.challenger}: {current.state}")
                break
            if time.monotonic() >= next_heartbeat and not console.is_terminal:
                console.print(f"  ... {text}")
                next_heartbeat += 30
            time.sleep(POLL_S)
    final = state.read_rollout(name, tracking) or rollout
    outcome = final.state if not final.active else "undecided"
    if final.active:
        console.print(
            f"  not decided within {timeout_s:.0f}s; the analysis goes on in the Dagster daemon (see the sensor "
            "canary_analysis_sensor in the UI) or decide by hand: POST /admin/rollout (README, runbooks)"
        )
    else:
        console.print(f"  {outcome}: {final.reason}")
    console.print(f"  traffic during the rollout: {traffic.sent} requests, {traffic.failed} failed")
    return {
        "outcome": outcome,
        "version": final.challenger,
        "champion_before": final.champion,
        "reason": final.reason,
        "requests": traffic.sent,
        "failed_requests": traffic.failed,
    }
