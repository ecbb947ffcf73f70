"""The one place that picks resources per profile (FLYWHEEL_PROFILE=local|k8s).

Assets, checks, jobs and sensors are the same objects in both profiles; only this dict differs.
Each stage adds its resources in `_local()` and `_k8s()` under the key its assets ask for.
"""

from __future__ import annotations

from typing import Any

from pipelines.config import profile as current_profile
from resources.kafka import KafkaResource
from resources.lakefs import LakeFSResource
from resources.mlflow import MLflowResource
from resources.spark import SparkResource
from resources.training import K8sTrainingLauncher, LocalTrainingLauncher


def _common() -> dict[str, Any]:
    return {
        "kafka": KafkaResource(),
        "mlflow": MLflowResource(),
    }


def _local() -> dict[str, Any]:
    return {
        **_common(),
        "lakefs": LakeFSResource(),
        "spark": SparkResource(master="local[*]"),
        "trainer": LocalTrainingLauncher(),
    }


def _k8s() -> dict[str, Any]:
    return {
        **_common(),
        "lakefs": LakeFSResource(),
        "spark": SparkResource(require_cluster=True),
        "trainer": K8sTrainingLauncher(),
    }


def build_resources(profile: str | None = None) -> dict[str, Any]:
    name = profile or current_profile()
    return _k8s() if name == "k8s" else _local()
