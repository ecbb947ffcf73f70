"""pipelines.registry against MLflow's own SQLite store (no server): versions carry their gate decision, only a
passing version gets an alias, and promotion keeps the previous champion reachable."""

from __future__ import annotations

import mlflow
import pytest

from pipelines import registry
from tests.unit.mlflow_sqlite import logged_model

pytestmark = pytest.mark.slow  # MLflow's schema migrations take seconds


def test_only_a_passing_version_becomes_challenger_then_champion(tracking: str) -> None:
    bad = registry.register(logged_model(), "m", {"flywheel.form": "torch-fp32"}, tracking)
    registry.record_decision("m", bad, passed=False, reason="AUC 0.51 < 0.75", tracking_uri=tracking)
    with pytest.raises(registry.RegistryError, match="has not passed the gate"):
        registry.make_challenger("m", bad, tracking)
    with pytest.raises(registry.RegistryError, match="cannot become the champion"):
        registry.promote("m", bad, tracking)
    assert registry.alias_version("m", registry.CHALLENGER, tracking) is None

    good = registry.register(logged_model(), "m", {}, tracking)
    registry.record_decision("m", good, passed=True, reason="all checks passed", tracking_uri=tracking)
    registry.make_challenger("m", good, tracking)
    assert registry.alias_version("m", registry.CHALLENGER, tracking) == good
    tags = mlflow.MlflowClient().get_model_version("m", bad).tags
    assert tags[registry.DECISION_TAG] == "rejected" and "0.51" in tags[registry.REASON_TAG]


def test_promotion_keeps_the_previous_champion(tracking: str) -> None:
    first = registry.register(logged_model(), "p", {}, tracking)
    registry.record_decision("p", first, passed=True, reason="ok", tracking_uri=tracking)
    assert registry.promote("p", first, tracking) is None
    second = registry.register(logged_model(), "p", {}, tracking)
    registry.record_decision("p", second, passed=True, reason="ok", tracking_uri=tracking)
    registry.make_challenger("p", second, tracking)
    assert registry.promote("p", second, tracking) == first
    assert registry.alias_version("p", registry.CHAMPION, tracking) == second
    assert registry.alias_version("p", registry.PREVIOUS_CHAMPION, tracking) == first
    assert registry.alias_version("p", registry.CHALLENGER, tracking) is None
    assert registry.alias_version("no-such-model", registry.CHAMPION, tracking) is None
