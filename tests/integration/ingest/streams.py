"""A stream cut into ingestion batches for the incremental-feature tests (helper module): late events out of
order (1h to 200h before their batch began), an entity quiet for 200h, equal timestamps within an entity,
re-sends within a batch and of the previous batch's events (with another amount). Deterministic per seed."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN, raw_schema
from pipelines.spec.model import DatasetSpec
from pipelines.spec.samples import null_mask, sample_columns

H = 3_600_000
T0 = 1_767_225_600_000
BATCH_SPAN = 40 * H


def event_rows(
    spec: DatasetSpec, n: int, seed: int, prefix: str, ts: np.ndarray, keys: list[str], label_rate: float = 0.2
) -> dict[str, list]:
    cols = sample_columns(spec, n, seed=seed, prefix=prefix, entities=len(set(keys)) or 1, label_rate=label_rate)
    out: dict[str, list] = {}
    for field in raw_schema(spec):
        if field.name in (PARTITION_COLUMN, OFFSET_COLUMN):
            continue
        mask = null_mask(cols, field.name)
        values = cols[field.name].tolist()
        out[field.name] = [None if mask is not None and mask[i] else v for i, v in enumerate(values)]
    out[spec.timestamp] = [int(t) for t in ts]
    out[spec.entity_key] = keys
    return out


def stream(
    spec: DatasetSpec, batches: int = 6, per_batch: int = 150, seed: int = 3, label_rate: float = 0.2
) -> list[pa.Table]:
    """Raw tables of consecutive batches (raw schema, Kafka positions increasing)."""
    rng = np.random.default_rng(seed)
    entities = [f"c{i:02d}" for i in range(25)]
    out: list[pa.Table] = []
    offset = 0
    for b in range(batches):
        start = T0 + b * BATCH_SPAN
        ts = start + rng.integers(0, BATCH_SPAN, per_batch)
        late = rng.choice(per_batch, 20, replace=False)
        ts[late] = start - rng.integers(1, 200, 20) * H  # late: 1h to 200h before the batch began
        keys = [entities[i] for i in rng.integers(0, len(entities), per_batch)]
        ties = rng.choice(per_batch, 6, replace=False)
        ts[ties[3:]] = ts[ties[:3]]  # equal timestamps ...
        for a, c in zip(ties[:3], ties[3:], strict=True):
            keys[c] = keys[a]  # ... within one entity
        if b in (0, batches - 1):  # one entity quiet for 200h between the first and the last batch
            ts[:2] = [T0 + H, T0 + 200 * H + H] if b == 0 else [start + H, start + 2 * H]
            keys[:2] = ["quiet", "quiet"]
        rows = event_rows(spec, per_batch, seed * 100 + b, f"b{b}", ts, keys, label_rate)
        table = pa.table(rows)
        if b >= 2:  # re-sends: 10 events of the previous batch (changed amount) and 3 of this one
            prev = out[-1].slice(5, 10).drop_columns([PARTITION_COLUMN, OFFSET_COLUMN])
            prev = prev.set_column(prev.schema.get_field_index("amount"), "amount", pa.array([1.0] * 10))
            table = pa.concat_tables([table.cast(prev.schema), prev, table.slice(0, 3).cast(prev.schema)])
        n = table.num_rows
        table = table.append_column(PARTITION_COLUMN, pa.array(np.zeros(n, dtype=np.int32)))
        table = table.append_column(OFFSET_COLUMN, pa.array(np.arange(offset, offset + n, dtype=np.int64)))
        offset += n
        out.append(table.cast(raw_schema(spec)))
    return out


def send(bootstrap: str, spec: DatasetSpec, table: pa.Table) -> int:
    """The rows of a raw table as JSON events on the spec's topic, keyed by entity, in row order."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_block_ms=30_000)
    fields = spec.event_fields
    for row in table.select(fields).to_pylist():
        event: dict[str, Any] = dict(row)
        key = str(event[spec.entity_key]).encode() if spec.entity_key else None
        producer.send(spec.topic.name, value=json.dumps(event).encode(), key=key)
    producer.flush(60)
    producer.close(10)
    return table.num_rows
