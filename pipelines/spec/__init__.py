"""Dataset specs: `load_spec()` returns the spec picked by FLYWHEEL_SPEC (default: built-in transactions)."""

from pipelines.spec.events import EventCheck, check_event
from pipelines.spec.loader import builtin_specs, load_spec, parse_spec, resolve_spec_path, spec_hash, spec_reference
from pipelines.spec.model import (
    Aggregate,
    BooleanFeature,
    CategoricalFeature,
    DatasetSpec,
    NumericFeature,
)

__all__ = [
    "Aggregate",
    "BooleanFeature",
    "CategoricalFeature",
    "DatasetSpec",
    "EventCheck",
    "NumericFeature",
    "builtin_specs",
    "check_event",
    "load_spec",
    "parse_spec",
    "resolve_spec_path",
    "spec_hash",
    "spec_reference",
]
