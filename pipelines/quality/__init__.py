"""Data quality gates: a Great Expectations suite generated from the spec, plus dataset checks."""

from pipelines.quality.suite import build_suite, expectation_configs, suite_name
from pipelines.quality.validate import CheckResult, ValidationSummary, dataset_checks, validate_model_table

__all__ = [
    "CheckResult",
    "ValidationSummary",
    "build_suite",
    "dataset_checks",
    "expectation_configs",
    "suite_name",
    "validate_model_table",
]
