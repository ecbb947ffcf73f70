"""The deterministic split: stable, salted, proportional, and an entity never in two splits."""

from __future__ import annotations

from collections import Counter

from pipelines.features.split import split_fraction, split_of
from pipelines.layout import SPLITS
from pipelines.spec import load_spec

SPEC = load_spec("transactions")


def test_split_is_a_pure_function_of_salt_and_key() -> None:
    assert split_of("c42", SPEC) == split_of("c42", SPEC)
    assert split_fraction("c42", "a") != split_fraction("c42", "b")
    assert all(0 <= split_fraction(str(k), "s") < 1 for k in range(1000))


def test_split_proportions_follow_the_spec() -> None:
    counts = Counter(split_of(f"k{i}", SPEC) for i in range(20_000))
    assert set(counts) == set(SPLITS)
    assert abs(counts["train"] / 20_000 - SPEC.split.train) < 0.02
    assert abs(counts["validation"] / 20_000 - SPEC.split.validation) < 0.02


def test_known_values_pin_the_hash() -> None:
    # md5("flywheel:c1")[:8] as a fraction of 2**32: changing the function would silently move entities
    import hashlib

    expected = int(hashlib.md5(b"flywheel:c1").hexdigest()[:8], 16) / 2**32
    assert split_fraction("c1", "flywheel") == expected
