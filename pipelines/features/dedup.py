"""Dedup across batches: an event id an earlier batch already published is dropped and counted.

Each batch writes, with its rows and in the same commit, two files of its own (never rewritten):
- its id index (`pipelines.layout.id_index_path`): the ids it kept, sorted by hash bucket (the top
  BUCKET_BITS bits of `idfilter.id_hashes`), in row groups whose bucket range Parquet's statistics record;
- its id filter (`pipelines.layout.id_filter_path`): a Bloom filter of those ids (3 bytes per id).
The catalog entry records the filter's parameters and the hash it was built with (`BatchEntry.id_filter`).

A run hashes its new ids once. Per earlier batch it probes the filter, which rules out nearly every new id
(false positives ~1e-5); only for the ids left does it open that batch's index, reading just the row groups
whose buckets hold them, and compares the ids themselves. So a run reads about 3 bytes of filter per id of
history and a few row groups, instead of every id ever seen; a re-sent event (a topic replayed from its
start) does hit, and costs the row groups it needs. Memory holds one batch's filter and row groups at once.

Batches recorded before the filters existed (no `id_filter`, or a hash this code does not know) are checked
the old way: their whole index is read. `flywheel dataset rebuild` rewrites every batch's index and filter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import layout
from pipelines.features.batches import BatchEntry, Catalog
from pipelines.features.idfilter import BITS_PER_ID, HASH_NAME, HASHES, BloomFilter, as_large_string, id_hashes
from pipelines.lake import Lake
from pipelines.lakecache import local_copies_of
from pipelines.spec.model import DatasetSpec

log = logging.getLogger(__name__)

ID_COLUMN = "event_id"
BUCKET_COLUMN = "bucket"
BUCKET_BITS = 12  # 4096 buckets: a candidate id's bucket lies in one or two row groups
INDEX_ROWS_PER_GROUP = 8192


@dataclass
class DedupReads:
    """What a lookup read: filters probed, indexes opened, row groups read, old-format indexes read whole."""

    filters: int = 0
    candidates: int = 0  # ids some filter let through
    indexes: int = 0
    row_groups: int = 0
    full_indexes: int = 0


def buckets_of(hashes: np.ndarray, bits: int = BUCKET_BITS) -> np.ndarray:
    return (hashes >> np.uint64(64 - bits)).astype(np.int32)


def _filter_usable(entry: BatchEntry) -> bool:
    f = entry.id_filter
    return bool(f) and f.get("hash") == HASH_NAME and f.get("layout") == "bucketed-v1"


def seen_before(
    lake: Lake, ref: str, catalog: Catalog, ids: pa.Array | pa.ChunkedArray, reads: DedupReads | None = None
) -> pa.Array:
    """A boolean mask over `ids`: True where an earlier batch of the catalog published that id."""
    return seen_in(catalog, ids, lambda paths: local_copies_of(lake, ref, paths), reads)


def seen_in(
    catalog: Catalog,
    ids: pa.Array | pa.ChunkedArray,
    local_files: Callable[[list[str]], list[Path]],
    reads: DedupReads | None = None,
) -> pa.Array:
    """`seen_before` over the batches' files as `local_files(lake paths)` gives them (in that order)."""
    reads = reads if reads is not None else DedupReads()
    ids = as_large_string(ids)
    seen = np.zeros(len(ids), np.bool_)
    earlier = [b for b in catalog.batches if b.rows]
    if not earlier or len(ids) == 0:
        return pa.array(seen)
    present = np.asarray(ids.is_valid())  # a null id is never a re-send
    filtered = [b for b in earlier if _filter_usable(b)]
    if filtered:
        hashes = id_hashes(ids)
        paths = [str(b.id_filter["path"]) for b in filtered]  # type: ignore[index]
        for entry, path in zip(filtered, local_files(paths), strict=True):
            todo = np.flatnonzero(present & ~seen)
            if todo.size == 0:
                break
            info: dict[str, Any] = entry.id_filter  # type: ignore[assignment]
            bloom = BloomFilter.read(path, int(info["bits"]), int(info["hashes"]))
            reads.filters += 1
            maybe = todo[bloom.might_contain(hashes[todo])]
            if maybe.size:
                reads.candidates += int(maybe.size)
                (index,) = local_files([entry.id_index])
                found = _in_index(index, ids.take(pa.array(maybe)), hashes[maybe], int(info["bucket_bits"]), reads)
                seen[maybe[found]] = True
    legacy = [b.id_index for b in earlier if not _filter_usable(b)]
    for path in local_files(legacy):
        earlier_ids = as_large_string(pq.read_table(path, columns=[ID_COLUMN]).column(ID_COLUMN))
        reads.full_indexes += 1
        seen |= np.asarray(pc.fill_null(pc.is_in(ids, value_set=earlier_ids), False))
    log.info(
        "dedup of %d ids against %d earlier batches: %d filters probed, %d candidates, %d indexes opened "
        "(%d row groups), %d old-format indexes read whole, %d re-sends",
        len(ids), len(earlier), reads.filters, reads.candidates, reads.indexes, reads.row_groups,
        reads.full_indexes, int(seen.sum()),
    )  # fmt: skip
    return pa.array(seen)


def _in_index(index: Path, ids: pa.Array, hashes: np.ndarray, bucket_bits: int, reads: DedupReads) -> np.ndarray:
    """Which of `ids` the bucketed index holds, reading only the row groups whose buckets hold them."""
    pf = pq.ParquetFile(index)
    column = pf.schema_arrow.get_field_index(BUCKET_COLUMN)
    wanted = np.unique(buckets_of(hashes, bucket_bits))
    groups = []
    for g in range(pf.metadata.num_row_groups):
        stats = pf.metadata.row_group(g).column(column).statistics
        if stats is None or not stats.has_min_max:
            groups.append(g)
            continue
        first = np.searchsorted(wanted, stats.min, side="left")
        if first < len(wanted) and wanted[first] <= stats.max:
            groups.append(g)
    reads.indexes += 1
    reads.row_groups += len(groups)
    if not groups:
        return np.zeros(len(ids), np.bool_)
    held = as_large_string(pf.read_row_groups(groups, columns=[ID_COLUMN]).column(ID_COLUMN))
    return np.asarray(pc.fill_null(pc.is_in(ids, value_set=held), False))


def index_table(table: pa.Table, spec: DatasetSpec, bucket_bits: int = BUCKET_BITS) -> tuple[pa.Table, np.ndarray]:
    """The id index of a model-table batch (its event ids sorted by bucket, in table order within one) and
    the ids' hashes."""
    ids = as_large_string(table.column(spec.event_id))
    hashes = id_hashes(ids)
    buckets = buckets_of(hashes, bucket_bits)
    order = np.argsort(buckets, kind="stable")  # integers: much cheaper than sorting the id strings
    return pa.table({ID_COLUMN: ids.take(pa.array(order)), BUCKET_COLUMN: pa.array(buckets[order])}), hashes


def write_index(
    table: pa.Table,
    spec: DatasetSpec,
    entry: BatchEntry,
    out_dir: Path,
    bits_per_id: float = BITS_PER_ID,
    hashes: int = HASHES,
) -> list[tuple[Path, str]]:
    """Write the batch's id index and id filter under out_dir, record the filter in `entry`; returns the
    (local file, lakeFS path) pairs to upload with the batch."""
    index, id_hash = index_table(table, spec)
    index_local = out_dir / "ids.parquet"
    pq.write_table(index, index_local, compression="zstd", row_group_size=INDEX_ROWS_PER_GROUP)
    bloom = BloomFilter.of(id_hash, bits_per_id, hashes)
    filter_local = out_dir / "ids.bloom"
    filter_local.write_bytes(bloom.to_bytes())
    filter_path = layout.id_filter_path(spec, entry.seq)
    entry.id_filter = {
        "path": filter_path,
        "hash": HASH_NAME,
        "layout": "bucketed-v1",
        "bits": bloom.bits,
        "hashes": bloom.hashes,
        "bucket_bits": BUCKET_BITS,
    }
    return [(index_local, entry.id_index), (filter_local, filter_path)]
