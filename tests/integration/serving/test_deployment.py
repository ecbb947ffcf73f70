"""retrain_job's `deployment` asset and the canary analysis sensor on the embedded MLflow: the first model becomes
champion directly; the next is a rollout recorded as `planned` while no serving answers (with how to start
one); once serving runs, the sensor advances the canary and promotes it by itself from serving's metrics.

No `from __future__ import annotations`: Dagster reads the assets' annotations at definition time.
"""

import time
import uuid
from pathlib import Path

import dagster as dg
import mlflow
import pytest
import yaml

from assets.deployment import deployment
from pipelines import registry
from pipelines.lineage.records import Deployment, Evaluation
from pipelines.serving.loadgen import run_load
from pipelines.spec.loader import resolve_spec_path
from resources.kafka import KafkaResource
from resources.mlflow import MLflowResource
from resources.records_io import RecordIOManager
from resources.serving import ServingResource
from sensors.canary import canary_analysis_sensor
from tests.integration.serving.helpers import (
    SPEC,
    TOKEN,
    bodies,
    events,
    register_candidate,
    serve,
    train_candidate,
    wait_for,
)

pytestmark = [pytest.mark.slow]
NAME = f"deploy-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def quick_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The built-in spec with a 2-second analysis window, so a test sees a whole canary."""
    data = yaml.safe_load(resolve_spec_path("transactions").read_text())
    data["rollout"] = {"strategy": "canary", "steps": [50, 100], "analysis_window_s": 2, "min_requests": 20}
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("FLYWHEEL_SPEC", str(path))
    monkeypatch.setenv("FLYWHEEL_SERVING_MODEL", NAME)
    return path


def evaluation(version: str, champion: str | None) -> Evaluation:
    return Evaluation(NAME, version, champion, "repo", "commit", passed=True)


def materialize(record: Evaluation, tracking_uri: str, serving_url: str, records: Path) -> Deployment:
    @dg.asset(name="evaluated_model")
    def stub() -> Evaluation:
        return record

    resources = {
        "mlflow": MLflowResource(tracking_uri=tracking_uri),
        "serving": ServingResource(url=serving_url, admin_token=TOKEN),
        "io_manager": RecordIOManager(base_dir=str(records)),
    }
    return dg.materialize([stub, deployment], resources=resources).output_for_node("deployment")


def tick(cursor: str | None, tracking_uri: str, serving_url: str, bootstrap: str):
    context = dg.build_sensor_context(
        cursor=cursor,
        resources={
            "mlflow": MLflowResource(tracking_uri=tracking_uri),
            "serving": ServingResource(url=serving_url, admin_token=TOKEN),
            "kafka": KafkaResource(bootstrap_servers=bootstrap),
        },
    )
    return canary_analysis_sensor(context), context.cursor


def test_deployment_then_the_sensor_rolls_the_canary_out_by_itself(
    quick_spec: Path, stack_env: dict[str, str], tmp_path: Path
) -> None:
    uri = stack_env["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    model = train_candidate(1)
    first = register_candidate(NAME, model, tmp_path)
    registry.make_challenger(NAME, first)
    record = materialize(evaluation(first, None), uri, "", tmp_path / "records")
    assert record.state == "promoted" and record.traffic == {first: 1.0}  # the first model: champion directly
    assert registry.alias_version(NAME, registry.CHAMPION) == first

    # As good as the champion (the same weights, a new version): the analysis must find it healthy. Two models
    # trained on other data can differ in calibration enough for the score-shift check to stop them.
    second = register_candidate(NAME, model, tmp_path)
    registry.make_challenger(NAME, second)
    planned = materialize(evaluation(second, first), uri, "", tmp_path / "records")
    assert planned.state == "planned" and planned.strategy == "canary" and planned.steps == [50.0, 100.0]
    assert "flywheel serve" in planned.message and planned.traffic == {second: 0.5, first: 0.5}

    env = {
        "FLYWHEEL_SPEC": str(quick_spec),
        "FLYWHEEL_SERVING_MODEL": NAME,
        "FLYWHEEL_SERVING_POLL_SECONDS": "1",
        "FLYWHEEL_SERVING_ADMIN_TOKEN": TOKEN,
        "MLFLOW_TRACKING_URI": uri,
    }
    from pipelines.features.online.server import running
    from pipelines.features.online.store import RedisOnlineStore

    with running(tmp_path / "store", persist=False) as (store_url, _):
        RedisOnlineStore(SPEC, store_url).init(SPEC.topic.name, None)
        env["FLYWHEEL_ONLINE_STORE_URL"] = store_url
        with serve(env, tmp_path / "serve.log") as url:
            wait_for(lambda: dg_models(url).get("rollout") is not None, 30)
            payloads = bodies(events(400, seed=21), 4)
            cursor = None
            decisions = []
            for _ in range(8):
                result, cursor = tick(cursor, uri, url, stack_env["KAFKA_BOOTSTRAP_SERVERS"])
                if isinstance(result, dg.SensorResult):
                    decisions.append(result.asset_events[0].metadata["decision"].value)
                    if decisions[-1] == "promoted":
                        break
                assert run_load(f"{url}/v1/predict", payloads, 50, 2.5).failed == 0
                time.sleep(0.5)
            assert decisions == ["advanced", "promoted"], decisions
            assert registry.alias_version(NAME, registry.CHAMPION) == second
            assert registry.alias_version(NAME, registry.PREVIOUS_CHAMPION) == first
            wait_for(lambda: dg_models(url)["aliases"]["champion"]["version"] == second, 30)


def dg_models(url: str) -> dict:
    import httpx

    return httpx.get(f"{url}/v1/models", timeout=10).json()
