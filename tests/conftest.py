"""Shared fixtures. Integration tests run against the real embedded stack, started once per session through
the same code as `flywheel up` (Tansu Kafka, the embedded lakeFS server, an MLflow server), on free ports,
with its state in a temporary directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.devstack.manager import Stack
from pipelines.devstack.net import free_port

ROOT = Path(__file__).resolve().parent.parent


def _stack_services() -> list[str]:
    return ["kafka", "lakefs", "mlflow"]


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Start the embedded stack once; yield its stack.env values (also exported into os.environ)."""
    state_dir = tmp_path_factory.mktemp("flywheel-state")
    stack = Stack(state_dir=state_dir, project_root=ROOT)
    services = _stack_services()
    stack.up(services=services, ports={name: free_port() for name in services}, check_java_version=False)
    from pipelines.config import read_env_file

    env = read_env_file(stack.env_file)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.setenv("FLYWHEEL_STATE_DIR", str(state_dir))
        try:
            yield env
        finally:
            stack.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_env: dict[str, str]) -> str:
    return stack_env["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture(scope="session")
def mlflow_tracking_uri(stack_env: dict[str, str]) -> str:
    return stack_env["MLFLOW_TRACKING_URI"]


@pytest.fixture(scope="session")
def lakefs_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in stack_env.items() if k.startswith("LAKEFS_")}


@pytest.fixture
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private FLYWHEEL_STATE_DIR for tests that start their own stack."""
    state = tmp_path / "state"
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(state))
    for name in ("KAFKA", "LAKEFS", "MLFLOW", "DAGSTER"):
        monkeypatch.delenv(f"FLYWHEEL_{name}_PORT", raising=False)
    return state


def pytest_report_header(config: pytest.Config) -> str:
    profile = os.environ.get("FLYWHEEL_PROFILE", "local")
    return f"flywheel: profile={profile} services={','.join(_stack_services())}"
