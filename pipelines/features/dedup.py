"""Dedup across batches: an event id an earlier batch already published is dropped and counted.

Each batch stores the ids it kept as its own small index file (`pipelines.layout.id_index_path`: one sorted
string column, written once with the batch). A run checks its new ids against the earlier batches' indexes
one file at a time, so it holds the ids of one earlier batch at once, never every id ever seen, and reads
the files from the local content cache (a machine downloads each index once).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import layout
from pipelines.features.batches import Catalog
from pipelines.lake import Lake
from pipelines.lakecache import local_copies_of
from pipelines.spec.model import DatasetSpec

ID_COLUMN = "event_id"


def seen_before(lake: Lake, ref: str, catalog: Catalog, ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A boolean mask over `ids`: True where an earlier batch of the catalog published that id."""
    seen = pa.array([False] * len(ids), pa.bool_())
    if not catalog.batches or len(ids) == 0:
        return seen
    paths = [b.id_index for b in catalog.batches if b.rows]
    for path in local_copies_of(lake, ref, paths):
        earlier = pq.read_table(path, columns=[ID_COLUMN]).column(ID_COLUMN)
        seen = pc.or_(seen, pc.is_in(ids, value_set=earlier.combine_chunks()))
    return seen


def index_table(table: pa.Table, spec: DatasetSpec) -> pa.Table:
    """The id index of a model-table batch: its event ids, sorted."""
    ids = table.column(spec.event_id).combine_chunks()
    return pa.table({ID_COLUMN: pc.take(ids, pc.sort_indices(ids))})


def write_index(table: pa.Table, spec: DatasetSpec, local: str) -> None:
    pq.write_table(index_table(table, spec), local, compression="zstd")


def index_path(spec: DatasetSpec, seq: int) -> str:
    return layout.id_index_path(spec, seq)
