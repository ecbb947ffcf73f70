"""Selection: the fastest candidate within the AUC budget, never a faster one outside it; the Pareto front."""

from __future__ import annotations

import math

import pytest

from pipelines.errors import FlywheelError
from pipelines.optimize.measure import SELECTION_LATENCY
from pipelines.optimize.selection import pareto_front, select


def row(auc: float, ms: float, size: int = 1000) -> dict[str, float]:
    return {"auc": auc, SELECTION_LATENCY: ms, "size_bytes": size}


def test_the_fastest_candidate_outside_the_budget_is_not_picked() -> None:
    rows = {
        "fp32": row(0.900, 1.0),
        "int8": row(0.890, 0.2),  # fastest, but 0.010 below fp32: outside a 0.005 budget
        "onnx-int8": row(0.897, 0.4),  # within the budget and faster than the rest
        "onnx-fp32": row(0.900, 0.5),
    }
    picked = select(rows, max_auc_drop=0.005)
    assert picked.chosen == "onnx-int8"
    assert "int8" not in picked.eligible and set(picked.eligible) == {"fp32", "onnx-int8", "onnx-fp32"}
    assert picked.auc_floor == pytest.approx(0.895)
    # with a budget wide enough, the fastest one wins
    assert select(rows, max_auc_drop=0.02).chosen == "int8"


def test_a_candidate_exactly_at_the_floor_is_eligible_and_ties_go_to_the_smaller_file() -> None:
    rows = {"fp32": row(0.9, 1.0, 4000), "int8": row(0.895, 0.3, 2000), "onnx-int8": row(0.899, 0.3, 1500)}
    picked = select(rows, max_auc_drop=0.005)
    assert set(picked.eligible) == {"fp32", "int8", "onnx-int8"}
    assert picked.chosen == "onnx-int8"  # same latency as int8, smaller on disk


def test_only_the_specs_candidates_are_selectable_and_fp32_is_the_reference() -> None:
    rows = {"fp32": row(0.9, 1.0), "int8": row(0.9, 0.2), "distilled": row(0.899, 0.1)}
    assert select(rows, 0.005, selectable=["fp32", "int8"]).chosen == "int8"
    assert select(rows, 0.005, selectable=["fp32"]).chosen == "fp32"
    # the spec left fp32 out and nothing it listed is within budget: an error that says what to change
    with pytest.raises(FlywheelError, match="max_auc_drop"):
        select({"fp32": row(0.9, 1.0), "int8": row(0.8, 0.2)}, 0.005, selectable=["int8"])
    with pytest.raises(FlywheelError, match="fp32"):
        select({"int8": row(0.9, 0.2)}, 0.005)
    with pytest.raises(FlywheelError, match="one class"):
        select({"fp32": row(math.nan, 1.0)}, 0.005)


def test_pareto_front_keeps_only_undominated_candidates() -> None:
    rows = {
        "fp32": row(0.900, 1.0),
        "onnx-fp32": row(0.900, 0.5),  # dominates fp32 (as accurate, faster)
        "int8": row(0.890, 0.2),  # fastest: on the front despite lower AUC
        "pruned": row(0.880, 0.6),  # slower and worse than onnx-fp32: dominated
        "distilled": row(0.905, 0.8),  # most accurate: on the front
    }
    assert pareto_front(rows) == ["int8", "onnx-fp32", "distilled"]  # ordered by latency


def test_a_faster_form_the_gate_would_reject_on_calibration_is_not_picked() -> None:
    from pipelines.optimize.selection import select

    key = "latency_b1_1t_p50_ms"
    rows = {
        "fp32": {"name": "fp32", "auc": 0.90, "ece": 0.02, key: 1.0, "size_bytes": 10},
        "distilled": {"name": "distilled", "auc": 0.899, "ece": 0.30, key: 0.1, "size_bytes": 5},
        "onnx-fp32": {"name": "onnx-fp32", "auc": 0.90, "ece": 0.02, key: 0.5, "size_bytes": 10},
    }
    assert select(rows, 0.005).chosen == "distilled"  # AUC alone: the badly calibrated student wins
    assert select(rows, 0.005, max_ece=0.1).chosen == "onnx-fp32"
