"""Spark as a Dagster resource: the Spark Connect server at `remote` (SPARK_REMOTE, both profiles), a cluster
master, or, with neither (tests, a bare `dagster job execute` without `flywheel up`), an in-process session
said in one log line."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from pipelines.spark import SparkSetupError, connect_or_local


class SparkResource(ConfigurableResource):
    """resources/profiles.py sets `remote` from SPARK_REMOTE and `master` from SPARK_MASTER.

    A JVM session (local or master) checks for Java 17+ first and fails with a clear message.
    """

    master: str = Field(default="local[*]", description="e.g. local[*] or spark://host:7077; used without remote")
    remote: str = Field(default="", description="Spark Connect URL sc://host:15002; wins over master when set")
    require_cluster: bool = Field(
        default=False,
        description="fail instead of running local[*] when neither remote nor a cluster master is set, or when "
        "the Spark Connect server does not answer",
    )
    shuffle_partitions: int = Field(default=8, description="spark.sql.shuffle.partitions")
    driver_memory: str = Field(default="2g", description="spark.driver.memory for an in-process JVM")
    conf: dict[str, str] = Field(default_factory=dict, description="extra Spark settings")

    def resolved(self) -> tuple[str | None, str | None]:
        remote = self.remote.strip() or None
        master = self.master.strip() or None
        if self.require_cluster and not remote and (master is None or master.startswith("local")):
            raise SparkSetupError(
                "no Spark cluster configured for this profile: set SPARK_REMOTE (sc://host:15002) or "
                "SPARK_MASTER (spark://host:7077 / k8s://...)"
            )
        return remote, master or "local[*]"

    def session(self) -> Any:
        """The Connect server's session when one answers at `remote`, else an in-process one (logged)."""
        remote, master = self.resolved()
        return connect_or_local(
            remote,
            master,
            allow_fallback=not self.require_cluster,
            app_name="flywheel-ingest",
            shuffle_partitions=self.shuffle_partitions,
            driver_memory=self.driver_memory,
            conf=self.conf,
        )
