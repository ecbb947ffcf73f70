"""One full optimization run on a small trained model: every candidate measured, the pick within budget,
the faithful forms agreeing with fp32, and the table, plot and JSON written."""

from __future__ import annotations

import json

import pytest

from pipelines.optimize import GATE_LATENCY, SELECTION_LATENCY, OptimizationResult
from pipelines.optimize.candidates import ALL_FORMS
from pipelines.optimize.measure import AGREEMENT_KEY, AGREEMENT_TOLERANCE, MEAN_AGREEMENT_KEY, latency_key

pytestmark = pytest.mark.slow  # one shared run of every candidate, about 5 s


def test_every_listed_candidate_is_measured_on_every_axis(optimized: OptimizationResult) -> None:
    assert [row["name"] for row in optimized.candidates] == list(ALL_FORMS)
    for row in optimized.candidates:
        for key in ("auc", "pr_auc", "log_loss", "brier", "ece", AGREEMENT_KEY, MEAN_AGREEMENT_KEY):
            assert isinstance(row[key], float), (row["name"], key)
        for batch in (1, 256):
            for threads in ("1t", "allt"):
                assert 0 < row[latency_key(batch, threads, "p50")] <= row[latency_key(batch, threads, "p99")]
        assert row["size_bytes"] > 0 and row["parameters"] > 0
        assert row["auc"] > 0.8, row  # the synthetic labels are learnable; no form broke the model
    json.dumps(optimized.candidates)  # plain values: fit for a record and an MLflow table


def test_faithful_forms_agree_with_fp32_within_the_stated_tolerance(optimized: OptimizationResult) -> None:
    for name, tolerance in AGREEMENT_TOLERANCE.items():
        row = optimized.candidate(name)
        assert row[MEAN_AGREEMENT_KEY] <= row[AGREEMENT_KEY] <= tolerance, name
    assert optimized.candidate("fp32")[AGREEMENT_KEY] == 0.0
    assert optimized.candidate("int8")[AGREEMENT_KEY] > 0  # really another numeric form


def test_the_pick_is_the_fastest_candidate_within_the_budget(optimized: OptimizationResult) -> None:
    rows = {row["name"]: row for row in optimized.candidates}
    chosen = rows[optimized.chosen]
    assert chosen["chosen"] and chosen["eligible"] and chosen["pareto"]
    assert optimized.auc_floor == pytest.approx(rows["fp32"]["auc"] - 0.005)
    for name, row in rows.items():
        assert row["eligible"] == (name == "fp32" or row["auc"] >= optimized.auc_floor)
        if row["eligible"]:
            assert chosen[SELECTION_LATENCY] <= row[SELECTION_LATENCY]
    assert optimized.metrics[GATE_LATENCY] == chosen[GATE_LATENCY]  # what the evaluation gate judges
    assert optimized.chosen in optimized.reason


def test_reports_are_written(optimized: OptimizationResult) -> None:
    table = optimized.table_path.read_text()
    assert table == optimized.table_markdown
    assert f"**{optimized.chosen}** (chosen)" in table
    assert all(f"| {name} |" in table or f"**{name}**" in table for name in ALL_FORMS)
    assert optimized.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["name"] for r in json.loads(optimized.json_path.read_text())] == list(ALL_FORMS)


def test_the_onnx_student_scores_like_the_eager_student(optimized: OptimizationResult) -> None:
    """onnx-distilled is the distilled student under ONNX Runtime: the same model, a faster runtime."""
    import numpy as np

    from pipelines.optimize.measure import score

    eager, onnx = optimized.built["distilled"], optimized.built["onnx-distilled"]
    assert onnx.architecture == eager.architecture
    rng = np.random.default_rng(0)
    width = eager.architecture["numeric_width"]
    numeric = rng.normal(size=(64, width)).astype(np.float32)
    categorical = np.zeros((64, len(eager.architecture["cardinalities"])), dtype=np.int64)
    assert np.abs(score(onnx, numeric, categorical) - score(eager, numeric, categorical)).max() <= 1e-4
