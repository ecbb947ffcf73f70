"""The loop in the Dagster UI, in headless Chromium against `dagster dev` on the embedded stack (issue 17, item 4).

In order, on one stack: the global asset lineage graph shows every asset of the definitions; a materialization
launched from the UI (raw_events: only Kafka and lakeFS) runs to success in the UI; the model asset's page shows
its MLflow run link and lakeFS commit after a training run recorded in the same Dagster instance; the drift
sensor's page, started from the UI, shows its ticks. Screenshots in test-output/e2e/. Route and DOM hooks are
those of Dagster 1.13's web UI."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.e2e.dagster_ui import DagsterUI, xpath_literal

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "flywheel"  # workspace.yaml's code location
RUN_TIMEOUT_S = 420  # a run's subprocess loads the definitions first: slow on 2 busy cores
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def asset_names() -> list[str]:
    import definitions

    return sorted(k.to_user_string() for k in definitions.defs.resolve_asset_graph().get_all_asset_keys())


def graph_node(name: str) -> str:
    """An asset node of the lineage graph (not its group's node, which can carry the same name)."""
    node = "//*[local-name()='foreignObject']//div[contains(@class,'assetName')"
    return f"{node} and normalize-space()={xpath_literal(name)}]"


def graphql(base_url: str, query: str) -> dict:
    response = requests.post(f"{base_url}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def run_ids(base_url: str) -> set[str]:
    data = graphql(base_url, "{ runsOrError { ... on Runs { results { runId } } } }")
    return {r["runId"] for r in data["runsOrError"]["results"]}


def test_lineage_graph_shows_every_asset(ui: DagsterUI) -> None:
    names = asset_names()
    assert len(names) >= 8, f"definitions have only {names}"
    ui.open("/asset-groups", "Global asset lineage")
    ui.wait(lambda d: d.find_elements(By.XPATH, "//*[local-name()='foreignObject']"), 90, "the lineage graph")
    if not all(ui.driver.find_elements(By.XPATH, graph_node(n)) for n in names):
        # Several groups: the graph starts with them collapsed. Alt+E is the UI's "Expand all groups".
        ActionChains(ui.driver).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
    for name in names:
        ui.wait(lambda d, n=name: ui.visible(By.XPATH, graph_node(n)), 30, f"asset {name} in the lineage graph")
    ui.shot("01-global-asset-lineage")


def test_materialize_from_the_ui_and_watch_the_run_succeed(ui: DagsterUI, dagster_stack: dict[str, str]) -> None:
    produced = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "produce", "--count", "300", "--seed", "7"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert produced.returncode == 0, f"flywheel produce failed: {produced.stderr[-2000:]}"
    base = dagster_stack["FLYWHEEL_DAGSTER_URL"]
    before = run_ids(base)
    ui.open("/assets/raw_events", "raw_events")
    ui.click(By.XPATH, "//button[normalize-space()='Materialize']", 30, "the Materialize button of raw_events")
    new = ui.wait(lambda d: run_ids(base) - before, 60, "a run launched by the Materialize button", poll_s=2)
    (run_id,) = new
    ui.shot("02-materialize-launched")
    ui.open(f"/runs/{run_id}", run_id[:8])
    # The run page's title carries the status: "Runs | <id> [SUCCESS]".
    status = ui.wait(
        lambda d: next((s for s in ("SUCCESS", "FAILURE", "CANCELED") if f"[{s}]" in d.title), None),
        RUN_TIMEOUT_S, f"run {run_id} finishing", poll_s=2,
    )  # fmt: skip
    ui.wait_for_text("Success" if status == "SUCCESS" else status.title(), 30, f"run {run_id}")
    ui.shot("03-materialize-run-finished")
    assert status == "SUCCESS", f"run {run_id} of raw_events ended {status}: see its logs in the UI or dagster.log"


def test_model_page_links_mlflow_and_lakefs(ui: DagsterUI, dagster_stack: dict[str, str], tmp_path: Path) -> None:
    from dagster import DagsterInstance, materialize

    from assets.training import trained_model
    from pipelines.lake import Lake, LakeFSSettings
    from pipelines.spec import load_spec
    from pipelines.training.synthetic import write_dataset
    from resources.lakefs import LakeFSResource
    from resources.mlflow import MLflowResource
    from resources.training import LocalTrainingLauncher

    # A full retrain from Kafka takes minutes more: train on a small synthetic table committed to lakeFS, through
    # the same asset, recorded in the UI's own instance (DAGSTER_HOME of the stack).
    lake = Lake(replace(LakeFSSettings.from_env(), repository=f"e2e-{uuid.uuid4().hex[:8]}"))
    lake.ensure_repository()
    data = write_dataset(tmp_path, load_spec("transactions"), 2000, seed=3, vocab=True)
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        lake.write_bytes("main", path.relative_to(data).as_posix(), path.read_bytes())
    commit = lake.commit("main", "e2e: synthetic training table")
    resources = {
        "trainer": LocalTrainingLauncher(nproc_per_node=1, extra_args=["--epochs", "2", "--batch-size", "256"]),
        "lakefs": LakeFSResource(
            endpoint=dagster_stack["LAKEFS_ENDPOINT"],
            access_key_id=dagster_stack["LAKEFS_ACCESS_KEY_ID"],
            secret_access_key=dagster_stack["LAKEFS_SECRET_ACCESS_KEY"],
            repository=lake.repository_id,
        ),
        "mlflow": MLflowResource(tracking_uri=dagster_stack["MLFLOW_TRACKING_URI"], experiment="e2e-ui"),
    }
    with DagsterInstance.from_config(dagster_stack["DAGSTER_HOME"]) as instance:
        result = materialize([trained_model], resources=resources, instance=instance)
    assert result.success
    mlflow_run_id = result.output_for_node("trained_model").mlflow_run_id
    assert mlflow_run_id

    ui.open("/assets/trained_model", "trained_model")
    link = ui.wait(
        lambda d: ui.visible(By.XPATH, f"//a[contains(@href,{xpath_literal(mlflow_run_id)})]"),
        60, "the MLflow run link in trained_model's metadata",
    )  # fmt: skip
    href = link.get_attribute("href") or ""
    assert href.startswith(dagster_stack["MLFLOW_TRACKING_URI"]), f"MLflow link {href} is not on the stack's MLflow"
    ui.wait_for_text(commit, 30, "trained_model's page (its lakeFS commit)")
    ui.wait(
        lambda d: ui.visible(By.XPATH, f"//*[contains(text(),{xpath_literal(f'lakefs://{lake.repository_id}/{commit}')})]"),
        30, "the lakeFS dataset URI in trained_model's metadata",
    )  # fmt: skip
    ui.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    ui.shot("04-model-asset-page")
    # The links resolve in their systems: the MLflow run and the lakeFS commit exist.
    mlflow_api = f"{dagster_stack['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/runs/get"
    assert requests.get(mlflow_api, params={"run_id": mlflow_run_id}, timeout=30).status_code == 200
    assert lake.commit_info(commit).id == commit


def test_drift_sensor_page_shows_its_ticks(ui: DagsterUI) -> None:
    ui.open(f"/locations/{LOCATION}/sensors/drift_sensor", "Latest tick")
    assert "drift_sensor" in ui.body_text(), "the page does not name drift_sensor"
    switch = ui.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=checkbox]"), 30, "the sensor's switch")[0]
    if not switch.is_selected():
        # The switch's input is visually hidden behind its styled label: click it as the label would.
        ui.driver.execute_script("arguments[0].click()", switch)
    ui.wait(lambda d: switch.is_selected(), 30, "the drift sensor switched on")
    started = time.monotonic()
    # A tick: a row under the Evaluations table's header, the latest tick no longer "never run".
    ui.wait(
        lambda d: "Sensor has never run" not in ui.body_text()
        and d.find_elements(By.XPATH, "//table[.//th[normalize-space()='Status']]//tbody/tr[td]"),
        180, "a tick of drift_sensor", poll_s=2,
    )  # fmt: skip
    print(f"first drift_sensor tick {time.monotonic() - started:.0f}s after starting it")
    ui.wait_for_text("Cursor", 10, "drift_sensor's page")
    assert "decision" in ui.body_text(), "the drift sensor's cursor (its last decision) is not on its page"
    ui.shot("05-drift-sensor-ticks")
