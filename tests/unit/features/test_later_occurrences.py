"""The within-batch dedup found in Arrow (`later_occurrences`) drops exactly the rows Spark's dedup window
(`first_occurrences`) drops: every occurrence of an (entity, event id) after the first by (timestamp, Kafka
partition, offset, row), nulls first, among the rows with an id, entity, timestamp and a 0/1 label."""

from __future__ import annotations

import random

import pyarrow as pa

from pipelines.features.build import later_occurrences
from pipelines.layout import OFFSET_COLUMN, PARTITION_COLUMN
from pipelines.spec import load_spec

SPEC = load_spec("transactions")


def reference(rows: list[dict]) -> list[int]:
    """Spark's rule, spelled out: None sorts first."""

    def key(i: int) -> tuple:
        r = rows[i]
        return (*((v is not None, v or 0) for v in (r["ts"], r["p"], r["o"])), i)

    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        if None in (r["id"], r["key"], r["ts"]) or r["label"] not in (0, 1):
            continue  # step 1 drops the row before the dedup
        groups.setdefault((r["key"], r["id"]), []).append(i)
    return sorted(i for members in groups.values() for i in sorted(members, key=key)[1:])


def table(rows: list[dict]) -> pa.Table:
    return pa.table(
        {
            SPEC.event_id: pa.array([r["id"] for r in rows], pa.string()),
            SPEC.entity_key: pa.array([r["key"] for r in rows], pa.string()),
            SPEC.timestamp: pa.array([r["ts"] for r in rows], pa.int64()),
            SPEC.label: pa.array([r["label"] for r in rows], pa.int32()),
            PARTITION_COLUMN: pa.array([r["p"] for r in rows], pa.int32()),
            OFFSET_COLUMN: pa.array([r["o"] for r in rows], pa.int64()),
        }
    )


def test_no_repeated_id_drops_nothing() -> None:
    rows = [{"id": f"e{i}", "key": "c1", "ts": i, "label": 0, "p": 0, "o": i} for i in range(100)]
    assert later_occurrences(table(rows), SPEC).tolist() == []


def test_re_sends_keep_their_first_occurrence_as_spark_does() -> None:
    rng = random.Random(11)
    rows = []

    def maybe(v: object) -> object:  # nulls in every column the rule reads
        return None if rng.random() < 0.05 else v

    for _ in range(3000):
        rows.append(
            {
                "id": maybe(f"e{rng.randrange(800)}"),  # ids repeat, some under another entity
                "key": maybe(f"c{rng.randrange(3)}"),
                "ts": maybe(rng.randrange(5)),  # ties in time, decided by partition, offset, then row
                "label": rng.choice([0, 1, 1, 2, None]),
                "p": maybe(rng.randrange(2)),
                "o": maybe(rng.randrange(4)),
            }
        )
    expected = reference(rows)
    assert len(expected) > 300  # the case is exercised, not vacuous
    assert later_occurrences(table(rows), SPEC).tolist() == expected


def test_same_id_under_two_entities_is_not_a_re_send() -> None:
    rows = [
        {"id": "e1", "key": "c1", "ts": 5, "label": 0, "p": 0, "o": 1},
        {"id": "e1", "key": "c2", "ts": 5, "label": 0, "p": 0, "o": 2},
        {"id": "e1", "key": "c1", "ts": 4, "label": 1, "p": 1, "o": 9},  # the first of (c1, e1): earlier time
    ]
    assert later_occurrences(table(rows), SPEC).tolist() == [0]
