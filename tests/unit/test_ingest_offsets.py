"""Offset bookkeeping without a broker: lag, run keys, partition shares and merged reads."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipelines.ingest.consume import ConsumeResult
from pipelines.ingest.lag import Lag
from pipelines.ingest.parallel import merge, shares
from pipelines.ingest.parse import StagedFiles
from pipelines.spec import load_spec

SPEC = load_spec("transactions")


def test_lag_counts_from_main_offsets_and_is_never_negative() -> None:
    lag = Lag("t", "c1", {0: 10, 1: 5}, {0: 15, 1: 5, 2: 7})
    assert lag.per_partition == {0: 5, 1: 0, 2: 7}
    assert lag.total == 12
    assert Lag("t", "c1", {0: 20}, {0: 15}).total == 0


def test_run_key_changes_only_with_main() -> None:
    a = Lag("t", "c1", {0: 10}, {0: 50})
    assert a.run_key(SPEC) == Lag("t", "c1", {0: 10}, {0: 90}).run_key(SPEC)  # more lag, same main: same key
    assert a.run_key(SPEC) != Lag("t", "c2", {0: 30}, {0: 90}).run_key(SPEC)
    assert Lag("t", None, {}, {0: 3}).run_key(SPEC).startswith("ingest-transactions-empty-")


def test_shares_are_disjoint_and_cover_every_partition() -> None:
    assert shares([0, 1, 2], 2) == [[0, 2], [1]]
    assert shares([0, 1, 2], 8) == [[0], [1], [2]]
    assert shares([0], 4) == [[0]]


def test_merge_unions_partitions_and_sums_counts() -> None:
    r0 = ConsumeResult("t", {0: 0, 2: 4}, {0: 3, 2: 4}, {0: 3, 2: 4}, 3, "caught_up", 1.0, {0: 3, 2: 0})
    r1 = ConsumeResult("t", {1: 7}, {1: 9}, {1: 12}, 2, "max_events", 2.0, {1: 2})
    s0 = StagedFiles([Path("a")], [], 2, 1, Counter({"x": 1}))
    s1 = StagedFiles([Path("b")], [Path("q")], 2, 0, Counter())
    result, staged = merge("t", [(r0, s0), (r1, s1)])
    assert result.next_offsets == {0: 3, 1: 9, 2: 4}
    assert result.offset_ranges == {"0": [0, 3], "1": [7, 9]}
    assert (result.events, result.stopped_by, result.seconds) == (5, "max_events", 2.0)
    assert (staged.valid, staged.quarantined, staged.raw_files) == (4, 1, [Path("a"), Path("b")])
