"""The candidate comparison for MLflow and reviews: a Markdown table and a latency/accuracy plot (PNG)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.optimize.measure import AGREEMENT_KEY, SELECTION_LATENCY, latency_key
from pipelines.optimize.selection import Selection


def _ms(row: Mapping[str, Any], batch: int, threads: str) -> str:
    p50, p99 = row.get(latency_key(batch, threads, "p50")), row.get(latency_key(batch, threads, "p99"))
    return "-" if p50 is None or p99 is None else f"{p50:.3f} / {p99:.3f}"


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def candidate_table(rows: Mapping[str, Mapping[str, Any]], selection: Selection, threads_all: int) -> str:
    """One row per candidate: accuracy, agreement with fp32, latency (p50 / p99 ms), size, and the verdict."""
    head = (
        "| candidate | runtime | test AUC | PR-AUC | log loss | ECE | max abs diff vs fp32 "
        f"| b1 1t | b1 {threads_all}t | b256 1t | b256 {threads_all}t | size (KiB) | within budget | Pareto |"
    )
    lines = [head, "| " + " | ".join(["---"] * 2 + ["---:"] * 10 + ["---"] * 2) + " |"]
    for name, row in rows.items():
        label = f"**{name}** (chosen)" if name == selection.chosen else name
        lines.append(
            "| "
            + " | ".join(
                [
                    label,
                    str(row.get("runtime", "")),
                    _num(row.get("auc"), ".4f"),
                    _num(row.get("pr_auc"), ".4f"),
                    _num(row.get("log_loss"), ".4f"),
                    _num(row.get("ece"), ".4f"),
                    _num(row.get(AGREEMENT_KEY), ".2e"),
                    _ms(row, 1, "1t"),
                    _ms(row, 1, "allt"),
                    _ms(row, 256, "1t"),
                    _ms(row, 256, "allt"),
                    _num(row["size_bytes"] / 1024 if "size_bytes" in row else None, ",.1f"),
                    "yes" if name in selection.eligible else "no",
                    "yes" if name in selection.pareto else "no",
                ]
            )
            + " |"
        )
    lines += [
        "",
        f"Latency in ms, p50 / p99, model only (preprocessed inputs), at batch 1 and 256 with 1 and {threads_all} "
        f"threads. Budget: test AUC >= {selection.auc_floor:.4f} (fp32 {selection.reference_auc:.4f} minus "
        f"optimize.max_auc_drop). Chosen: {selection.reason}.",
    ]
    return "\n".join(lines) + "\n"


def tradeoff_plot(rows: Mapping[str, Mapping[str, Any]], selection: Selection, path: Path) -> Path:
    """Latency (batch 1, one thread, p50; log scale) against test AUC, the budget line and the Pareto front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in rows.items():
        x, y = row[SELECTION_LATENCY], row["auc"]
        chosen = name == selection.chosen
        ax.scatter(
            [x],
            [y],
            s=90 if chosen else 40,
            marker="*" if chosen else "o",
            color="tab:red" if chosen else ("tab:blue" if name in selection.eligible else "tab:gray"),
            zorder=3,
        )
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    front = [(rows[n][SELECTION_LATENCY], rows[n]["auc"]) for n in selection.pareto]
    if len(front) > 1:
        ax.plot([p[0] for p in front], [p[1] for p in front], linestyle=":", color="tab:green", label="Pareto front")
    ax.axhline(selection.auc_floor, linestyle="--", color="tab:orange", label="accuracy budget (fp32 - max drop)")
    ax.set_xscale("log")
    ax.set_xlabel("latency p50, batch 1, one thread (ms)")
    ax.set_ylabel("test AUC")
    ax.set_title("candidates: latency vs accuracy")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
