"""The MLflow model registry as Flywheel uses it: versions are registered by the optimization stage, carry
their gate decision as tags, and aliases say what serves (`champion`), what passed the gate and waits
(`challenger`) and what served before (`previous-champion`). No stage-based API (deprecated since MLflow 2.9).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.errors import FlywheelError

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
DECISION_TAG = "flywheel.gate.decision"  # passed | rejected
REASON_TAG = "flywheel.gate.reason"


class RegistryError(FlywheelError):
    """A registry call failed; the message names the model, version or alias."""


def _client(tracking_uri: str | None = None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def register(model_uri: str, name: str, tags: Mapping[str, str], tracking_uri: str | None = None) -> str:
    """A new version of `name` from a logged model URI, tagged; returns the version number."""
    import mlflow

    client = _client(tracking_uri)
    try:
        client.get_registered_model(name)
    except Exception:  # not there yet (MlflowException RESOURCE_DOES_NOT_EXIST)
        client.create_registered_model(name, description="Registered by Flywheel's optimization stage")
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    return str(version.version)


def alias_version(name: str, alias: str, tracking_uri: str | None = None) -> str | None:
    """The version an alias points at, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(tracking_uri).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower():
            return None
        raise RegistryError(f"reading alias {alias!r} of model {name!r} failed: {exc}") from exc


def record_decision(
    name: str, version: str, passed: bool, reason: str, extra: Mapping[str, str] | None = None,
    tracking_uri: str | None = None,
) -> None:  # fmt: skip
    """Tag a version with its gate decision and reason (and any lineage tags)."""
    client = _client(tracking_uri)
    tags = {DECISION_TAG: "passed" if passed else "rejected", REASON_TAG: reason[:5000], **(extra or {})}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def make_challenger(name: str, version: str, tracking_uri: str | None = None) -> None:
    """A version that passed the gate waits under `challenger` for the rollout."""
    client = _client(tracking_uri)
    tags = client.get_model_version(name, version).tags
    if tags.get(DECISION_TAG) != "passed":
        raise RegistryError(f"{name} version {version} has not passed the gate ({tags.get(DECISION_TAG)!r}): "
                            "only a passing version becomes the challenger")  # fmt: skip
    client.set_registered_model_alias(name, CHALLENGER, version)


def withdraw_challenger(name: str, version: str, tracking_uri: str | None = None) -> bool:
    """A version rejected on a re-evaluation loses `challenger` if it held it; returns whether it did."""
    if alias_version(name, CHALLENGER, tracking_uri) != version:
        return False
    _client(tracking_uri).delete_registered_model_alias(name, CHALLENGER)
    return True


def promote(name: str, version: str, tracking_uri: str | None = None) -> str | None:
    """Move `champion` to a passing version, keep the old one under `previous-champion`, drop `challenger`
    when it pointed at this version; returns the previous champion's version."""
    client = _client(tracking_uri)
    if client.get_model_version(name, version).tags.get(DECISION_TAG) != "passed":
        raise RegistryError(f"{name} version {version} has not passed the gate: it cannot become the champion")
    previous = alias_version(name, CHAMPION, tracking_uri)
    if previous is not None and previous != version:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, previous)
    client.set_registered_model_alias(name, CHAMPION, version)
    if alias_version(name, CHALLENGER, tracking_uri) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    return previous
