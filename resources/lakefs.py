"""lakeFS as a Dagster resource: settings in config, behaviour in `pipelines.lake`."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from pipelines.lake import DEFAULT_REPOSITORY, Lake, LakeFSSettings, WriteAuditPublish


class LakeFSResource(ConfigurableResource):
    """The lakeFS repository the pipeline versions its datasets in, through the official SDK.

    resources/profiles.py fills it from LAKEFS_* with `dagster.EnvVar`, so secrets never appear as literals.
    """

    endpoint: str = Field(description="lakeFS URL, e.g. http://127.0.0.1:8000")
    access_key_id: str
    secret_access_key: str
    repository: str = Field(default=DEFAULT_REPOSITORY, description="repository id")
    storage_namespace: str = Field(default="", description="for creating the repository; empty = local://<repo>")
    connect_timeout_s: float = Field(default=5.0, description="timeout to open a connection to lakeFS")
    read_timeout_s: float = Field(default=60.0, gt=0, description="timeout waiting for each lakeFS response")

    _lake: Lake | None = PrivateAttr(default=None)

    def settings(self) -> LakeFSSettings:
        return LakeFSSettings(
            endpoint=self.endpoint,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            repository=self.repository,
            storage_namespace=self.storage_namespace or None,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
        )

    @property
    def lake(self) -> Lake:
        """The client facade (created once per resource instance)."""
        if self._lake is None:
            self._lake = Lake(self.settings())
        return self._lake

    def env(self) -> dict[str, str]:
        """Variables for an external process (torchrun, a pod) to reach the same repository. Pods get the
        credentials from a Secret instead (the Kubernetes launcher drops them from the pod spec)."""
        return {
            "LAKEFS_ENDPOINT": self.endpoint,
            "LAKEFS_REPOSITORY": self.repository,
            "LAKEFS_ACCESS_KEY_ID": self.access_key_id,
            "LAKEFS_SECRET_ACCESS_KEY": self.secret_access_key,
            "LAKEFS_TIMEOUT_S": f"{self.read_timeout_s:g}",
        }

    # The calls assets make most, so they read as `lakefs.resolve(...)`; everything else is on `.lake`.

    def ensure_repository(self) -> None:
        self.lake.ensure_repository()

    def resolve(self, ref: str) -> str:
        return self.lake.resolve(ref)

    def uri(self, ref: str, path: str = "") -> str:
        return self.lake.uri(ref, path)

    def wap(self, run_id: str, prefix: str = "ingest", into: str = "main") -> WriteAuditPublish:
        return self.lake.wap(run_id, prefix, into)

    def read_json(self, ref: str, path: str):
        return self.lake.read_json(ref, path)

    def list_paths(self, ref: str, prefix: str = "") -> list[str]:
        return self.lake.list_paths(ref, prefix)
