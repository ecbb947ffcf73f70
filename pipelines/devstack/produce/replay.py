"""Replaying a CSV or Parquet table as a stream: read, check the spec's columns, order by event time.

The spec decides which columns matter: its event id, entity key, timestamp, label and features. Other columns
are ignored. The event id may be absent (public data sets rarely have one): it is then derived from the
file's content and the row's position, so replaying the same file twice gives the same ids and the
ingestion's de-duplication sees the second replay as the duplicate it is.

Timestamps may be ISO 8601 strings (a time without an offset is taken as UTC), datetimes, or epoch numbers
(seconds, or milliseconds above 1e11: the ingestion checker's rule).
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.errors import FlywheelError
from pipelines.spec.model import DatasetSpec

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
_ID_NAMESPACE = uuid.UUID("5f0c3e1e-6a43-4f5b-9a0c-1d4f2b7e9c11")  # fixed: derived ids never change


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise FlywheelError(
        f"cannot replay {path}: unknown file type; use a CSV ({', '.join(CSV_SUFFIXES)}) "
        f"or Parquet ({', '.join(PARQUET_SUFFIXES)}) file"
    )


def _read(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    wanted = set(spec.event_fields)
    kind = _file_kind(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            names = set(pq.read_schema(path).names)
            return pd.read_parquet(path, columns=[c for c in spec.event_fields if c in names])
        # Ids, keys and categories stay text: "007" must not become the number 7.
        text = [*spec.reserved_fields[:-2], *(f.name for f in spec.categorical_features)]
        return pd.read_csv(
            path,
            sep="\t" if path.name.lower().endswith(".tsv") else ",",
            usecols=lambda c: c in wanted,
            dtype=dict.fromkeys(text, str),
            encoding="utf-8-sig",  # a byte-order mark (spreadsheet exports) must not rename the first column
            low_memory=False,
        )
    except FlywheelError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a bad file; all mean the same to the user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FlywheelError(f"cannot read {path} as {kind.upper()}: {reason}") from None


def parse_timestamps(values: pd.Series, column: str, path: Path) -> pd.Series:
    """Any supported timestamp column -> datetime64[ms, UTC]; a clear error names the first bad row."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        num = values.to_numpy(dtype=float, na_value=np.nan)
        ms = np.where(np.abs(num) > 1e11, num, num * 1000.0)
        parsed = pd.Series(pd.to_datetime(ms, unit="ms", utc=True, errors="coerce"), index=values.index)
    else:
        text = values.astype("string").str.strip()
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise FlywheelError(
            f"cannot replay {path}: column {column!r} row {row + 1} has {values.iloc[row]!r}, not a timestamp "
            f"({int(bad.sum())} such rows); use ISO 8601 or epoch seconds/milliseconds"
        )
    return parsed.dt.as_unit("ms")


def derived_event_ids(path: Path, rows: int) -> list[str]:
    with open(path, "rb") as f:  # streamed: a large file is not held in memory a second time
        digest = hashlib.file_digest(f, "sha256").hexdigest()[:32]
    return [str(uuid.uuid5(_ID_NAMESPACE, f"{digest}:{i}")) for i in range(rows)]


def read_replay_frame(path: str | Path, spec: DatasetSpec, limit: int | None = None) -> pd.DataFrame:
    """The spec's columns of a CSV/Parquet file, ordered by event time (ties keep file order).

    `limit` keeps the earliest `limit` events. The timestamp column comes back as datetime64[ms, UTC].
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FlywheelError(f"cannot replay {path}: no such file; pass the path of a CSV or Parquet file")
    frame = _read(path, spec)
    optional = {spec.event_id}
    missing = [c for c in spec.event_fields if c not in frame.columns and c not in optional]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise FlywheelError(
            f"cannot replay {path}: spec {spec.name!r} needs column{'s' if len(missing) > 1 else ''} {names}, "
            f"which the file lacks; rename the columns or use a spec that matches the file"
        )
    frame = frame.reset_index(drop=True)
    if spec.event_id not in frame.columns:
        frame[spec.event_id] = derived_event_ids(path, len(frame))
    frame[spec.timestamp] = parse_timestamps(frame[spec.timestamp], spec.timestamp, path)
    order = np.argsort(frame[spec.timestamp].to_numpy(), kind="stable")
    if limit is not None:
        order = order[:limit]
    return frame.iloc[order][spec.event_fields].reset_index(drop=True)
