"""The serving app in-process (no server): validation answers 4xx naming record and field, readiness follows
the champion, admin routes need the token, shadow never changes answers, the store down is a 503 with the
reason, fuzzed payloads never get a 5xx. Models are small in-process ones (tests/unit/serving/models.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pipelines.features.online.api import OnlineStoreUnavailable
from pipelines.serving.app import ServingConfig, ServingService, create_app
from pipelines.serving.models import ModelFollower, RegistryView
from pipelines.serving.rollout import start
from pipelines.spec.model import RolloutSpec
from tests.unit.serving.models import SPEC, InTestRegistry, make_model
from tests.unit.spec.sample_event import good_event

TOKEN = "test-admin-token"


class InTestStore:
    """An in-test OnlineFeatures: fixed aggregates, or down."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def lookup(self, entities: Sequence[str], event_times: Sequence[int]) -> list[dict[str, float]]:
        self.calls += 1
        if self.down:
            raise OnlineStoreUnavailable("redis at 127.0.0.1:1 refused the connection (test)")
        return [{a.name: 1.0 for a in SPEC.aggregates} for _ in entities]


MODELS = {"1": make_model("1", seed=1), "2": make_model("2", seed=2), "9": make_model("9", constant=0.99)}


@contextmanager
def serving(view: RegistryView | None = None, **config: object) -> Iterator[tuple[TestClient, ServingService]]:
    source = InTestRegistry(view or RegistryView("1", None, None))
    follower = ModelFollower(source, MODELS.__getitem__, poll_s=3600)
    service = ServingService(SPEC, ServingConfig("transactions", **config), follower, InTestStore(), TOKEN)  # type: ignore[arg-type]
    service.source = source  # type: ignore[attr-defined]
    follower.refresh()
    with TestClient(create_app(service)) as client:
        yield client, service


def events(n: int, start: int = 0) -> list[dict]:
    out = []
    for i in range(start, start + n):
        e = good_event(i)
        e["customer_id"] = f"c{i}"
        e["amount"] = 10.0 + i
        out.append(e)
    return out


def test_predict_answers_in_order_with_the_version() -> None:
    with serving() as (client, _):
        response = client.post("/v1/predict", json={"records": events(5)})
        assert response.status_code == 200
        body = response.json()
        assert [p["event_id"] for p in body["predictions"]] == [f"e{i}" for i in range(5)]
        assert {p["model_version"] for p in body["predictions"]} == {"1"} and body["request_id"]
        assert all(0.0 <= p["score"] <= 1.0 for p in body["predictions"])
        metrics = client.get("/metrics").text
        assert 'flywheel_serving_requests_total{arm="champion",model_version="1",status="200"} 1.0' in metrics


def test_validation_names_the_record_and_field() -> None:
    with serving(max_records=4, max_body_bytes=20_000) as (client, _):
        bad = events(3)
        bad[2]["merchant_category"] = "casino"
        response = client.post("/v1/predict", json={"records": bad})
        assert response.status_code == 422
        body = response.json()
        assert body["errors"][0]["record"] == 2 and body["errors"][0]["field"] == "merchant_category"
        assert "record 2" in body["detail"] and "merchant_category" in body["detail"]
        missing = events(1)
        del missing[0]["amount"]
        assert client.post("/v1/predict", json={"records": missing}).json()["errors"][0]["field"] == "amount"
        assert client.post("/v1/predict", json={"records": events(5)}).status_code == 413  # over the batch limit
        assert client.post("/v1/predict", content=b"x" * 30_000).status_code == 413  # over the body limit
        assert client.post("/v1/predict", content=b"{not json").status_code == 400
        assert client.post("/v1/predict", json={"records": []}).status_code == 422
        assert client.post("/v1/predict", json=[1, 2]).status_code == 422


def test_not_ready_until_a_champion_exists_then_ready_without_restart() -> None:
    with serving(RegistryView(None, None, None)) as (client, service):
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "champion" in ready.json()["reason"]
        assert client.post("/v1/predict", json={"records": events(1)}).status_code == 503
        service.source.view = RegistryView("1", None, None)  # type: ignore[attr-defined]
        assert client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/readyz").json() == {"status": "ready", "champion": "1"}
        assert client.post("/v1/predict", json={"records": events(1)}).status_code == 200


def test_admin_routes_need_the_token() -> None:
    with serving() as (client, _):
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/admin/rollout", json={"action": "promote"}).status_code == 401
        assert client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_shadow_never_changes_answers_but_scores_the_challenger() -> None:
    plain = None
    with serving() as (client, _):
        plain = client.post("/v1/predict", json={"records": events(40)}).json()["predictions"]
    shadow = start(RolloutSpec(), "1", "9", 0.0, "shadow")
    with serving(RegistryView("1", "9", shadow)) as (client, _):
        answered = client.post("/v1/predict", json={"records": events(40)}).json()["predictions"]
        assert [(p["score"], p["model_version"], p["arm"]) for p in answered] == [
            (p["score"], p["model_version"], p["arm"]) for p in plain
        ]
        metrics = client.get("/metrics").text
        assert 'flywheel_serving_predictions_total{arm="shadow",model_version="9"} 40.0' in metrics


def test_canary_splits_by_entity_and_the_same_entity_stays() -> None:
    canary = start(RolloutSpec(steps=[50, 100]), "1", "9", 0.0)
    with serving(RegistryView("1", "9", canary)) as (client, _):
        first = client.post("/v1/predict", json={"records": events(200)}).json()["predictions"]
        again = client.post("/v1/predict", json={"records": events(200)}).json()["predictions"]
        arms = [p["arm"] for p in first]
        assert 60 < arms.count("challenger") < 140
        assert [p["arm"] for p in again] == arms  # sticky
        assert all(p["score"] == 0.99 for p in first if p["arm"] == "challenger")
        models = client.get("/v1/models").json()
        assert models["rollout"]["strategy"] == "canary" and {t["arm"] for t in models["traffic"]} == {
            "champion",
            "challenger",
        }


def test_store_down_is_a_503_with_the_reason_and_requests_recover() -> None:
    with serving(store_retry_s=0.3) as (client, service):
        store: InTestStore = service.store  # type: ignore[assignment]
        store.down = True
        response = client.post("/v1/predict", json={"records": events(2)})
        assert response.status_code == 503
        assert "online feature store" in response.json()["detail"] and "refused" in response.json()["detail"]
        store.down = False
        # the breaker is open: answered at once with the last reason, the store is not asked
        response = client.post("/v1/predict", json={"records": events(2)})
        assert response.status_code == 503 and store.calls == 1
        assert "online store unavailable: " in response.json()["detail"] and "refused" in response.json()["detail"]
        time.sleep(0.35)
        assert client.post("/v1/predict", json={"records": events(2)}).status_code == 200


class HungStore(InTestStore):
    """A store that does not answer: each lookup blocks its caller for the socket timeout, then fails."""

    def lookup(self, entities: Sequence[str], event_times: Sequence[int]) -> list[dict[str, float]]:
        self.calls += 1
        time.sleep(0.4)
        raise OnlineStoreUnavailable("online store at 127.0.0.1:6379 did not answer within 0.4s (test)")


def test_a_hung_store_neither_starves_the_probes_nor_each_batch() -> None:
    # Micro-batches scored on the event loop (batch_workers=0), one batch per request (max_batch=2): without
    # the breaker every queued batch would block the loop for the store's timeout, one after another.
    with serving(max_batch=2, max_wait_s=0.0, batch_workers=0) as (_client, service):
        service.store = HungStore()
        with TestClient(create_app(service)) as hung:
            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                posts = [pool.submit(hung.post, "/v1/predict", json={"records": events(2, i)}) for i in range(16)]
                time.sleep(0.1)  # the predictions are queued (or being refused) first
                probe_started = time.perf_counter()
                assert hung.get("/healthz").status_code == 200
                probe_s = time.perf_counter() - probe_started
                statuses = [p.result(timeout=30).status_code for p in posts]
            total_s = time.perf_counter() - started
        assert statuses == [503] * 16
        assert probe_s < 1.0, f"/healthz took {probe_s:.2f}s behind the hung store"
        assert total_s < 2.0 and service.store.calls <= 2, (total_s, service.store.calls)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def mutated_event(draw: st.DrawFn) -> dict:
    event = events(1, draw(st.integers(0, 10_000)))[0]
    for name in draw(st.lists(st.sampled_from(sorted(event)), max_size=3)):
        if draw(st.booleans()):
            event.pop(name, None)
        else:
            event[name] = draw(json_values)
    return event


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    records = draw(st.lists(st.builds(dict) | st.just(None), max_size=0)) or [
        mutated_event(draw) for _ in range(draw(st.integers(1, 5)))
    ]
    return json.dumps({"records": records} if kind == 2 else {"records": draw(json_values)}).encode()


@pytest.mark.slow
def test_fuzzed_payloads_never_get_a_5xx() -> None:
    with serving() as (client, _):

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(payloads())
        def check(body: bytes) -> None:
            response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
            assert response.status_code < 500, (response.status_code, response.text[:300])

        check()
