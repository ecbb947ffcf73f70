"""`make demo`'s drift act: after the first model serves, traffic drifts, the drift sensor notices and requests
pipeline_job, and the gate decides on the retrained model.

Runs the sensor once through `python -m sensors.evaluate_once --launch` (the demo has no Dagster daemon; under
`make dev` the daemon ticks the same sensor), so the run lands in the demo's Dagster instance with the sensor's
run key and tags (flywheel/trigger=drift, the report, the lakeFS evidence commit) for the UI to show.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.errors import FlywheelError
from pipelines.spec.model import DatasetSpec

DRIFT_SEED = 8


def _say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def show_drift(
    env: dict[str, str],
    spec: DatasetSpec,
    root: Path,
    count: int,
    log_dir: Path,
    flywheel: Callable[..., str],
    run_logged: Callable[..., int],
) -> dict[str, Any]:
    """Produce `count` drifted events, evaluate the drift sensor, run what it requests; returns a summary.
    `flywheel` and `run_logged` are the demo's own runners (a CLI call, a logged subprocess)."""
    _say(f"Traffic drifts: producing {count:,} events of the `drift` scenario")
    out = flywheel(
        ["produce", "--count", str(count), "--scenario", "drift", "--seed", str(DRIFT_SEED), "--format", "json"],
        env,
        root,
    )
    produced = json.loads(out.strip().splitlines()[-1])
    print(f"  produced {produced['produced']:,} drifted events")

    _say("The drift sensor evaluates the latest window against the champion's training data")
    log_path = log_dir / "demo-drift-sensor.log"
    cmd = [sys.executable, "-m", "sensors.evaluate_once", "--launch"]
    returncode = run_logged(cmd, env, root, log_path, timeout_s=3600)
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.startswith("{")]
    if returncode != 0 or not lines:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise FlywheelError(f"the drift sensor's evaluation failed; full log: {log_path}\n{tail}")
    result = json.loads(lines[-1])
    print(f"  decision: {result['decision']}; " + "; ".join(result.get("reasons", [])))
    print(f"  report:   {result['report']}")
    if result["requested"]:
        tags = result["tags"]
        evidence = tags["flywheel/drift_evidence"]
        print(f"  requested pipeline_job (run key {result['run_key']}), evidence commit {evidence}")
        run = result.get("run", {})
        verdict = "passed: the new model is the challenger" if run.get("gate_passed") else "rejected the new model"
        print(f"  run {run.get('run_id')}: the gate {verdict} (log: {log_path})")
    else:
        print(f"  no run requested: {result.get('skip')}")
    return result
