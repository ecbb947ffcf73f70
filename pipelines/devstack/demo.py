"""`make demo`: the whole loop on the embedded stack, from nothing.

Starts the stack with `dagster dev` (unless one is already running, which it uses), produces a baseline stream,
runs ingest_job and retrain_job from the command line exactly as CI would (`dagster job execute -m definitions`):
ingest, features, validation, training, optimization, the gate and the first champion, which serving answers
with. Then traffic drifts, the drift sensor requests a retrain, the gate judges it, the passing challenger rolls
out through serving while the canary analysis watches, and it is promoted or rolled back. Last, the lineage
report of the newest version and a summary. The stack and the Dagster UI stay up; `make down` stops them.

DEMO_FAST=1: a shorter run (fewer events, a shorter canary window).
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
from typing import Any

from pipelines import config
from pipelines.devstack.demo_progress import JobSteps, bar, console, produce_progress
from pipelines.devstack.manager import Stack
from pipelines.devstack.services import dagster_home
from pipelines.errors import FlywheelError
from pipelines.spec import load_spec

DEFAULT_JOBS = ("ingest_job", "retrain_job")


def _say(message: str) -> None:
    console.rule(message)


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def _flywheel(args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 900) -> str:
    try:
        result = subprocess.run(_cli(args), env=env, cwd=cwd, text=True, timeout=timeout_s, capture_output=True)
    except subprocess.TimeoutExpired:
        raise FlywheelError(f"`flywheel {' '.join(args[:4])}` did not finish within {timeout_s:.0f}s") from None
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise FlywheelError(f"`flywheel {' '.join(args)}` failed (exit {result.returncode}); see the output above")
    return result.stdout


def _produce(args: list[str], what: str, env: dict[str, str], cwd: Path, timeout_s: float = 900) -> dict[str, Any]:
    """`flywheel produce ... --format json` with its progress lines drawn as a bar; returns its summary."""
    cmd = _cli(["produce", *args, "--format", "json"])
    console.print("$ flywheel " + " ".join(cmd[3:]), style="dim")
    total = float(args[args.index("--count") + 1])
    deadline = time.monotonic() + timeout_s
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with bar(f"producing {what}", total=total) as update:
            assert proc.stderr is not None
            for line in proc.stderr:  # progress lines come on stderr, the summary on stdout
                event = produce_progress(line)
                if event:
                    rate = event.get("events_per_second", 0)
                    update(event["sent"], f"producing {what}: {event['sent']:,} sent, {rate:,.0f}/s")
                if time.monotonic() > deadline:
                    raise FlywheelError(f"`flywheel produce` did not finish within {timeout_s:.0f}s")
            update(total)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise FlywheelError(f"`flywheel produce {' '.join(args)}` failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def run_logged(
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    timeout_s: float,
    heartbeat_s: float = 30.0,
    on_poll: Any = None,
) -> int:
    """Run cmd with its output in log_path; returns the exit code. Calls on_poll(elapsed_s) about every second
    (the progress bar; what it returns goes into the heartbeat) and, outside a terminal or without on_poll, says
    every heartbeat_s that it still runs."""
    console.print("$ " + " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)), style="dim")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    next_heartbeat = started + heartbeat_s
    with open(log_path, "wb") as log:
        out = {"stdout": log, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL}
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, start_new_session=True, **out)
        try:
            while True:
                try:
                    return proc.wait(timeout=min(1.0, heartbeat_s))
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    if elapsed >= timeout_s:
                        raise FlywheelError(
                            f"`{' '.join(cmd[:6])}` did not finish within {timeout_s:.0f}s; its log: {log_path}"
                        ) from None
                    status = on_poll(elapsed) if on_poll is not None else None
                    if time.monotonic() >= next_heartbeat and (on_poll is None or not console.is_terminal):
                        said = f"still running after {elapsed:.0f}s" + (f": {status}" if status else "")
                        print(f"  ... {said} (follow it: tail -f {log_path})", flush=True)
                        next_heartbeat += heartbeat_s
        finally:
            if proc.poll() is None:  # timed out or interrupted: leave nothing running, its workers included
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_job_logged(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, what: str) -> int:
    """A Dagster run (in a subprocess) with a spinner that names the step its log says runs now."""
    with bar(what, total=None) as update:

        def poll(_elapsed: float) -> str:
            described = JobSteps.read(log_path).describe()
            update(None, f"{what}: {described}")
            return described

        return run_logged(cmd, env, cwd, log_path, timeout_s=3600, on_poll=poll)


def _dagster_job(job: str, env: dict[str, str], cwd: Path) -> float:
    started = time.monotonic()
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-m", "definitions", "-j", job]
    log_path = config.state_dir() / "logs" / f"demo-{job}.log"
    returncode = run_job_logged(cmd, env, cwd, log_path, job)
    seconds = time.monotonic() - started
    if returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise FlywheelError(f"{job} failed after {seconds:.0f}s; full log: {log_path}\n{tail}")
    steps = JobSteps.read(log_path)
    console.print(f"  {job} succeeded in {seconds:.0f}s: {', '.join(steps.done)} (log: {log_path})")
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


def demo_rollout(fast: bool) -> dict[str, Any]:
    """The retrained model's rollout in the demo: two canary steps with a short window (the spec's plan, 10/50/100%
    over 120 s each, is meant for real traffic)."""
    return {"steps": [50.0, 100.0], "analysis_window_s": 10.0 if fast else 30.0}


def _start_stack(stack: Stack, spec_topic: tuple[str, int]) -> bool:
    """Start the stack with Dagster unless one runs; returns whether this demo started it."""
    running = [r for r in stack.records() if r.alive()]
    if running:
        _say("Using the stack that is already running")
        if not any(r.service == "dagster" for r in running):
            console.print("  note: it runs without Dagster, so no UI; `make down && make demo` starts one with it")
        return False
    _say("Starting the embedded stack and the Dagster UI (flywheel up --with-dagster)")
    with bar("starting Kafka, lakeFS, MLflow, Spark Connect, the online store, serving, Dagster", None):
        rows = stack.up(with_dagster=True, topics=[spec_topic])
    for row in rows:
        console.print(f"  {row.title:<28} {row.state:<10} {row.url}")
    return True


def _versions(env: dict[str, str], name: str) -> list[dict[str, Any]]:
    out = _flywheel(["lineage", "--model", name, "--format", "json"], env, config.project_root(), timeout_s=300)
    return json.loads(out)


def _lineage_report(env: dict[str, str], name: str, version: str) -> Path:
    path = config.state_dir() / "reports" / f"lineage-{name}-v{version}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["lineage", "--model", name, "--version", version, "--format", "md", "--output", str(path)]
    _flywheel(args, env, config.project_root(), timeout_s=300)
    return path


def _print_summary(summary: dict[str, Any], env: dict[str, str]) -> None:
    from rich.table import Table

    _say("Summary")
    produced = summary["produce"]
    console.print(f"Events: {produced['produced']:,} baseline, {summary.get('drift_events', 0):,} drifted")
    table = Table(title="Model versions (newest first)", title_justify="left")
    for column in ("version", "gate", "aliases", "dataset version (lakeFS commit)", "gate reason"):
        table.add_column(column)
    for row in summary.get("versions", []):
        table.add_row(
            row["version"],
            str(row["decision"]),
            ",".join(row["aliases"]) or "-",
            (row.get("lakefs_commit") or "-")[:16],
            (row.get("reason") or "")[:70],
        )
    console.print(table)
    commits = sorted({r["lakefs_commit"] for r in summary.get("versions", []) if r.get("lakefs_commit")})
    console.print(f"Dataset versions trained on: {', '.join(c[:16] for c in commits) or 'none'}")
    drift = summary.get("drift")
    if drift:
        console.print(f"Drift: {drift['decision']} ({'; '.join(drift.get('reasons', []))}); report {drift['report']}")
        if drift.get("requested"):
            evidence = drift["tags"].get("flywheel/drift_evidence")
            console.print(f"  it triggered pipeline_job run {drift.get('run', {}).get('run_id')} (evidence {evidence})")
    canary = summary.get("canary")
    if canary:
        console.print(f"Rollout of version {canary.get('version')}: {canary['outcome']} {canary.get('reason') or ''}")
    if summary.get("lineage"):
        console.print(f"Lineage report of version {summary['newest']}: {summary['lineage']}")
    seconds = ", ".join(f"{k} {v:.0f}s" for k, v in summary["seconds"].items())
    console.print(f"Time: {seconds}")
    console.print("\nWhere to look (still running):")
    console.print(f"  Dagster UI: {env.get('FLYWHEEL_DAGSTER_URL', '(not running: make dev)')}")
    console.print(f"  MLflow UI:  {env.get('MLFLOW_TRACKING_URI', '(not running)')}")
    console.print(f"  lakeFS:     {env.get('LAKEFS_ENDPOINT', '(not running)')} (try `flywheel dataset show`)")
    console.print(f"  Serving:    {env.get('FLYWHEEL_SERVING_URL', '(not running)')}/v1/models, /metrics")
    console.print("Stop everything with `make down` (or `flywheel down`).")


def run(count: int, jobs: list[str], stop: bool = False, fast: bool = False) -> dict[str, Any]:
    root = config.project_root()
    stack = Stack()
    spec = load_spec()
    began = time.monotonic()
    summary: dict[str, Any] = {"events": count, "jobs": {}, "seconds": {}}
    started_here = _start_stack(stack, (spec.topic.name, spec.topic.partitions))
    summary["seconds"]["stack"] = time.monotonic() - began
    try:
        env = {**os.environ, **config.read_env_file(stack.env_file)}
        env.setdefault("DAGSTER_HOME", str(dagster_home(stack.state_dir)))
        if not env.get("SPARK_REMOTE"):
            console.print("  note: this stack has no Spark Connect server (SPARK_REMOTE); ingestion starts its own JVM")

        _say(f"Producing {count:,} baseline events to Kafka topic '{spec.topic.name}'")
        t = time.monotonic()
        produced = _produce(["--count", str(count), "--scenario", "baseline", "--seed", "7"], "events", env, root)
        summary["produce"] = {k: produced[k] for k in ("produced", "malformed", "events_per_second", "seconds")}
        console.print(f"  produced {produced['produced']:,} events ({produced.get('malformed', 0)} malformed)")
        summary["seconds"]["produce"] = time.monotonic() - t

        for job in jobs:
            _say(f"{job}: dagster job execute -m definitions -j {job}")
            summary["jobs"][job] = summary["seconds"][job] = _dagster_job(job, env, root)
            if job in ("ingest_job", "pipeline_job"):
                summary["spark"] = spark_used(config.state_dir() / "logs" / f"demo-{job}.log")
                console.print(f"  Spark: {summary['spark']}")

        name = config.setting("FLYWHEEL_SERVING_MODEL") or spec.name
        if any(job in ("retrain_job", "pipeline_job") for job in jobs):
            from pipelines.devstack.demo_serving import show_serving

            _say("The first champion answers requests (flywheel serve follows the MLflow aliases)")
            summary["serving"] = show_serving(env, spec)

            # Drift: enough drifted events to fill the drift window (DEMO_DRIFT_EVENTS=0 skips this act).
            drift_events = config.int_setting("DEMO_DRIFT_EVENTS", default=max(spec.drift.window_events, count // 4))
            if drift_events > 0:
                from pipelines.devstack.demo_canary import watch_canary
                from pipelines.devstack.demo_drift import show_drift

                t = time.monotonic()
                summary["drift_events"] = drift_events
                summary["drift"] = show_drift(
                    env,
                    spec,
                    root,
                    drift_events,
                    config.state_dir() / "logs",
                    lambda args, what: _produce(args, what, env, root),
                    run_job_logged,
                    {"ops": {"deployment": {"config": demo_rollout(fast)}}},
                )
                summary["seconds"]["drift and retrain"] = time.monotonic() - t
                _say("Canary: the challenger rolls out through serving; the canary analysis decides")
                t = time.monotonic()
                daemon = bool(env.get("FLYWHEEL_DAGSTER_URL"))
                summary["canary"] = watch_canary(env, spec, name, daemon=daemon)
                summary["seconds"]["canary"] = time.monotonic() - t

            summary["versions"] = _versions(env, name)
            if summary["versions"]:
                newest = summary["newest"] = summary["versions"][0]["version"]
                _say(f"Lineage of the newest version, {name} v{newest}")
                summary["lineage"] = str(_lineage_report(env, name, newest))
                console.print(f"  wrote {summary['lineage']} (also: flywheel lineage --model {name} --format html)")
        summary["seconds"]["total"] = time.monotonic() - began
        _print_summary(summary, env)
        return summary
    finally:
        if started_here and stop:
            _say("Stopping the stack (flywheel down)")
            console.print("  stopped: " + ", ".join(stack.down()))


def main(argv: list[str] | None = None) -> int:
    fast = config.setting("DEMO_FAST") not in (None, "", "0")
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    default_count = config.int_setting("DEMO_EVENTS", default=30_000 if fast else 100_000, minimum=1)
    parser.add_argument("--count", type=int, default=default_count)
    parser.add_argument(
        "--jobs",
        default=config.setting("DEMO_JOBS") or ",".join(DEFAULT_JOBS),
        help="comma-separated Dagster jobs to run after producing",
    )
    parser.add_argument("--stop", action="store_true", help="stop the stack the demo started at the end")
    parser.add_argument("--fast", action="store_true", default=fast, help="a shorter run (also DEMO_FAST=1)")
    args = parser.parse_args(argv)
    try:
        run(args.count, [j for j in args.jobs.split(",") if j], args.stop, args.fast)
    except FlywheelError as exc:
        console.print(f"\nmake demo: {exc}", style="bold red", markup=False)
        console.print("The stack keeps running for a look (flywheel status); `make down` stops it.")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
