"""The drift sensor's request on real lakeFS and a real Dagster instance: when main's offsets file already covers
the drift window (the lag sensor or the ingest schedule ingested those events first), it requests retrain_job,
because pipeline_job would find nothing new to ingest and skip training; when main is behind, pipeline_job. The
run is tagged with the job and why, and the evidence is committed either way."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from dagster import RunRequest, build_sensor_context, instance_for_test

from pipelines import layout
from pipelines.ingest.offsets import offsets_document
from pipelines.lake import MAIN, Lake, LakeFSSettings
from pipelines.lineage.records import DriftReport
from pipelines.monitoring.stage import DriftOutcome
from pipelines.spec import load_spec
from sensors.drift import EVIDENCE_TAG, JOB_REASON_TAG, JOB_TAG, evaluate

SPEC = load_spec("transactions")
WINDOW = {"0": [1000, 4000], "1": [800, 3000]}  # the drift window's {partition: [first, next offset]}


@pytest.fixture
def lake(stack_env: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Lake:
    monkeypatch.setenv("LAKEFS_REPOSITORY", f"drift-target-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("FLYWHEEL_RECORDS_DIR", str(tmp_path / "records"))
    lake = Lake(LakeFSSettings.from_env())
    lake.ensure_repository()
    return lake


def ingested(lake: Lake, offsets: dict[int, int]) -> None:
    """What an ingestion run leaves on main: its offsets file, committed."""
    document = offsets_document(SPEC.topic.name, offsets, None)
    lake.write_bytes(MAIN, layout.offsets_path(SPEC), json.dumps(document), "application/json")
    lake.commit(MAIN, "ingested", {})


def drifted(tmp_path: Path) -> DriftOutcome:
    html, record = tmp_path / "r.html", tmp_path / "r.json"
    html.write_text("<html>drift</html>")
    report = DriftReport(
        spec=SPEC.name,
        decision="drift",
        drifted=True,
        reasons=["1 column(s) drifted: amount"],
        drifted_columns=["amount"],
        champion_version="1",
        window={"offsets": WINDOW},
        report_path=str(html),
    )
    return DriftOutcome(report, None, html, record)


def request(lake: Lake, tmp_path: Path) -> tuple[RunRequest, dict]:
    with instance_for_test() as instance:
        context = build_sensor_context(instance=instance, sensor_name="drift_sensor")
        result = evaluate(context, SPEC, drifted(tmp_path), lake)
        assert isinstance(result, RunRequest), result
        return result, json.loads(context.cursor)


def test_a_window_main_already_ingested_requests_retrain_job(lake: Lake, tmp_path: Path) -> None:
    ingested(lake, {0: 4000, 1: 5000})  # the lag sensor's ingest ran before the drift check
    result, cursor = request(lake, tmp_path)
    assert result.job_name == "retrain_job" and result.tags[JOB_TAG] == "retrain_job"
    assert "already holds the drift window" in result.tags[JOB_REASON_TAG]
    assert cursor["last_request"]["job"] == "retrain_job"
    assert lake.resolve("drift-evidence") == result.tags[EVIDENCE_TAG]


def test_a_window_main_has_not_ingested_requests_pipeline_job(lake: Lake, tmp_path: Path) -> None:
    ingested(lake, {0: 4000, 1: 2000})  # partition 1 is 1000 events behind the window's end
    result, cursor = request(lake, tmp_path)
    assert result.job_name == "pipeline_job" and result.tags[JOB_TAG] == "pipeline_job"
    assert "partition 1: main at 2000, window ends at 3000" in result.tags[JOB_REASON_TAG]
    assert "not ingested 1000 event(s)" in cursor["last_request"]["why"]
