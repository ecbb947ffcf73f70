"""Model optimization: faster forms of a trained model, measured on the pinned test split, one picked.

    result = build_and_measure(teacher, architecture, prep, splits, spec, workdir)
    result.chosen                        # e.g. "onnx-int8"
    result.artifacts[result.chosen]      # pyfunc artifacts for packaging.FlywheelOptimizedModel
    result.candidates                    # one plain dict per candidate (quality, agreement, latency, size)

Modules: forms (one predict interface per runtime), candidates (building fp32, int8, pruned, distilled,
onnx-fp32, onnx-int8), pruning, distillation, measure (quality, agreement, latency, size), selection (the
budget, the fastest eligible, the Pareto front), report (Markdown table, plot), packaging (pyfunc).
Plain Python: Dagster and MLflow logging are the caller's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from pipelines.optimize.candidates import REFERENCE, build_candidates
from pipelines.optimize.data import split_tensors
from pipelines.optimize.forms import Candidate
from pipelines.optimize.measure import (
    GATE_LATENCY,
    SELECTION_LATENCY,
    all_threads,
    latency,
    quality,
    score,
    size_on_disk,
)
from pipelines.optimize.packaging import MODEL_ARTIFACT, save_candidate
from pipelines.optimize.report import candidate_table, tradeoff_plot
from pipelines.optimize.selection import select
from pipelines.spec import DatasetSpec
from pipelines.training.preprocess import Preprocessor

__all__ = ["GATE_LATENCY", "SELECTION_LATENCY", "OptimizationResult", "build_and_measure"]


@dataclass
class OptimizationResult:
    """Every candidate measured, the one picked, and what to log."""

    candidates: list[dict[str, Any]]  # JSON-safe, one per candidate, in candidates.ALL_FORMS order (see below)
    chosen: str  # the candidate's name, also its form tag: fp32, int8, pruned, distilled, onnx-fp32, onnx-int8
    reason: str  # one sentence: why it was chosen (for tags and the report)
    reference_auc: float  # fp32 test AUC
    auc_floor: float  # reference_auc - optimize.max_auc_drop
    table_markdown: str
    table_path: Path  # <workdir>/candidates.md
    json_path: Path  # <workdir>/candidates.json (the candidates list)
    plot_path: Path  # <workdir>/tradeoff.png
    artifact_dirs: dict[str, Path]  # name -> <workdir>/candidates/<name>
    artifacts: dict[str, dict[str, str]]  # name -> pyfunc artifacts mapping (packaging.save_candidate)
    threads_all: int  # the thread count the "allt" latencies ran with
    built: dict[str, Candidate] = field(default_factory=dict, repr=False)  # the runnable candidates

    def candidate(self, name: str) -> dict[str, Any]:
        for row in self.candidates:
            if row["name"] == name:
                return row
        raise KeyError(f"no candidate {name!r}; built: {[r['name'] for r in self.candidates]}")

    @property
    def metrics(self) -> dict[str, float]:
        """The chosen candidate's numbers (quality, agreement, latency, size): OptimizedModel.metrics."""
        return {k: float(v) for k, v in self.candidate(self.chosen).items() if _is_number(v)}


def build_and_measure(
    teacher: nn.Module,
    architecture: dict,
    prep: Preprocessor,
    splits: Mapping[str, pd.DataFrame],
    spec: DatasetSpec,
    workdir: Path,
    seed: int | None = None,
) -> OptimizationResult:
    """Build every candidate `spec.optimize.candidates` lists (plus fp32, the reference), save each under
    workdir/candidates/<name>/, measure it on the test split and pick the fastest one within the budget.

    teacher, architecture, prep: the trained TabularNet, its constructor arguments and fitted Preprocessor
        (pipelines.training.packaging.load_model(uri) gives all three).
    splits: model-table frames by split name ({"train", "validation", "test"}, as the trainer builds them from
        layout.SPLIT_COLUMN); train/validation fine-tune the pruned model and teach the student, test measures.
    seed: for pruning's fine-tune and the student (default: spec.model.seed).

    Each candidates[i] holds: name, runtime, auc, pr_auc, log_loss, brier, ece, max_abs_diff_vs_fp32,
    mean_abs_diff_vs_fp32, latency_b{1,256}_{1t,allt}_{p50,p99}_ms (allt: threads_all threads), size_bytes
    (the model file), parameters, notes (how it was built), eligible (within the AUC budget), pareto (on the
    latency/AUC front), chosen. `metrics` is the chosen one's numbers; its latency_b1_1t_p99_ms is what the
    evaluation gate's latency budget judges.
    Raises FlywheelError when a split is empty, the fp32 AUC is undefined, or nothing listed is within budget.
    """
    seed = spec.model.seed if seed is None else seed
    workdir = Path(workdir)
    data = split_tensors(spec, prep, splits)
    built = build_candidates(teacher, architecture, prep, data, spec, seed)

    artifact_dirs = {name: workdir / "candidates" / name for name in built}
    artifacts = {name: save_candidate(cand, artifact_dirs[name]) for name, cand in built.items()}

    test = data["test"]
    numeric, categorical, labels = test.numeric.numpy(), test.categorical.numpy(), test.labels.numpy()
    reference = score(built[REFERENCE], numeric, categorical)
    timings = latency(built, numeric, categorical, spec.optimize.latency_repeats)
    rows: dict[str, dict[str, Any]] = {}
    for name, cand in built.items():
        rows[name] = {
            "name": name,
            "runtime": cand.runtime,
            **quality(labels, score(cand, numeric, categorical), reference),
            **timings[name],
            "size_bytes": size_on_disk([artifacts[name][MODEL_ARTIFACT]]),
            "parameters": int(cand.notes.get("parameters", 0)),
            "notes": dict(cand.notes),
        }

    selection = select(
        rows, spec.optimize.max_auc_drop, selectable=list(spec.optimize.candidates), max_ece=spec.gates.max_ece
    )
    for name, row in rows.items():
        row["eligible"] = name in selection.eligible
        row["pareto"] = name in selection.pareto
        row["chosen"] = name == selection.chosen

    threads_all = all_threads()
    table = candidate_table(rows, selection, threads_all)
    workdir.mkdir(parents=True, exist_ok=True)
    table_path = workdir / "candidates.md"
    table_path.write_text(table)
    json_path = workdir / "candidates.json"
    json_path.write_text(json.dumps(list(rows.values()), indent=1, default=str))
    plot_path = tradeoff_plot(rows, selection, workdir / "tradeoff.png")
    return OptimizationResult(
        candidates=list(rows.values()),
        chosen=selection.chosen,
        reason=selection.reason,
        reference_auc=selection.reference_auc,
        auc_floor=selection.auc_floor,
        table_markdown=table,
        table_path=table_path,
        json_path=json_path,
        plot_path=plot_path,
        artifact_dirs=artifact_dirs,
        artifacts=artifacts,
        threads_all=threads_all,
        built=built,
    )


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )
