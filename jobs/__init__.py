"""Asset jobs and schedules. Jobs select assets by group, so a stage joins a job by its group name.

Groups: ingestion (raw_events, features, validated_dataset), training, optimization, evaluation, deployment.
"""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job, in_process_executor

INGESTION_GROUPS = ("ingestion",)
RETRAIN_GROUPS = ("training", "optimization", "evaluation", "deployment")

ingestion_selection = AssetSelection.groups(*INGESTION_GROUPS)
retrain_selection = AssetSelection.groups(*RETRAIN_GROUPS)

# Ingestion's steps form a chain: in one process no step pays a process start and imports of its own
# (Spark itself is the stack's long-lived Connect server).
ingest_job = define_asset_job(
    "ingest_job",
    selection=ingestion_selection,
    executor_def=in_process_executor,
    description=("Kafka -> raw_events -> features (Spark) -> validated_dataset (GX gate) -> merged into lakeFS main."),
)
# Runs that train carry this tag; the QueuedRunCoordinator admits one such run at a time (deploy/dagster/
# dagster.yaml, deploy/helm/dagster-values.yaml), so two training runs never compete for the same GPUs.
TRAINING_RUN_TAG = {"flywheel/stage": "training"}

retrain_job = define_asset_job(
    "retrain_job",
    selection=retrain_selection,
    tags=TRAINING_RUN_TAG,
    description=(
        "Train on the latest validated dataset, optimize and register the fastest faithful form, and judge it "
        "against the champion (blocking gate; a passing version becomes the `challenger`)."
    ),
)
pipeline_job = define_asset_job(
    "pipeline_job",
    selection=ingestion_selection | retrain_selection,
    tags=TRAINING_RUN_TAG,
    description="The whole loop: ingest_job then retrain_job in one run.",
)

# Promotion happens after retrain_job (the canary analysis sensor decides), so the audit runs on its own.
audit_job = define_asset_job(
    "audit_job",
    selection=AssetSelection.groups("audit"),
    description="Write the lineage report (Markdown, HTML, JSON) of every promoted model version.",
)

JOBS = [ingest_job, retrain_job, pipeline_job, audit_job]
ingest_hourly = ScheduleDefinition(
    name="ingest_hourly",
    job=ingest_job,
    cron_schedule="0 * * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Ingest what arrived in the last hour (a run that finds nothing new commits nothing).",
)
retrain_weekly = ScheduleDefinition(
    name="retrain_weekly",
    job=pipeline_job,
    cron_schedule="0 3 * * 1",
    default_status=DefaultScheduleStatus.STOPPED,
    tags={"flywheel/trigger": "schedule"},
    description="Ingest and retrain every Monday at 03:00 whatever the drift sensor says (the gate still decides).",
)
SCHEDULES: list = [ingest_hourly, retrain_weekly]
