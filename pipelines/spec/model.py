"""The dataset spec: one typed file that describes a tabular binary-classification stream end to end.

A spec names the Kafka topic, the event id, entity key, timestamp and label fields, the typed features
with their constraints, the per-entity history aggregates Spark computes, and the model, gate and drift
settings. Any stream that fits this shape runs through the whole loop by writing a spec, with no code change.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_identifier(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid column name (letters, digits and _; not starting with a digit)")
    return value


class NumericFeature(_Strict):
    name: str
    type: Literal["numeric"] = "numeric"
    integer: bool = False
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    description: str = ""

    _check_name = field_validator("name")(_check_identifier)

    @model_validator(mode="after")
    def _range(self) -> NumericFeature:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class CategoricalFeature(_Strict):
    name: str
    type: Literal["categorical"] = "categorical"
    values: list[str] = Field(min_length=1)
    nullable: bool = False
    description: str = ""

    _check_name = field_validator("name")(_check_identifier)

    @field_validator("values")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ValueError(f"allowed values repeat: {dupes}")
        return values


class BooleanFeature(_Strict):
    name: str
    type: Literal["boolean"] = "boolean"
    nullable: bool = False
    description: str = ""

    _check_name = field_validator("name")(_check_identifier)


Feature = Annotated[NumericFeature | CategoricalFeature | BooleanFeature, Field(discriminator="type")]


class Aggregate(_Strict):
    """A per-entity feature over the entity's recent history, computed by Spark, strictly before the event.

    count: events in the window; sum/mean/max: of `column` over the window; seconds_since_last: time since
    the entity's previous event within the window. The semantics: `pipelines.features.aggregates`.
    """

    name: str
    function: Literal["count", "sum", "mean", "max", "seconds_since_last"]
    column: str | None = None
    window_hours: float = Field(default=24.0, gt=0)

    _check_name = field_validator("name")(_check_identifier)

    @model_validator(mode="after")
    def _column_needed(self) -> Aggregate:
        if self.function in ("sum", "mean", "max") and not self.column:
            raise ValueError(f"function {self.function!r} needs a numeric 'column'")
        return self


class TopicSpec(_Strict):
    name: str = Field(min_length=1)
    partitions: int = Field(default=3, ge=1, le=1024)


class ModelSpec(_Strict):
    hidden_dims: list[int] = Field(default_factory=lambda: [64, 32], min_length=1)
    embedding_dim: int = Field(default=8, ge=1, le=1024)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=1024, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-5, ge=0)
    early_stopping_patience: int = Field(default=3, ge=1)
    seed: int = 17

    @field_validator("hidden_dims")
    @classmethod
    def _positive(cls, dims: list[int]) -> list[int]:
        if any(d < 1 for d in dims):
            raise ValueError("every hidden layer width must be at least 1")
        return dims


class SplitSpec(_Strict):
    """Deterministic split by hashing the entity key, so no entity appears in two splits."""

    train: float = Field(default=0.7, gt=0, lt=1)
    validation: float = Field(default=0.15, gt=0, lt=1)
    test: float = Field(default=0.15, gt=0, lt=1)
    salt: str = "flywheel"

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitSpec:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, got {total:g}")
        return self


class GateSpec(_Strict):
    """Thresholds of the blocking gates: data validation and model evaluation."""

    min_rows: int = Field(default=1000, ge=1)
    label_rate_min: float = Field(default=0.001, ge=0, le=1)
    label_rate_max: float = Field(default=0.5, ge=0, le=1)
    max_quarantine_fraction: float = Field(default=0.05, ge=0, le=1)
    min_auc: float = Field(default=0.75, ge=0, le=1)
    # Largest AUC drop against the champion on the same test rows (the paired bootstrap interval is reported).
    max_auc_regression: float = Field(default=0.005, ge=0, le=1)
    max_ece: float = Field(default=0.1, ge=0, le=1, description="largest expected calibration error allowed")
    max_latency_ms: float | None = Field(
        default=None, gt=0, description="p99 latency budget at batch 1, one thread; None = no budget"
    )
    slice_feature: str | None = Field(default=None, description="a categorical feature whose slices are judged")
    min_slice_size: int = Field(default=200, ge=1, description="slices with fewer test rows are reported, not judged")
    min_slice_auc: float = Field(default=0.6, ge=0, le=1)
    bootstrap_samples: int = Field(default=500, ge=50, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)

    @model_validator(mode="after")
    def _label_bounds(self) -> GateSpec:
        if self.label_rate_min > self.label_rate_max:
            raise ValueError("label_rate_min is greater than label_rate_max")
        return self


class OptimizeSpec(_Strict):
    """Model optimization: which candidates to build and how much accuracy a faster form may cost."""

    max_auc_drop: float = Field(default=0.005, ge=0, le=1, description="test AUC a candidate may lose vs fp32")
    candidates: list[Literal["fp32", "int8", "pruned", "distilled", "onnx-fp32", "onnx-int8", "onnx-distilled"]] = (
        Field(
            default_factory=lambda: ["fp32", "int8", "pruned", "distilled", "onnx-fp32", "onnx-int8", "onnx-distilled"],
            min_length=1,
        )
    )
    prune_amount: float = Field(default=0.5, gt=0, lt=1, description="share of weights pruned by magnitude")
    finetune_epochs: int = Field(default=2, ge=0, description="epochs of fine-tuning after pruning")
    student_width: float = Field(default=0.25, gt=0, le=1, description="student hidden widths vs the teacher's")
    student_epochs: int = Field(default=5, ge=1)
    latency_repeats: int = Field(default=50, ge=5, description="timed repeats per latency measurement")


class RolloutSpec(_Strict):
    """How serving rolls out a challenger and how the canary analysis judges it (pipelines.serving.rollout)."""

    strategy: Literal["canary", "blue-green", "ab", "shadow"] = "canary"
    # canary: the challenger's share of traffic (%) per step, the last one before promotion; ab: the first
    # step is the fixed challenger share; blue-green switches 100% at once; shadow mirrors and returns nothing.
    steps: list[float] = Field(default_factory=lambda: [10.0, 50.0, 100.0], min_length=1)
    analysis_window_s: float = Field(default=120.0, gt=0, description="each step is judged over this window")
    min_requests: int = Field(default=50, ge=1, description="requests per arm a window needs before a verdict")
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1, description="challenger - champion")
    max_p99_ratio: float = Field(default=2.0, gt=0, description="challenger p99 / champion p99 (or the budget)")
    p99_slack_ms: float = Field(default=10.0, ge=0, description="a p99 within this of the champion's always passes")
    max_score_psi: float = Field(default=0.25, gt=0, description="score distribution shift (PSI) vs the champion")
    max_auc_drop: float = Field(default=0.02, ge=0, le=1, description="label AUC drop where labels arrived")
    min_labels: int = Field(default=200, ge=1, description="labelled predictions per arm before AUC is judged")

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[float]) -> list[float]:
        if any(not 0 < s <= 100 for s in steps):
            raise ValueError("every rollout step is a share of traffic in (0, 100]")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("rollout steps must increase")
        return steps


class TrainingSpec(_Strict):
    """What training reads of the model table at its pinned commit."""

    window_days: float | None = Field(
        default=None, gt=0, description="train on the last window_days of event time only; None = every batch"
    )


class DriftSpec(_Strict):
    """Drift monitoring (pipelines.monitoring) and the guarded retraining it triggers (sensors/drift.py).

    A column drifts when its test (KS for numerics, chi-squared for categoricals and booleans) stays
    significant after the multiple-testing `correction` at level `alpha` over every column judged, AND one
    effect size crosses its threshold (PSI, Jensen-Shannon distance, KS statistic, unseen share): with big windows every
    tiny shift is significant, and with small ones a large PSI can be noise; both are needed.
    """

    psi_threshold: float = Field(default=0.2, gt=0, description="population stability index of a drifted column")
    js_threshold: float = Field(default=0.2, gt=0, le=1, description="Jensen-Shannon distance (base 2)")
    ks_threshold: float = Field(default=0.15, gt=0, le=1, description="Kolmogorov-Smirnov statistic (numerics)")
    unseen_threshold: float = Field(default=0.01, gt=0, le=1, description="share of values outside the spec's list")
    alpha: float = Field(default=0.01, gt=0, lt=1, description="significance level after the correction")
    correction: Literal["benjamini-hochberg", "bonferroni"] = "benjamini-hochberg"
    min_samples: int = Field(default=1000, ge=1, description="no alarm on a window (or column) with fewer values")
    min_drifted_columns: int = Field(default=1, ge=1, description="drifted columns that make the dataset drift")
    bins: int = Field(default=10, ge=2, le=100, description="reference-quantile bins of PSI/JS for numerics")
    ks_max_samples: int = Field(default=50_000, ge=1000, description="values per side the KS test sorts")
    window_events: int = Field(default=20_000, ge=1, description="the current window: the latest N events")
    window_minutes: float | None = Field(default=None, gt=0, description="or: events of the last M minutes")
    max_null_rate_increase: float = Field(default=0.05, ge=0, le=1, description="null rate above the reference's")
    max_out_of_range_rate: float = Field(default=0.01, ge=0, le=1, description="values outside the spec's min/max")
    label_rate_ratio: float = Field(default=1.5, gt=1, description="label rate change (either way) that drifts")
    cooldown_minutes: float = Field(default=60, ge=0, description="after a drift-triggered run, wait this long")
    daily_budget: int = Field(default=3, ge=1, description="drift-triggered runs per 24 hours")
    max_consecutive_rejections: int = Field(default=3, ge=1, description="the breaker: this many in a row alert")
    interval_seconds: int = Field(default=60, ge=30, description="how often the drift sensor evaluates")


class DatasetSpec(_Strict):
    name: str
    description: str = ""
    topic: TopicSpec
    event_id: str
    # None: every event is its own case (a loan application, a claim): the split hashes the event id and
    # there is no per-entity history, so no aggregates.
    entity_key: str | None = None
    timestamp: str
    label: str
    features: list[Feature] = Field(min_length=1)
    aggregates: list[Aggregate] = Field(default_factory=list)
    model: ModelSpec = Field(default_factory=ModelSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    gates: GateSpec = Field(default_factory=GateSpec)
    optimize: OptimizeSpec = Field(default_factory=OptimizeSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)

    _check_name = field_validator("name", "event_id", "timestamp", "label")(_check_identifier)

    @field_validator("entity_key")
    @classmethod
    def _check_entity_key(cls, value: str | None) -> str | None:
        return None if value is None else _check_identifier(value)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        reserved = self.reserved_fields
        if len(set(reserved)) != len(reserved):
            raise ValueError("event_id, entity_key, timestamp and label must be four different fields")
        if self.entity_key is None and self.aggregates:
            raise ValueError(
                f"aggregates {[a.name for a in self.aggregates]} need an entity_key: they are computed over an "
                "entity's history; name the entity field (entity_key) or remove the aggregates"
            )
        names = [f.name for f in self.features] + [a.name for a in self.aggregates]
        clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(reserved)))
        if clash:
            raise ValueError(f"column names used twice: {clash}")
        numeric = {f.name for f in self.features if f.type == "numeric"}
        for agg in self.aggregates:
            if agg.column is not None and agg.column not in numeric:
                raise ValueError(f"aggregate {agg.name!r}: column {agg.column!r} is not a numeric feature")
        categorical = {f.name for f in self.features if f.type == "categorical"}
        if self.gates.slice_feature is not None and self.gates.slice_feature not in categorical:
            raise ValueError(f"gates.slice_feature {self.gates.slice_feature!r} is not a categorical feature")
        return self

    # Convenience views used across the loop.
    def feature(self, name: str) -> NumericFeature | CategoricalFeature | BooleanFeature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def numeric_features(self) -> list[NumericFeature]:
        return [f for f in self.features if isinstance(f, NumericFeature)]

    @property
    def categorical_features(self) -> list[CategoricalFeature]:
        return [f for f in self.features if isinstance(f, CategoricalFeature)]

    @property
    def boolean_features(self) -> list[BooleanFeature]:
        return [f for f in self.features if isinstance(f, BooleanFeature)]

    @property
    def reserved_fields(self) -> list[str]:
        """event_id, entity_key (when the spec has one), timestamp and label."""
        return [self.event_id, *([self.entity_key] if self.entity_key else []), self.timestamp, self.label]

    @property
    def split_key(self) -> str:
        """The field the split hashes: the entity key, else the event id (each event its own case)."""
        return self.entity_key or self.event_id

    @property
    def event_fields(self) -> list[str]:
        """Every field of a raw event, in a stable order."""
        return [*self.reserved_fields, *(f.name for f in self.features)]

    @property
    def model_numeric_inputs(self) -> list[str]:
        """Numeric model inputs: numeric features, booleans as 0/1, then history aggregates."""
        return [
            *(f.name for f in self.numeric_features),
            *(f.name for f in self.boolean_features),
            *(a.name for a in self.aggregates),
        ]

    @property
    def model_categorical_inputs(self) -> list[str]:
        return [f.name for f in self.categorical_features]
