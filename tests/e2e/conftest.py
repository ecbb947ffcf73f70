"""End-to-end tests: the Dagster UI of the embedded stack in headless Chromium (`make test-e2e`).

Skipped unless FLYWHEEL_E2E=1 (set by `make test-e2e`): they take minutes and need chromium and chromedriver,
so `make test` leaves them out. Every test here is marked `e2e`."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.devstack.manager import Stack
from pipelines.devstack.net import free_port
from tests.e2e.dagster_ui import DagsterUI, chrome

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUTPUT = ROOT / "test-output" / "e2e"  # screenshots and page sources (git-ignored)
SERVICES = ["kafka", "lakefs", "mlflow", "dagster"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="browser test of the Dagster UI: run `make test-e2e` (sets FLYWHEEL_E2E=1)")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            if os.environ.get("FLYWHEEL_E2E") != "1":
                item.add_marker(skip)


@pytest.fixture(scope="session")
def dagster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Kafka, lakeFS, MLflow and `dagster dev` (web UI + daemon) on free ports, state in a temp dir."""
    from pipelines.config import read_env_file

    state_dir = tmp_path_factory.mktemp("flywheel-e2e-state")
    stack = Stack(state_dir=state_dir, project_root=ROOT)
    started = time.monotonic()
    stack.up(services=SERVICES, ports={name: free_port() for name in SERVICES}, check_java_version=False)
    print(f"\nstack with Dagster up in {time.monotonic() - started:.1f}s")
    env = {**read_env_file(stack.env_file), "FLYWHEEL_STATE_DIR": str(state_dir)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        try:
            yield env
        finally:
            stack.down()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def ui(dagster_stack: dict[str, str], output_dir: Path) -> Iterator[DagsterUI]:
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver_bin:
        pytest.fail(
            "chromium and chromedriver are needed: `make test-e2e` installs them as root "
            "(apt-get install -y chromium chromium-driver); or set CHROMIUM and CHROMEDRIVER"
        )
    driver = chrome(browser, driver_bin)
    try:
        yield DagsterUI(driver, dagster_stack["FLYWHEEL_DAGSTER_URL"], output_dir)
    finally:
        driver.quit()
