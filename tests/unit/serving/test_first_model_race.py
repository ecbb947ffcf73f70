"""The canary sensor may promote the first model between the gate and the `deployment` step (the daemon ticks
on its own): `deployment` then reports that promotion instead of failing on the missing `challenger` alias.
Against MLflow's own SQLite store (no server)."""

from __future__ import annotations

import pytest

from pipelines import registry
from pipelines.serving import control
from pipelines.serving.control import RolloutError
from pipelines.spec.model import RolloutSpec
from tests.unit.mlflow_sqlite import logged_model

pytestmark = pytest.mark.slow  # MLflow's schema migrations take seconds


def passing_challenger(name: str, tracking: str) -> str:
    version = registry.register(logged_model(), name, {}, tracking)
    registry.record_decision(name, version, passed=True, reason="all checks passed", tracking_uri=tracking)
    registry.make_challenger(name, version, tracking)
    return version


def test_deployment_after_the_sensor_promoted_the_first_model(tracking: str) -> None:
    first = passing_challenger("m", tracking)
    by_sensor = control.start_rollout("m", RolloutSpec(), tracking_uri=tracking)  # the sensor's first_model path
    assert by_sensor.action == "promoted_first"
    with pytest.raises(RolloutError, match="no `challenger` alias"):  # what deployment met before the fix
        control.start_rollout("m", RolloutSpec(), tracking_uri=tracking)
    again = control.start_rollout("m", RolloutSpec(), tracking_uri=tracking, version=first)
    assert (again.action, again.version) == ("promoted_first", first)
    assert registry.alias_version("m", registry.CHAMPION, tracking) == first


def test_a_version_that_is_not_the_promoted_first_model_still_fails(tracking: str) -> None:
    first = passing_challenger("m", tracking)
    control.start_rollout("m", RolloutSpec(), tracking_uri=tracking)
    with pytest.raises(RolloutError, match="no `challenger` alias"):
        control.start_rollout("m", RolloutSpec(), tracking_uri=tracking, version=str(int(first) + 1))
