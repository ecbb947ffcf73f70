"""The drift sensor, the retraining run-failure (alert) sensor, and what both read from the Dagster instance.

drift_sensor, every `drift.interval_seconds`: checks the latest window against the champion (pipelines.monitoring,
the same check as the `drift_report` asset). On drift, when the guard allows (pipelines.monitoring.guard:
nothing in progress, cooldown, daily budget, breaker), it commits the window and the report to the lakeFS branch
`drift-evidence` and requests `pipeline_job` (ingest the new data, then retrain), or `retrain_job` when lakeFS main's
offsets already cover the window (pipelines.monitoring.target: the lag sensor or the ingest schedule ingested the
drifted events first, so an ingest would find nothing new and skip training), with a run key made of the
champion and the window's offsets (one window never launches two runs) and tags naming the trigger, the report,
the evidence commit, and which job and why. Otherwise it skips with the reason. Its cursor holds the last
decision and the guard's state (breaker open, consecutive rejections, runs in the last day), so the UI shows both
on every tick.

retrain_failure_sensor: every failed run of pipeline_job or retrain_job is recorded (alerts.jsonl next to the drift
reports) and logged at error level, naming a gate rejection as such; when drift-triggered runs reach
`drift.max_consecutive_rejections` rejections in a row it raises the breaker alert.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from kafka.errors import KafkaError

from jobs import pipeline_job, retrain_job
from pipelines.errors import FlywheelError
from pipelines.ingest.lag import kafka_lag
from pipelines.ingest.offsets import read_stored_offsets
from pipelines.ingest.parallel import READER_SETTINGS
from pipelines.lake import MAIN
from pipelines.lineage.records import DriftReport
from pipelines.monitoring.guard import (
    FAILED,
    PASSED,
    REJECTED,
    RUNNING,
    UNJUDGED,
    RetrainDecision,
    RetrainRun,
    decide_retrain,
)
from pipelines.monitoring.stage import GUARD_FILE, reports_dir, run_check, snapshot_evidence
from pipelines.monitoring.target import retrain_target
from pipelines.spec import load_spec
from pipelines.spec.model import DatasetSpec
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource

log = logging.getLogger("flywheel.drift")
TRIGGER_TAG = "flywheel/trigger"
DRIFT = "drift"
REPORT_TAG = "flywheel/drift_report"
EVIDENCE_TAG = "flywheel/drift_evidence"
COLUMNS_TAG = "flywheel/drift_columns"
CHAMPION_TAG = "flywheel/champion_version"
JOB_TAG = "flywheel/drift_job"  # pipeline_job or retrain_job
JOB_REASON_TAG = "flywheel/drift_job_reason"  # why that job: main's offsets against the window's
GATE_CHECK = AssetCheckKey(AssetKey(["evaluated_model"]), "passes_gate")
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
FINISHED_BAD = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
RETRAIN_JOBS = (pipeline_job.name, retrain_job.name)
ALERTS_FILE = "alerts.jsonl"


def _interval_s() -> int:
    try:
        return load_spec().drift.interval_seconds
    except FlywheelError:  # a broken spec is reported by the sensor's own evaluation, not at import
        return 60


# ---- the instance's view: drift-triggered runs and their outcomes ------------------------------------------


def gate_results(instance: DagsterInstance, limit: int = 200) -> dict[str, bool]:
    """{run id: passed} of the evaluation gate's blocking check, for the latest `limit` evaluations."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    out: dict[str, bool] = {}
    for record in instance.event_log_storage.get_asset_check_execution_history(GATE_CHECK, limit=limit):
        if record.status == AssetCheckExecutionRecordStatus.FAILED:
            out.setdefault(record.run_id, False)
        elif record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
            out.setdefault(record.run_id, True)
    return out


def retrain_history(instance: DagsterInstance, limit: int = 50) -> list[RetrainRun]:
    """Drift-triggered runs (any outcome) and the retraining runs of people or schedules that passed."""
    gates = gate_results(instance)
    runs: list[RetrainRun] = []
    seen: set[str] = set()
    for job in RETRAIN_JOBS:
        for record in instance.get_run_records(RunsFilter(job_name=job), limit=limit):
            run = record.dagster_run
            if run.run_id in seen:
                continue
            seen.add(run.run_id)
            by_drift = run.tags.get(TRIGGER_TAG) == DRIFT
            if run.status in ACTIVE:
                outcome = RUNNING
            elif run.status == DagsterRunStatus.SUCCESS:
                gate = gates.get(run.run_id)  # None: the gate never ran (nothing new ingested, steps skipped)
                outcome = UNJUDGED if gate is None else PASSED if gate else REJECTED
            elif run.status in FINISHED_BAD:
                outcome = REJECTED if gates.get(run.run_id) is False else FAILED
            else:
                continue
            if not by_drift and outcome != PASSED:
                continue  # a person's failed run neither counts nor resets
            started = record.start_time or record.create_timestamp.timestamp()
            runs.append(RetrainRun(run.run_id, started, record.end_time, outcome, by_drift))
    return runs


def run_key_for(report: DriftReport) -> str:
    """Same champion and window (offsets) -> same key: a re-evaluated tick never launches a second run."""
    offsets = json.dumps(report.window.get("offsets", {}), sort_keys=True)
    digest = hashlib.sha256(f"{report.champion_version}|{offsets}".encode()).hexdigest()[:16]
    return f"drift-{report.spec}-v{report.champion_version}-{digest}"


def write_guard_state(decision: RetrainDecision, base: str | None, now: float) -> None:
    """The guard's state next to latest.json (the metrics exporter's flywheel_retrain_circuit_open)."""
    folder = reports_dir(base)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (GUARD_FILE + ".tmp")
    tmp.write_text(json.dumps({**decision.to_dict(), "checked_at": now}, sort_keys=True))
    tmp.rename(folder / GUARD_FILE)


def evaluate(
    context: SensorEvaluationContext,
    spec: DatasetSpec,
    outcome: Any,
    lake: Any,
    now: float | None = None,
    main_offsets: Callable[[], Mapping[int, int]] | None = None,
) -> RunRequest | SkipReason:
    """The sensor's decision for one check outcome (separate from reading Kafka, so tests drive it directly).
    `main_offsets`: the offsets ingestion reads from next (the sensor: kafka_lag's, which knows a recreated topic);
    by default the offsets file on lakeFS main."""
    now = time.time() if now is None else now
    report: DriftReport = outcome.report
    previous = json.loads(context.cursor) if context.cursor else {}
    decision = decide_retrain(spec.drift, retrain_history(context.instance), now)
    base = context.instance.storage_directory()
    write_guard_state(decision, base, now)
    state = {
        "checked_at": now,
        "decision": report.decision,
        "drifted_columns": report.drifted_columns,
        "report": report.report_path,
        "guard": decision.to_dict(),
        "last_request": previous.get("last_request"),
    }
    guard = (
        f"guard: {'BREAKER OPEN' if decision.breaker_open else 'ok'}, {decision.consecutive_rejections} "
        f"rejection(s) in a row, {decision.runs_last_day}/{spec.drift.daily_budget} runs in 24h"
    )
    if decision.breaker_open and (report.drifted or not previous.get("guard", {}).get("breaker_open")):
        message = f"drift retraining circuit breaker is open for {spec.name}: {decision.reason}"
        context.log.error(message)
        log.error(message)
    if not report.drifted:
        context.update_cursor(json.dumps(state, sort_keys=True))
        why = "; ".join(report.reasons) or "every column within its thresholds"
        return SkipReason(f"{report.decision}: {why} ({guard}; report {report.report_path})")
    columns = ", ".join(report.drifted_columns) or "labels/performance"
    if not decision.allowed:
        context.update_cursor(json.dumps(state, sort_keys=True))
        return SkipReason(f"drift in {columns}, no run requested: {decision.reason} ({guard})")
    run_key = run_key_for(report)
    used = context.instance.get_runs(RunsFilter(tags={"dagster/run_key": run_key}), limit=1)
    if used:
        context.update_cursor(json.dumps(state, sort_keys=True))
        return SkipReason(f"drift in {columns}: this window already launched run {used[0].run_id} ({run_key})")
    ingested = main_offsets() if main_offsets is not None else read_stored_offsets(lake, MAIN, spec).offsets
    target = retrain_target(report.window.get("offsets", {}), ingested)
    commit = snapshot_evidence(lake, spec, outcome, run_key)
    state["last_request"] = {
        "run_key": run_key,
        "evidence_commit": commit,
        "at": now,
        "job": target.job,
        "why": target.reason,
    }
    context.update_cursor(json.dumps(state, sort_keys=True))
    context.log.info(f"drift in {columns}: requesting {target.job} ({target.reason}; {run_key}, evidence {commit})")
    return RunRequest(
        run_key=run_key,
        job_name=target.job,
        tags={
            TRIGGER_TAG: DRIFT,
            REPORT_TAG: report.report_path,
            EVIDENCE_TAG: commit,
            COLUMNS_TAG: ",".join(report.drifted_columns)[:200],
            CHAMPION_TAG: str(report.champion_version),
            JOB_TAG: target.job,
            JOB_REASON_TAG: target.reason[:500],
        },
    )


@sensor(
    jobs=[pipeline_job, retrain_job],
    minimum_interval_seconds=_interval_s(),
    description="Drift of the latest events/predictions against the champion's training data; on drift (and when "
    "cooldown, daily budget and breaker allow) snapshot the window in lakeFS and launch pipeline_job, or "
    "retrain_job when main already ingested the window",
)
def drift_sensor(
    context: SensorEvaluationContext, kafka: KafkaResource, lakefs: LakeFSResource, mlflow: MLflowResource
):
    from mlflow.exceptions import MlflowException

    try:
        spec = load_spec()
        consumers = lambda: kafka.consumer(**READER_SETTINGS)  # noqa: E731
        outcome = run_check(
            spec, lakefs.lake, consumers, mlflow.configure(), records_base=context.instance.storage_directory()
        )
        ingested = lambda: kafka_lag(lakefs.lake, consumers, spec).main_offsets  # noqa: E731
        return evaluate(context, spec, outcome, lakefs.lake, main_offsets=ingested)
    except (FlywheelError, KafkaError, OSError, MlflowException) as exc:  # a service down: say why, skip
        return SkipReason(f"cannot check drift: {exc}")


# ---- alerts ---------------------------------------------------------------------------------------------------


def record_alert(base: str | None, alert: dict[str, Any]) -> None:
    folder = reports_dir(base)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ALERTS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(alert, sort_keys=True) + "\n")


def failure_alert(instance: DagsterInstance, run: Any, message: str, spec: DatasetSpec) -> dict[str, Any]:
    """What a failed retraining run means: a gate rejection or a failure, and whether the breaker opened."""
    rejected = gate_results(instance).get(run.run_id) is False
    decision = decide_retrain(spec.drift, retrain_history(instance), time.time())
    return {
        "at": time.time(),
        "run_id": run.run_id,
        "job": run.job_name,
        "trigger": run.tags.get(TRIGGER_TAG) or ("sensor" if run.tags.get("dagster/sensor_name") else "manual"),
        "outcome": REJECTED if rejected else FAILED,
        "message": message[:2000],
        "breaker_open": decision.breaker_open,
        "consecutive_rejections": decision.consecutive_rejections,
    }


@run_failure_sensor(
    name="retrain_failure_sensor",
    monitored_jobs=[pipeline_job, retrain_job],
    default_status=DefaultSensorStatus.RUNNING,
    description="Records and alerts (error log, alerts.jsonl) every failed ingest+retrain run; raises the drift "
    "retraining breaker's alert when rejections reach drift.max_consecutive_rejections in a row",
)
def retrain_failure_sensor(context: RunFailureSensorContext) -> None:
    spec = load_spec()
    run = context.dagster_run
    message = context.failure_event.message or "no message"
    alert = failure_alert(context.instance, run, message, spec)
    record_alert(context.instance.storage_directory(), alert)
    what = "the evaluation gate rejected the model" if alert["outcome"] == REJECTED else "the run failed"
    line = f"retraining run {run.run_id} ({run.job_name}, trigger {alert['trigger']}): {what}: {message[:300]}"
    context.log.error(line)
    log.error(line)
    if alert["breaker_open"]:
        breaker = (
            f"ALERT: drift retraining stopped for {spec.name}: {alert['consecutive_rejections']} drift-triggered runs "
            "in a row did not pass the gate; inspect the gate reports and run pipeline_job by hand"
        )
        context.log.error(breaker)
        log.error(breaker)
