"""The drift sensor's decision on a real Dagster instance (instance_for_test: SQLite run and event storage): the
guard reads drift-triggered runs and the gate's check results from the instance; the breaker, the budget, the
cooldown and a run in progress each stop a drifted window from requesting a run, visibly (skip reason, cursor,
error log line, guard.json); a person's passing run closes the breaker. No servers: the requesting path, which
commits evidence to lakeFS, runs in tests/integration/monitoring."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    SkipReason,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.storage.dagster_run import DagsterRun

from pipelines.lineage.records import DriftReport
from pipelines.monitoring.stage import DriftOutcome
from pipelines.spec import load_spec
from sensors.drift import DRIFT, GUARD_FILE, TRIGGER_TAG, evaluate, retrain_history

SPEC = load_spec("transactions")  # drift: budget 3 a day, cooldown 60 min, breaker after 3 rejections


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FLYWHEEL_RECORDS_DIR", str(tmp_path / "records"))
    with instance_for_test() as inst:
        yield inst


def outcome(drifted: bool, tmp_path: Path) -> DriftOutcome:
    report = DriftReport(
        spec=SPEC.name,
        decision="drift" if drifted else "no drift",
        drifted=drifted,
        reasons=["1 column(s) drifted: amount (psi 2.0x threshold)"] if drifted else [],
        drifted_columns=["amount"] if drifted else [],
        champion_version="1",
        window={"offsets": {"0": [0, 100]}},
        report_path=str(tmp_path / "r.html"),
    )
    return DriftOutcome(report, None, tmp_path / "r.html", tmp_path / "r.json")


def add_run(instance: DagsterInstance, status: DagsterRunStatus, gate: bool | None, drift: bool = True) -> str:
    run_id = str(uuid.uuid4())
    tags = {TRIGGER_TAG: DRIFT} if drift else {}
    instance.add_run(DagsterRun(job_name="pipeline_job", run_id=run_id, status=status, tags=tags))
    if gate is not None:  # what the blocking check `passes_gate` of evaluated_model reported in that run
        evaluation = AssetCheckEvaluation(
            asset_key=AssetKey("evaluated_model"),
            check_name="passes_gate",
            passed=gate,
            metadata={},
            severity=AssetCheckSeverity.ERROR,
        )
        event = DagsterEvent(
            event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
            job_name="pipeline_job",
            event_specific_data=evaluation,
        )
        instance.report_dagster_event(event, run_id)
    return run_id


def tick(instance: DagsterInstance, drifted: bool, tmp_path: Path, cursor: str | None = None):
    context = build_sensor_context(instance=instance, cursor=cursor, sensor_name="drift_sensor")
    result = evaluate(context, SPEC, outcome(drifted, tmp_path), lake=None)
    return result, json.loads(context.cursor)


def test_no_drift_skips_and_shows_the_guard_in_the_cursor(instance, tmp_path: Path) -> None:
    result, cursor = tick(instance, False, tmp_path)
    assert isinstance(result, SkipReason) and result.skip_message.startswith("no drift")
    assert cursor["decision"] == "no drift" and cursor["guard"]["allowed"] is True


def test_breaker_opens_after_three_gate_rejections_and_alerts(
    instance, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        add_run(instance, DagsterRunStatus.FAILURE, gate=False)
    assert [r.outcome for r in retrain_history(instance)] == ["rejected"] * 3
    with caplog.at_level(logging.ERROR, logger="flywheel.drift"):
        result, cursor = tick(instance, True, tmp_path)
    assert isinstance(result, SkipReason) and "circuit breaker open" in result.skip_message
    assert "BREAKER OPEN" in result.skip_message and "3 rejection(s) in a row" in result.skip_message
    assert cursor["guard"]["breaker_open"] is True and cursor["last_request"] is None
    assert any("circuit breaker is open" in r.getMessage() for r in caplog.records)
    guard = json.loads((tmp_path / "records/flywheel-records/reports/drift" / GUARD_FILE).read_text())
    assert guard["breaker_open"] is True  # what the metrics exporter turns into flywheel_retrain_circuit_open

    # A person runs the pipeline by hand and the gate passes: the breaker closes.
    add_run(instance, DagsterRunStatus.SUCCESS, gate=True, drift=False)
    _, cursor = tick(instance, False, tmp_path)
    assert cursor["guard"]["breaker_open"] is False and cursor["guard"]["consecutive_rejections"] == 0


def test_a_failed_run_without_a_gate_decision_counts_as_failed(instance) -> None:
    add_run(instance, DagsterRunStatus.FAILURE, gate=None)
    assert [r.outcome for r in retrain_history(instance)] == ["failed"]


def test_a_run_that_ended_without_a_gate_decision_does_not_close_the_breaker(instance, tmp_path: Path) -> None:
    """A successful pipeline_job whose gate never ran (ingestion found nothing new, so training and the gate were
    skipped) judged no model: it must not count as a pass that closes an open breaker."""
    for _ in range(3):
        add_run(instance, DagsterRunStatus.FAILURE, gate=False)
    add_run(instance, DagsterRunStatus.SUCCESS, gate=None, drift=False)  # a person's run: nothing new, no gate
    add_run(instance, DagsterRunStatus.SUCCESS, gate=None)  # a drift run: the same
    assert sorted(r.outcome for r in retrain_history(instance)) == ["rejected"] * 3 + ["unjudged"]
    result, cursor = tick(instance, True, tmp_path)
    assert isinstance(result, SkipReason) and "circuit breaker open" in result.skip_message
    assert cursor["guard"]["breaker_open"] is True and cursor["guard"]["consecutive_rejections"] == 3


def test_daily_budget_stops_requests(instance, tmp_path: Path) -> None:
    for _ in range(3):
        add_run(instance, DagsterRunStatus.SUCCESS, gate=True)
    result, cursor = tick(instance, True, tmp_path)
    assert isinstance(result, SkipReason) and "budget spent" in result.skip_message
    assert cursor["guard"]["runs_last_day"] == 3 and not cursor["guard"]["breaker_open"]


def test_cooldown_after_a_drift_run(instance, tmp_path: Path) -> None:
    add_run(instance, DagsterRunStatus.SUCCESS, gate=True)
    result, _ = tick(instance, True, tmp_path)
    assert isinstance(result, SkipReason) and "cooldown" in result.skip_message


def test_no_second_run_while_one_is_in_progress(instance, tmp_path: Path) -> None:
    add_run(instance, DagsterRunStatus.STARTED, gate=None)
    result, _ = tick(instance, True, tmp_path)
    assert isinstance(result, SkipReason) and "still in progress" in result.skip_message


def test_the_run_failure_sensor_records_alerts_and_raises_the_breaker(
    instance, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dagster import build_run_status_sensor_context

    from sensors.drift import ALERTS_FILE, retrain_failure_sensor

    alerts = tmp_path / "records/flywheel-records/reports/drift" / ALERTS_FILE

    def fail(run_id: str) -> None:
        run = instance.get_run_by_id(run_id)
        event = DagsterEvent(
            event_type_value=DagsterEventType.RUN_FAILURE.value,
            job_name="pipeline_job",
            message='Execution of run for "pipeline_job" failed. Steps failed: [evaluated_model]',
        )
        context = build_run_status_sensor_context(
            sensor_name="retrain_failure_sensor", dagster_event=event, dagster_instance=instance, dagster_run=run
        ).for_run_failure()
        retrain_failure_sensor(context)

    with caplog.at_level(logging.ERROR, logger="flywheel.drift"):
        fail(add_run(instance, DagsterRunStatus.FAILURE, gate=None, drift=False))  # a person's run, no gate
        for _ in range(3):
            fail(add_run(instance, DagsterRunStatus.FAILURE, gate=False))  # drift runs the gate rejected
    lines = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert [(a["trigger"], a["outcome"]) for a in lines] == [("manual", "failed")] + [("drift", "rejected")] * 3
    assert [a["breaker_open"] for a in lines] == [False, False, False, True]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("the evaluation gate rejected the model" in m for m in messages) == 3
    assert any(m.startswith("ALERT: drift retraining stopped") for m in messages)
