"""The interface serving uses to get a raw event's history aggregates (see pipelines.features.aggregates)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pipelines.errors import FlywheelError


class OnlineStoreUnavailable(FlywheelError):
    """The store cannot answer (down, timed out, not caught up): serving must answer 503, never score."""


class OnlineFeatures(Protocol):
    def lookup(self, entities: Sequence[str], event_times: Sequence[int]) -> list[dict[str, float]]:
        """The spec's aggregates for each (entity key, event time in ms), in order: exactly what the
        offline model table holds for an event of that entity at that time. One round trip per entity
        at most; raises OnlineStoreUnavailable when the store cannot answer."""
        ...


class NoAggregates:
    """A spec without aggregates (or without an entity) needs no store: every lookup is empty."""

    def lookup(self, entities: Sequence[str], event_times: Sequence[int]) -> list[dict[str, float]]:
        return [{} for _ in entities]
