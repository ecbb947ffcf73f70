"""The inference service (FastAPI): raw events in, scores out, by the model versions the aliases name.

    POST /v1/predict   {"records": [raw event, ...]} -> {"request_id", "predictions": [{score, model_version, arm}]}
    GET  /v1/models    versions, aliases, traffic split, rollout state
    GET  /healthz      live;  GET /readyz: 200 once a champion is loaded, else 503 with the reason
    GET  /metrics      Prometheus (pipelines.observability.metrics SERVING)
    POST /admin/reload, POST /admin/rollout   need `Authorization: Bearer <admin token>` (401 without)

Bad input is a 4xx naming the record and field; a missing champion or an online store that cannot answer is a
503 with the reason; a 500 only for a bug (logged with the request id).
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pipelines.errors import FlywheelError
from pipelines.features.online.api import OnlineFeatures, OnlineStoreUnavailable
from pipelines.observability.metrics import SERVING, create
from pipelines.serving import security
from pipelines.serving.batcher import MicroBatcher
from pipelines.serving.breaker import StoreBreaker
from pipelines.serving.models import ModelFollower, Snapshot, describe_model
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.rollout import STATES
from pipelines.serving.router import CHALLENGER_ARM, CHAMPION_ARM, SHADOW_ARM, route
from pipelines.serving.schemas import RequestError, RequestValidator, openapi_body
from pipelines.serving.scoring import Item, Scorer
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)
PREDICT_ROUTE = "/v1/predict"


@dataclass
class ServingConfig:
    model_name: str
    max_records: int = 256
    max_body_bytes: int = 1 << 20
    max_batch: int = 64
    max_wait_s: float = 0.002
    # 0: score on the event loop (least CPU per request; a slow store lookup, bounded by its timeout, delays
    # other requests meanwhile); n > 0: n worker threads
    batch_workers: int = 0
    # after a failed store lookup, answer 503 at once for this long instead of trying per batch (breaker.py)
    store_retry_s: float = 1.0


@dataclass
class ServingService:
    """Everything one serving process holds; tests build it with in-process models and stores."""

    spec: DatasetSpec
    config: ServingConfig
    follower: ModelFollower
    store: OnlineFeatures | None  # None: not usable, `store_error` says why
    admin_token: str
    predlog: PredictionLog | None = None
    store_error: str = ""
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # (action, body) -> result dict; the registry-backed control in serve_cmd (None: rollout control disabled)
    rollout_control: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    metrics: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = create([m.name for m in SERVING], self.registry)
        self.follower.on_swap = self._publish

    def _publish(self, snap: Snapshot) -> None:
        """Rollout and traffic gauges for the snapshot that now serves."""
        state_gauge = self.metrics["flywheel_serving_rollout_state"]
        share_gauge = self.metrics["flywheel_serving_traffic_share"]
        state_gauge.clear()
        share_gauge.clear()
        if snap.rollout is not None:
            state_gauge.labels(snap.rollout.strategy, snap.rollout.state).set(1)
        else:
            state_gauge.labels("none", "idle").set(1)
        for version, arm, share in traffic(snap):
            share_gauge.labels(version, arm).set(share)


def traffic(snap: Snapshot) -> list[tuple[str, str, float]]:
    out = []
    share = snap.challenger_share
    if snap.champion is not None:
        out.append((snap.champion.version, CHAMPION_ARM, 1.0 - share))
    if snap.challenger is not None and snap.rollout is not None:
        out.append(
            (snap.challenger.version, SHADOW_ARM if snap.shadow else CHALLENGER_ARM, 1.0 if snap.shadow else share)
        )
    return out


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_app(service: ServingService) -> FastAPI:
    spec, config, follower, metrics = service.spec, service.config, service.follower, service.metrics
    validator = RequestValidator(spec, config.max_records, config.max_body_bytes)
    needs_lookup = bool(spec.aggregates) and spec.entity_key is not None
    scorer = (
        Scorer(StoreBreaker(service.store, config.store_retry_s), metrics, service.predlog, needs_lookup)
        if service.store is not None
        else None
    )
    batcher = MicroBatcher(
        scorer or (lambda items: []),
        config.max_batch,
        config.max_wait_s,
        config.batch_workers,
        on_batch=metrics["flywheel_serving_batch_size"].observe,
    )
    requests = metrics["flywheel_serving_requests"]
    model_latency = metrics["flywheel_serving_model_latency_seconds"]
    route_latency = metrics["flywheel_serving_request_latency_seconds"].labels(PREDICT_ROUTE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service._publish(follower.snapshot)
        follower.start()
        if service.predlog is not None:
            service.predlog.start()
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            follower.stop()
            if service.predlog is not None:
                await run_in_threadpool(service.predlog.close)

    app = ServingApp(
        title="Flywheel serving",
        version="1",
        lifespan=lifespan,
        description=f"Scores raw `{spec.name}` events with the model `{config.model_name}` (MLflow aliases).",
    )

    def refuse(
        status: int, body: dict[str, Any], started: float, labels: set[tuple[str, str]] | None = None
    ) -> tuple[int, bytes]:
        for version, arm in labels or {("", "")}:
            requests.labels(version, arm, str(status)).inc()
        route_latency.observe(time.perf_counter() - started)
        return status, orjson.dumps(body)

    async def handle_predict(content_length: str | None, body: AsyncIterator[bytes]) -> tuple[int, bytes]:
        """One predict request: (status, JSON body). Shared by the FastAPI route and the ASGI fast path."""
        started = time.perf_counter()
        request_id = next_request_id()
        try:
            validator.check_size(content_length)
            chunks, size = [], 0
            async for chunk in body:
                size += len(chunk)
                if size > config.max_body_bytes:
                    raise RequestError(
                        413, f"the body is over the limit of {config.max_body_bytes} bytes: send fewer records"
                    )
                chunks.append(chunk)
            records = validator.parse(b"".join(chunks))
        except RequestError as exc:
            return refuse(exc.status, {**exc.body(), "request_id": request_id}, started)
        except (ClientDisconnected, ClientDisconnect):
            # the client went away mid-body: not a bad request (nginx's 499; nobody reads the answer)
            return refuse(
                CLIENT_CLOSED, {"detail": "the client closed the connection", "request_id": request_id}, started
            )
        return await score(records, request_id, started)

    @app.post(
        PREDICT_ROUTE,
        openapi_extra={"requestBody": openapi_body(spec, config.max_records)},
        responses={
            200: {"description": "one prediction per record, in order"},
            400: {"description": "not JSON"},
            413: {"description": "body or record count over the limit"},
            422: {"description": "a record does not match the spec: names the record and field"},
            503: {"description": "no champion loaded yet, or the online store cannot answer"},
        },
    )
    async def predict(request: Request) -> Response:
        status, payload = await handle_predict(request.headers.get("content-length"), request.stream())
        return Response(payload, status_code=status, media_type="application/json")

    async def score(records: list[Any], request_id: str, started: float) -> tuple[int, bytes]:
        snap = follower.snapshot
        if snap.champion is None:
            reason = "no champion model is loaded yet: promote a version (retrain_job's deployment) and serving "
            reason += "picks it up within the polling interval"
            if snap.error or follower.last_error:
                reason += f" (last error: {snap.error or follower.last_error})"
            return refuse(503, {"detail": reason, "request_id": request_id}, started)
        if scorer is None:
            return refuse(503, {"detail": service.store_error, "request_id": request_id}, started)
        challenger = snap.challenger.version if snap.challenger is not None and snap.rollout is not None else None
        share, shadow = snap.challenger_share, snap.shadow
        items = [Item(r, request_id, route(r.entity, challenger, share, shadow), snap) for r in records]
        labels: set[tuple[str, str]] = set()  # (version, arm) pairs this request touched, for the metrics
        for item in items:
            if item.route.arm == CHALLENGER_ARM and challenger is not None:
                labels.add((challenger, CHALLENGER_ARM))
            else:
                labels.add((snap.champion.version, CHAMPION_ARM))
            if item.route.shadow and challenger is not None:
                labels.add((challenger, SHADOW_ARM))
        try:
            results = await batcher.submit(items)
        except OnlineStoreUnavailable as exc:
            detail = f"the online feature store cannot answer, so the aggregates the model needs are unknown: {exc}"
            return refuse(503, {"detail": detail, "request_id": request_id}, started, labels)
        except Exception:
            log.exception("predict request %s failed", request_id)
            detail = f"scoring failed (a bug): see the serving log for request {request_id}"
            return refuse(500, {"detail": detail, "request_id": request_id}, started, labels)
        body = {
            "request_id": request_id,
            "predictions": [
                {"event_id": i.record.event_id, "score": r.score, "model_version": r.version, "arm": r.arm}
                for i, r in zip(items, results, strict=True)
            ],
        }
        elapsed = time.perf_counter() - started
        for version, arm in labels:
            requests.labels(version, arm, "200").inc()
            model_latency.labels(version, arm).observe(elapsed)
        route_latency.observe(elapsed)
        return 200, orjson.dumps(body)

    def models_body() -> dict[str, Any]:
        snap = follower.snapshot
        rollout = snap.rollout.to_dict() if snap.rollout is not None else None
        plog = service.predlog
        return {
            "model": config.model_name,
            "ready": snap.ready,
            "aliases": {
                "champion": describe_model(snap.champion),
                "challenger": describe_model(snap.challenger),
            },
            "warm_versions": follower.cached_versions(),
            "traffic": [{"model_version": v, "arm": a, "share": s} for v, a, s in traffic(snap)],
            "rollout": rollout,
            "rollout_states": list(STATES),
            "last_poll": follower.last_poll,
            "poll_seconds": follower.poll_s,
            "error": snap.error or follower.last_error,
            "online_store": service.store_error or "ok",
            "prediction_log": None
            if plog is None
            else {
                "topic": plog.topic,
                "sent": plog.sent,
                "pending": plog.pending,
                "dropped": plog.drops,
                "error": plog.last_error,
            },
        }

    @app.get("/v1/models")
    async def models() -> Response:
        return _json(models_body())

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "live"})

    @app.get("/readyz")
    async def readyz() -> Response:
        snap = follower.snapshot
        if snap.ready:
            return _json({"status": "ready", "champion": snap.champion.version if snap.champion else None})
        reason = f"no `champion` of model {config.model_name!r} is loaded yet"
        if snap.error or follower.last_error:
            reason += f": {snap.error or follower.last_error}"
        return _json({"status": "not ready", "reason": reason}, 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    def check_admin(request: Request) -> Response | None:
        if security.authorized(request.headers.get("authorization"), service.admin_token):
            return None
        return Response(
            orjson.dumps(
                {
                    "detail": "admin endpoints need `Authorization: Bearer <token>` (FLYWHEEL_SERVING_ADMIN_"
                    "TOKEN, or .flywheel/serving-admin-token)"
                }
            ),
            status_code=401,
            media_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.post("/admin/reload")
    async def reload(request: Request) -> Response:
        denied = check_admin(request)
        if denied is not None:
            return denied
        try:
            await run_in_threadpool(follower.refresh)
        except Exception as exc:
            return _json({"detail": f"reading the registry failed: {exc}", **models_body()}, 503)
        return _json(models_body())

    @app.post("/admin/rollout")
    async def rollout_control(request: Request) -> Response:
        denied = check_admin(request)
        if denied is not None:
            return denied
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError as exc:
            return _json({"detail": f"the body is not valid JSON: {exc}"}, 400)
        if not isinstance(body, dict) or body.get("action") not in ("start", "advance", "promote", "rollback"):
            return _json({"detail": 'send {"action": "start" | "advance" | "promote" | "rollback", ...}'}, 422)
        if service.rollout_control is None:
            return _json({"detail": "rollout control is not configured in this process"}, 503)
        try:
            result = await run_in_threadpool(service.rollout_control, body["action"], body)
            await run_in_threadpool(follower.refresh)
        except (FlywheelError, ValueError) as exc:  # no rollout to act on; steps the spec's rules refuse
            return _json({"detail": str(exc)}, 409)
        return _json({**result, "models": models_body()})

    app.fast_predict = handle_predict
    return app


class ServingApp(FastAPI):
    """FastAPI with a direct ASGI path for `POST /v1/predict`: the same handler as the route (which stays for
    the OpenAPI document), without the per-request routing and middleware layers (about a tenth of the CPU of
    a 32-record request on a 2-core machine). Everything else goes through FastAPI."""

    fast_predict: Callable[[str | None, AsyncIterator[bytes]], Awaitable[tuple[int, bytes]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.fast_predict
        if (
            handler is not None
            and scope["type"] == "http"
            and scope["path"] == PREDICT_ROUTE
            and scope["method"] == "POST"
        ):
            content_length = None
            for name, value in scope["headers"]:
                if name == b"content-length":
                    content_length = value.decode("latin-1")
                    break
            status, payload = await handler(content_length, _body(receive))
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        await super().__call__(scope, receive, send)


CLIENT_CLOSED = 499  # the status counted for a request whose client disconnected before its body ended


class ClientDisconnected(Exception):
    """The client disconnected before the request body ended."""


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    """A request body's chunks from ASGI messages; ClientDisconnected when the client goes away mid-body (a
    truncated body must not be parsed, and answered, as a bad request)."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


_REQUEST_PREFIX = uuid.uuid4().hex[:16]
_request_counter = itertools.count()


def next_request_id() -> str:
    """A request id unique across processes (a random prefix per process, then a counter): a uuid4 per
    request costs a getrandom system call."""
    return f"{_REQUEST_PREFIX}{next(_request_counter):016x}"
