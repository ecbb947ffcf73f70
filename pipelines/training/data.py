"""Reading the model table at an exact data version.

A dataset location is a URI:
  lakefs://<repository>/<commit id>/features/<spec>/   the production path: always a commit id, never a branch
  file:///abs/dir  or a plain directory path          a local copy laid out like the lakeFS repository root

Both are read through `TableStore` (list parquet parts, read bytes), so training code never knows which.
Parts are read in path order and rows sorted by the event id, so the table is identical whatever the
partitioning of the files, which keeps runs reproducible.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import layout
from pipelines.errors import FlywheelError, LakeError
from pipelines.lineage.uris import LakeURI, lake_uri
from pipelines.spec import DatasetSpec

if TYPE_CHECKING:
    from pipelines.lake import Lake

# lakeFS commit ids are hex digests (64 chars for lakeFS itself); branch names are not accepted here.
COMMIT_ID = re.compile(r"^[0-9a-f]{12,64}$")


class TableStore(Protocol):
    """Read-only view of one data version."""

    def list(self, prefix: str) -> list[str]: ...

    def read(self, path: str) -> bytes: ...

    def exists(self, path: str) -> bool: ...


@dataclass(frozen=True)
class DataLocation:
    """Where one data version lives. `root` is the repository root (lakeFS) or a local directory."""

    scheme: str  # "lakefs" | "file"
    repository: str
    commit: str
    root: str

    @property
    def uri(self) -> str:
        if self.scheme == "lakefs":
            return lake_uri(self.repository, self.commit)
        return Path(self.root).resolve().as_uri() + "/"

    def table_uri(self, spec: DatasetSpec) -> str:
        return self.uri + layout.features_prefix(spec)


def parse_location(uri: str) -> DataLocation:
    """`lakefs://repo/<commit id>[/...]` or a local directory (file:// or a path)."""
    parsed = urlparse(uri)
    if parsed.scheme == "lakefs":
        try:
            where = LakeURI.parse(uri)
        except LakeError:
            raise FlywheelError(f"{uri!r}: a lakeFS data URI is lakefs://<repository>/<commit id>/") from None
        repo, ref = where.repository, where.ref
        if not COMMIT_ID.match(ref):
            raise FlywheelError(
                f"{uri!r}: {ref!r} is not a commit id. Training reads an exact commit, never a branch head: "
                "resolve the branch to its commit id first (the trained_model asset does this for `main`)."
            )
        return DataLocation("lakefs", repo, ref, "")
    path = parsed.path if parsed.scheme == "file" else uri
    if not Path(path).is_dir():
        raise FlywheelError(f"{uri!r}: no such local dataset directory")
    return DataLocation("file", "local", "local", str(Path(path).resolve()))


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def exists(self, path: str) -> bool:
        return (self.root / path).is_file()


class LakeFSStore:
    """One commit of a lakeFS repository, through `pipelines.lake.Lake` (official SDK, timeouts, clear errors)."""

    def __init__(self, repository: str, commit: str, lake: Lake | None = None) -> None:
        from dataclasses import replace as _replace

        from pipelines.lake import Lake, LakeFSSettings

        if lake is None:
            settings = LakeFSSettings.from_env()
            lake = Lake(_replace(settings, repository=repository))
        self.lake = lake
        self.repository = repository
        self.commit = commit

    def list(self, prefix: str) -> list[str]:
        return sorted(self.lake.list_paths(self.commit, prefix))

    def read(self, path: str) -> bytes:
        return self.lake.read_bytes(self.commit, path)

    def exists(self, path: str) -> bool:
        return self.lake.exists(self.commit, path)


def open_store(location: DataLocation, lake: Lake | None = None) -> TableStore:
    if location.scheme == "lakefs":
        return LakeFSStore(location.repository, location.commit, lake)
    return LocalStore(location.root)


DAY_MS = 86_400_000


def read_model_table(store: TableStore, spec: DatasetSpec) -> pd.DataFrame:
    """The model table (every split), rows sorted by event id: every batch, or with the spec's
    `training.window_days` the rows whose event time is within that many days of the newest row."""
    prefix = layout.features_prefix(spec)
    meta = f"{prefix}_meta/"
    parts = [p for p in store.list(prefix) if p.endswith(".parquet") and not p.startswith(meta)]
    if not parts:
        raise FlywheelError(
            f"no model table under {prefix!r} in this data version: run ingest_job first so that a "
            "validated dataset reaches lakeFS main"
        )
    window = spec.training.window_days
    cutoff = None
    if window is not None:
        cutoff, parts = _window_parts(store, spec, parts, window)
    tables = [pq.read_table(io.BytesIO(store.read(p))) for p in parts]
    table = pa.concat_tables(tables, promote_options="default")
    if window is not None:
        if cutoff is None and table.num_rows:  # no batch catalog: the newest row decides
            cutoff = int(pc.max(table.column(spec.timestamp)).as_py()) - int(window * DAY_MS)
        if cutoff is not None:
            table = table.filter(pc.greater_equal(table.column(spec.timestamp), cutoff))
    df = table.to_pandas()
    missing = [c for c in layout.feature_table_columns(spec) if c not in df.columns]
    if missing:
        raise FlywheelError(f"model table under {prefix!r} lacks columns {missing} (see pipelines/layout.py)")
    df = df.sort_values(spec.event_id, kind="stable").reset_index(drop=True)
    for split in ("train", "validation"):
        if not (df[layout.SPLIT_COLUMN] == split).any():
            raise FlywheelError(f"model table under {prefix!r} has no {split!r} rows; training needs both")
    return df


def _window_parts(store: TableStore, spec: DatasetSpec, parts: list[str], days: float) -> tuple[int | None, list[str]]:
    """(cutoff event time, the parts that can hold rows at or after it) from the batch catalog's per-batch
    event-time ranges (pipelines.features.batches), so older batches are not even read; without a catalog
    (a local copy, an old table) every part, and the caller derives the cutoff from the rows."""
    path = layout.batches_path(spec)
    if not store.exists(path):
        return None, parts
    batches = [b for b in json.loads(store.read(path)).get("batches", []) if b.get("max_ts") is not None]
    if not batches:
        return None, parts
    cutoff = max(int(b["max_ts"]) for b in batches) - int(days * DAY_MS)
    recent = {p for b in batches if int(b["max_ts"]) >= cutoff for p in b.get("feature_paths", [])}
    return cutoff, [p for p in parts if p in recent]


def read_vocabularies(store: TableStore, spec: DatasetSpec) -> dict[str, list[str]] | None:
    """features/<spec>/_meta/vocabularies.json when ingestion wrote one (most frequent value first)."""
    path = layout.vocabularies_path(spec)
    if not store.exists(path):
        return None
    data = json.loads(store.read(path))
    return {str(k): [str(v) for v in values] for k, values in data.items()}


def pin_main(lake: Lake, spec: DatasetSpec) -> str:
    """`main` resolved once to the commit training reads (whatever lands on main meanwhile); refuses a commit
    without a model table, saying what to run first."""
    from pipelines.lake import MAIN

    commit = lake.resolve(MAIN)
    table = layout.features_prefix(spec)
    if not any(p.endswith(".parquet") for p in lake.list_paths(commit, table)):
        raise FlywheelError(
            f"lakeFS {lake.repository_id}@main (commit {commit[:12]}) has no model table under {table!r}: "
            "run ingest_job first so that a validated dataset is merged into main"
        )
    return commit
