"""The Great Expectations suite of a model-table batch (the rows a run adds), generated from the dataset spec.

Nothing here is hand-written per dataset: columns and order, nulls, numeric ranges and integer-ness,
allowed categorical values, booleans, unique event ids, the label's values and rate (the spec's gates),
the split's values, and non-negative, non-null aggregates. The row-count minimum is a property of the whole
dataset, checked from the stored batch summaries (pipelines.quality.validate.dataset_checks).
"""

from __future__ import annotations

from typing import Any

from pipelines.layout import SPLIT_COLUMN, SPLITS, feature_table_columns
from pipelines.spec.model import BooleanFeature, CategoricalFeature, DatasetSpec, NumericFeature

# pandas dtypes accepted per spec type (to_pandas of the Arrow table; nullable ints stay Int64)
INT_TYPES = ["int64", "int32", "Int64Dtype", "Int32Dtype"]
FLOAT_TYPES = ["float64", "Float64Dtype"]
STRING_TYPES = ["object", "str", "StringDtype"]
BOOL_TYPES = ["bool", "BooleanDtype"]


def suite_name(spec: DatasetSpec) -> str:
    return f"{spec.name}_model_table"


def expectation_configs(spec: DatasetSpec) -> list[Any]:
    """The expectations of the suite, as GX 1.x expectation objects."""
    import great_expectations.expectations as gxe

    out: list[Any] = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=feature_table_columns(spec)),
        gxe.ExpectColumnValuesToBeUnique(column=spec.event_id),
        gxe.ExpectColumnValuesToBeInSet(column=spec.label, value_set=[0, 1]),
        gxe.ExpectColumnMeanToBeBetween(
            column=spec.label, min_value=spec.gates.label_rate_min, max_value=spec.gates.label_rate_max
        ),
        gxe.ExpectColumnValuesToBeInSet(column=SPLIT_COLUMN, value_set=list(SPLITS)),
        gxe.ExpectColumnValuesToBeInTypeList(column=spec.event_id, type_list=STRING_TYPES),
        gxe.ExpectColumnValuesToBeInTypeList(column=spec.timestamp, type_list=INT_TYPES),
        gxe.ExpectColumnValuesToBeInTypeList(column=spec.label, type_list=INT_TYPES),
    ]
    if spec.entity_key:
        out.append(gxe.ExpectColumnValuesToBeInTypeList(column=spec.entity_key, type_list=STRING_TYPES))
    for name in (*spec.reserved_fields, SPLIT_COLUMN):
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=name))
    for f in spec.features:
        if not f.nullable:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=f.name))
        if isinstance(f, NumericFeature):
            out.append(
                gxe.ExpectColumnValuesToBeInTypeList(
                    column=f.name, type_list=INT_TYPES if f.integer else FLOAT_TYPES + INT_TYPES
                )
            )
            if f.min is not None or f.max is not None:
                out.append(gxe.ExpectColumnValuesToBeBetween(column=f.name, min_value=f.min, max_value=f.max))
        elif isinstance(f, CategoricalFeature):
            out.append(gxe.ExpectColumnValuesToBeInTypeList(column=f.name, type_list=STRING_TYPES))
            out.append(gxe.ExpectColumnValuesToBeInSet(column=f.name, value_set=list(f.values)))
        elif isinstance(f, BooleanFeature):
            out.append(gxe.ExpectColumnValuesToBeInTypeList(column=f.name, type_list=BOOL_TYPES))
    for agg in spec.aggregates:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=agg.name))
        out.append(gxe.ExpectColumnValuesToBeInTypeList(column=agg.name, type_list=FLOAT_TYPES))
        low = -1.0 if agg.function == "seconds_since_last" else None
        if agg.function == "count" or low is not None:
            out.append(gxe.ExpectColumnValuesToBeBetween(column=agg.name, min_value=low or 0.0))
    return out


def build_suite(spec: DatasetSpec) -> Any:
    """An `ExpectationSuite` (not yet added to a context) named after the spec."""
    import great_expectations as gx

    return gx.ExpectationSuite(name=suite_name(spec), expectations=expectation_configs(spec))
