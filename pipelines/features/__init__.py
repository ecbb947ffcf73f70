"""The model table built with Spark from the raw events on a lakeFS branch (see pipelines.features.build)."""

from pipelines.features.build import build_model_table, model_table_schema, to_arrow, vocabularies
from pipelines.features.spark import SparkSetupError, check_java, is_remote, spark_session
from pipelines.features.split import split_column, split_of

__all__ = [
    "SparkSetupError",
    "build_model_table",
    "check_java",
    "is_remote",
    "model_table_schema",
    "spark_session",
    "split_column",
    "split_of",
    "to_arrow",
    "vocabularies",
]
