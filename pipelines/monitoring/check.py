"""The drift check: every column of the current window against its reference profile, and one dataset-level
decision.

The decision (state it in reports, it is what the sensor acts on):
1. A window with fewer than `drift.min_samples` valid events decides nothing ("insufficient data"); a column
   with fewer non-null values than that is shown but not judged.
2. Each judged column gets a test: Kolmogorov-Smirnov for numerics (and the prediction score), chi-squared for
   categoricals and booleans (an `(unseen)` bucket counts values outside the spec's list), and the label rate a
   2 x 2 chi-squared test. All p-values of one check form one family, adjusted with `drift.correction`
   (Benjamini-Hochberg by default, or Bonferroni) and compared with `drift.alpha`: testing 20 columns at 1%
   each would otherwise raise a false alarm in ~18% of windows where nothing moved.
3. A column drifts only when its adjusted p-value is at most alpha AND an effect size crosses its threshold
   (PSI >= psi_threshold, Jensen-Shannon distance >= js_threshold, for numerics KS D >= ks_threshold, for
   categoricals a share of values outside the spec's list >= unseen_threshold, which the model cannot embed):
   in a window of 100k events a shift nobody cares about is significant; the effect size says it matters.
   The label rate drifts when significant and it moved by `label_rate_ratio` either way.
4. The dataset drifts when at least `drift.min_drifted_columns` columns drift (the score counts as a column),
   or the label rate drifts, or the realized AUC of labelled predictions fell below `gates.min_auc`.
Data quality (null rate increases, values out of the spec's range, quarantined events) is reported and
alerted, not a reason to retrain: a broken producer is fixed at the source, not by a new model.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.monitoring import stats
from pipelines.monitoring.profile import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    as_table,
    category_counts,
    numeric_values,
    sample_for_ks,
)
from pipelines.spec.model import BooleanFeature, DatasetSpec, DriftSpec, NumericFeature

LABEL = "label rate"


@dataclass
class ColumnDrift:
    name: str
    kind: str  # numeric | categorical | boolean | score
    test: str  # ks | chi2
    n_ref: int
    n_cur: int
    psi: float
    js: float
    p_value: float
    statistic: float  # KS D or the chi-squared statistic
    ks: float | None = None  # numerics only: the KS statistic (an effect size too)
    p_adjusted: float = 1.0
    judged: bool = True
    drifted: bool = False
    severity: float = 0.0  # the largest effect size / its threshold (>= 1: an effect beyond a threshold)
    crossed: list[str] = field(default_factory=list)  # the effect sizes that crossed their thresholds
    null_rate_ref: float = 0.0
    null_rate_cur: float = 0.0
    unseen: int = 0  # current values outside the spec's list (categoricals)
    bins: list[str] = field(default_factory=list)  # labels of the plotted bins
    ref_share: list[float] = field(default_factory=list)
    cur_share: list[float] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Quality:
    events: int = 0  # events read in the window (valid and quarantined)
    quarantined: int = 0
    out_of_range: dict[str, int] = field(default_factory=dict)  # per numeric feature: values outside min/max
    null_increase: dict[str, float] = field(default_factory=dict)  # features whose null rate rose too much
    alerts: list[str] = field(default_factory=list)

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.events if self.events else 0.0


@dataclass
class LabelDrift:
    ref_rate: float | None = None
    cur_rate: float | None = None
    n_cur: int = 0
    p_value: float = 1.0
    p_adjusted: float = 1.0
    drifted: bool = False
    labelled_predictions: int = 0
    realized_auc: float | None = None
    auc_below_gate: bool = False


@dataclass
class DriftResult:
    decision: str  # drift | no drift | insufficient data
    drifted: bool
    reasons: list[str]
    columns: list[ColumnDrift]  # sorted: drifted first, then by severity
    label: LabelDrift
    quality: Quality
    rows: int
    correction: str
    alpha: float

    @property
    def drifted_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.drifted]


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(x) for x in (counts / total if total else np.zeros(len(counts)))]


def _edge_labels(edges: np.ndarray) -> list[str]:
    e = [f"{x:.4g}" for x in edges]
    if not e:
        return ["all"]
    return [f"< {e[0]}", *(f"[{a}, {b})" for a, b in itertools.pairwise(e)), f">= {e[-1]}"]


def numeric_drift(ref: NumericProfile, values: np.ndarray, kind: str, cfg: DriftSpec) -> ColumnDrift:
    finite = values[~np.isnan(values)]
    cur_counts = ref.bin_counts(values)
    d, p = stats.ks_from_sorted(ref.sorted_sample, sample_for_ks(finite, cfg.ks_max_samples))
    return ColumnDrift(
        name=ref.name,
        kind=kind,
        test="ks",
        n_ref=int(ref.counts.sum()),
        n_cur=len(finite),
        psi=stats.psi(ref.counts, cur_counts),
        js=stats.js_distance(ref.counts, cur_counts),
        p_value=p,
        statistic=d,
        ks=d,
        null_rate_ref=ref.null_rate,
        null_rate_cur=(len(values) - len(finite)) / len(values) if len(values) else 0.0,
        bins=_edge_labels(ref.edges),
        ref_share=_shares(ref.counts),
        cur_share=_shares(cur_counts),
    )


def categorical_drift(ref: CategoricalProfile, cur_counts: np.ndarray, nulls: int, kind: str) -> ColumnDrift:
    stat, p, _ = stats.chi2_homogeneity(ref.counts, cur_counts)
    n_cur = int(cur_counts.sum())
    return ColumnDrift(
        name=ref.name,
        kind=kind,
        test="chi2",
        n_ref=int(ref.counts.sum()),
        n_cur=n_cur,
        psi=stats.psi(ref.counts, cur_counts),
        js=stats.js_distance(ref.counts, cur_counts),
        p_value=p,
        statistic=stat,
        null_rate_ref=ref.null_rate,
        null_rate_cur=nulls / (n_cur + nulls) if n_cur + nulls else 0.0,
        unseen=int(cur_counts[-1]),
        bins=ref.labels,
        ref_share=_shares(ref.counts),
        cur_share=_shares(cur_counts),
    )


def _effects(col: ColumnDrift, cfg: DriftSpec) -> tuple[float, list[str]]:
    ratios = {"psi": col.psi / cfg.psi_threshold, "js": col.js / cfg.js_threshold}
    if col.ks is not None:
        ratios["ks"] = col.ks / cfg.ks_threshold
    if col.test == "chi2" and col.n_cur:
        ratios["unseen"] = col.unseen / col.n_cur / cfg.unseen_threshold
    return max(ratios.values()), [name for name, r in ratios.items() if r >= 1.0]


def check_drift(
    reference: Profile,
    current: Any,
    spec: DatasetSpec,
    *,
    scores: np.ndarray | None = None,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
    quality: Quality | None = None,
) -> DriftResult:
    """Judge `current` (an Arrow table or DataFrame of valid events, one column per spec feature) against
    `reference`. `scores`: recent prediction scores; `labelled`: (labels, scores) of predictions whose event
    carries a label; `quality`: what reading the window counted (events, quarantined, out of range)."""
    cfg = spec.drift
    table: pa.Table = as_table(current)
    quality = quality or Quality(events=table.num_rows)
    columns: list[ColumnDrift] = []
    for f in spec.features:
        if isinstance(f, NumericFeature):
            col = numeric_drift(reference.numeric[f.name], numeric_values(table.column(f.name)), "numeric", cfg)
        else:
            counts, nulls = category_counts(table, f)
            kind = "boolean" if isinstance(f, BooleanFeature) else "categorical"
            col = categorical_drift(reference.categorical[f.name], counts, nulls, kind)
        columns.append(col)
    if scores is not None and reference.score is not None:
        columns.append(numeric_drift(reference.score, np.asarray(scores, np.float64), "score", cfg))

    label = LabelDrift(ref_rate=reference.label_rate)
    if spec.label in table.column_names:
        y = numeric_values(table.column(spec.label))
        y = y[~np.isnan(y)]
        label.n_cur = len(y)
        label.cur_rate = float((y > 0).mean()) if len(y) else None
        if len(y) and reference.label_rows:
            _, label.p_value = stats.two_proportions(
                reference.label_positives, reference.label_rows, int((y > 0).sum()), len(y)
            )
    if labelled is not None:
        y_true, y_score = labelled
        label.labelled_predictions = len(y_true)
        if len(y_true) >= cfg.min_samples:
            label.realized_auc = stats.auc(y_true, y_score)
            label.auc_below_gate = label.realized_auc is not None and label.realized_auc < spec.gates.min_auc

    _quality_alerts(quality, columns, spec)
    rows = table.num_rows
    reasons: list[str] = []
    if rows < cfg.min_samples:
        for col in columns:
            col.judged, col.note = False, "window too small"
        return DriftResult(
            "insufficient data",
            False,
            [f"the window holds {rows} valid events, fewer than drift.min_samples={cfg.min_samples}: no decision"],
            columns,
            label,
            quality,
            rows,
            cfg.correction,
            cfg.alpha,
        )

    # One family of tests: every judged column and the label rate.
    family: list[float] = []
    for col in columns:
        col.severity, col.crossed = _effects(col, cfg)
        if col.n_cur < cfg.min_samples:
            col.judged, col.note = False, f"{col.n_cur} non-null values < drift.min_samples"
            continue
        family.append(col.p_value)
    label_judged = label.cur_rate is not None and label.ref_rate is not None and label.n_cur >= cfg.min_samples
    if label_judged:
        family.append(label.p_value)
    adjusted = iter(stats.adjust_pvalues(np.array(family), cfg.correction))
    for col in columns:
        if col.judged:
            col.p_adjusted = float(next(adjusted))
            col.drifted = col.p_adjusted <= cfg.alpha and bool(col.crossed)
    if label_judged:
        label.p_adjusted = float(next(adjusted))
        lo, hi = sorted([max(label.ref_rate or 0.0, 1e-12), max(label.cur_rate or 0.0, 1e-12)])
        label.drifted = label.p_adjusted <= cfg.alpha and hi / lo >= cfg.label_rate_ratio

    columns.sort(key=lambda c: (not c.drifted, -c.severity))
    drifted = [c for c in columns if c.drifted]
    if len(drifted) >= cfg.min_drifted_columns:
        named = ", ".join(f"{c.name} ({'/'.join(c.crossed)} {c.severity:.1f}x threshold)" for c in drifted)
        reasons.append(f"{len(drifted)} column(s) drifted: {named}")
    if label.drifted:
        reasons.append(f"label rate moved from {label.ref_rate:.4f} to {label.cur_rate:.4f}")
    if label.auc_below_gate:
        reasons.append(f"realized AUC {label.realized_auc:.3f} is below gates.min_auc {spec.gates.min_auc}")
    decision = "drift" if reasons else "no drift"
    return DriftResult(decision, bool(reasons), reasons, columns, label, quality, rows, cfg.correction, cfg.alpha)


def _quality_alerts(quality: Quality, columns: list[ColumnDrift], spec: DatasetSpec) -> None:
    cfg = spec.drift
    for col in columns:
        if col.kind != "score" and col.null_rate_cur - col.null_rate_ref > cfg.max_null_rate_increase:
            quality.null_increase[col.name] = col.null_rate_cur - col.null_rate_ref
            quality.alerts.append(
                f"{col.name}: null rate {col.null_rate_cur:.3f} vs {col.null_rate_ref:.3f} in the reference"
            )
    for name, count in quality.out_of_range.items():
        if quality.events and count / quality.events > cfg.max_out_of_range_rate:
            quality.alerts.append(f"{name}: {count / quality.events:.2%} of events outside the spec's min/max")
    if quality.events and quality.quarantine_rate > spec.gates.max_quarantine_fraction:
        quality.alerts.append(
            f"{quality.quarantine_rate:.2%} of events would be quarantined (gates.max_quarantine_fraction "
            f"{spec.gates.max_quarantine_fraction:.2%})"
        )
