"""Ranges and metaranges: canonical, incremental, and diffed by skipping shared ranges."""

from __future__ import annotations

import random

import pytest

from pipelines.devstack.lakeserver import trees
from pipelines.devstack.lakeserver.db import Database
from pipelines.devstack.lakeserver.trees import Entry


def entry(path: str, version: int = 0) -> Entry:
    blob = f"{hash((path, version)) & (2**256 - 1):064x}"
    return Entry(path, blob, version, 0, "application/octet-stream", "{}", "md5")


def tombstone(path: str) -> Entry:
    return Entry(path, None, 0, 0, "", "{}", "")


@pytest.fixture
def db(tmp_path) -> Database:
    return Database(tmp_path / "meta.db")


def test_random_changes_match_a_model_and_stay_canonical(db: Database) -> None:
    rng = random.Random(7)
    model = {f"k/{i:05d}": entry(f"k/{i:05d}") for i in range(3000)}
    with db.write() as conn:
        metarange = trees.build(conn, sorted(model.values()))
        for step in range(30):
            changes = {}
            for _ in range(rng.randint(1, 60)):
                path = f"k/{rng.randint(0, 3500):05d}"
                changes[path] = tombstone(path) if rng.random() < 0.4 else entry(path, step + 1)
            metarange = trees.apply_changes(conn, metarange, sorted(changes.values()))
            for path, change in changes.items():
                if change.blob is None:
                    model.pop(path, None)
                else:
                    model[path] = change
        assert list(trees.iterate(conn, metarange)) == sorted(model.values())
        # the same content built from scratch yields the same ranges, hence the same id
        assert trees.build(conn, sorted(model.values())) == metarange
        assert trees.count(conn, metarange) == len(model)
        probe = sorted(model)[1234]
        assert trees.lookup(conn, metarange, probe) == model[probe]
        assert trees.lookup(conn, metarange, "k/99999") is None


def test_a_small_change_rewrites_one_range_not_the_tree(db: Database) -> None:
    with db.write() as conn:
        base = trees.build(conn, [entry(f"obj/{i:06d}") for i in range(20_000)])
        rows_before = conn.execute("SELECT COUNT(*) FROM ranges").fetchone()[0]
        changed = trees.apply_changes(conn, base, [entry("obj/010000", 1)])
        new_rows = conn.execute("SELECT COUNT(*) FROM ranges").fetchone()[0] - rows_before
        assert 0 < new_rows < 20 * trees.RANGE_FANOUT / 4  # one range's worth, far below 20,000
        shared = {r.range_id for r in trees.range_refs(conn, base)} & {
            r.range_id for r in trees.range_refs(conn, changed)
        }
        assert len(shared) >= len(trees.range_refs(conn, base)) - 2
        assert list(trees.diff(conn, base, changed)) == [("obj/010000", entry("obj/010000"), entry("obj/010000", 1))]


def test_diff_reports_added_removed_changed(db: Database) -> None:
    with db.write() as conn:
        left = trees.build(conn, [entry("a"), entry("b"), entry("c")])
        right = trees.apply_changes(conn, left, [tombstone("a"), entry("b", 2), entry("d")])
        kinds = [(p, le is None, r is None) for p, le, r in trees.diff(conn, left, right)]
        assert kinds == [("a", False, True), ("b", False, False), ("d", True, False)]
        assert list(trees.diff(conn, left, left)) == []


def test_empty_tree(db: Database) -> None:
    with db.write() as conn:
        assert trees.build(conn, []) == trees.EMPTY_METARANGE
        assert list(trees.iterate(conn, trees.EMPTY_METARANGE)) == []
        assert trees.apply_changes(conn, trees.EMPTY_METARANGE, [tombstone("x")]) == trees.EMPTY_METARANGE
