"""Spark as a Dagster resource: local[*] on a laptop, a cluster master or Spark Connect in Kubernetes."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from pipelines.config import setting
from pipelines.spark import spark_session, take_started


class SparkResource(ConfigurableResource):
    """Empty `remote`/`master` mean: SPARK_REMOTE (Spark Connect), then SPARK_MASTER, then `local[*]`.

    A JVM session (local or master) checks for Java 17+ first and fails with a clear message.
    """

    master: str = Field(default="", description="e.g. local[*] or spark://host:7077; empty = SPARK_MASTER")
    remote: str = Field(default="", description="Spark Connect URL sc://host:15002; empty = SPARK_REMOTE")
    require_cluster: bool = Field(
        default=False, description="fail instead of falling back to local[*] when no remote/master is set"
    )
    shuffle_partitions: int = Field(default=8, description="spark.sql.shuffle.partitions")
    driver_memory: str = Field(default="2g", description="spark.driver.memory for JVM sessions")
    conf: dict[str, str] = Field(default_factory=dict, description="extra Spark settings")

    def resolved(self) -> tuple[str | None, str | None]:
        remote = self.remote or setting("SPARK_REMOTE") or None
        master = self.master or setting("SPARK_MASTER") or None
        if not remote and not master:
            if self.require_cluster:
                from pipelines.spark import SparkSetupError

                raise SparkSetupError(
                    "no Spark cluster configured for this profile: set SPARK_REMOTE (sc://host:15002) or "
                    "SPARK_MASTER (spark://host:7077 / k8s://...)"
                )
            master = "local[*]"
        return remote, master

    def session(self) -> Any:
        """The process's SparkSession: the one started in the background during the read (waiting for it,
        see `pipelines.features.build.SparkDuringRead`), else created now; reused."""
        return take_started() or self.new_session()

    def new_session(self) -> Any:
        """A session from this configuration (pyspark hands back the running one if there is one)."""
        remote, master = self.resolved()
        return spark_session(
            remote=remote,
            master=master,
            app_name="flywheel-ingest",
            shuffle_partitions=self.shuffle_partitions,
            driver_memory=self.driver_memory,
            conf=self.conf,
        )
