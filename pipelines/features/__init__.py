"""The model table built with Spark from the raw events on a lakeFS branch (see pipelines.features.build)."""

from pipelines.features.build import model_table, model_table_schema, read_raw, vocabularies
from pipelines.features.split import split_code_column, split_of

__all__ = [
    "model_table",
    "model_table_schema",
    "read_raw",
    "split_code_column",
    "split_of",
    "vocabularies",
]
