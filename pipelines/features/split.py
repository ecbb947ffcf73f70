"""The deterministic train/validation/test split: a hash of (salt, entity key), so an entity never leaks.

The same function exists for Spark (`split_code_column`) and plain Python (`split_of`), so validation can
recompute it and training can trust it: md5("<salt>:<key>"), first 8 hex digits as a fraction of 2**32.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pipelines.layout import SPLITS
from pipelines.spec.model import DatasetSpec

_SCALE = float(2**32)


def split_fraction(key: str, salt: str) -> float:
    return int(hashlib.md5(f"{salt}:{key}".encode()).hexdigest()[:8], 16) / _SCALE


def split_of(key: str, spec: DatasetSpec) -> str:
    u = split_fraction(str(key), spec.split.salt)
    if u < spec.split.train:
        return SPLITS[0]
    if u < spec.split.train + spec.split.validation:
        return SPLITS[1]
    return SPLITS[2]


def split_code_column(spec: DatasetSpec, key_col: Any) -> Any:
    """The Spark Column computing `split_of` for `key_col` (a string Column) as its index in SPLITS (a byte)."""
    from pyspark.sql import functions as F

    digest = F.md5(F.concat(F.lit(f"{spec.split.salt}:"), key_col))
    u = F.conv(F.substring(digest, 1, 8), 16, 10).cast("double") / F.lit(_SCALE)
    train, validation = spec.split.train, spec.split.train + spec.split.validation
    return F.when(u < F.lit(train), F.lit(0)).when(u < F.lit(validation), F.lit(1)).otherwise(F.lit(2)).cast("byte")
