"""Flywheel compute: plain Python that runs in any process or pod. Never imports dagster."""
