"""`flywheel serve` against the embedded MLflow, a real online store (redis-server) and Kafka: it follows the
aliases without a restart, a model swap and canary steps under steady load fail no request, a bad challenger
(forced past the gate) is rolled back by the canary analysis, predictions reach the topic, and Kafka or the
store being down is counted or answered with the reason. Models: small TabularNets trained in a few seconds,
registered the way the optimization stage registers them (tests/integration/serving/helpers.py)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import mlflow
import orjson
import pytest
from mlflow import MlflowClient

from pipelines import registry
from pipelines.devstack.net import free_port
from pipelines.features.online.server import running
from pipelines.features.online.store import RedisOnlineStore
from pipelines.serving import analysis, control, state
from pipelines.serving.loadgen import run_load
from pipelines.spec.model import RolloutSpec
from tests.integration.serving.helpers import (
    SPEC,
    TOKEN,
    admin,
    bodies,
    events,
    register_candidate,
    serve,
    train_candidate,
    wait_for,
)

pytestmark = [pytest.mark.slow]
NAME = f"serving-{uuid.uuid4().hex[:6]}"
TOPIC = f"predictions-{uuid.uuid4().hex[:6]}"
# 2 shared cores: 100 requests/s for 20 s (the issue suggests 200/s; this machine runs ~6 jobs at once)
RATE, DURATION = 100, 20


@pytest.fixture(scope="module")
def candidates():
    return {"good": train_candidate(1), "good2": train_candidate(2), "coin": train_candidate(3, coin=True)}


@pytest.fixture(scope="module")
def online_url(tmp_path_factory: pytest.TempPathFactory):
    with running(tmp_path_factory.mktemp("serving-online"), persist=False) as (url, proc):
        RedisOnlineStore(SPEC, url).init(SPEC.topic.name, None)  # an empty store: every entity has no history
        yield url, proc


@pytest.fixture(scope="module")
def server(stack_env: dict[str, str], online_url, tmp_path_factory: pytest.TempPathFactory):
    env = {
        "FLYWHEEL_SERVING_MODEL": NAME,
        "FLYWHEEL_SERVING_POLL_SECONDS": "1",
        "FLYWHEEL_SERVING_ADMIN_TOKEN": TOKEN,
        "FLYWHEEL_ONLINE_STORE_URL": online_url[0],
        "FLYWHEEL_PREDICTIONS_TOPIC": TOPIC,
        "MLFLOW_TRACKING_URI": stack_env["MLFLOW_TRACKING_URI"],
        "KAFKA_BOOTSTRAP_SERVERS": stack_env["KAFKA_BOOTSTRAP_SERVERS"],
    }
    with serve(env, tmp_path_factory.mktemp("serving-log") / "serve.log") as url:
        yield url


def models(url: str) -> dict:
    return httpx.get(f"{url}/v1/models", timeout=10).json()


def predict(url: str, records: list[dict]) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", json={"records": records}, timeout=30)


def test_live_not_ready_until_the_first_model_then_champion_without_restart(
    server: str, candidates, mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    assert httpx.get(f"{server}/healthz").status_code == 200
    assert httpx.get(f"{server}/readyz").status_code == 503
    assert predict(server, events(1)).status_code == 503
    first = register_candidate(NAME, candidates["good"], tmp_path)
    registry.make_challenger(NAME, first)
    outcome = control.start_rollout(NAME, SPEC.rollout, tracking_uri=mlflow_tracking_uri)
    assert outcome.action == "promoted_first"  # the first model ever becomes champion directly
    assert registry.alias_version(NAME, registry.CHAMPION) == first
    wait_for(lambda: httpx.get(f"{server}/readyz").status_code == 200, 30)
    answer = predict(server, events(3))
    assert answer.status_code == 200
    assert [p["model_version"] for p in answer.json()["predictions"]] == [first] * 3


def test_the_demo_step_shows_the_model_answering(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.devstack.demo_serving import show_serving

    shown = show_serving({"FLYWHEEL_SERVING_URL": server}, SPEC, requests=3, per_request=4)
    champion = registry.alias_version(NAME, registry.CHAMPION)
    assert shown["champion"] == champion and shown["answered"] == {f"version {champion} (champion)": 12}
    out = capsys.readouterr().out
    assert "flywheel_serving_requests_total" in out and "/v1/models: champion" in out


def test_admin_routes_need_the_token(server: str) -> None:
    assert httpx.post(f"{server}/admin/reload").status_code == 401
    assert httpx.post(f"{server}/admin/rollout", json={"action": "promote"}).status_code == 401
    assert admin(server, "/admin/reload").status_code == 200


def test_steady_load_with_a_canary_step_and_a_swap_fails_no_request(
    server: str, candidates, mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    champion = registry.alias_version(NAME, registry.CHAMPION)
    second = register_candidate(NAME, candidates["good2"], tmp_path)
    registry.make_challenger(NAME, second)
    payloads = bodies(events(RATE * DURATION, seed=5), 1)
    result_box: dict = {}
    load = threading.Thread(
        target=lambda: result_box.setdefault(
            "r", run_load(f"{server}/v1/predict", payloads, RATE, DURATION, keep_answers=True)
        )
    )
    load.start()
    time.sleep(5)
    plan = RolloutSpec(steps=[20, 60, 100])
    assert control.start_rollout(NAME, plan, "canary", mlflow_tracking_uri).action == "started"
    time.sleep(5)
    assert control.decide(NAME, "advance", "test: next step", mlflow_tracking_uri).action == "advanced"
    time.sleep(4)
    assert control.decide(NAME, "promote", "test: promote", mlflow_tracking_uri).action == "promoted"  # the swap
    load.join(timeout=DURATION + 60)
    result = result_box["r"]
    assert result.sent == RATE * DURATION
    assert result.failed == 0, result.summary()
    seen = {(p["model_version"], p["arm"]) for body in result.answers for p in body["predictions"]}
    assert {(champion, "champion"), (second, "challenger"), (second, "champion")} <= seen, seen
    assert registry.alias_version(NAME, registry.CHAMPION) == second
    assert registry.alias_version(NAME, registry.PREVIOUS_CHAMPION) == champion
    wait_for(lambda: models(server)["aliases"]["champion"]["version"] == second)
    print("steady load:", result.summary())


def test_canary_is_sticky_by_entity(server: str, candidates, mlflow_tracking_uri: str, tmp_path: Path) -> None:
    third = register_candidate(NAME, candidates["good"], tmp_path)
    registry.make_challenger(NAME, third)
    control.start_rollout(NAME, RolloutSpec(steps=[50, 100]), "canary", mlflow_tracking_uri)
    wait_for(lambda: (models(server)["rollout"] or {}).get("challenger") == third)
    batch = events(100, seed=9, entities=100)
    first = [(p["arm"], p["model_version"]) for p in predict(server, batch).json()["predictions"]]
    again = [(p["arm"], p["model_version"]) for p in predict(server, batch).json()["predictions"]]
    assert first == again
    arms = {a for a, _ in first}
    assert arms == {"champion", "challenger"}
    by_entity: dict = {}
    for record, arm in zip(batch + batch, first + again, strict=True):
        by_entity.setdefault(record["customer_id"], set()).add(arm)
    assert all(len(a) == 1 for a in by_entity.values())  # one entity, one arm
    control.decide(NAME, "rollback", "test: done with stickiness", mlflow_tracking_uri)


def test_a_bad_challenger_is_rolled_back_by_the_analysis_and_champion_stays(
    server: str, candidates, mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    champion = registry.alias_version(NAME, registry.CHAMPION)
    bad = register_candidate(NAME, candidates["coin"], tmp_path)  # forced past the gate: tagged passed
    registry.make_challenger(NAME, bad)
    plan = RolloutSpec(steps=[50, 100], analysis_window_s=3, min_requests=30)
    control.start_rollout(NAME, plan, "canary", mlflow_tracking_uri)
    wait_for(lambda: (models(server)["rollout"] or {}).get("challenger") == bad)
    first = analysis.analyze(NAME, server, plan, None, mlflow_tracking_uri)
    assert first.action == "baseline"
    result = run_load(f"{server}/v1/predict", bodies(events(400, seed=11), 4), 50, 2)
    assert result.failed == 0
    decided = analysis.analyze(NAME, server, plan, first.cursor, mlflow_tracking_uri)
    assert decided.action == "rolled_back", decided.message
    assert "PSI" in decided.message
    assert registry.alias_version(NAME, registry.CHAMPION) == champion
    assert registry.alias_version(NAME, registry.CHALLENGER) is None
    tags = MlflowClient(mlflow_tracking_uri).get_model_version(NAME, bad).tags
    assert tags[state.DECISION_TAG] == "rolled_back" and "PSI" in tags[state.REASON_TAG]
    wait_for(lambda: models(server)["aliases"]["challenger"] is None)
    answers = predict(server, events(50, seed=12)).json()["predictions"]
    assert {p["model_version"] for p in answers} == {champion}


def test_a_challenger_with_a_worse_label_auc_is_rolled_back(
    server: str, candidates, stack_env: dict[str, str], mlflow_tracking_uri: str, tmp_path: Path
) -> None:
    """Labels arrive on the events topic; the analysis joins them with the predictions topic by event id. The
    score-shift check is switched off here, so only the label AUC can stop the coin-like model."""
    from kafka import KafkaProducer

    from pipelines.ingest.parallel import kafka_consumer_factory
    from pipelines.serving.labels import KafkaLabels
    from pipelines.spec.model import TopicSpec

    champion = registry.alias_version(NAME, registry.CHAMPION)
    bad = register_candidate(NAME, candidates["coin"], tmp_path)
    registry.make_challenger(NAME, bad)
    plan = RolloutSpec(steps=[50, 100], analysis_window_s=2, min_requests=30, max_score_psi=1000, min_labels=100)
    control.start_rollout(NAME, plan, "canary", mlflow_tracking_uri)
    wait_for(lambda: (models(server)["rollout"] or {}).get("challenger") == bad)
    events_spec = SPEC.model_copy(update={"topic": TopicSpec(name=f"labels-{uuid.uuid4().hex[:6]}", partitions=1)})
    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    labels = KafkaLabels(kafka_consumer_factory(bootstrap), events_spec, TOPIC)
    first = analysis.analyze(NAME, server, plan, None, mlflow_tracking_uri, labels=labels)
    assert first.action == "baseline"
    labelled = events(800, seed=31, entities=800, labels=True)
    producer = KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=15000, max_block_ms=15000)
    for event in labelled:  # the labels arrive (the events topic carries each event with its label)
        producer.send(events_spec.topic.name, orjson.dumps(event))
    producer.flush(timeout=30)
    producer.close()
    assert run_load(f"{server}/v1/predict", bodies(labelled, 4), 50, 4).failed == 0
    time.sleep(3)  # the prediction log's sender flushes
    decided = analysis.analyze(NAME, server, plan, first.cursor, mlflow_tracking_uri, labels=labels)
    assert decided.action == "rolled_back", decided.message
    assert "AUC" in decided.message and decided.verdict is not None
    assert decided.verdict.measures["champion_auc"] > decided.verdict.measures["challenger_auc"] + plan.max_auc_drop
    assert registry.alias_version(NAME, registry.CHAMPION) == champion


def test_predictions_reach_the_topic_with_the_online_stores_aggregates(
    server: str, stack_env: dict[str, str], online_url
) -> None:
    """The aggregates serving scored with (and logged) are the online store's answer for each event, exactly."""
    from kafka import KafkaConsumer

    from pipelines.features.aggregates import aggregated_columns
    from pipelines.features.online import connect
    from pipelines.features.online.layout import member

    stream = events(60, seed=13, entities=3)  # 3 customers, event times ascending
    history, scored = stream[:50], stream[50:]
    columns = aggregated_columns(SPEC)
    store = RedisOnlineStore(SPEC, online_url[0])
    store.apply(
        [
            (
                e[SPEC.entity_key],
                e[SPEC.timestamp],
                e[SPEC.event_id],
                member(e[SPEC.timestamp], [e[c] for c in columns], e[SPEC.event_id]),
            )
            for e in history
        ]
    )
    sent = predict(server, scored).json()
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        request_timeout_ms=15000,
    )
    try:
        seen: list[dict] = []

        def all_logged() -> bool:
            seen.extend(r for r in (orjson.loads(m.value) for m in consumer) if r["request_id"] == sent["request_id"])
            return len(seen) >= len(scored)

        assert wait_for(all_logged, 60)
    finally:
        consumer.close()
    assert set(seen[0]) >= {"request_id", "event_id", "entity", "model_version", "arm", "features", "score",
                            "time_ms", "event_time_ms"}  # fmt: skip
    assert sorted(r["event_id"] for r in seen) == sorted(e[SPEC.event_id] for e in scored)
    names = [a.name for a in SPEC.aggregates]
    online = connect(SPEC, online_url[0]).lookup([r["entity"] for r in seen], [r["event_time_ms"] for r in seen])
    for record, expected in zip(seen, online, strict=True):
        assert {n: record["features"][n] for n in names} == {n: expected[n] for n in names}, record["event_id"]
    assert all(r["features"]["cust_txn_count_24h"] > 0 for r in seen)  # real history, not the no-history defaults
    by_id = {e[SPEC.event_id]: e for e in scored}
    assert all(r["features"]["amount"] == by_id[r["event_id"]]["amount"] for r in seen)


def test_kafka_down_drops_are_counted_and_requests_succeed(
    stack_env: dict[str, str], online_url, tmp_path: Path
) -> None:
    env = {
        "FLYWHEEL_SERVING_MODEL": NAME,
        "FLYWHEEL_SERVING_ADMIN_TOKEN": TOKEN,
        "FLYWHEEL_ONLINE_STORE_URL": online_url[0],
        "MLFLOW_TRACKING_URI": stack_env["MLFLOW_TRACKING_URI"],
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens there
    }
    with serve(env, tmp_path / "serve.log") as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, 60)
        for seed in range(5):
            assert predict(url, events(10, seed=seed)).status_code == 200

        def dropped() -> float:
            lines = httpx.get(f"{url}/metrics").text.splitlines()
            hits = [ln for ln in lines if ln.startswith("flywheel_serving_prediction_log_dropped_total")]
            return sum(float(ln.rsplit(" ", 1)[1]) for ln in hits)

        assert wait_for(lambda: dropped() >= 50, 60)
        assert "unreachable" in models(url)["prediction_log"]["error"]


def test_the_store_down_is_a_503_with_the_reason(server: str, online_url) -> None:
    _, proc = online_url
    proc.terminate()
    proc.wait(timeout=10)
    response = predict(server, events(2, seed=14))
    assert response.status_code == 503
    assert "online" in response.json()["detail"] and "store" in response.json()["detail"]
