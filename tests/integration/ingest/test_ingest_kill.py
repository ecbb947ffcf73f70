"""Exactly once under crashes: SIGKILL `python -m pipelines.ingest` at random moments, several times, while
new events keep arriving; then let a run finish. `main` must hold every valid event exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from harness import IngestEnv

from pipelines import layout
from pipelines.lake import MAIN
from pipelines.lakecache import local_copies

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
STAGES = ("reading", "stage raw done", "stage features done", "stage validation done", "stage publish done")


def start_run(env: IngestEnv, run_id: str, log_path: Path, crash_at: str = "") -> subprocess.Popen:
    child_env = {**os.environ, **env.env, "FLYWHEEL_SPEC": str(env.spec_path), "PYTHONPATH": str(ROOT)}
    child_env["FLYWHEEL_INGEST_CRASH_AT"] = crash_at
    child_env["SPARK_MASTER"] = "local[1]"
    out = open(log_path, "wb")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.ingest", "--run-id", run_id],
        cwd=ROOT,
        env=child_env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill takes the Spark JVM with it
    )


def last_stage(log_path: Path) -> str:
    text = log_path.read_text(errors="replace")
    reached = [s for s in STAGES if s in text]
    return reached[-1] if reached else "starting"


def table_on_main(env: IngestEnv, prefix: str) -> pa.Table:
    files = local_copies(env.lake, MAIN, prefix)
    return pa.concat_tables(pq.read_table(f) for f in files) if files else pa.table({"x": []})


def test_sigkill_at_random_moments_then_finish(ingest_env: IngestEnv, tmp_path: Path) -> None:
    env = ingest_env
    rng = random.Random(int(os.environ.get("FLYWHEEL_KILL_SEED", "4")))
    produced = {"valid": 0, "malformed": 0}
    next_i = 0
    report = []
    for attempt, delay in enumerate([0.8, 5.0, 15.0, 25.0]):
        counts = env.produce(1000, start=next_i, malformed_every=50)
        next_i += 1000
        produced = {k: produced[k] + counts[k] for k in produced}
        log_path = tmp_path / f"run-{attempt}.log"
        proc = start_run(env, f"kill-{attempt}", log_path)
        delay += rng.uniform(0, 2.5)
        try:
            proc.wait(timeout=delay)
            report.append((delay, "finished", proc.returncode))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            report.append((round(delay, 1), f"killed after: {last_stage(log_path)}", None))
    # Deterministic crashes at the two moments a timer rarely hits: just before and just after the merge.
    for crash_at in ("before_merge", "after_merge"):
        counts = env.produce(500, start=next_i, malformed_every=50)
        next_i += 500
        produced = {k: produced[k] + counts[k] for k in produced}
        proc = start_run(env, f"crash-{crash_at}", tmp_path / f"crash-{crash_at}.log", crash_at)
        assert proc.wait(timeout=300) == -signal.SIGKILL
        report.append((crash_at, f"killed after: {last_stage(tmp_path / f'crash-{crash_at}.log')}", None))
    print("kill report:", report)
    assert any("killed" in r[1] for r in report)
    # the run killed right after its merge published its events; its tag is recovered by the next run
    published_tag = env.lake.commit_info(MAIN).metadata["flywheel.dataset_tag"]

    outcome = env.run(run_id="final")  # in-process run that finishes
    assert outcome.status in ("published", "nothing_new")
    assert env.lake.resolve(published_tag)

    spec = env.spec
    raw = table_on_main(env, layout.raw_prefix(spec))
    ids = raw.column(spec.event_id)
    assert raw.num_rows == produced["valid"], report
    assert pc.count_distinct(ids).as_py() == produced["valid"], report
    quarantine = table_on_main(env, layout.quarantine_prefix(spec))
    assert quarantine.num_rows == produced["malformed"]
    features = table_on_main(env, layout.features_prefix(spec))
    assert features.num_rows == produced["valid"]
    offsets = env.lake.read_json(MAIN, layout.offsets_path(spec))["offsets"]
    assert sum(offsets.values()) == produced["valid"] + produced["malformed"]
    # and the next run has nothing to do
    assert env.run(run_id="after").status == "nothing_new"
