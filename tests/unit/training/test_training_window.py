"""`training.window_days`: training reads the batches whose rows can be in the window (from the batch catalog's
event-time ranges) and keeps the rows within that many days of the newest; without it, every batch."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipelines import layout
from pipelines.spec import load_spec
from pipelines.training.data import DAY_MS, LocalStore, read_model_table
from pipelines.training.synthetic import synthetic_table

SPEC = load_spec("transactions")


class CountingStore(LocalStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read_paths: list[str] = []

    def read(self, path: str) -> bytes:
        self.read_paths.append(path)
        return super().read(path)


def write_batches(root: Path, catalog: bool = True) -> list[pd.DataFrame]:
    """Three batches of 200 rows, 10 days apart (each spanning one day); the catalog names their files."""
    frames, entries = [], []
    for seq in (1, 2, 3):
        df = synthetic_table(SPEC, 200, seed=seq)
        start = df[SPEC.timestamp].min()
        df[SPEC.timestamp] = start + (df[SPEC.timestamp] - start) % DAY_MS + (seq - 1) * 10 * DAY_MS
        path = layout.feature_batch_prefix(SPEC, seq) + "part-00000.parquet"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(root / path, index=False)
        frames.append(df)
        ts = df[SPEC.timestamp]
        entries.append({"seq": seq, "feature_paths": [path], "min_ts": int(ts.min()), "max_ts": int(ts.max())})
    if catalog:
        (root / layout.batches_path(SPEC)).parent.mkdir(parents=True, exist_ok=True)
        (root / layout.batches_path(SPEC)).write_text(json.dumps({"format": 1, "batches": entries}))
    return frames


def test_every_batch_without_a_window(tmp_path: Path) -> None:
    write_batches(tmp_path)
    assert len(read_model_table(LocalStore(tmp_path), SPEC)) == 600


def test_window_days_skips_old_batches_and_cuts_rows(tmp_path: Path) -> None:
    frames = write_batches(tmp_path)
    spec = SPEC.model_copy(update={"training": SPEC.training.model_copy(update={"window_days": 10.5})})
    store = CountingStore(tmp_path)
    table = read_model_table(store, spec)
    newest = frames[2][SPEC.timestamp].max()
    expected = pd.concat(frames)
    expected = expected[expected[SPEC.timestamp] >= newest - int(10.5 * DAY_MS)]
    assert sorted(table[SPEC.event_id]) == sorted(expected[SPEC.event_id])
    assert 200 < len(table) < 400  # the last batch and part of the second
    assert not any("batch-00000001" in p for p in store.read_paths)  # the oldest batch is never read


def test_window_days_without_a_catalog_filters_the_rows(tmp_path: Path) -> None:
    frames = write_batches(tmp_path, catalog=False)
    spec = SPEC.model_copy(update={"training": SPEC.training.model_copy(update={"window_days": 1.0})})
    table = read_model_table(LocalStore(tmp_path), spec)
    assert sorted(table[SPEC.event_id]) == sorted(frames[2][SPEC.event_id])
