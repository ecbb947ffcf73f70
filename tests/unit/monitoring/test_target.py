"""Which job the drift sensor requests: retrain_job when main's offsets already cover the drift window (its events
were ingested before the check saw them), else pipeline_job (ingest them first)."""

from __future__ import annotations

from pipelines.monitoring.target import PIPELINE_JOB, RETRAIN_JOB, retrain_target

WINDOW = {"0": [100, 600], "1": [50, 400]}  # {partition: [first offset, next offset]}


def test_main_past_the_window_on_every_partition_retrains_on_main() -> None:
    target = retrain_target(WINDOW, {0: 600, 1: 900})
    assert target.job == RETRAIN_JOB and target.missing_events == 0
    assert "already holds the drift window" in target.reason and "0: 600" in target.reason


def test_one_partition_behind_ingests_first_and_counts_what_is_missing() -> None:
    target = retrain_target(WINDOW, {0: 600, 1: 300})
    assert target.job == PIPELINE_JOB and target.missing_events == 100
    assert "partition 1: main at 300, window ends at 400" in target.reason


def test_main_before_the_window_counts_only_the_window() -> None:
    assert retrain_target(WINDOW, {}).missing_events == 500 + 350  # a partition main never read starts at 0


def test_a_window_without_offsets_ingests() -> None:
    assert retrain_target({}, {0: 10}).job == PIPELINE_JOB
