"""Turning Kafka records into Parquet: valid events to raw, rejected ones to quarantine, nothing dropped.

`StagedWriter` is the consumer's sink. Every record goes through the spec's EventChecker; valid records
are kept as rows of normalized values and rejections keep the reason, the raw bytes and their
topic/partition/offset. Rows are flushed to local Parquet files in row groups; the files are uploaded
to the lakeFS branch afterwards, so a crash before the commit leaves nothing on `main`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.layout import event_schema, raw_schema
from pipelines.spec.events import EventChecker, checker_for
from pipelines.spec.model import DatasetSpec

QUARANTINE_SCHEMA = pa.schema(
    [
        ("reason", pa.string()),
        ("raw", pa.binary()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kafka_timestamp_ms", pa.int64()),
    ]
)

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_VALUE = re.compile(r"=\S+|, got .*$")
_NUMBER = re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?")


def reason_kind(reason: str) -> str:
    """A low-cardinality summary of a rejection reason for counters ("amount is below the minimum")."""
    if reason.startswith("not valid JSON"):
        return "not valid JSON"
    return _NUMBER.sub("N", _QUOTED.sub("...", _VALUE.sub("", reason))).strip()[:100]


@dataclass
class StagedFiles:
    raw_files: list[Path] = field(default_factory=list)
    quarantine_files: list[Path] = field(default_factory=list)
    valid: int = 0
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class _RollingParquet:
    """Row groups of `rows_per_group`, a new file every `rows_per_file` rows: part-<tag>-<n>.parquet."""

    def __init__(self, directory: Path, tag: str, schema: pa.Schema, rows_per_file: int) -> None:
        self.directory, self.tag, self.schema, self.rows_per_file = directory, tag, schema, rows_per_file
        self.files: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_file = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None or self._rows_in_file >= self.rows_per_file:
            self.close()
            path = self.directory / f"part-{self.tag}-{len(self.files):05d}.parquet"
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
            self.files.append(path)
            self._rows_in_file = 0
        self._writer.write_table(table)
        self._rows_in_file += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class StagedWriter:
    """The consume sink: checks each record and stages valid/quarantined rows as local Parquet."""

    def __init__(
        self,
        spec: DatasetSpec,
        directory: Path,
        tag: str,
        *,
        rows_per_group: int = 100_000,
        rows_per_file: int = 1_000_000,
        checker: EventChecker | None = None,
    ) -> None:
        self.spec = spec
        self.topic = spec.topic.name
        self.checker = checker or checker_for(spec)
        self.schema = raw_schema(spec)
        self.rows_per_group = rows_per_group
        directory.mkdir(parents=True, exist_ok=True)
        self._raw = _RollingParquet(directory / "raw", tag, self.schema, rows_per_file)
        self._quarantine = _RollingParquet(directory / "quarantine", tag, QUARANTINE_SCHEMA, rows_per_file)
        (directory / "raw").mkdir(exist_ok=True)
        (directory / "quarantine").mkdir(exist_ok=True)
        # Valid events are kept as the checker's rows (tuples) and become columns at flush in one conversion
        # to an Arrow struct array: an append per event instead of one per field, and no Python-level transpose
        # (measured 0.6 against 1.6 us per event for a transpose and an array per column).
        self._events = pa.struct(list(event_schema(spec)))
        self._rows: list[tuple[Any, ...]] = []
        self._partitions: list[int] = []
        self._offsets: list[int] = []
        self._q: dict[str, list[Any]] = {name: [] for name in QUARANTINE_SCHEMA.names}
        self.result = StagedFiles()

    def __call__(self, partition: int, records: list[Any]) -> None:
        """The sink for kafka-python records of one partition (`consume`)."""
        values_of = self.checker.values
        keep, part_append, off_append = self._rows.append, self._partitions.append, self._offsets.append
        for rec in records:
            value = rec.value
            row = values_of(value) if value is not None else "event has no value (null Kafka record)"
            if type(row) is tuple:
                keep(row)
                part_append(partition)
                off_append(rec.offset)
            else:
                self._reject(row, value, partition, rec.offset, rec.timestamp)
        self._flush_full()

    def add_messages(self, messages: list[Any]) -> None:
        """The sink for librdkafka (confluent-kafka) messages of one `consume()`: data messages only, of any
        of the read's partitions, in offset order per partition. Same checks and rows as `__call__`."""
        values_of = self.checker.values
        keep, part_append, off_append = self._rows.append, self._partitions.append, self._offsets.append
        for msg in messages:
            value = msg.value()
            row = values_of(value) if value is not None else "event has no value (null Kafka record)"
            if type(row) is tuple:
                keep(row)
                part_append(msg.partition())
                off_append(msg.offset())
            else:
                self._reject(row, value, msg.partition(), msg.offset(), msg.timestamp()[1])
        self._flush_full()

    def _reject(self, reason: str, value: bytes | None, partition: int, offset: int, timestamp_ms: int) -> None:
        q = self._q
        q["reason"].append(reason)
        q["raw"].append(value if value is not None else b"")
        q["topic"].append(self.topic)
        q["partition"].append(partition)
        q["offset"].append(offset)
        q["kafka_timestamp_ms"].append(timestamp_ms)
        self.result.reasons[reason_kind(reason)] += 1

    def _flush_full(self) -> None:
        if len(self._rows) >= self.rows_per_group:
            self._flush_raw()
        if len(self._q["reason"]) >= self.rows_per_group:
            self._flush_quarantine()

    def _flush_raw(self) -> None:
        n = len(self._rows)
        if n == 0:
            return
        events = pa.array(self._rows, type=self._events).flatten()
        provenance = [pa.array(self._partitions, pa.int32()), pa.array(self._offsets, pa.int64())]
        self._raw.write(pa.Table.from_arrays([*events, *provenance], schema=self.schema))
        self.result.valid += n
        self._rows, self._partitions, self._offsets = [], [], []

    def _flush_quarantine(self) -> None:
        n = len(self._q["reason"])
        if n == 0:
            return
        arrays = [pa.array(self._q[f.name], type=f.type) for f in QUARANTINE_SCHEMA]
        self._quarantine.write(pa.Table.from_arrays(arrays, schema=QUARANTINE_SCHEMA))
        self.result.quarantined += n
        for col in self._q.values():
            col.clear()

    def __enter__(self) -> StagedWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """A failed read aborts (see `abort`); a read that ends well is finished with `close()`, which says
        what was staged."""
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        """Close the open Parquet files without flushing: the read failed and its staging is thrown away."""
        self._raw.close()
        self._quarantine.close()

    def close(self) -> StagedFiles:
        self._flush_raw()
        self._flush_quarantine()
        self._raw.close()
        self._quarantine.close()
        self.result.raw_files = list(self._raw.files)
        self.result.quarantine_files = list(self._quarantine.files)
        return self.result
