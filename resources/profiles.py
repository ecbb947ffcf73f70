"""The one place that picks resources per profile (FLYWHEEL_PROFILE=local|k8s): one dict each, every value
that comes from the environment written as `dagster.EnvVar`, so the UI shows which variable sets it
(LAKEFS_TIMEOUT_S, a float, is parsed here: EnvVar has no float form).

Assets, checks, jobs and sensors are the same objects in both profiles; only these dicts differ.
The local profile first exports `.flywheel/stack.env` (written by `flywheel up`) into the environment, so
the EnvVars below find the embedded stack's endpoints and credentials.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar

from pipelines.config import float_setting, int_setting, load_stack_env
from pipelines.config import profile as current_profile
from pipelines.lake import DEFAULT_REPOSITORY
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource
from resources.records_io import RecordIOManager
from resources.serving import ServingResource
from resources.spark import SparkResource
from resources.training import K8sTrainingLauncher, LocalTrainingLauncher


def optional(name: str, default: Any, kind: type = str, minimum: int | None = None) -> Any:
    """EnvVar(name) when the environment sets it, else the default (shown as a literal in the UI). A whole
    number is checked here, so a bad value is one sentence naming the variable."""
    if name not in os.environ:  # EnvVar reads os.environ only (the local profile exported stack.env first)
        return default
    if kind is int:
        int_setting(name, default=default, minimum=minimum)
        return EnvVar.int(name)
    return EnvVar(name)


def _lakefs() -> LakeFSResource:
    return LakeFSResource(
        endpoint=EnvVar("LAKEFS_ENDPOINT"),
        access_key_id=EnvVar("LAKEFS_ACCESS_KEY_ID"),
        secret_access_key=EnvVar("LAKEFS_SECRET_ACCESS_KEY"),
        repository=optional("LAKEFS_REPOSITORY", DEFAULT_REPOSITORY),
        storage_namespace=optional("LAKEFS_STORAGE_NAMESPACE", ""),
        read_timeout_s=float_setting("LAKEFS_TIMEOUT_S", default=60.0, positive=True),
    )


def _serving() -> ServingResource:
    """Serving's URL (stack.env locally, the Service in Kubernetes) and its admin token (a Secret there)."""
    return ServingResource(
        url=optional("FLYWHEEL_SERVING_URL", ""), admin_token=optional("FLYWHEEL_SERVING_ADMIN_TOKEN", "")
    )


def local() -> dict[str, Any]:
    """The embedded stack of `flywheel up`: every endpoint on 127.0.0.1, training as local torchrun."""
    load_stack_env()
    return {
        "kafka": KafkaResource(bootstrap_servers=EnvVar("KAFKA_BOOTSTRAP_SERVERS")),
        "lakefs": _lakefs(),
        "mlflow": MLflowResource(tracking_uri=EnvVar("MLFLOW_TRACKING_URI")),
        "spark": SparkResource(remote=optional("SPARK_REMOTE", ""), master=optional("SPARK_MASTER", "local[*]")),
        "trainer": LocalTrainingLauncher(nproc_per_node=optional("FLYWHEEL_TRAINING_NPROC", 1, int, minimum=1)),
        "io_manager": RecordIOManager(base_dir=optional("FLYWHEEL_RECORDS_DIR", "")),
        "serving": _serving(),
    }


def k8s() -> dict[str, Any]:
    """Managed services from the environment (deploy/k8s/base/config.yaml), training as Kubernetes GPU jobs."""
    return {
        "kafka": KafkaResource(bootstrap_servers=EnvVar("KAFKA_BOOTSTRAP_SERVERS")),
        "lakefs": _lakefs(),
        "mlflow": MLflowResource(tracking_uri=EnvVar("MLFLOW_TRACKING_URI")),
        "spark": SparkResource(
            remote=optional("SPARK_REMOTE", ""), master=optional("SPARK_MASTER", ""), require_cluster=True
        ),
        "trainer": K8sTrainingLauncher(
            image=optional("FLYWHEEL_TRAINING_IMAGE", ""),
            namespace=optional("FLYWHEEL_K8S_NAMESPACE", "flywheel"),
            gpus_per_node=optional("FLYWHEEL_TRAINING_GPUS", 1, int, minimum=0),
        ),
        "io_manager": RecordIOManager(base_dir=EnvVar("FLYWHEEL_RECORDS_DIR")),
        "serving": _serving(),
    }


def build_resources(profile: str | None = None) -> dict[str, Any]:
    name = profile or current_profile()
    return k8s() if name == "k8s" else local()
