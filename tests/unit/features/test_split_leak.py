"""No leak across dataset versions: the split is a deterministic hash of the entity key, so when a new dataset
version appends rows (new entities, and more events of old ones) every entity keeps its split, no entity is in
two splits, and no test row or test entity of version 2 was in the training split of version 1. The gate
scores both champion (trained on version 1) and challenger (trained on version 2) on version 2's test split,
so this is what makes that comparison free of training data."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pipelines.features.split import split_of
from pipelines.spec import load_spec

SPEC = load_spec("transactions")


def events(entities: range, per_entity_max: int, start_id: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(event id, entity key) rows: each entity has 1..per_entity_max events."""
    rows = []
    for e in entities:
        for _ in range(int(rng.integers(1, per_entity_max + 1))):
            rows.append((f"evt-{start_id + len(rows)}", f"cust-{e}"))
    return rows


def split_rows(rows: list[tuple[str, str]]) -> dict[str, str]:
    """event id -> split, assigned the way the feature build does: from the row's entity key."""
    return {event: split_of(entity, SPEC) for event, entity in rows}


def entity_splits(rows: list[tuple[str, str]], by_event: dict[str, str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for event, entity in rows:
        found[entity].add(by_event[event])
    return found


def test_entities_keep_their_split_across_dataset_versions() -> None:
    rng = np.random.default_rng(0)
    v1 = events(range(2000), 4, 0, rng)
    # version 2 = version 1 + more events of half the old entities + new entities
    v2 = v1 + events(range(0, 2000, 2), 3, len(v1), rng) + events(range(2000, 3000), 4, 10 * len(v1), rng)
    split1, split2 = split_rows(v1), split_rows(v2)

    # every entity is in exactly one split, in each version
    per_entity1, per_entity2 = entity_splits(v1, split1), entity_splits(v2, split2)
    assert all(len(s) == 1 for s in per_entity1.values())
    assert all(len(s) == 1 for s in per_entity2.values())
    # an old entity keeps its split in the new version; an old row keeps its split
    assert all(per_entity2[e] == s for e, s in per_entity1.items())
    assert all(split2[event] == split1[event] for event, _ in v1)

    train1_rows = {event for event, s in split1.items() if s == "train"}
    train1_entities = {e for e, s in per_entity1.items() if s == {"train"}}
    test2_rows = {event for event, s in split2.items() if s == "test"}
    test2_entities = {e for e, s in per_entity2.items() if s == {"test"}}
    assert not test2_rows & train1_rows
    assert not test2_entities & train1_entities
    # and not from the validation split either (early stopping saw it)
    validation1_entities = {e for e, s in per_entity1.items() if s == {"validation"}}
    assert not test2_entities & validation1_entities

    # not vacuous: version 2's test split holds new events of old entities and new entities, and every split
    # of both versions is populated in about the spec's proportions
    new_events = {event for event, _ in v2[len(v1) :]}
    old_entities = {e for _, e in v1}
    assert any(event in new_events and entity in old_entities for event, entity in v2 if split2[event] == "test")
    assert test2_entities - old_entities
    for split, share in (("train", SPEC.split.train), ("validation", SPEC.split.validation), ("test", SPEC.split.test)):
        members = [e for e, s in per_entity2.items() if s == {split}]
        assert abs(len(members) / len(per_entity2) - share) < 0.04, split
