"""A short circuit breaker in front of the online store on serving's lookup path.

A hung store costs each lookup its socket timeout and one retry (~1 s). Micro-batches scored on the event loop
(FLYWHEEL_SERVING_BATCH_WORKERS=0) would each block the loop that long, batch after batch, so /healthz and
/readyz miss their probe timeout and every replica is pulled. After a lookup fails, the breaker answers
OnlineStoreUnavailable at once for `open_s` seconds (the requests get 503 with the reason), then lets the next
lookup try the store again.

    store = StoreBreaker(store, open_s=1.0)
    store.lookup(entities, event_times)   # raises OnlineStoreUnavailable at once while open
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pipelines.features.online.api import OnlineFeatures, OnlineStoreUnavailable


class StoreBreaker:
    def __init__(self, store: OnlineFeatures, open_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if open_s < 0:
            raise ValueError(f"open_s must not be negative, got {open_s}")
        self.store = store
        self.open_s = open_s
        self.clock = clock
        self._open_until = 0.0
        self._reason = ""

    @property
    def is_open(self) -> bool:
        return self.clock() < self._open_until

    def lookup(self, entities: Sequence[str], event_times: Sequence[int]) -> list[dict[str, float]]:
        if self.is_open:
            left = self._open_until - self.clock()
            raise OnlineStoreUnavailable(f"online store unavailable: {self._reason} (trying it again in {left:.1f}s)")
        try:
            return self.store.lookup(entities, event_times)
        except OnlineStoreUnavailable as exc:
            # plain attribute writes: worker threads (FLYWHEEL_SERVING_BATCH_WORKERS > 0) may race, harmlessly
            self._reason = str(exc)
            self._open_until = self.clock() + self.open_s
            raise
