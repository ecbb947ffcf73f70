"""Unit tests start no server: the embedded stack's fixtures are refused here (use tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def stack_env() -> None:
    pytest.fail("unit tests must not start the embedded stack: move this test under tests/integration/")


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An MLflow tracking URI on SQLite in tmp_path (no server), set for this test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("unit-tests")
    return uri
