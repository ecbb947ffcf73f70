"""The evaluation gate: may the challenger replace the champion? Plain compute (no Dagster, no MLflow).

`decide` judges one challenger on the pinned test split against the spec's thresholds (`spec.gates`):

- min_auc: the challenger's AUC on the full test split must be at least `min_auc` (absolute);
- max_ece: its expected calibration error must be at most `max_ece`;
- max_latency_ms: when a budget is set, the challenger's p99 latency (batch 1, one thread) must be within it; a
  budget with no measurement fails (a blocking gate does not pass what it could not check);
- slices: for `slice_feature`, every slice with at least `min_slice_size` test rows (and both classes) must have
  challenger AUC >= `min_slice_auc`; smaller slices are reported in the slice table but not judged;
- max_auc_regression (only with a champion): the AUC difference d = AUC(challenger) - AUC(champion) on the same
  test rows must be at least -max_auc_regression. The measured drop decides, not the interval: a model is
  promoted only if it is at least as good as the champion within the budget, and on a small test split the
  interval is wide enough to let a clearly worse model through (measured: 0.02 worse on 600 rows passed an
  upper-bound rule). The paired bootstrap interval at `confidence` is reported with the decision. A tie passes.

The first model ever (no champion) is judged on the absolute rules only. Every failed rule gives one reason
sentence naming the measured value and the threshold; the decision passes when no rule failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pipelines.evaluate.bootstrap import DEFAULT_SEED, METRICS, Interval, check_inputs, paired_bootstrap
from pipelines.spec.model import DatasetSpec

MISSING_SLICE = "(missing)"


class GateCheck(NamedTuple):
    """One row of the decision table."""

    name: str
    passed: bool
    measured: float | None  # None: nothing was measured (e.g. no latency for a set budget)
    threshold: float
    detail: str


@dataclass(frozen=True)
class SliceRow:
    """One value of the slice feature on the test split."""

    value: str
    rows: int
    positives: int
    challenger_auc: float  # NaN when the slice holds one class
    champion_auc: float | None  # None: no champion
    judged: bool
    passed: bool | None  # None: not judged
    note: str = ""


@dataclass
class GateDecision:
    passed: bool
    reasons: list[str]  # one sentence per failed rule; empty when passed
    checks: list[GateCheck]  # the decision table, one row per judged rule
    metrics: dict[str, dict[str, Interval]]  # "challenger", and "champion" + "difference" when there is one
    slices: list[SliceRow]
    slice_feature: str | None
    confidence: float
    bootstrap_samples: int
    notes: list[str] = field(default_factory=list)  # what was not judged, and why

    @property
    def has_champion(self) -> bool:
        return "champion" in self.metrics

    def record_metrics(self) -> dict[str, dict[str, float]]:
        """Flat floats per model for the Evaluation record: auc, auc_low, auc_high, ... (and the difference)."""
        out: dict[str, dict[str, float]] = {}
        for model, table in self.metrics.items():
            flat: dict[str, float] = {}
            for metric, iv in table.items():
                flat[metric], flat[f"{metric}_low"], flat[f"{metric}_high"] = iv.estimate, iv.low, iv.high
            out[model] = flat
        return out

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly: the whole decision (NaN stays a float; json.dumps writes NaN)."""
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "checks": [c._asdict() for c in self.checks],
            "metrics": {m: {k: v.as_dict() for k, v in t.items()} for m, t in self.metrics.items()},
            "slices": [s.__dict__.copy() for s in self.slices],
            "slice_feature": self.slice_feature,
            "confidence": self.confidence,
            "bootstrap_samples": self.bootstrap_samples,
            "notes": list(self.notes),
        }


def decide(
    labels: np.ndarray,
    challenger_scores: np.ndarray,
    champion_scores: np.ndarray | None,
    slices: np.ndarray | None,
    spec: DatasetSpec,
    challenger_latency_p99_ms: float | None,
    *,
    seed: int = DEFAULT_SEED,
) -> GateDecision:
    """Judge the challenger (see the module docstring for every rule); both models scored on the same rows.

    labels: 0/1 per test row; *_scores: probabilities per row (champion None: the first model);
    slices: the slice feature's value per row (None when the spec has no slice feature).
    """
    gates = spec.gates
    y, scores = check_inputs(labels, challenger=challenger_scores, champion=champion_scores)
    boot = paired_bootstrap(
        y,
        scores["challenger"],
        scores.get("champion"),
        samples=gates.bootstrap_samples,
        confidence=gates.confidence,
        seed=seed,
    )
    metrics: dict[str, dict[str, Interval]] = {"challenger": boot.challenger}
    if boot.champion is not None and boot.difference is not None:
        metrics["champion"], metrics["difference"] = boot.champion, boot.difference
    pct = f"{gates.confidence:.0%}"
    checks: list[GateCheck] = []
    notes: list[str] = []
    reasons: list[str] = []

    def judge(check: GateCheck, reason: str) -> None:
        checks.append(check)
        if not check.passed:
            reasons.append(reason)

    auc = boot.challenger["auc"]
    judge(
        GateCheck("min_auc", auc.estimate >= gates.min_auc, auc.estimate, gates.min_auc, f"{pct} interval {auc}"),
        f"challenger AUC {auc.estimate:.4f} is below the minimum {gates.min_auc:.4f} "
        f"({pct} interval [{auc.low:.4f}, {auc.high:.4f}])",
    )
    ece = boot.challenger["ece"]
    judge(
        GateCheck("max_ece", ece.estimate <= gates.max_ece, ece.estimate, gates.max_ece, f"{pct} interval {ece}"),
        f"challenger expected calibration error {ece.estimate:.4f} is above the maximum {gates.max_ece:.4f} "
        "(recalibrate the model, e.g. temperature scaling on the validation split)",
    )
    if gates.max_latency_ms is None:
        notes.append("latency not judged: the spec sets no gates.max_latency_ms")
    elif challenger_latency_p99_ms is None or not np.isfinite(challenger_latency_p99_ms):
        judge(
            GateCheck("max_latency_ms", False, None, gates.max_latency_ms, "no p99 latency was measured"),
            f"no p99 latency (batch 1, one thread) was measured for the challenger but the budget is "
            f"{gates.max_latency_ms:g} ms: run the optimization stage's latency benchmark for this version",
        )
    else:
        latency = float(challenger_latency_p99_ms)
        judge(
            GateCheck(
                "max_latency_ms",
                latency <= gates.max_latency_ms,
                latency,
                gates.max_latency_ms,
                "p99, batch 1, 1 thread",
            ),
            f"challenger p99 latency {latency:.3f} ms (batch 1, one thread) is above the budget "
            f"{gates.max_latency_ms:g} ms",
        )

    if "difference" in metrics:
        d = metrics["difference"]["auc"]
        limit = -gates.max_auc_regression
        # The measured drop decides: a model is promoted only if it is at least as good as the champion within
        # the budget on the same rows. The paired interval says how sure that is, and is shown with it.
        judge(
            GateCheck(
                "max_auc_regression",
                d.estimate >= limit,
                d.estimate,
                limit,
                f"AUC challenger - champion on the same rows: {d.estimate:+.4f}, {pct} paired interval "
                f"[{d.low:+.4f}, {d.high:+.4f}]",
            ),
            f"challenger AUC is worse than the champion's by more than the allowed {gates.max_auc_regression:.4f}: "
            f"AUC difference {d.estimate:+.4f} ({pct} paired interval [{d.low:+.4f}, {d.high:+.4f}]); champion AUC "
            f"{metrics['champion']['auc'].estimate:.4f}, challenger {auc.estimate:.4f}",
        )
    else:
        notes.append("no champion: judged on the absolute thresholds only (first model)")

    feature = gates.slice_feature
    rows: list[SliceRow] = []
    if slices is None:
        if feature is not None:
            raise ValueError(
                f"the spec judges slices of {feature!r} but no slice values were given: pass the test split's "
                f"{feature!r} column to decide()"
            )
    else:
        rows = _slice_rows(y, scores["challenger"], scores.get("champion"), np.asarray(slices, dtype=object), spec)
        name = feature or "slice"
        for row in rows:
            if row.judged:
                judge(
                    GateCheck(
                        f"slice_auc[{name}={row.value}]",
                        bool(row.passed),
                        row.challenger_auc,
                        gates.min_slice_auc,
                        f"{row.rows} rows, {row.positives} positive",
                    ),
                    f"challenger AUC {row.challenger_auc:.4f} on the slice {name}={row.value} ({row.rows} rows) is "
                    f"below the minimum slice AUC {gates.min_slice_auc:.4f}",
                )
        unjudged = [r.value for r in rows if not r.judged]
        if unjudged:
            notes.append(
                f"slices reported but not judged (fewer than {gates.min_slice_size} rows or one class): {unjudged}"
            )

    return GateDecision(
        passed=not reasons,
        reasons=reasons,
        checks=checks,
        metrics=metrics,
        slices=rows,
        slice_feature=feature if slices is not None else None,
        confidence=gates.confidence,
        bootstrap_samples=boot.samples,
        notes=notes,
    )


def _slice_value(v: object) -> str:
    if v is None or ((np.isscalar(v) or v is pd.NA) and bool(pd.isna(v))):  # None, NaN, pd.NA: a nullable feature
        return MISSING_SLICE
    return str(v)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if y.min() != y.max() else float("nan")


def _slice_rows(
    y: np.ndarray, challenger: np.ndarray, champion: np.ndarray | None, values: np.ndarray, spec: DatasetSpec
) -> list[SliceRow]:
    if values.shape != y.shape:
        raise ValueError(f"slice values have shape {values.shape} but the labels have {y.shape}: one per test row")
    gates = spec.gates
    keys = np.array([_slice_value(v) for v in values], dtype=object)
    rows = []
    for value in sorted(set(keys.tolist())):
        mask = keys == value
        ys = y[mask]
        n, positives = int(mask.sum()), int(ys.sum())
        one_class = positives in (0, n)
        c_auc = _auc(ys, challenger[mask])
        k_auc = _auc(ys, champion[mask]) if champion is not None else None
        if n < gates.min_slice_size:
            rows.append(
                SliceRow(value, n, positives, c_auc, k_auc, False, None, f"fewer than {gates.min_slice_size} rows")
            )
        elif one_class:
            rows.append(SliceRow(value, n, positives, c_auc, k_auc, False, None, "one class only: AUC undefined"))
        else:
            rows.append(SliceRow(value, n, positives, c_auc, k_auc, True, c_auc >= gates.min_slice_auc))
    return rows


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and np.isnan(x):
        return "n/a"
    return f"{x:.{digits}f}"


def decision_table_markdown(decision: GateDecision) -> str:
    """The decision, its rules (measured vs threshold), the metrics with intervals, and the notes, as Markdown."""
    verdict = "**PASSED**" if decision.passed else "**REJECTED**"
    lines = [f"Gate decision: {verdict}", ""]
    if decision.reasons:
        lines += [f"- {r}" for r in decision.reasons] + [""]
    lines += ["| check | result | measured | threshold | detail |", "|---|---|---|---|---|"]
    for c in decision.checks:
        result = "pass" if c.passed else "**FAIL**"
        lines.append(f"| {c.name} | {result} | {_fmt(c.measured)} | {_fmt(c.threshold)} | {c.detail} |")
    lines += [
        "",
        f"Metrics with {decision.confidence:.0%} paired bootstrap intervals ({decision.bootstrap_samples} resamples):",
        "",
    ]
    models = list(decision.metrics)
    lines += ["| metric | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for metric in METRICS:
        cells = []
        for model in models:
            iv = decision.metrics[model][metric]
            sign = "+" if model == "difference" else ""
            cells.append(f"{iv.estimate:{sign}.4f} [{iv.low:{sign}.4f}, {iv.high:{sign}.4f}]")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    if decision.notes:
        lines += [""] + [f"- {n}" for n in decision.notes]
    return "\n".join(lines) + "\n"


def slice_table_markdown(decision: GateDecision) -> str:
    """The per-slice table: rows, positives, AUC of each model, and whether the slice was judged."""
    if not decision.slices:
        return "No slice feature is judged for this dataset.\n"
    name = decision.slice_feature or "slice"
    lines = [
        f"| {name} | rows | positives | challenger AUC | champion AUC | judged | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in decision.slices:
        result = "-" if s.passed is None else ("pass" if s.passed else "**FAIL**")
        judged = "yes" if s.judged else f"no ({s.note})"
        lines.append(
            f"| {s.value} | {s.rows} | {s.positives} | {_fmt(s.challenger_auc)} | {_fmt(s.champion_auc)} | "
            f"{judged} | {result} |"
        )
    return "\n".join(lines) + "\n"
