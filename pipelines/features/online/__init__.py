"""The online half of the features: the spec's aggregates for one raw event at request time.

`api.OnlineFeatures` is what serving asks; the Redis store (`store.py`, kept current by `pipelines.online`)
implements it with the semantics of `pipelines.features.aggregates`, as the offline Spark table does.

    features = connect(spec, setting("FLYWHEEL_ONLINE_STORE_URL"))   # NoAggregates when none are needed
    features.lookup(["c1"], [event_time_ms])                           # [{aggregate: value}]
"""

from __future__ import annotations

from pipelines.errors import FlywheelError
from pipelines.features.online.api import NoAggregates, OnlineFeatures, OnlineStoreUnavailable

URL_SETTING = "FLYWHEEL_ONLINE_STORE_URL"
DEFAULT_TIMEOUT_S = 0.5

__all__ = ["URL_SETTING", "NoAggregates", "OnlineFeatures", "OnlineStoreUnavailable", "StoreNotConfigured", "connect"]


class StoreNotConfigured(FlywheelError):
    """The spec has aggregates but no online store URL was given."""


def needs_store(spec: object) -> bool:
    """Only a spec with aggregates (and so an entity to aggregate over) needs an online store."""
    return bool(getattr(spec, "aggregates", None)) and bool(getattr(spec, "entity_key", None))


def connect(spec: object, url: str | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> OnlineFeatures:
    """The online features of `spec`: NoAggregates for a spec without aggregates (no store needed), else the
    Redis store at `url` (FLYWHEEL_ONLINE_STORE_URL). Connects lazily: a store that is down makes each
    lookup raise OnlineStoreUnavailable, not this call."""
    if not needs_store(spec):
        return NoAggregates()
    if not url:
        raise StoreNotConfigured(
            f"spec {getattr(spec, 'name', '?')!r} has aggregates, so serving needs the online store, but no URL is "
            f"set: set {URL_SETTING} (redis://:<password>@host:port/0; `flywheel up` writes it to "
            ".flywheel/stack.env)"
        )
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    from pipelines.features.online.store import RedisOnlineStore

    return RedisOnlineStore(spec, url, timeout_s=timeout_s)  # type: ignore[arg-type]
