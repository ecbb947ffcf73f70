"""Dagster resources: thin ConfigurableResources over the clients in `pipelines`."""
