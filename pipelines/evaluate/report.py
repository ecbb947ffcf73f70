"""The gate report: a Markdown file naming exactly what was judged, with ROC/PR/calibration overlays.

`write_report` writes into one directory (logged as one MLflow artifact folder by the caller):
gate_report.md, decision.json, roc.png, pr.png, calibration.png. The report names the lakeFS repository and
the exact commit both models were scored on, the code SHA, the Dagster run id and what triggered the run.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pipelines.evaluate.bootstrap import check_inputs
from pipelines.evaluate.gate import GateDecision, decision_table_markdown, slice_table_markdown

REPORT_NAME = "gate_report.md"
TRIGGERS = ("manual", "schedule", "sensor")
PLOTS = ("roc.png", "pr.png", "calibration.png")


def trigger_kind(trigger: str) -> str:
    """'manual', 'schedule' or 'sensor' from a trigger such as 'schedule nightly_retrain'."""
    kind = trigger.strip().split(" ", 1)[0].split(":", 1)[0].lower() if trigger.strip() else ""
    if kind not in TRIGGERS:
        raise ValueError(
            f"trigger {trigger!r} is not one of {TRIGGERS} (optionally followed by the schedule/sensor name)"
        )
    return kind


def write_report(
    decision: GateDecision,
    directory: Path,
    *,
    model_name: str,
    challenger_version: str,
    champion_version: str | None,
    lakefs_repository: str,
    lakefs_commit: str,
    code_version: str,
    dagster_run_id: str,
    trigger: str,
    labels: np.ndarray,
    challenger_scores: np.ndarray,
    champion_scores: np.ndarray | None,
) -> Path:
    """Write the report and its plots into `directory`; returns the path of gate_report.md."""
    trigger_kind(trigger)
    if not lakefs_commit:
        raise ValueError("the report must name the lakeFS commit both models were scored on: lakefs_commit is empty")
    if (champion_scores is None) != (champion_version is None):
        raise ValueError("champion_version and champion_scores must be given together (both None: no champion)")
    y, scores = check_inputs(labels, challenger=challenger_scores, champion=champion_scores)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plots = _write_plots(directory, y, scores, challenger_version, champion_version)

    verdict = "passed" if decision.passed else "rejected"
    champion = f"version {champion_version} (alias `champion`)" if champion_version else "none (first model)"
    lines = [
        f"# Gate report: {model_name} version {challenger_version} — {verdict}",
        "",
        "| | |",
        "|---|---|",
        f"| model | `{model_name}` |",
        f"| challenger | version {challenger_version} |",
        f"| champion | {champion} |",
        f"| lakeFS repository | `{lakefs_repository}` |",
        f"| lakeFS commit (both models scored here) | `{lakefs_commit}` |",
        f"| data | `lakefs://{lakefs_repository}/{lakefs_commit}/` test split: {y.size} rows, "
        f"{int(y.sum())} positive |",
        f"| code version (SHA) | `{code_version}` |",
        f"| Dagster run id | `{dagster_run_id}` |",
        f"| trigger | {trigger} |",
        f"| written | {datetime.now(UTC).isoformat(timespec='seconds')} |",
        "",
        "## Decision",
        "",
        decision_table_markdown(decision),
        "## Slices",
        "",
        slice_table_markdown(decision),
        "## Curves (challenger vs champion)",
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
    ]
    report = directory / REPORT_NAME
    report.write_text("\n".join(lines), encoding="utf-8")
    context = {
        "model_name": model_name,
        "challenger_version": challenger_version,
        "champion_version": champion_version,
        "lakefs_repository": lakefs_repository,
        "lakefs_commit": lakefs_commit,
        "code_version": code_version,
        "dagster_run_id": dagster_run_id,
        "trigger": trigger,
        "decision": _json_safe(decision.as_dict()),
    }
    (directory / "decision.json").write_text(json.dumps(context, indent=2, allow_nan=False), encoding="utf-8")
    return report


def _json_safe(value: object) -> object:
    """NaN/inf become None so decision.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _write_plots(
    directory: Path,
    labels: np.ndarray,
    scores: dict[str, np.ndarray],
    challenger_version: str,
    champion_version: str | None,
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display in pods
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    names = {"challenger": f"challenger v{challenger_version}", "champion": f"champion v{champion_version}"}
    paths: list[Path] = []

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for model, p in scores.items():
        fpr, tpr, _ = roc_curve(labels, p)
        ax.plot(fpr, tpr, label=f"{names[model]} (AUC {roc_auc_score(labels, p):.4f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test split")
    ax.legend(loc="lower right", fontsize=8)
    paths.append(_save(fig, directory / PLOTS[0]))

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for model, p in scores.items():
        precision, recall, _ = precision_recall_curve(labels, p)
        ax.plot(recall, precision, label=f"{names[model]} (AP {average_precision_score(labels, p):.4f})")
    ax.axhline(labels.mean(), linestyle="--", color="grey", label="positive rate")
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall, test split")
    ax.legend(loc="upper right", fontsize=8)
    paths.append(_save(fig, directory / PLOTS[1]))

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for model, p in scores.items():
        observed, predicted = calibration_curve(labels, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=names[model])
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="calibration, test split")
    ax.legend(loc="upper left", fontsize=8)
    paths.append(_save(fig, directory / PLOTS[2]))
    return paths


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=90)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
