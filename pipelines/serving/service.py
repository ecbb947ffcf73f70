"""A serving process from its settings (environment, then .flywheel/stack.env): what `flywheel serve` runs.

Settings: MLFLOW_TRACKING_URI, FLYWHEEL_SERVING_MODEL (default: the spec's name), FLYWHEEL_SERVING_POLL_SECONDS
(5; how often the aliases are read), FLYWHEEL_ONLINE_STORE_URL (read when first needed, so a store started
after serving is found), KAFKA_BOOTSTRAP_SERVERS and FLYWHEEL_PREDICTIONS_TOPIC (predictions),
FLYWHEEL_SERVING_ADMIN_TOKEN, FLYWHEEL_SERVING_MAX_BATCH (64 records per model call), FLYWHEEL_SERVING_BATCH_WAIT_MS
(2), FLYWHEEL_SERVING_MAX_RECORDS (256 per request), FLYWHEEL_SERVING_MAX_BODY_BYTES (1 MiB),
FLYWHEEL_SERVING_THREADS (1 intra-op thread per model call: requests run side by side instead),
FLYWHEEL_SERVING_PREDLOG_QUEUE (10000 records), FLYWHEEL_SERVING_BATCH_WORKERS (0: micro-batches are scored on
the event loop, the least CPU per request; n: in n worker threads).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from pipelines.config import float_setting, int_setting, setting
from pipelines.features.online.api import OnlineFeatures, OnlineStoreUnavailable
from pipelines.serving import control
from pipelines.serving.app import ServingConfig, ServingService
from pipelines.serving.models import ModelFollower, mlflow_loader
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.security import admin_token
from pipelines.serving.state import MlflowRegistrySource
from pipelines.spec.model import DatasetSpec, RolloutSpec

STORE_URL = "FLYWHEEL_ONLINE_STORE_URL"
DEFAULT_TOPIC = "predictions"
DEFAULT_PORT = 8080


class LazyOnlineStore:
    """The spec's online store, connected on first use (and again after a failed connect): a store that
    starts after serving, or is not configured yet, is a 503 with the reason, never a crash."""

    def __init__(self, spec: DatasetSpec, timeout_s: float = 0.5) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self._inner: OnlineFeatures | None = None
        self._lock = threading.Lock()

    def _connect(self) -> OnlineFeatures:
        with self._lock:
            if self._inner is None:
                from pipelines.features.online import connect

                try:
                    self._inner = connect(self.spec, setting(STORE_URL), self.timeout_s)
                except Exception as exc:  # StoreNotConfigured, a bad URL
                    raise OnlineStoreUnavailable(str(exc)) from None
            return self._inner

    def lookup(self, entities: Sequence[str], event_times: Sequence[int]) -> list[dict[str, float]]:
        return self._connect().lookup(entities, event_times)


def config_from_settings(model_name: str) -> ServingConfig:
    return ServingConfig(
        model_name=model_name,
        max_records=int_setting("FLYWHEEL_SERVING_MAX_RECORDS", default=256, minimum=1),
        max_body_bytes=int_setting("FLYWHEEL_SERVING_MAX_BODY_BYTES", default=1 << 20, minimum=1024),
        max_batch=int_setting("FLYWHEEL_SERVING_MAX_BATCH", default=64, minimum=1),
        max_wait_s=float_setting("FLYWHEEL_SERVING_BATCH_WAIT_MS", default=2.0, minimum=0) / 1000,
        batch_workers=int_setting("FLYWHEEL_SERVING_BATCH_WORKERS", default=0, minimum=0),
    )


def rollout_control(name: str, plan: RolloutSpec, tracking_uri: str | None):
    """The admin endpoint's rollout control, over the registry (pipelines.serving.control)."""

    def apply(action: str, body: dict[str, Any]) -> dict[str, Any]:
        if action == "start":
            strategy = body.get("strategy")
            steps = body.get("steps")
            chosen = plan if steps is None else RolloutSpec.model_validate({**plan.model_dump(), "steps": steps})
            outcome = control.start_rollout(name, chosen, strategy, tracking_uri)
        else:
            reason = str(body.get("reason") or "by an operator through /admin/rollout")
            outcome = control.decide(name, action, reason, tracking_uri)
        return {"action": outcome.action, "version": outcome.version, "message": outcome.message}

    return apply


def build_service(spec: DatasetSpec, model_name: str | None = None) -> ServingService:
    name = model_name or setting("FLYWHEEL_SERVING_MODEL") or spec.name
    # Bounded registry calls: a poll against an MLflow that is down fails in seconds, and serving goes on with
    # the models it has (MLflow's defaults wait minutes, with retries).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    tracking_uri = setting("MLFLOW_TRACKING_URI")
    threads = int_setting("FLYWHEEL_SERVING_THREADS", default=1, minimum=1)
    follower = ModelFollower(
        MlflowRegistrySource(name, tracking_uri),
        mlflow_loader(name, tracking_uri, threads),
        poll_s=float_setting("FLYWHEEL_SERVING_POLL_SECONDS", default=5.0, positive=True),
    )
    service = ServingService(
        spec=spec,
        config=config_from_settings(name),
        follower=follower,
        store=LazyOnlineStore(spec),
        admin_token=admin_token(),
        rollout_control=rollout_control(name, spec.rollout, tracking_uri),
    )
    service.predlog = PredictionLog(
        setting("KAFKA_BOOTSTRAP_SERVERS"),
        setting("FLYWHEEL_PREDICTIONS_TOPIC") or DEFAULT_TOPIC,
        service.metrics["flywheel_serving_prediction_log_dropped"],
        maxsize=int_setting("FLYWHEEL_SERVING_PREDLOG_QUEUE", default=10_000, minimum=1),
    )
    return service
