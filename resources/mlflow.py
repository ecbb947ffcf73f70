"""MLflow tracking as a Dagster resource."""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field

from pipelines.errors import FlywheelError
from pipelines.redact import redact_url, split_userinfo


class MLflowResource(ConfigurableResource):
    """The tracking server (resources/profiles.py sets it from MLFLOW_TRACKING_URI)."""

    tracking_uri: str = Field(description="MLflow tracking server URL")
    experiment: str = Field(default="flywheel", description="Experiment for runs launched by Flywheel")
    request_timeout_s: int = Field(default=30, description="Timeout of every MLflow HTTP request")

    def resolved_tracking_uri(self) -> str:
        value = self.tracking_uri.strip()
        if not value:
            raise FlywheelError("no MLflow server configured: run `flywheel up` or set MLFLOW_TRACKING_URI")
        return value

    def display_uri(self) -> str:
        """The URI to show (metadata, logs, messages): without `user:token@` or secret query values."""
        return redact_url(self.resolved_tracking_uri())

    def credentials(self) -> tuple[str, dict[str, str]]:
        """(URI without userinfo, MLFLOW_TRACKING_USERNAME/PASSWORD taken from it): MLflow reads both
        variables, and a URI without credentials cannot leak them into its error messages."""
        uri, user, password = split_userinfo(self.resolved_tracking_uri())
        found = {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
        return uri, {k: v for k, v in found.items() if v is not None}

    def configure(self) -> str:
        """Point the mlflow module at the server (with request timeouts) and return the URI (no credentials)."""
        import mlflow

        uri, credentials = self.credentials()
        os.environ.update(credentials)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(self.request_timeout_s))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        mlflow.set_tracking_uri(uri)
        return uri

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.configure())

    def env(self) -> dict[str, str]:
        """Variables to hand to an external process (torchrun, a pod) so it reaches the same server.

        Credentials from the URI come as MLFLOW_TRACKING_USERNAME/PASSWORD, which the Kubernetes launcher
        never writes into a pod spec (pods read them from the `flywheel-mlflow` Secret)."""
        uri, credentials = self.credentials()
        return {
            **credentials,
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_EXPERIMENT_NAME": self.experiment,
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.request_timeout_s),
        }
