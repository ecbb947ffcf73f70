"""`make demo`: the whole loop once on the embedded stack, from nothing.

Starts the stack (unless one is already running, which it then leaves running), produces a baseline stream,
runs the Dagster jobs from the command line exactly as CI would (`dagster job execute -m definitions`),
prints what was made and where to look, and stops what it started.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipelines import config
from pipelines.devstack.manager import Stack
from pipelines.devstack.services import dagster_home
from pipelines.errors import FlywheelError
from pipelines.spec import load_spec

DEFAULT_JOBS = ("ingest_job", "retrain_job")


def _say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess:
    print("$ " + " ".join(cmd), flush=True)
    try:
        return subprocess.run(cmd, env=env, cwd=cwd, text=True, timeout=timeout_s, capture_output=True)
    except subprocess.TimeoutExpired:
        raise FlywheelError(f"`{' '.join(cmd[:6])}` did not finish within {timeout_s:.0f}s") from None


def _flywheel(args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 900) -> str:
    result = _run([sys.executable, "-m", "pipelines.cli", *args], env, cwd, timeout_s)
    if result.stderr:
        sys.stderr.write(result.stderr[-4000:])
    if result.returncode != 0:
        raise FlywheelError(f"`flywheel {' '.join(args)}` failed (exit {result.returncode}); see the output above")
    return result.stdout


def run_logged(
    cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, timeout_s: float, heartbeat_s: float = 30.0
) -> int:
    """Run cmd with its output in log_path, saying every heartbeat_s that it still runs; returns the exit code."""
    print("$ " + " ".join(cmd), flush=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "wb") as log:
        out = {"stdout": log, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL}
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, start_new_session=True, **out)
        try:
            while True:
                try:
                    return proc.wait(timeout=heartbeat_s)
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    if elapsed >= timeout_s:
                        raise FlywheelError(
                            f"`{' '.join(cmd[:6])}` did not finish within {timeout_s:.0f}s; its log: {log_path}"
                        ) from None
                    print(f"  ... still running after {elapsed:.0f}s (follow it: tail -f {log_path})", flush=True)
        finally:
            if proc.poll() is None:  # timed out or interrupted: leave nothing running, its workers included
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _dagster_job(job: str, env: dict[str, str], cwd: Path) -> float:
    started = time.monotonic()
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "definitions", "-j", job]
    log_path = config.state_dir() / "logs" / f"demo-{job}.log"
    returncode = run_logged(cmd, env, cwd, log_path, timeout_s=3600)
    seconds = time.monotonic() - started
    if returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise FlywheelError(f"{job} failed after {seconds:.0f}s; full log: {log_path}\n{tail}")
    print(f"{job} succeeded in {seconds:.1f}s (log: {log_path})", flush=True)
    return seconds


def spark_used(log_path: Path) -> str:
    """Which Spark the job's features step used, from its log (pipelines.spark says it in one line)."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    for line in text.splitlines():
        if "Spark: the Spark Connect server at " in line:
            return "the Spark Connect server at " + line.split("Spark: the Spark Connect server at ", 1)[1].split()[0]
    if "no Spark Connect server" in text:
        return "an in-process session (no Spark Connect server answered)"
    return "not reported in the job's log"


def run(count: int, jobs: list[str], keep: bool) -> dict:
    root = config.project_root()
    stack = Stack()
    spec = load_spec()
    started_here = not any(r.alive() for r in stack.records())
    summary: dict = {"events": count, "jobs": {}}
    try:
        if started_here:
            _say("Starting the embedded stack (flywheel up)")
            for row in stack.up(topics=[(spec.topic.name, spec.topic.partitions)]):
                print(f"  {row.title:<28} {row.state:<10} {row.url}")
        else:
            _say("Using the stack that is already running")
        env = {**os.environ, **config.read_env_file(stack.env_file)}
        env.setdefault("DAGSTER_HOME", str(dagster_home(stack.state_dir)))
        if not env.get("SPARK_REMOTE"):
            print("  note: this stack has no Spark Connect server (SPARK_REMOTE); ingestion starts its own JVM")

        _say(f"Producing {count:,} baseline events to Kafka topic '{spec.topic.name}'")
        out = _flywheel(
            ["produce", "--count", str(count), "--scenario", "baseline", "--seed", "7", "--format", "json"], env, root
        )
        produced = json.loads(out.strip().splitlines()[-1])
        summary["produce"] = {k: produced[k] for k in ("produced", "malformed", "events_per_second", "seconds")}
        print(
            f"  produced {produced['produced']:,} events ({produced.get('malformed', 0)} malformed) at "
            f"{produced['events_per_second']:,.0f} events/s"
        )

        for job in jobs:
            _say(f"Running {job} (dagster job execute -m definitions -j {job})")
            summary["jobs"][job] = round(_dagster_job(job, env, root), 1)
            if job in ("ingest_job", "pipeline_job"):
                summary["spark"] = spark_used(config.state_dir() / "logs" / f"demo-{job}.log")
                print(f"  Spark: {summary['spark']}")

        if any(job in ("retrain_job", "pipeline_job") for job in jobs):
            from pipelines.devstack.demo_serving import show_serving

            _say("The model answering requests (flywheel serve follows the MLflow aliases and the rollout)")
            summary["serving"] = show_serving(env, spec)

            # Drift: enough drifted events to fill the drift window (DEMO_DRIFT_EVENTS=0 skips this act).
            drift_events = config.int_setting("DEMO_DRIFT_EVENTS", default=max(spec.drift.window_events, count // 4))
            if drift_events > 0:
                from pipelines.devstack.demo_drift import show_drift

                logs = config.state_dir() / "logs"
                summary["drift"] = show_drift(env, spec, root, drift_events, logs, _flywheel, run_logged)

        _say("Summary")
        print(json.dumps(summary, indent=2))
        print("\nWhere to look:")
        print(f"  MLflow UI:  {env.get('MLFLOW_TRACKING_URI', '(not running)')}")
        print(
            f"  lakeFS API: {env.get('LAKEFS_ENDPOINT', '(not running)')} (repository "
            f"{env.get('LAKEFS_REPOSITORY', 'flywheel')}); try `flywheel dataset show`"
        )
        print("  Dagster UI: `make dev` starts the stack with `dagster dev` on http://127.0.0.1:3000")
        if env.get("FLYWHEEL_SERVING_URL"):
            print(f"  Serving:    {env['FLYWHEEL_SERVING_URL']}/v1/models and /metrics (POST /v1/predict)")
        return summary
    finally:
        if started_here and not keep:
            _say("Stopping the stack (flywheel down)")
            print("  stopped: " + ", ".join(stack.down()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--count", type=int, default=config.int_setting("DEMO_EVENTS", default=100_000, minimum=1))
    parser.add_argument(
        "--jobs",
        default=config.setting("DEMO_JOBS") or ",".join(DEFAULT_JOBS),
        help="comma-separated Dagster jobs to run after producing",
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    args = parser.parse_args(argv)
    try:
        run(args.count, [j for j in args.jobs.split(",") if j], args.keep)
    except FlywheelError as exc:
        print(f"\nmake demo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
