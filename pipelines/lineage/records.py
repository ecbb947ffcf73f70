"""The typed records that pass between stages: one per asset, small, JSON-able, and naming data only by
immutable `lakefs://<repository>/<commit>/<path>` URIs and models only by MLflow URIs, so any step can run
again in a fresh process or pod (resources/records_io.py stores them as JSON between Dagster steps).

    raw_events        -> RawBatch         new events on the run branch, with the offsets they reach
    features          -> FeatureBatch     the model table on the run branch
    validated_dataset -> DatasetVersion   the published dataset: a commit of main and its tag
    trained_model     -> TrainedModel     an MLflow run and logged model trained on a DatasetVersion
    optimized_model   -> OptimizedModel   the registered candidate picked by the optimization stage
    evaluated_model   -> Evaluation       challenger against champion on the same pinned commit
    deployment        -> Deployment       a rollout of a version: strategy, traffic, state
    drift_report      -> DriftReport      the latest window against the champion's reference: the decision
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pipelines.errors import FlywheelError
from pipelines.lineage.uris import lake_uri

SCHEMA_VERSION = 1


class RecordError(FlywheelError):
    """A stored record could not be read back (wrong type, newer schema, damaged JSON)."""


@dataclass
class Record:
    """Base of the stage records: `to_dict`/`from_dict` over the dataclass fields (JSON types only)."""

    KIND: ClassVar[str] = "record"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise RecordError(f"{cls.__name__} has no field(s) {sorted(unknown)}: was it written by newer code?")
        return cls(**data)


@dataclass
class RawBatch(Record):
    KIND: ClassVar[str] = "raw_batch"

    run_id: str
    spec: str
    topic: str
    base_commit: str  # the `main` commit whose offsets this run started from
    branch: str | None  # None when nothing new was found
    commit: str | None
    start_offsets: dict[str, int]
    next_offsets: dict[str, int]
    offset_ranges: dict[str, list[int]]
    events: int
    valid: int
    quarantined: int
    reasons: dict[str, int]
    raw_paths: list[str]
    quarantine_paths: list[str]
    stopped_by: str
    seconds: dict[str, float]
    topic_id: str | None = None  # KIP-516 id of the topic read (None: the broker gives none)
    topic_reset: dict[str, Any] | None = None  # set when the topic was recreated since main's offsets
    spec_config: dict[str, Any] = field(default_factory=dict, repr=False)  # the exact spec, for later stages

    @property
    def nothing_new(self) -> bool:
        return self.events == 0

    def dataset_spec(self) -> Any:
        from pipelines.spec.model import DatasetSpec

        return DatasetSpec.model_validate(self.spec_config)

    def summary(self) -> dict[str, Any]:
        """The record without the spec (for logs and the CLI's JSON output)."""
        data = self.to_dict()
        data.pop("spec_config")
        return data


@dataclass
class FeatureBatch(Record):
    KIND: ClassVar[str] = "feature_batch"

    branch: str
    commit: str
    rows: int
    raw_rows: int
    duplicates_dropped: int
    splits: dict[str, int]
    entities: int
    paths: list[str]
    vocabularies: dict[str, list[str]]
    seconds: float
    seconds_detail: dict[str, float] = field(default_factory=dict)
    # Incremental ingestion: `rows`, `splits`, `entities` and `paths` are this batch's; the table holds more.
    batch: int = 0  # the batch's number in the catalog (pipelines.features.batches)
    table_rows: int = 0  # rows of the whole model table with this batch
    duplicates_across_batches: int = 0  # of `duplicates_dropped`: ids an earlier batch already published
    history_rows: int = 0  # rows of earlier batches read for the aggregates


@dataclass
class DatasetVersion(Record):
    """A validated dataset merged into main: what training pins and evaluation re-reads."""

    KIND: ClassVar[str] = "dataset_version"

    repository: str
    commit: str  # the commit `main` pointed at after the merge
    tag: str
    version: int
    spec: str
    features_path: str  # features/<spec>/
    metadata: dict[str, str] = field(default_factory=dict)  # the commit's lineage metadata

    @property
    def uri(self) -> str:
        return lake_uri(self.repository, self.commit)

    @property
    def features_uri(self) -> str:
        return lake_uri(self.repository, self.commit, self.features_path)


@dataclass
class TrainedModel(Record):
    KIND: ClassVar[str] = "trained_model"

    model_name: str  # the name the optimization stage registers the chosen candidate under
    model_version: str  # "": training logs a model, it does not register one
    mlflow_run_id: str
    lakefs_repository: str
    lakefs_commit: str
    spec_hash: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    logged_model_uri: str = ""  # the MLflow 3 logged model (models:/m-<id>)

    @property
    def model_uri(self) -> str:
        """The registered version if any, else the logged model, else the run's `model` artifact."""
        if self.model_version:
            return f"models:/{self.model_name}/{self.model_version}"
        return self.logged_model_uri or f"runs:/{self.mlflow_run_id}/model"

    @property
    def dataset_uri(self) -> str:
        return lake_uri(self.lakefs_repository, self.lakefs_commit)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainedModel:
        return cls(
            model_name=str(data["model_name"]),
            model_version=str(data.get("model_version") or ""),
            mlflow_run_id=str(data.get("mlflow_run_id") or ""),
            lakefs_repository=str(data["lakefs_repository"]),
            lakefs_commit=str(data["lakefs_commit"]),
            spec_hash=str(data.get("spec_hash", "")),
            metrics={k: float(v) for k, v in dict(data.get("metrics", {})).items()},
            logged_model_uri=str(data.get("logged_model_uri") or ""),
        )


@dataclass
class OptimizedModel(Record):
    """The candidate the optimization stage registered (fp32, int8, pruned, distilled, ONNX ...)."""

    KIND: ClassVar[str] = "optimized_model"

    model_name: str
    model_version: str
    form: str  # fp32, int8, pruned, distilled, onnx-fp32, onnx-int8, onnx-distilled
    training_run_id: str
    lakefs_repository: str
    lakefs_commit: str
    metrics: dict[str, float] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}"


@dataclass
class Evaluation(Record):
    """Challenger against champion, both scored on the same pinned commit."""

    KIND: ClassVar[str] = "evaluation"

    model_name: str
    challenger_version: str
    champion_version: str | None  # None: no champion yet
    lakefs_repository: str
    lakefs_commit: str
    passed: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # {"challenger": {...}, "champion": {...}}


@dataclass
class Deployment(Record):
    """A rollout of a model version in serving."""

    KIND: ClassVar[str] = "deployment"

    model_name: str
    version: str
    strategy: str  # canary | blue-green | ab | shadow
    state: str  # started | planned (no serving answered) | promoted | rolled_back
    traffic: dict[str, float] = field(default_factory=dict)  # {version: share}
    previous_version: str | None = None
    steps: list[float] = field(default_factory=list)  # the challenger's share (%) per step
    serving_url: str | None = None  # the serving process that answered, None when none did
    message: str = ""  # what happened, or how to start serving
    started_at: float = 0.0  # epoch seconds


@dataclass
class DriftReport(Record):
    """One drift check (pipelines.monitoring): the current window against the champion's reference, per column
    statistics, the dataset-level decision and where the HTML report and the evidence snapshot are."""

    KIND: ClassVar[str] = "drift_report"

    spec: str
    decision: str  # drift | no drift | insufficient data | no champion
    drifted: bool
    reasons: list[str] = field(default_factory=list)
    drifted_columns: list[str] = field(default_factory=list)
    model_name: str = ""
    champion_version: str | None = None
    reference_uri: str = ""  # lakefs://<repository>/<commit>/ the champion was trained on (its train split)
    reference_rows: int = 0
    window: dict[str, Any] = field(default_factory=dict)  # topic, events, valid, offsets, first/last ms
    columns: list[dict[str, Any]] = field(default_factory=list)  # per column, most severe first
    label: dict[str, Any] = field(default_factory=dict)  # label rate drift, realized AUC
    quality: dict[str, Any] = field(default_factory=dict)  # quarantine, out of range, null increases, alerts
    predictions: int = 0  # predictions in the window (the score column exists when > 0)
    correction: str = ""
    alpha: float = 0.0
    checked_at: float = 0.0  # epoch seconds
    seconds: float = 0.0
    report_path: str = ""  # the HTML report
    evidence_commit: str | None = None  # the lakeFS commit holding the window (set when drift triggered a run)

    @property
    def scores(self) -> dict[str, dict[str, float]]:
        """{column: {statistic: value}} for the metrics exporter (flywheel_drift_score{feature,statistic})."""
        out: dict[str, dict[str, float]] = {}
        for col in self.columns:
            values = {"psi": col.get("psi"), "js": col.get("js"), "ks": col.get("ks")}
            values["chi2" if col.get("test") == "chi2" else "ks_p"] = (
                col.get("statistic") if col.get("test") == "chi2" else col.get("p_value")
            )
            out[str(col["name"])] = {k: float(v) for k, v in values.items() if v is not None}
        return out


RECORD_TYPES: dict[str, type[Record]] = {
    cls.KIND: cls
    for cls in (
        RawBatch,
        FeatureBatch,
        DatasetVersion,
        TrainedModel,
        OptimizedModel,
        Evaluation,
        Deployment,
        DriftReport,
    )
}


def record_to_json(record: Record) -> str:
    """A self-describing JSON document: {"kind", "schema", "record"}."""
    if not isinstance(record, Record):
        raise RecordError(
            f"only stage records (pipelines.lineage.records) are stored between steps, got {type(record).__name__}"
        )
    return json.dumps({"kind": record.KIND, "schema": SCHEMA_VERSION, "record": record.to_dict()}, sort_keys=True)


def record_from_json(text: str | bytes, where: str = "the stored record") -> Record:
    try:
        doc = json.loads(text)
        kind, schema, data = doc["kind"], int(doc["schema"]), doc["record"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"{where} is not a Flywheel record ({exc}); re-materialize the upstream asset") from None
    if kind not in RECORD_TYPES:
        raise RecordError(f"{where} holds an unknown record kind {kind!r}; known: {sorted(RECORD_TYPES)}")
    if schema > SCHEMA_VERSION:
        raise RecordError(f"{where} was written with record schema {schema}, newer than this code's {SCHEMA_VERSION}")
    return RECORD_TYPES[kind].from_dict(data)
