"""audit_report (group "audit", downstream of deployment): the lineage report (Markdown, HTML, JSON) of every
promoted version of the spec's model, read from lakeFS, MLflow, the Deployment records and (when it answers)
the Dagster webserver; the files are linked from the materialization. Logic: pipelines/audit/report.py.

No `from __future__ import annotations`: Dagster reads the asset's annotations at definition time.
"""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from pipelines.audit import report
from pipelines.audit.trace import Sources
from pipelines.config import setting
from pipelines.lineage import keys
from pipelines.spec import load_spec
from pipelines.training.tracking import model_version_url
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource
from resources.serving import ServingResource


class AuditConfig(Config):
    model_name: str | None = Field(default=None, description="registered model (default: the spec's name)")
    dagster_url: str | None = Field(
        default=None, description="Dagster webserver for the runs' status and links (default: FLYWHEEL_DAGSTER_URL)"
    )


@asset(
    group_name="audit",
    deps=["deployment"],
    kinds={"mlflow", "lakefs"},
    description="Where each promoted model came from: for every version that is or was the champion, the Kafka "
    "offsets of its data, the lakeFS commit and validation, the training and optimization runs, the gate, the "
    "rollout and the Dagster runs, as Markdown, HTML and JSON files linked here.",
)
def audit_report(
    context: AssetExecutionContext,
    config: AuditConfig,
    lakefs: LakeFSResource,
    mlflow: MLflowResource,
    serving: ServingResource,
) -> MaterializeResult:
    name = config.model_name or load_spec().name
    base = context.instance.storage_directory()
    sources = Sources(
        lake=lakefs.lake,
        mlflow=mlflow.client(),
        dagster_url=config.dagster_url or setting("FLYWHEEL_DAGSTER_URL"),
        serving_url=serving.url or None,
        records_dir=report.records_root(base),
    )
    written = report.write_reports(sources, name, report.reports_dir(base))
    context.log.info(f"audit_report: {len(written)} promoted version(s) of {name}")
    meta: dict = {
        keys.MODEL_NAME: MetadataValue.text(name),
        "promoted_versions": MetadataValue.int(len(written)),
        "reports": MetadataValue.md(
            "\n".join(
                f"- v{w.version} ({', '.join(w.aliases) or 'no alias'}; {w.decision}): "
                f"[md]({w.md.resolve().as_uri()}) [html]({w.html.resolve().as_uri()}) "
                f"[json]({w.json.resolve().as_uri()})"
                for w in written
            )
            or "no promoted version yet"
        ),
    }
    if written:
        newest = written[-1]
        meta["newest_report"] = MetadataValue.url(newest.html.resolve().as_uri())
        meta["newest_report_path"] = MetadataValue.path(str(newest.md))
        meta["model_version"] = MetadataValue.url(model_version_url(mlflow.display_uri(), name, newest.version))
    return MaterializeResult(metadata=meta)
