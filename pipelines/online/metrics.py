"""The feature updater's Prometheus metrics (names from pipelines.observability.metrics), on its own port."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.observability.metrics import create

if TYPE_CHECKING:
    from pipelines.features.online.store import RedisOnlineStore
    from pipelines.online.updater import Updater

EVENTS = "flywheel_features_updater_events"
LAG = "flywheel_features_updater_lag_events"
OUTCOMES = {"applied": "applied", "duplicate": "duplicates", "rejected": "rejected"}


class UpdaterMetrics:
    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry

        self.registry = registry or CollectorRegistry()
        made = create([EVENTS, LAG], self.registry)
        self.events, self.lag = made[EVENTS], made[LAG]
        self._seen: dict[str, int] = {}

    @classmethod
    def serve(cls, port: int, host: str = "127.0.0.1") -> UpdaterMetrics:
        """Start the /metrics endpoint now (before the store and Kafka answer: the stack's readiness probe)."""
        from prometheus_client import start_http_server

        metrics = cls()
        start_http_server(port, addr=host, registry=metrics.registry)
        return metrics

    def observe(self, updater: Updater) -> None:
        spec = updater.spec.name
        for outcome, attr in OUTCOMES.items():
            total = getattr(updater.stats, attr)
            self.events.labels(spec, outcome).inc(total - self._seen.get(outcome, 0))
            self._seen[outcome] = total
        lag = updater.lag()
        if lag is not None:
            self.lag.labels(spec).set(lag)

    def observe_store(self, store: RedisOnlineStore) -> None:
        """With several worker processes: the store's counters (all writers, bootstrap included) and the lag
        each worker wrote with its heartbeat."""
        meta = store.meta()
        spec = store.spec.name
        for outcome, attr in OUTCOMES.items():
            total = int(meta.get(attr, 0))
            self.events.labels(spec, outcome).inc(max(total - self._seen.get(outcome, total), 0))
            self._seen[outcome] = total
        self.lag.labels(spec).set(sum(int(v) for k, v in meta.items() if k.startswith("lag_p")))
