"""Small serving fixes: the bulk histogram's fallback skips NaN like its fast path (and the prometheus_client
installed still has the private fields the fast path reads), a prediction log that gives up on a stuck sender
counts what was still queued and creates no producer afterwards, and a client gone mid-body is a 499, not a 400."""

from __future__ import annotations

import threading
import time

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pipelines.observability.metrics import create
from pipelines.serving import predlog as predlog_module
from pipelines.serving.predlog import KAFKA_UNAVAILABLE, SEND_FAILED, PredictionLog
from pipelines.serving.scoring import observe_many
from tests.unit.serving.test_app import serving


def test_the_installed_prometheus_client_has_what_the_bulk_histogram_reads() -> None:
    child = Histogram("s", "scores", ["v"], registry=CollectorRegistry(), buckets=(0.5,)).labels("1")
    bounds, buckets, total = child._upper_bounds, child._buckets, child._sum  # a rename fails here
    assert list(bounds) == [0.5, float("inf")] and len(buckets) == len(bounds)
    assert all(hasattr(b, "inc") for b in buckets) and hasattr(total, "inc")


class ObserveOnly:
    """A histogram without prometheus_client's private fields: observe_many takes its fallback loop."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def observe(self, value: float) -> None:
        self.seen.append(value)


def test_the_fallback_observes_every_score_but_nan() -> None:
    histogram = ObserveOnly()
    observe_many(histogram, np.array([0.1, float("nan"), 0.9]))
    assert histogram.seen == [0.1, 0.9]
    registry = CollectorRegistry()
    observe_many(Histogram("s", "scores", registry=registry, buckets=(0.5,)), np.array([0.1, float("nan"), 0.9]))
    assert "s_count 2.0" in generate_latest(registry).decode()  # the fast path agrees


def _dropped():
    return create(["flywheel_serving_prediction_log_dropped"], CollectorRegistry())[
        "flywheel_serving_prediction_log_dropped"
    ]


def test_a_stuck_sender_at_close_counts_what_is_queued_and_opens_no_producer(monkeypatch) -> None:
    release = threading.Event()

    def hung_topic_check(*_args: object) -> int:
        release.wait(5)  # Kafka does not answer within close()'s wait
        return 3

    monkeypatch.setattr(predlog_module, "ensure_topic", hung_topic_check)
    log = PredictionLog("127.0.0.1:1", "predictions", _dropped(), timeout_s=0.5)
    log.start()
    log.offer([{"entity": "a"}] * 4)  # taken by the sender, which then hangs connecting
    time.sleep(0.3)
    log.offer([{"entity": "b"}] * 5)  # still queued when close gives up
    sender = log._thread
    assert sender is not None
    log.close(timeout_s=0.2)
    assert log.drops == {SEND_FAILED: 5} and log.pending == 0
    release.set()
    sender.join(5)
    assert not sender.is_alive() and log._producer is None  # no producer nobody would flush or close
    assert log.drops == {SEND_FAILED: 5, KAFKA_UNAVAILABLE: 4}


def test_a_client_gone_mid_body_is_counted_as_499_not_400() -> None:
    import asyncio

    with serving() as (client, _service):
        app = client.app
        messages = [
            {"type": "http.request", "body": b'{"records": [{"event_id"', "more_body": True},
            {"type": "http.disconnect"},
        ]
        sent: list[dict] = []

        async def receive() -> dict:
            return messages.pop(0)

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/predict",
            "headers": [(b"content-type", b"application/json")],
            "query_string": b"",
        }
        asyncio.run(app(scope, receive, send))  # type: ignore[operator]
        assert sent[0]["status"] == 499
        metrics = client.get("/metrics").text
        assert 'status="499"' in metrics and 'status="400"' not in metrics
