"""Which model version answers a record: sticky by entity key (or event id), the same on every replica.

A record's bucket is a hash of its key salted with the challenger's version, so a rollout re-draws its sample
but every replica, and every request of the same entity, lands in the same place. A canary step that grows
keeps every entity that was already on the challenger there (the threshold only rises).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

CHAMPION_ARM, CHALLENGER_ARM, SHADOW_ARM = "champion", "challenger", "shadow"
_SCALE = float(1 << 64)


def bucket(key: str, salt: str) -> float:
    """A uniform number in [0, 1) from the key and salt (blake2b: stable across processes, unlike hash())."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class Route(NamedTuple):
    arm: str  # champion | challenger: who answers
    shadow: bool  # also score with the challenger, log it, never return it


def route(key: str, challenger: str | None, share: float, shadow: bool) -> Route:
    """The arm for one record given the challenger's version, its share of answers (0..1) and shadowing."""
    if challenger is None:
        return Route(CHAMPION_ARM, False)
    if shadow:
        return Route(CHAMPION_ARM, True)
    if share >= 1.0 or (share > 0.0 and bucket(key, challenger) < share):
        return Route(CHALLENGER_ARM, False)
    return Route(CHAMPION_ARM, False)
