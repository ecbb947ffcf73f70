"""Evaluate the drift sensor once, against the Dagster instance in DAGSTER_HOME, and with --launch execute the run it
requests (its job: pipeline_job, or retrain_job when main already ingested the drifted window) in this process,
with the sensor's run key and tags: for `make demo` and CI, where no daemon ticks.
Under `dagster dev` the daemon does the same on the sensor's interval.

    python -m sensors.evaluate_once [--launch] [--profile local|k8s]

Prints one JSON line: {"requested", "run_key", "tags", "skip", "report", "decision", "run": {...}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dagster import DagsterInstance, RunRequest, build_sensor_context

from pipelines.monitoring.stage import latest_report
from sensors.drift import drift_sensor


def evaluate(instance: DagsterInstance, resources: dict[str, Any]) -> RunRequest | Any:
    context = build_sensor_context(
        instance=instance,
        sensor_name=drift_sensor.name,
        resources={k: resources[k] for k in ("kafka", "lakefs", "mlflow")},
    )
    return drift_sensor(context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensors.evaluate_once", description=__doc__.splitlines()[0])
    parser.add_argument("--launch", action="store_true", help="execute the requested run (its job) here")
    parser.add_argument("--profile", default=None, help="resources profile (default FLYWHEEL_PROFILE or local)")
    parser.add_argument("--run-config", default=None, help="run config (JSON) of the launched run, e.g. the rollout's")
    args = parser.parse_args(argv)

    from definitions import build_definitions

    defs = build_definitions(args.profile)
    resources = defs.resources or {}
    instance = DagsterInstance.get()
    result = evaluate(instance, resources)
    storage = instance.storage_directory()
    report = latest_report(storage)
    out: dict[str, Any] = {
        "requested": isinstance(result, RunRequest),
        "decision": report.decision if report else None,
        "reasons": report.reasons if report else [],
        "report": report.report_path if report else None,
    }
    if isinstance(result, RunRequest):
        # The sensor names its job per request (pipeline_job or retrain_job); the daemon would launch that one.
        job = result.job_name or "pipeline_job"
        out.update(run_key=result.run_key, tags=dict(result.tags), job=job)
        if args.launch:
            tags = {**result.tags, "dagster/run_key": result.run_key or "", "dagster/sensor_name": drift_sensor.name}
            run = defs.resolve_job_def(job).execute_in_process(
                instance=instance, tags=tags, raise_on_error=False, run_config=json.loads(args.run_config or "{}")
            )
            checks = {c.check_name: c.passed for c in run.get_asset_check_evaluations()}
            out["run"] = {
                "run_id": run.run_id,
                "job": job,
                "success": run.success,
                "gate_passed": checks.get("passes_gate"),
            }
    else:
        out["skip"] = getattr(result, "skip_message", str(result))
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
