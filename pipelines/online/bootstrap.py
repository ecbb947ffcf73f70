"""Fill the online store from lakeFS: the raw history on a commit of `main` and the Kafka offsets recorded
with it, so the updater goes on exactly where that history ends.

Ingestion commits raw events (`raw/<topic>/`, valid events only: quarantined ones never reach the
state) with the offsets they came from (`_flywheel/offsets/<topic>.json`) in one commit; bootstrap reads
both at one resolved commit. Only events within `longest window + lateness` of the newest event time are
loaded: older ones cannot enter the aggregates of any lookup the updater's state answers exactly (see
`layout.py`). Events are applied in event-time order through the same Lua call as the updater's (the
same dedup by event id), then the offsets; the layout is recorded last, so a bootstrap killed midway
leaves a store that says it holds no state rather than a partial one that answers.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import layout
from pipelines.errors import FlywheelError
from pipelines.features.aggregates import aggregated_columns
from pipelines.features.online.layout import member
from pipelines.features.online.store import RedisOnlineStore
from pipelines.ingest.offsets import read_stored_offsets
from pipelines.lake import MAIN, Lake
from pipelines.lineage.uris import lake_uri
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)
CHUNK = 2_000


class StoreNotEmpty(FlywheelError):
    """The store already holds this spec's state; bootstrap replaces it only when forced."""


@dataclass(frozen=True)
class BootstrapResult:
    commit: str
    source: str
    raw_files: int
    events_read: int
    events_loaded: int
    applied: int
    duplicates: int
    offsets: dict[int, int]
    topic_id: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "offsets": {str(p): o for p, o in sorted(self.offsets.items())}}


def read_history(files: list[Path], spec: DatasetSpec, keep_ms: int) -> pa.Table:
    """The narrow raw columns of `files`, events within keep_ms of the newest, in event-time order."""
    wanted = [spec.event_id, spec.entity_key, spec.timestamp, *aggregated_columns(spec)]
    order = [layout.PARTITION_COLUMN, layout.OFFSET_COLUMN]
    tables = []
    for f in files:
        table = pq.read_table(f)
        cols = [c for c in [*wanted, *order] if c in table.column_names]
        tables.append(table.select(cols))
    if not tables:
        return pa.table({c: pa.array([], pa.string()) for c in wanted})
    table = pa.concat_tables(tables, promote_options="default")
    if table.num_rows == 0:
        return table
    newest = pc.max(table.column(spec.timestamp)).as_py()
    table = table.filter(pc.greater_equal(table.column(spec.timestamp), newest - keep_ms))
    sort = [(spec.timestamp, "ascending"), *((c, "ascending") for c in order if c in table.column_names)]
    return table.sort_by(sort)


def load_history(store: RedisOnlineStore, spec: DatasetSpec, table: pa.Table) -> tuple[int, int]:
    """Apply the events of `table` (read_history's) without offsets; returns (applied, duplicates)."""
    applied = duplicates = 0
    ids = table.column(spec.event_id).to_pylist()
    keys = table.column(spec.entity_key).to_pylist()
    ts = table.column(spec.timestamp).to_numpy().astype(np.int64).tolist()
    columns = [table.column(c).to_pylist() for c in aggregated_columns(spec)]
    for start in range(0, len(ids), CHUNK):
        events = [
            (keys[i], ts[i], ids[i], member(ts[i], [c[i] for c in columns], ids[i]))
            for i in range(start, min(start + CHUNK, len(ids)))
        ]
        result = store.apply(events)
        applied += result.applied
        duplicates += result.duplicates
    return applied, duplicates


def bootstrap(
    store: RedisOnlineStore, lake: Lake, spec: DatasetSpec, ref: str = MAIN, force: bool = False
) -> BootstrapResult:
    """Replace the store's state of `spec` by the raw history at `ref` (resolved to a commit once)."""
    t0 = time.monotonic()
    state = store.state()
    if (state.layout or state.offsets) and not force:
        raise StoreNotEmpty(
            f"the online store at {store.where} already holds state for spec {spec.name!r} (offsets "
            f"{state.offsets}); pass --force to replace it with the history at lakeFS {ref!r} (stop the updater "
            "first: it would write between the two)"
        )
    commit = lake.resolve(ref)
    stored = read_stored_offsets(lake, commit, spec)
    paths = [p for p in lake.list_paths(commit, layout.raw_prefix(spec)) if p.endswith(".parquet")]
    with tempfile.TemporaryDirectory(prefix="flywheel-online-bootstrap-") as tmp:
        files = [lake.download_file(commit, p, Path(tmp) / f"{i:06d}.parquet") for i, p in enumerate(paths)]
        events_read = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        table = read_history(files, spec, store.keep_ms)
    store.clear()
    applied, duplicates = load_history(store, spec, table)
    source = f"bootstrap {lake_uri(lake.repository_id, commit, layout.raw_prefix(spec))}"
    store.set_offsets(stored.offsets, stored.topic_id, source=source)
    store.init(spec.topic.name, stored.topic_id)
    result = BootstrapResult(
        commit=commit,
        source=source,
        raw_files=len(paths),
        events_read=events_read,
        events_loaded=table.num_rows,
        applied=applied,
        duplicates=duplicates,
        offsets=dict(stored.offsets),
        topic_id=stored.topic_id,
        seconds=round(time.monotonic() - t0, 3),
    )
    log.info("online store bootstrapped from %s: %d of %d events loaded", source, table.num_rows, events_read)
    return result
