"""The CPU-saving paths of serving give what the plain paths give: scoring on the event loop batches like the
worker thread, the bulk score histogram equals one observe per score, the batch featurizer falls back to the
per-value rules, the ASGI predict path answers as the FastAPI route, the load generator reads HTTP framing,
and the prediction log bounds its queue per record while taking a micro-batch as one entry."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pipelines.observability.metrics import create
from pipelines.serving.batcher import MicroBatcher
from pipelines.serving.features import RowFeaturizer, _number
from pipelines.serving.loadgen import _parse_response
from pipelines.serving.predlog import QUEUE_FULL, PredictionLog
from pipelines.serving.scoring import observe_many
from pipelines.training.preprocess import Preprocessor
from pipelines.training.synthetic import synthetic_table
from tests.unit.serving.models import SPEC
from tests.unit.serving.test_app import events, serving


def test_scoring_on_the_event_loop_batches_concurrent_requests_in_order() -> None:
    calls: list[tuple[int, int]] = []

    def process(items: list[int]) -> list[int]:
        calls.append((len(items), threading.get_ident()))
        return [i * 10 for i in items]

    async def main() -> list[list[int]]:
        batcher = MicroBatcher(process, max_batch=8, max_wait_s=0.01, workers=0)
        out = await asyncio.gather(*(batcher.submit([i, i + 100]) for i in range(10)))
        await batcher.stop()
        return out

    results = asyncio.run(main())
    assert results[0] == [0, 1000] and results[9] == [90, 1090]
    assert sum(n for n, _ in calls) == 20 and max(n for n, _ in calls) <= 8 and len(calls) < 10
    assert {tid for _, tid in calls} == {threading.get_ident()}  # on the loop's thread: no hand-off


def test_the_bulk_score_histogram_equals_one_observe_per_score() -> None:
    rng = np.random.default_rng(3)
    bounds = (0.05, 0.1, 0.5, 0.95)
    scores = np.concatenate([rng.random(500), [0.0, 0.05, 0.1, 0.5, 0.95, 1.0, float("nan")]])  # edges, NaN
    one, bulk = CollectorRegistry(), CollectorRegistry()
    a = Histogram("s", "scores", ["v"], registry=one, buckets=bounds).labels("1")
    b = Histogram("s", "scores", ["v"], registry=bulk, buckets=bounds).labels("1")
    for s in scores[~np.isnan(scores)].tolist():
        a.observe(s)
    observe_many(b, scores)
    got, want = _samples(generate_latest(bulk).decode()), _samples(generate_latest(one).decode())
    assert {k: v for k, v in got.items() if "_sum" not in k} == {k: v for k, v in want.items() if "_sum" not in k}
    assert got['s_count{v="1"}'] == 506 and abs(got['s_sum{v="1"}'] - want['s_sum{v="1"}']) < 1e-9  # order of adds


def _samples(text: str) -> dict[str, float]:
    lines = [line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("s_") and "_created" not in line]
    return {name: float(value) for name, value in lines}


def test_the_batch_featurizer_takes_the_per_value_rules_for_what_numpy_refuses() -> None:
    table = synthetic_table(SPEC, 500, seed=2)
    prep = Preprocessor.fit(SPEC, table)
    featurizer = RowFeaturizer(prep)
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in table.head(20).to_dict("records")]
    rows[0]["amount"] = "not a number"  # numpy refuses: NaN by the per-value rule
    rows[1]["amount"] = " 12.5 "  # a numeric string: parsed either way
    del rows[2]["device_age_days"]  # absent: null
    rows[3]["merchant_category"] = ["unhashable"]  # unknown category
    dense, cats = featurizer.transform(rows)
    numeric = [s.name for s in prep.numeric]
    by_rule = [{**r, **{n: _number(r.get(n)) for n in numeric}} for r in rows]
    by_rule[3]["merchant_category"] = None
    expected_dense, expected_cats = featurizer.transform(by_rule)  # all numbers now: the batch conversion
    np.testing.assert_array_equal(dense, expected_dense)
    np.testing.assert_array_equal(cats, expected_cats)
    frame = pd.DataFrame(by_rule)
    frame["device_age_days"] = frame["device_age_days"].astype("Float64")
    reference_dense, reference_cats = prep.transform(frame)
    np.testing.assert_allclose(dense, reference_dense, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(cats, reference_cats)


def test_the_asgi_predict_path_answers_as_the_fastapi_route() -> None:
    body = {"records": events(4)}
    with serving() as (client, _):
        fast = client.post("/v1/predict", json=body)
        app = client.app
        handler, app.fast_predict = app.fast_predict, None  # type: ignore[attr-defined]
        try:
            routed = client.post("/v1/predict", json=body)
            bad = client.post("/v1/predict", content=b"{not json")
        finally:
            app.fast_predict = handler  # type: ignore[attr-defined]
        bad_fast = client.post("/v1/predict", content=b"{not json")
        assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
    assert fast.status_code == routed.status_code == 200
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert fast.json()["predictions"] == routed.json()["predictions"]
    assert fast.json()["request_id"] != routed.json()["request_id"]
    assert bad.status_code == bad_fast.status_code == 400


def test_the_load_generator_reads_content_length_and_chunked_answers() -> None:
    whole = bytearray(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: x\r\n\r\nhello")
    assert _parse_response(whole) == (200, b"hello", True)
    assert _parse_response(whole[:-1]) is None  # the body is not complete yet
    chunked = bytearray(b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    chunked += b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert _parse_response(chunked) == (503, b"abcde", False)
    assert _parse_response(chunked[:-6]) is None


def test_the_prediction_log_bounds_records_and_takes_a_batch_as_one_entry() -> None:
    dropped = create(["flywheel_serving_prediction_log_dropped"], CollectorRegistry())
    log = PredictionLog(None, "predictions", dropped["flywheel_serving_prediction_log_dropped"], maxsize=10)
    log.offer([{"entity": f"c{i}"} for i in range(6)])
    log.offer([{"entity": f"d{i}"} for i in range(6)])  # 4 fit, 2 are dropped and counted
    assert log.pending == 10 and log.drops == {QUEUE_FULL: 2}
    assert [len(b) for b in log._batches] == [6, 4]
