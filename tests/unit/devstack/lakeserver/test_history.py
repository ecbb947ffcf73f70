"""Commit graph walks: log order and merge bases on small hand-made graphs."""

from __future__ import annotations

from pipelines.devstack.lakeserver.history import merge_base, walk

#   root - a1 - a2 ------- m (merge of a2 and b2)
#      \                 /
#       b1 - b2 --------
#                \
#                 c1 (a branch of b2)
PARENTS = {"root": [], "a1": ["root"], "a2": ["a1"], "b1": ["root"], "b2": ["b1"], "m": ["a2", "b2"], "c1": ["b2"]}


def load(commit_id: str) -> dict:
    def generation(c: str) -> int:
        return 1 + max((generation(p) for p in PARENTS[c]), default=0)

    return {"id": commit_id, "parents": PARENTS[commit_id], "generation": generation(commit_id), "creation_date": 0}


def test_merge_base() -> None:
    assert merge_base(load, "a2", "b2") == "root"
    assert merge_base(load, "m", "c1") == "b2"  # c1 forked from b2, which m contains
    assert merge_base(load, "m", "a1") == "a1"  # an ancestor is its own merge base
    assert merge_base(load, "c1", "c1") == "c1"


def test_walk_order_and_first_parent() -> None:
    assert [c["id"] for c in walk(load, "m")][:1] == ["m"]
    assert {c["id"] for c in walk(load, "m")} == {"m", "a2", "a1", "b2", "b1", "root"}
    assert [c["id"] for c in walk(load, "m", first_parent=True)] == ["m", "a2", "a1", "root"]
