"""`make demo`'s drift act: after the first model serves, traffic drifts, the drift sensor notices and requests
pipeline_job (the drifted events are not ingested yet; retrain_job when they are), and the gate decides on the
retrained model (whose `deployment` step starts its rollout).

Runs the sensor once through `python -m sensors.evaluate_once --launch` (the drift sensor is off by default in
the daemon, so the demo evaluates it itself; switch it on in the UI to let the daemon tick it), so the run lands
in the demo's Dagster instance with the sensor's run key and tags (flywheel/trigger=drift, the report, the lakeFS
evidence commit) for the UI to show.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.devstack.demo_progress import console
from pipelines.errors import FlywheelError
from pipelines.spec.model import DatasetSpec

DRIFT_SEED = 8


def show_drift(
    env: dict[str, str],
    spec: DatasetSpec,
    root: Path,
    count: int,
    log_dir: Path,
    produce: Callable[[list[str], str], dict[str, Any]],
    run_job_logged: Callable[..., int],
    run_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Produce `count` drifted events, evaluate the drift sensor, run what it requests; returns a summary.
    `produce` and `run_job_logged` are the demo's own runners (a produce call with its bar, a logged subprocess
    with its steps); `run_config` goes to the launched run (the demo's shorter rollout)."""
    console.rule(f"Traffic drifts: {count:,} events of the `drift` scenario")
    produced = produce(["--count", str(count), "--scenario", "drift", "--seed", str(DRIFT_SEED)], "drifted events")
    console.print(f"  produced {produced['produced']:,} drifted events")

    console.rule("The drift sensor compares the latest window with the champion's training data")
    log_path = log_dir / "demo-drift-sensor.log"
    cmd = [sys.executable, "-m", "sensors.evaluate_once", "--launch", "--run-config", json.dumps(run_config or {})]
    returncode = run_job_logged(cmd, env, root, log_path, "drift sensor -> the run it requests")
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.startswith("{")]
    if returncode != 0 or not lines:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise FlywheelError(f"the drift sensor's evaluation failed; full log: {log_path}\n{tail}")
    result = json.loads(lines[-1])
    console.print(f"  decision: {result['decision']}; " + "; ".join(result.get("reasons", [])))
    console.print(f"  report:   {result['report']}")
    if result["requested"]:
        evidence = result["tags"].get("flywheel/drift_evidence")
        console.print(
            f"  requested {result.get('job', 'pipeline_job')} (run key {result['run_key']}), evidence commit {evidence}"
        )
        run = result.get("run", {})
        verdict = "passed: the new model is the challenger" if run.get("gate_passed") else "rejected the new model"
        console.print(f"  run {run.get('run_id')}: the gate {verdict} (log: {log_path})")
        if not run.get("success") and run.get("gate_passed") is not False:  # a rejected model is an outcome
            raise FlywheelError(f"the retraining run {run.get('run_id')} failed; its log: {log_path}")
    else:
        console.print(f"  no run requested: {result.get('skip')}")
    return result
