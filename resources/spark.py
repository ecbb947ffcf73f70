"""Spark as a Dagster resource: Spark Connect (`remote`), a cluster master, or `local[*]` in this process."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource, in_process_executor
from pydantic import Field

from pipelines.features.build import SparkDuringRead
from pipelines.spark import SparkSetupError, spark_session, take_started

# Executors that run every step of a run in the run's own process (the second is what
# `JobDefinition.execute_in_process` and `materialize` substitute for the job's executor).
_ONE_PROCESS_EXECUTORS = {in_process_executor.name, "execute_in_process_executor"}


class SparkResource(ConfigurableResource):
    """resources/profiles.py sets `remote` from SPARK_REMOTE and `master` from SPARK_MASTER.

    A JVM session (local or master) checks for Java 17+ first and fails with a clear message.
    """

    master: str = Field(default="local[*]", description="e.g. local[*] or spark://host:7077; used without remote")
    remote: str = Field(default="", description="Spark Connect URL sc://host:15002; wins over master when set")
    require_cluster: bool = Field(
        default=False, description="fail instead of running local[*] when neither remote nor a cluster master is set"
    )
    shuffle_partitions: int = Field(default=8, description="spark.sql.shuffle.partitions")
    driver_memory: str = Field(default="2g", description="spark.driver.memory for JVM sessions")
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

    def during_read(self, context: Any, spec: Any) -> SparkDuringRead:
        """Start the JVM while Kafka is read when the next step runs in this process (ingest_job's in-process
        executor); with one process per step a session started now would be thrown away."""
        shares_process = context.job_def.executor_def.name in _ONE_PROCESS_EXECUTORS
        return SparkDuringRead(self.new_session, spec, enabled=shares_process)
