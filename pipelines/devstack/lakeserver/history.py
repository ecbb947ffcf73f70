"""Walking the commit graph: log order and merge bases, by generation (parents are always older)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

Load = Callable[[str], dict]  # commit id -> commit (id, parents, generation, creation_date, ...)


def walk(load: Load, start: str, first_parent: bool = False) -> Iterator[dict]:
    """Commits reachable from start, newest generation first (ties: newest date first), each once."""
    first = load(start)
    heap = [(-first["generation"], -first["creation_date"], first["id"])]
    seen = {first["id"]}
    while heap:
        _, _, commit_id = heapq.heappop(heap)
        commit = load(commit_id)
        yield commit
        for parent_id in commit["parents"][:1] if first_parent else commit["parents"]:
            if parent_id not in seen:
                seen.add(parent_id)
                parent = load(parent_id)
                heapq.heappush(heap, (-parent["generation"], -parent["creation_date"], parent_id))


def merge_base(load: Load, a: str, b: str) -> str | None:
    """The nearest common ancestor of a and b (None for unrelated histories).

    Both sides are walked together, highest generation first, marking what reaches each commit; the
    first commit reached from both is the nearest, since everything above it was visited before it.
    """
    reached: dict[str, int] = {a: 1}
    reached[b] = reached.get(b, 0) | 2
    heap = [(-load(c)["generation"], c) for c in {a, b}]
    heapq.heapify(heap)
    while heap:
        _, commit_id = heapq.heappop(heap)
        if reached[commit_id] == 3:
            return commit_id
        for parent_id in load(commit_id)["parents"]:
            before = reached.get(parent_id)
            reached[parent_id] = (before or 0) | reached[commit_id]
            if before != reached[parent_id]:
                heapq.heappush(heap, (-load(parent_id)["generation"], parent_id))
    return None
