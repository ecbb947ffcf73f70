"""`make demo` runs each Dagster job with its output in a log file and a heartbeat while it runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipelines.devstack.demo import run_logged
from pipelines.errors import FlywheelError


def test_long_work_shows_progress_and_keeps_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "logs" / "job.log"
    code = run_logged(
        [sys.executable, "-c", "import time; print('step 1', flush=True); time.sleep(1.2); raise SystemExit(3)"],
        {}, tmp_path, log, timeout_s=60, heartbeat_s=0.3,
    )  # fmt: skip
    assert code == 3
    assert "step 1" in log.read_text()
    assert "still running after" in capsys.readouterr().out


def test_a_job_past_its_time_is_stopped_with_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(FlywheelError, match=r"did not finish within 0s; its log: "):
        run_logged([sys.executable, "-c", "import time; time.sleep(30)"], {}, tmp_path, tmp_path / "l.log", 0.5, 0.2)


def test_the_demo_says_which_spark_ingested(tmp_path: Path) -> None:
    """`make demo` reads the job's log for the line pipelines.spark writes when it picks a session."""
    from pipelines.devstack.demo import spark_used

    log = tmp_path / "demo-ingest_job.log"
    log.write_text("features - INFO - Spark: the Spark Connect server at sc://127.0.0.1:15002\nmore\n")
    assert spark_used(log) == "the Spark Connect server at sc://127.0.0.1:15002"
    log.write_text("WARNING no Spark Connect server (SPARK_REMOTE is not set): starting an in-process ...\n")
    assert spark_used(log).startswith("an in-process session")
    assert spark_used(tmp_path / "missing.log") == "not reported in the job's log"
