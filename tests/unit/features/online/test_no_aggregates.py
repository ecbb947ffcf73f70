"""A spec without aggregates needs no online store: no service is started for it, the updater says so and
exits 0, and serving's lookups are empty."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.devstack.services import SERVICES
from pipelines.features.online import NoAggregates, connect
from pipelines.spec import load_spec


@pytest.fixture
def plain_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = load_spec("transactions").model_dump(mode="json")
    data["aggregates"] = []
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("FLYWHEEL_SPEC", str(path))
    monkeypatch.delenv("FLYWHEEL_ONLINE_STORE_URL", raising=False)
    return path


def test_up_skips_store_and_updater(plain_spec: Path) -> None:
    assert not SERVICES["online_store"].wanted() and not SERVICES["feature_updater"].wanted()


def test_up_starts_them_for_a_spec_with_aggregates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_SPEC", "transactions")
    assert SERVICES["online_store"].wanted() and SERVICES["feature_updater"].wanted()


def test_the_updater_says_there_is_nothing_to_do(plain_spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "update", "--spec", str(plain_spec)]) == 0
    assert "has no aggregates" in capsys.readouterr().out


def test_serving_gets_empty_aggregates(plain_spec: Path) -> None:
    features = connect(load_spec(plain_spec), None)
    assert isinstance(features, NoAggregates) and features.lookup(["a", "b"], [1, 2]) == [{}, {}]


def test_the_updater_without_a_store_url_says_where_to_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FLYWHEEL_ONLINE_STORE_URL", raising=False)
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))  # no stack.env to fall back on
    assert main(["features", "update", "--spec", "transactions", "--url", ""]) == 2
    assert "FLYWHEEL_ONLINE_STORE_URL" in capsys.readouterr().err
