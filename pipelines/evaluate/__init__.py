"""The evaluation gate's compute (plain Python, no Dagster): is the challenger good enough to serve?

bootstrap  paired bootstrap intervals (the same resampled rows for both models) for AUC, PR-AUC, log loss,
           Brier and ECE of each model and of their difference
gate       `decide`: the spec's rules (minimum AUC, calibration, latency budget, per-slice AUC, the AUC drop
           against the champion judged on the interval) and the decision table
report     `write_report`: gate_report.md with ROC/PR/calibration overlays, naming commit, code SHA, run, trigger
stage      the `evaluated_model` asset's entry (MLflow and lakeFS wiring)
"""

from pipelines.evaluate.bootstrap import METRICS, BootstrapResult, Interval, paired_bootstrap, point_metrics
from pipelines.evaluate.gate import (
    GateCheck,
    GateDecision,
    SliceRow,
    decide,
    decision_table_markdown,
    slice_table_markdown,
)
from pipelines.evaluate.report import TRIGGERS, write_report

__all__ = [
    "METRICS",
    "TRIGGERS",
    "BootstrapResult",
    "GateCheck",
    "GateDecision",
    "Interval",
    "SliceRow",
    "decide",
    "decision_table_markdown",
    "paired_bootstrap",
    "point_metrics",
    "slice_table_markdown",
    "write_report",
]
