"""Micro-batching joins concurrent requests within its bounds; the prediction log never blocks and counts what it
drops; the analysis reads serving's Prometheus text into per-arm windows."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry, generate_latest

from pipelines.observability.metrics import SERVING, create
from pipelines.serving.analysis import parse_metrics, window
from pipelines.serving.batcher import MicroBatcher
from pipelines.serving.predlog import KAFKA_UNAVAILABLE, QUEUE_FULL, PredictionLog


def test_concurrent_requests_share_a_model_call_within_the_bounds() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def process(items: list[int]) -> list[int]:
        gate.wait(1)  # the first call holds the worker while the others queue up
        calls.append(len(items))
        return [i * 10 for i in items]

    async def main() -> list[list[int]]:
        batcher = MicroBatcher(process, max_batch=8, max_wait_s=0.01)
        first = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit([i, i + 100])) for i in range(1, 10)]
        await asyncio.sleep(0.05)
        gate.set()
        out = [await first] + [await t for t in rest]
        await batcher.stop()
        return out

    results = asyncio.run(main())
    assert results[0] == [0] and results[1] == [10, 1010] and results[9] == [90, 1090]  # in order, per request
    assert calls[0] == 1 and max(calls) <= 8 and sum(calls) == 19 and len(calls) < 10  # batched, bounded


def test_a_failing_batch_fails_each_of_its_requests() -> None:
    def process(items: list[int]) -> list[int]:
        raise RuntimeError("store down")

    async def main() -> list[BaseException | list[int]]:
        batcher = MicroBatcher(process, max_batch=4, max_wait_s=0.001)
        out = await asyncio.gather(batcher.submit([1]), batcher.submit([2]), return_exceptions=True)
        await batcher.stop()
        return out

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


def test_other_tasks_run_between_two_queued_inline_batches() -> None:
    order: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def process(items: list[int]) -> list[int]:
            if not order:  # while the first batch is scored, another task becomes ready (a probe, a request)
                loop.call_soon(order.append, "other")
            order.append(f"batch {items}")
            return items

        batcher = MicroBatcher(process, max_batch=1, max_wait_s=0.0, workers=0)
        batcher.start()
        await asyncio.gather(batcher.submit([1]), batcher.submit([2]))
        await batcher.stop()

    asyncio.run(main())
    assert order == ["batch [1]", "other", "batch [2]"]


def test_the_store_breaker_answers_at_once_while_open_then_tries_again() -> None:
    from pipelines.features.online.api import OnlineStoreUnavailable
    from pipelines.serving.breaker import StoreBreaker

    class Store:
        calls = 0
        down = True

        def lookup(self, entities: list[str], event_times: list[int]) -> list[dict[str, float]]:
            self.calls += 1
            if self.down:
                raise OnlineStoreUnavailable("did not answer within 0.5s (test)")
            return [{} for _ in entities]

    now = [100.0]
    store = Store()
    breaker = StoreBreaker(store, open_s=1.0, clock=lambda: now[0])
    for _ in range(3):
        try:
            breaker.lookup(["a"], [1])
        except OnlineStoreUnavailable as exc:
            assert "did not answer" in str(exc)
    assert store.calls == 1 and breaker.is_open  # two answered without asking the store
    store.down = False
    now[0] += 1.01
    assert breaker.lookup(["a"], [1]) == [{}] and store.calls == 2 and not breaker.is_open


def test_the_prediction_log_drops_and_counts_instead_of_blocking() -> None:
    registry = CollectorRegistry()
    dropped = create(["flywheel_serving_prediction_log_dropped"], registry)["flywheel_serving_prediction_log_dropped"]
    log = PredictionLog(None, "predictions", dropped, maxsize=3)
    log.offer([{"entity": "c1", "score": 0.5} for _ in range(5)])  # not started: the queue fills
    assert log.drops == {QUEUE_FULL: 2} and log.pending == 3
    log.start()  # no Kafka configured: what is queued is dropped and counted, never sent
    log.close()
    assert log.drops == {QUEUE_FULL: 2, KAFKA_UNAVAILABLE: 3}
    assert 'reason="kafka_unavailable"} 3.0' in generate_latest(registry).decode()


def test_serving_metrics_become_per_arm_windows() -> None:
    registry = CollectorRegistry()
    m = create([d.name for d in SERVING], registry)
    m["flywheel_serving_requests"].labels("1", "champion", "200").inc(90)
    m["flywheel_serving_requests"].labels("1", "champion", "503").inc(10)
    m["flywheel_serving_requests"].labels("2", "challenger", "200").inc(5)
    for _ in range(100):
        m["flywheel_serving_model_latency_seconds"].labels("1", "champion").observe(0.003)
        m["flywheel_serving_prediction_score"].labels("1").observe(0.12)
    before = parse_metrics(generate_latest(registry).decode())
    m["flywheel_serving_requests"].labels("1", "champion", "200").inc(50)
    after = parse_metrics(generate_latest(registry).decode())
    whole = window(None, after, "1|champion")
    assert whole.requests == 150 and whole.errors == 10 and whole.p99_s() == 0.005
    assert whole.scores[0.15] == 100 and whole.scores[0.1] == 0
    assert window(before, after, "1|champion").requests == 50 and window(before, after, "1|champion").errors == 0
    assert window(before, after, "2|challenger").requests == 0


def test_the_admin_token_is_generated_once_owner_only(tmp_path, monkeypatch) -> None:
    import stat

    from pipelines.serving.security import TOKEN_SETTING, admin_token, authorized, token_path

    monkeypatch.delenv(TOKEN_SETTING, raising=False)
    monkeypatch.setenv("FLYWHEEL_STATE_DIR", str(tmp_path))
    token = admin_token(tmp_path)
    assert admin_token(tmp_path) == token and len(token) >= 32
    assert stat.S_IMODE(token_path(tmp_path).stat().st_mode) == 0o600
    assert authorized(f"Bearer {token}", token) and not authorized(f"Bearer {token}x", token)
    assert not authorized(None, token) and not authorized(token, token)
    monkeypatch.setenv(TOKEN_SETTING, "from-a-secret")
    assert admin_token(tmp_path) == "from-a-secret"


def test_label_auc_joins_predictions_and_labels_by_event_id() -> None:
    import numpy as np

    from pipelines.serving.labels import join_auc

    rng = np.random.default_rng(0)
    labels = {f"e{i}": int(rng.random() < 0.3) for i in range(2000)}
    predictions = []
    for i, (event_id, label) in enumerate(labels.items()):
        good = 0.7 * label + 0.3 * rng.random()
        arm = ("2", "challenger") if i % 2 else ("1", "champion")
        score = rng.random() if arm[0] == "2" else good  # the challenger scores like a coin
        predictions.append({"event_id": event_id, "model_version": arm[0], "arm": arm[1], "score": score})
    predictions.append({"event_id": "unlabelled", "model_version": "1", "arm": "champion", "score": 0.5})
    mine, theirs, n = join_auc(predictions, labels, ("2", "challenger"), ("1", "champion"))
    assert theirs > 0.95 and 0.4 < mine < 0.6 and n == 1000
    assert join_auc(predictions, {"e1": 1}, ("2", "challenger"), ("1", "champion")) is None  # one class: no AUC
