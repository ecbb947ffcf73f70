"""MLflow tracking as a Dagster resource."""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field

from pipelines.config import setting
from pipelines.errors import FlywheelError


class MLflowResource(ConfigurableResource):
    """Empty `tracking_uri` means: MLFLOW_TRACKING_URI, then `.flywheel/stack.env`."""

    tracking_uri: str = Field(default="", description="MLflow tracking server URL; empty = from the environment")
    experiment: str = Field(default="flywheel", description="Experiment for runs launched by Flywheel")
    request_timeout_s: int = Field(default=30, description="Timeout of every MLflow HTTP request")

    def resolved_tracking_uri(self) -> str:
        value = self.tracking_uri or setting("MLFLOW_TRACKING_URI")
        if not value:
            raise FlywheelError("no MLflow server configured: run `flywheel up` or set MLFLOW_TRACKING_URI")
        return value

    def configure(self) -> str:
        """Point the mlflow module at the server (with request timeouts) and return the URI."""
        import mlflow

        uri = self.resolved_tracking_uri()
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(self.request_timeout_s))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        mlflow.set_tracking_uri(uri)
        return uri

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.configure())

    def env(self) -> dict[str, str]:
        """Variables to hand to an external process (torchrun, a pod) so it reaches the same server."""
        return {
            "MLFLOW_TRACKING_URI": self.resolved_tracking_uri(),
            "MLFLOW_EXPERIMENT_NAME": self.experiment,
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.request_timeout_s),
        }
