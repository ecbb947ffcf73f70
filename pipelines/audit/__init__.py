"""Audit: the lineage chain of a model version read back from lakeFS, MLflow and Dagster, and its reports."""
