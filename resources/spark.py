"""Spark as a Dagster resource: local[*] on a laptop, a cluster master or Spark Connect in Kubernetes."""

from __future__ import annotations

import threading
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from pipelines.config import setting
from pipelines.features.spark import spark_session, take_started
from pipelines.spec.model import DatasetSpec


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
                from pipelines.features.spark import SparkSetupError

                raise SparkSetupError(
                    "no Spark cluster configured for this profile: set SPARK_REMOTE (sc://host:15002) or "
                    "SPARK_MASTER (spark://host:7077 / k8s://...)"
                )
            master = "local[*]"
        return remote, master

    def prestart(self, spec: DatasetSpec, while_reading: threading.Event) -> None:
        """Start the session on a background thread (warmed up if Kafka is still being read when it is up),
        for a later step of the same run process: see `pipelines.features.build.start_warm_session`."""
        from pipelines.features.build import start_warm_session

        start_warm_session(self._create, spec, while_reading)

    def session(self) -> Any:
        """The process's SparkSession: the one `prestart` began (waiting for it), else created now; reused."""
        return take_started() or self._create()

    def _create(self) -> Any:
        remote, master = self.resolved()
        return spark_session(
            remote=remote,
            master=master,
            app_name="flywheel-ingest",
            shuffle_partitions=self.shuffle_partitions,
            driver_memory=self.driver_memory,
            conf=self.conf,
        )
