"""lakeFS as a Dagster resource: settings in config, behaviour in `pipelines.lake`."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from pipelines.lake import DEFAULT_REPOSITORY, Lake, LakeFSSettings, WriteAuditPublish


class LakeFSResource(ConfigurableResource):
    """The lakeFS repository the pipeline versions its datasets in, through the official SDK.

    Empty fields mean: the LAKEFS_* environment variables, then `.flywheel/stack.env`. In deployed
    code locations pass secrets as `dagster.EnvVar("LAKEFS_SECRET_ACCESS_KEY")`, not literals.
    """

    endpoint: str = Field(default="", description="lakeFS URL, e.g. http://127.0.0.1:8000; empty = LAKEFS_ENDPOINT")
    access_key_id: str = Field(default="", description="empty = LAKEFS_ACCESS_KEY_ID")
    secret_access_key: str = Field(default="", description="empty = LAKEFS_SECRET_ACCESS_KEY")
    repository: str = Field(default="", description=f"repository id; empty = LAKEFS_REPOSITORY or {DEFAULT_REPOSITORY}")
    storage_namespace: str = Field(default="", description="for creating the repository; empty = local://<repo>")
    connect_timeout_s: float = Field(default=5.0, description="timeout to open a connection to lakeFS")
    read_timeout_s: float = Field(
        default=0.0, description="timeout waiting for each lakeFS response; 0 = LAKEFS_TIMEOUT_S, else 60"
    )

    _lake: Lake | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> LakeFSResource:
        """Every field filled from the environment / stack.env now (fails fast if something is missing)."""
        s = LakeFSSettings.from_env()
        return cls(
            endpoint=s.endpoint,
            access_key_id=s.access_key_id,
            secret_access_key=s.secret_access_key,
            repository=s.repository,
            storage_namespace=s.storage_namespace or "",
            read_timeout_s=s.read_timeout_s,
        )

    def settings(self) -> LakeFSSettings:
        return LakeFSSettings.from_env(
            endpoint=self.endpoint,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            repository=self.repository,
            storage_namespace=self.storage_namespace,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s or None,  # 0: let LAKEFS_TIMEOUT_S (or its default) decide
        )

    @property
    def lake(self) -> Lake:
        """The client facade (created once per resource instance)."""
        if self._lake is None:
            self._lake = Lake(self.settings())
        return self._lake

    # The calls assets make most, so they read as `lakefs.resolve(...)`; everything else is on `.lake`.

    def ensure_repository(self) -> None:
        self.lake.ensure_repository()

    def resolve(self, ref: str) -> str:
        return self.lake.resolve(ref)

    def uri(self, ref: str, path: str = "") -> str:
        return self.lake.uri(ref, path)

    def wap(self, run_id: str, prefix: str = "ingest", source: str = "main") -> WriteAuditPublish:
        return self.lake.wap(run_id, prefix, source)

    def read_json(self, ref: str, path: str):
        return self.lake.read_json(ref, path)

    def list_paths(self, ref: str, prefix: str = "") -> list[str]:
        return self.lake.list_paths(ref, prefix)
