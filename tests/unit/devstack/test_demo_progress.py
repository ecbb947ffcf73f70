"""`make demo`'s progress: the steps a Dagster log has run, and the producer's progress lines."""

from __future__ import annotations

from pathlib import Path

from pipelines.devstack.demo import demo_rollout
from pipelines.devstack.demo_progress import JobSteps, produce_progress
from pipelines.spec.model import RolloutSpec

LOG = """\
2026-11-30 21:12:01 +0000 - dagster - DEBUG - retrain_job - 1f2e - trained_model - STEP_START - Started execution
2026-11-30 21:12:40 +0000 - dagster - DEBUG - retrain_job - 1f2e - trained_model - STEP_SUCCESS - Finished
2026-11-30 21:12:41 +0000 - dagster - DEBUG - retrain_job - 1f2e - optimized_model - STEP_START - Started
"""


def test_a_job_log_says_which_steps_are_done_and_which_runs(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text(LOG)
    steps = JobSteps.read(log)
    assert steps.done == ["trained_model"] and steps.started == ["trained_model", "optimized_model"]
    assert steps.describe() == "1 steps done, now optimized_model"
    assert JobSteps.read(tmp_path / "missing.log").describe() == "0 steps done, starting"


def test_only_progress_lines_of_the_producer_count() -> None:
    line = '{"event": "produce.progress", "sent": 5000, "total": 30000, "malformed": 0, "events_per_second": 9.5}'
    assert produce_progress(line)["sent"] == 5000
    assert produce_progress("produce: 5,000/30,000 events") is None
    assert produce_progress('{"produced": 30000}') is None


def test_the_demo_rollout_is_a_valid_shorter_plan() -> None:
    for fast in (True, False):
        plan = RolloutSpec.model_validate(demo_rollout(fast))
        assert plan.analysis_window_s < RolloutSpec().analysis_window_s and plan.steps[-1] == 100
