"""drift_report (group "monitoring"): the latest window of the events (and predictions) topic against the
champion's training data; the HTML report is linked from the materialization. The drift sensor runs the same
check on its interval and acts on it; this asset is the check on demand, with the report in the catalog.

No `from __future__ import annotations`: Dagster reads the asset's annotations at definition time.
"""

from pathlib import Path

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from pipelines.ingest.parallel import READER_SETTINGS
from pipelines.lineage import keys
from pipelines.lineage.records import DriftReport
from pipelines.monitoring.stage import run_check, severity_table
from pipelines.spec import load_spec
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource


def report_metadata(report: DriftReport) -> dict:
    """What the UI shows for a drift check: the decision and why, the summary table and the report's link."""
    meta = {
        keys.DRIFT_DECISION: MetadataValue.text(report.decision),
        keys.DRIFT_COLUMNS: MetadataValue.json(report.drifted_columns),
        "reasons": MetadataValue.md("\n".join(f"- {r}" for r in report.reasons) or "none"),
        keys.MODEL_NAME: MetadataValue.text(report.model_name),
        "champion_version": MetadataValue.text(report.champion_version or "none"),
        "reference": MetadataValue.text(report.reference_uri or "none"),
        "window_events": MetadataValue.int(int(report.window.get("events", 0))),
        "predictions": MetadataValue.int(report.predictions),
        "seconds": MetadataValue.float(round(report.seconds, 3)),
    }
    if report.columns:
        meta["summary"] = MetadataValue.md(severity_table(report))
    if report.report_path:
        meta[keys.DRIFT_REPORT] = MetadataValue.path(report.report_path)
        meta["report"] = MetadataValue.url(Path(report.report_path).resolve().as_uri())
    if report.quality.get("alerts"):
        meta["quality_alerts"] = MetadataValue.md("\n".join(f"- {a}" for a in report.quality["alerts"]))
    return meta


@asset(
    group_name="monitoring",
    kinds={"kafka", "lakefs"},
    description="The latest window of the events topic (and of the predictions topic) against the champion's "
    "training split: PSI, KS, chi-squared and Jensen-Shannon per feature, score and label drift, data quality, a "
    "corrected dataset-level decision, and an HTML report with reference-vs-current plots.",
)
def drift_report(
    context: AssetExecutionContext, kafka: KafkaResource, lakefs: LakeFSResource, mlflow: MLflowResource
) -> Output[DriftReport]:
    spec = load_spec()
    outcome = run_check(
        spec,
        lakefs.lake,
        lambda: kafka.consumer(**READER_SETTINGS),
        mlflow.configure(),
        records_base=context.instance.storage_directory(),
    )
    report = outcome.report
    context.log.info(f"drift check of {spec.name}: {report.decision}; " + ("; ".join(report.reasons) or "no reasons"))
    return Output(report, metadata=report_metadata(report))
