"""Dedup across batches through the per-batch id filter and bucketed index: every re-sent id is found (a real
hit across batches, a replayed batch, an id that passes a filter but is not in the batch), batches written
before the filters are read whole, the hash is pinned (the files outlive any library version), and a lookup
reads a few row groups of history, not all of it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines import layout
from pipelines.errors import FlywheelError
from pipelines.features import dedup
from pipelines.features.batches import BatchEntry, Catalog, feature_hash
from pipelines.features.dedup import DedupReads, seen_in, write_index
from pipelines.features.idfilter import BloomFilter, as_large_string, id_hashes
from pipelines.spec import load_spec

SPEC = load_spec("transactions")


def ids(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]


class Lakeless:
    """The batches' id files on local disk, handed out by lake path as `local_copies_of` would."""

    def __init__(self, root: Path) -> None:
        self.root, self.files, self.catalog = root, {}, Catalog(SPEC.name)

    def add_batch(self, batch_ids: list[str], **filter_options: float) -> BatchEntry:
        seq = self.catalog.next_seq
        path = layout.id_index_path(SPEC, seq)
        entry = BatchEntry(seq, f"run-{seq}", "h", feature_hash(SPEC), [], [], path, 0, 0, 0, 0)
        out = self.root / f"batch-{seq}"
        out.mkdir()
        table = pa.table({SPEC.event_id: pa.array(batch_ids, pa.string())})
        for local, path in write_index(table, SPEC, entry, out, **filter_options):  # type: ignore[arg-type]
            self.files[path] = local
        entry.rows = len(batch_ids)
        self.catalog.batches.append(entry)
        return entry

    def add_old_format_batch(self, batch_ids: list[str]) -> BatchEntry:
        """A batch as Flywheel wrote it before the filters: one sorted id column, no id_filter."""
        seq = self.catalog.next_seq
        path = layout.id_index_path(SPEC, seq)
        entry = BatchEntry(seq, f"run-{seq}", "h", feature_hash(SPEC), [], [], path, len(batch_ids), 0, 0, 0)
        local = self.root / f"old-{seq}.parquet"
        pq.write_table(pa.table({dedup.ID_COLUMN: sorted(batch_ids)}), local)
        self.files[path] = local
        self.catalog.batches.append(entry)
        return entry

    @property
    def local_files(self) -> Callable[[list[str]], list[Path]]:
        return lambda paths: [self.files[p] for p in paths]

    def seen(self, new: list[str | None], reads: DedupReads | None = None) -> list[bool]:
        return seen_in(self.catalog, pa.array(new, pa.string()), self.local_files, reads).to_pylist()


def test_the_id_hash_is_pinned() -> None:
    """The filters and indexes on the lake were built with these values; a change needs a new HASH_NAME."""
    values = id_hashes(pa.array(["", "a", "abcdefgh", "abcdefghi", None, "ü€"])).tolist()
    assert values[:5] == [
        16294208416658607535,
        15724650169172236990,
        8679855946413563446,
        2292589061709530592,
        16294208416658607535,  # a null hashes as ""
    ]
    # offsets of sliced and chunked arrays, large strings: the same bytes give the same hash
    assert id_hashes(pa.array(["xx", "abcdefghi"]).slice(1)).tolist() == [2292589061709530592]
    assert id_hashes(pa.chunked_array([["a"], ["abcdefghi"]])).tolist() == [values[1], values[3]]
    assert id_hashes(pa.array(["ü€"], pa.large_string())).tolist() == [values[5]]
    # every byte counts, including the ones of a partial last word and a long tail
    near = ["abcdefghi", "abcdefghj", "abcdefgh\x00", "x" * 1000, "x" * 999 + "y"]
    assert len(set(id_hashes(pa.array(near)).tolist())) == len(near)
    # ids of one length take a shortcut: it hashes as the general path does
    mixed = ["", "a", "abcdefgh", "abcdefghi", "ü€", *near, *ids(50, seed=0)]
    one_by_one = [id_hashes(pa.array([x])).item() for x in mixed]
    assert id_hashes(pa.array(mixed)).tolist() == one_by_one
    assert id_hashes(pa.array(ids(50, seed=0))).tolist() == one_by_one[-50:]


def test_bloom_filter_has_no_false_negatives_and_few_false_positives() -> None:
    members = id_hashes(pa.array(ids(20_000, seed=1)))
    bloom = BloomFilter.of(members)
    assert bloom.might_contain(members).all()
    strangers = id_hashes(pa.array(ids(200_000, seed=2)))
    assert bloom.might_contain(strangers).sum() <= 20  # ~1e-5 expected: ~2


def test_a_re_sent_id_is_found_in_whichever_earlier_batch_published_it(tmp_path: Path) -> None:
    lake = Lakeless(tmp_path)
    first, second = ids(30_000, seed=3), ids(30_000, seed=4)
    lake.add_batch(first)
    lake.add_batch(second)
    new = ids(5_000, seed=5)
    rng = np.random.default_rng(6)
    resent = {int(i) for i in rng.choice(len(new), 300, replace=False)}
    for n, i in enumerate(sorted(resent)):
        new[i] = (first if n % 2 else second)[int(rng.integers(30_000))]
    reads = DedupReads()
    assert lake.seen([*new, None], reads) == [i in resent for i in range(len(new))] + [False]
    assert reads.filters == 2 and reads.indexes == 2 and reads.full_indexes == 0


def test_one_re_send_reads_one_row_group_of_one_batch(tmp_path: Path) -> None:
    lake = Lakeless(tmp_path)
    first = ids(30_000, seed=19)
    lake.add_batch(first)
    lake.add_batch(ids(30_000, seed=20))
    reads = DedupReads()
    assert lake.seen([*ids(5_000, seed=21), first[123]], reads) == [False] * 5_000 + [True]
    assert pq.ParquetFile(lake.files[lake.catalog.batches[0].id_index]).num_row_groups == 4
    assert reads.filters == 2 and reads.indexes == 1 and reads.row_groups == 1


def test_new_ids_open_no_index(tmp_path: Path) -> None:
    lake = Lakeless(tmp_path)
    for seed in (7, 8, 9):
        lake.add_batch(ids(20_000, seed=seed))
    reads = DedupReads()
    assert not any(lake.seen(ids(20_000, seed=10), reads))
    assert reads.filters == 3 and reads.candidates <= 5 and reads.row_groups <= 5


def test_an_id_the_filter_lets_through_but_the_batch_never_had_is_not_dropped(tmp_path: Path) -> None:
    lake = Lakeless(tmp_path)
    earlier = ids(2_000, seed=11)
    lake.add_batch(earlier, bits_per_id=1, hashes=1)  # a filter that lets ~60% of strangers through
    reads = DedupReads()
    seen = lake.seen([*ids(1_000, seed=12), earlier[5]], reads)
    assert reads.candidates > 300  # the false-positive path was taken ...
    assert seen == [False] * 1_000 + [True]  # ... and the index said no for all but the real re-send


def test_a_replayed_batch_is_dropped_whole(tmp_path: Path) -> None:
    lake = Lakeless(tmp_path)
    replayed = ids(20_000, seed=13)
    lake.add_batch(ids(20_000, seed=14))
    lake.add_batch(replayed)
    reads = DedupReads()
    assert all(lake.seen(replayed, reads))
    assert reads.candidates < 20_000 + 10  # an id found in batch 2 is not looked up again


def test_old_format_batches_are_read_whole(tmp_path: Path) -> None:
    lake = Lakeless(tmp_path)
    old, new = ids(5_000, seed=15), ids(5_000, seed=16)
    lake.add_old_format_batch(old)
    lake.add_batch(new)
    reads = DedupReads()
    assert lake.seen([old[10], new[20], "fresh"], reads) == [True, True, False]
    assert reads.full_indexes == 1 and reads.filters == 1
    # a filter built with a hash this code does not know is not trusted: its index is read whole
    assert lake.catalog.batches[1].id_filter is not None
    lake.catalog.batches[1].id_filter["hash"] = "some-other-hash"
    reads = DedupReads()
    assert lake.seen([old[10], new[20], "fresh"], reads) == [True, True, False]
    assert reads.full_indexes == 2 and reads.filters == 0


def test_the_index_is_sorted_by_bucket_and_holds_every_id(tmp_path: Path) -> None:
    lake = Lakeless(tmp_path)
    batch = ids(20_000, seed=17)
    entry = lake.add_batch(batch)
    index = pq.read_table(lake.files[entry.id_index])
    assert sorted(index.column(dedup.ID_COLUMN).to_pylist()) == sorted(batch)
    buckets = index.column(dedup.BUCKET_COLUMN)
    assert pc.all(pc.greater_equal(buckets.slice(1), buckets.slice(0, len(buckets) - 1))).as_py()
    assert entry.id_filter is not None and entry.id_filter["path"] == layout.id_filter_path(SPEC, entry.seq)


def test_catalogs_of_format_1_still_read_and_the_filter_round_trips(tmp_path: Path) -> None:
    lake = Lakeless(tmp_path)
    lake.add_batch(ids(100, seed=18))
    data = json.loads(json.dumps(lake.catalog.to_json()))
    assert data["format"] == 2 and Catalog.from_json(data) == lake.catalog
    old = {**data, "format": 1, "batches": [{k: v for k, v in b.items() if k != "id_filter"} for b in data["batches"]]}
    assert Catalog.from_json(old).batches[0].id_filter is None
    with pytest.raises(FlywheelError, match="upgrade Flywheel"):
        Catalog.from_json({**data, "format": 3})


def test_ids_are_combined_as_large_string_with_the_same_hash() -> None:
    # Combining pa.string chunks overflows 32-bit offsets past 2 GiB: the ids are cast before combining.
    chunked = pa.chunked_array([["a", None], ["abcdefghi"]])
    combined = as_large_string(chunked)
    assert combined.type == pa.large_string() and combined.to_pylist() == ["a", None, "abcdefghi"]
    assert as_large_string(pa.chunked_array([], pa.string())).type == pa.large_string()
    assert id_hashes(combined).tolist() == id_hashes(pa.array(["a", None, "abcdefghi"])).tolist()
