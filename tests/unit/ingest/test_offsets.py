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


def test_offsets_file_with_and_without_topic_id() -> None:
    from pipelines.ingest.offsets import StoredOffsets, offsets_document, parse_offsets_file

    assert parse_offsets_file({"0": 5, "1": 7}) == StoredOffsets({0: 5, 1: 7}, None)  # the old, flat file
    doc = offsets_document("t", {"1": 7, "0": 5}, "id-1")
    assert doc == {"topic": "t", "topic_id": "id-1", "offsets": {"0": 5, "1": 7}}
    assert parse_offsets_file(doc) == StoredOffsets({0: 5, 1: 7}, "id-1")
    zero = offsets_document("t", {0: 5}, "00000000-0000-0000-0000-000000000000")
    assert parse_offsets_file(zero).topic_id is None  # Kafka's "no id" is unknown, not an id


def test_reconcile_resets_only_on_a_known_different_topic_id() -> None:
    from pipelines.ingest.offsets import StoredOffsets, reconcile

    stored = StoredOffsets({0: 5, 1: 7}, "old")
    assert reconcile("t", stored, "old") == ({0: 5, 1: 7}, None)
    offsets, reset = reconcile("t", stored, "new")
    assert offsets == {} and reset is not None  # {}: every partition from its earliest offset
    assert reset.to_dict() == {
        "topic": "t",
        "previous_topic_id": "old",
        "topic_id": "new",
        "previous_offsets": {"0": 5, "1": 7},
    }
    assert "old -> new" in reset.describe()
    # unknown on either side: keep the offsets (and so the strict error when the log ends before them)
    assert reconcile("t", StoredOffsets({0: 5}), "new") == ({0: 5}, None)
    assert reconcile("t", stored, None) == ({0: 5, 1: 7}, None)


def test_lag_after_a_topic_reset_keys_on_the_topic_id() -> None:
    a = Lag("t", "c1", {0: 0}, {0: 9}, topic_id="old")
    b = Lag("t", "c1", {0: 0}, {0: 9}, topic_id="new", topic_reset={"previous_topic_id": "old"})
    assert b.total == 9 and a.run_key(SPEC) != b.run_key(SPEC)
