"""The rollout's shared state: a JSON tag on the registered model, next to the aliases it belongs with.

Every serving replica reads aliases and this tag in one call (`get_registered_model`), so all replicas route
alike; the `deployment` asset writes it when a rollout starts, the canary analysis sensor when it advances,
promotes or rolls back. The aliases stay the truth of what serves: the tag only says how traffic is split
between `champion` and `challenger` while a rollout progresses.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pipelines import registry
from pipelines.serving.models import RegistryView
from pipelines.serving.rollout import Rollout

ROLLOUT_TAG = "flywheel.rollout"
DECISION_TAG = "flywheel.rollout.decision"  # on the version: promoted | rolled_back
REASON_TAG = "flywheel.rollout.reason"

log = logging.getLogger(__name__)


def _client(tracking_uri: str | None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def parse_rollout(text: str | None) -> Rollout | None:
    if not text:
        return None
    try:
        return Rollout.from_dict(json.loads(text))
    except (ValueError, TypeError) as exc:
        log.warning("ignoring the registered model's %s tag: %s", ROLLOUT_TAG, exc)
        return None


class MlflowRegistrySource:
    """RegistrySource over MLflow: aliases and the rollout tag of one registered model, one request."""

    def __init__(self, name: str, tracking_uri: str | None) -> None:
        self.name = name
        self.tracking_uri = tracking_uri

    def read(self) -> RegistryView:
        from mlflow.exceptions import MlflowException

        try:
            model = _client(self.tracking_uri).get_registered_model(self.name)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")):
                return RegistryView(None, None, None)  # nothing registered yet: live, not ready
            raise
        aliases = dict(model.aliases or {})
        return RegistryView(
            champion=_text(aliases.get(registry.CHAMPION)),
            challenger=_text(aliases.get(registry.CHALLENGER)),
            rollout=parse_rollout((model.tags or {}).get(ROLLOUT_TAG)),
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def read_rollout(name: str, tracking_uri: str | None = None) -> Rollout | None:
    return MlflowRegistrySource(name, tracking_uri).read().rollout


def write_rollout(name: str, rollout: Rollout, tracking_uri: str | None = None) -> None:
    _client(tracking_uri).set_registered_model_tag(name, ROLLOUT_TAG, json.dumps(rollout.to_dict(), sort_keys=True))


def tag_decision(name: str, version: str, decision: str, reason: str, tracking_uri: str | None = None) -> None:
    client = _client(tracking_uri)
    client.set_model_version_tag(name, version, DECISION_TAG, decision)
    client.set_model_version_tag(name, version, REASON_TAG, reason[:5000])
