"""Immutable trees of committed objects: ranges and metaranges, stored content-addressed in SQLite.

A commit's content is a metarange: the ordered list of its ranges, each a sorted run of entries. Range
boundaries are content-defined (a key ends a range when its hash says so, ~1 in RANGE_FANOUT keys), so
the same set of entries always yields the same ranges and ids. Applying a change set rewrites only the
ranges the changes fall into and reuses every other range by id: a commit costs O(changed ranges x
range size + number of ranges), not O(objects); two metaranges are diffed by skipping shared ranges.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from typing import NamedTuple

RANGE_FANOUT = 512
EMPTY_METARANGE = hashlib.sha256(b"").hexdigest()
_COLS = "path, blob, size, mtime, content_type, metadata, checksum"


class Entry(NamedTuple):
    path: str
    blob: str | None  # None: a staged deletion (tombstone); never None inside a range
    size: int
    mtime: int
    content_type: str
    metadata: str  # canonical JSON of the user metadata
    checksum: str

    def same_content(self, other: Entry | None) -> bool:
        return (
            other is not None
            and self.blob == other.blob
            and self.content_type == other.content_type
            and self.metadata == other.metadata
        )


class RangeRef(NamedTuple):
    max_key: str
    range_id: str
    min_key: str
    count: int


def is_boundary(path: str) -> bool:
    digest = hashlib.blake2b(path.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % RANGE_FANOUT == 0


def range_refs(conn: sqlite3.Connection, metarange_id: str) -> list[RangeRef]:
    rows = conn.execute(
        "SELECT max_key, range_id, min_key, count FROM metaranges WHERE metarange_id=? ORDER BY max_key",
        (metarange_id,),
    ).fetchall()
    return [RangeRef(*r) for r in rows]


def range_entries(conn: sqlite3.Connection, range_id: str, start: str = "") -> list[Entry]:
    rows = conn.execute(
        f"SELECT {_COLS} FROM ranges WHERE range_id=? AND path>=? ORDER BY path", (range_id, start)
    ).fetchall()
    return [Entry(*r) for r in rows]


def lookup(conn: sqlite3.Connection, metarange_id: str, path: str) -> Entry | None:
    row = conn.execute(
        "SELECT range_id FROM metaranges WHERE metarange_id=? AND max_key>=? ORDER BY max_key LIMIT 1",
        (metarange_id, path),
    ).fetchone()
    if row is None:
        return None
    found = conn.execute(f"SELECT {_COLS} FROM ranges WHERE range_id=? AND path=?", (row[0], path)).fetchone()
    return Entry(*found) if found else None


def iterate(conn: sqlite3.Connection, metarange_id: str, start: str = "") -> Iterator[Entry]:
    """Entries with path >= start, in path order; reads one range at a time."""
    cursor = conn.execute(
        "SELECT range_id FROM metaranges WHERE metarange_id=? AND max_key>=? ORDER BY max_key",
        (metarange_id, start),
    )
    for (range_id,) in cursor:  # lazily: a short listing page touches only the ranges it needs
        yield from range_entries(conn, range_id, start)


def count(conn: sqlite3.Connection, metarange_id: str) -> int:
    row = conn.execute("SELECT COALESCE(SUM(count), 0) FROM metaranges WHERE metarange_id=?", (metarange_id,))
    return int(row.fetchone()[0])


def _write_range(conn: sqlite3.Connection, entries: list[Entry]) -> RangeRef:
    h = hashlib.sha256()
    for e in entries:
        h.update("\x00".join(map(str, e)).encode())
        h.update(b"\n")
    range_id = h.hexdigest()
    exists = conn.execute("SELECT 1 FROM ranges WHERE range_id=? LIMIT 1", (range_id,)).fetchone()
    if not exists:
        conn.executemany(
            f"INSERT INTO ranges (range_id, {_COLS}) VALUES (?,?,?,?,?,?,?,?)",
            [(range_id, *e) for e in entries],
        )
    return RangeRef(entries[-1].path, range_id, entries[0].path, len(entries))


def write_metarange(conn: sqlite3.Connection, refs: list[RangeRef]) -> str:
    metarange_id = hashlib.sha256("\n".join(r.range_id for r in refs).encode()).hexdigest()
    exists = conn.execute("SELECT 1 FROM metaranges WHERE metarange_id=? LIMIT 1", (metarange_id,)).fetchone()
    if refs and not exists:
        conn.executemany(
            "INSERT INTO metaranges (metarange_id, max_key, range_id, min_key, count) VALUES (?,?,?,?,?)",
            [(metarange_id, *r) for r in refs],
        )
    return metarange_id


def apply_changes(conn: sqlite3.Connection, base_metarange: str, changes: Iterable[Entry]) -> str:
    """A new metarange: base with `changes` (sorted by path; blob None deletes) applied."""
    changes = list(changes)
    refs = range_refs(conn, base_metarange)
    out: list[RangeRef] = []
    pending: list[Entry] = []

    def emit(entry: Entry) -> None:
        pending.append(entry)
        if is_boundary(entry.path):
            out.append(_write_range(conn, pending))
            pending.clear()

    i = ci = 0
    n, m = len(refs), len(changes)
    while i < n or ci < m:
        if not pending:
            # Untouched ranges that end on a boundary are reused as they are.
            while i < n and (ci >= m or refs[i].max_key < changes[ci].path) and is_boundary(refs[i].max_key):
                out.append(refs[i])
                i += 1
            if i >= n and ci >= m:
                break
        if i < n:
            hi = refs[i].max_key
            entries = range_entries(conn, refs[i].range_id)
            i += 1
            j = 0
            while j < len(entries) or (ci < m and changes[ci].path <= hi):
                if ci < m and changes[ci].path <= hi and (j >= len(entries) or changes[ci].path <= entries[j].path):
                    change = changes[ci]
                    ci += 1
                    if j < len(entries) and entries[j].path == change.path:
                        j += 1  # replaced or deleted
                    if change.blob is not None:
                        emit(change)
                else:
                    emit(entries[j])
                    j += 1
        else:
            for change in changes[ci:]:
                if change.blob is not None:
                    emit(change)
            ci = m
    if pending:
        out.append(_write_range(conn, pending))
    return write_metarange(conn, out)


def build(conn: sqlite3.Connection, entries: Iterable[Entry]) -> str:
    """A metarange from entries sorted by path (a fresh tree: nothing to reuse)."""
    return apply_changes(conn, EMPTY_METARANGE, entries)


def diff(conn: sqlite3.Connection, left: str, right: str) -> Iterator[tuple[str, Entry | None, Entry | None]]:
    """(path, left entry, right entry) for every path whose content differs, in path order."""
    if left == right:
        return
    left_refs, right_refs = range_refs(conn, left), range_refs(conn, right)
    shared = {r.range_id for r in left_refs} & {r.range_id for r in right_refs}
    lit = _entries_outside(conn, left_refs, shared)
    rit = _entries_outside(conn, right_refs, shared)
    le, re_ = next(lit, None), next(rit, None)
    while le is not None or re_ is not None:
        if re_ is None or (le is not None and le.path < re_.path):
            yield le.path, le, None
            le = next(lit, None)
        elif le is None or re_.path < le.path:
            yield re_.path, None, re_
            re_ = next(rit, None)
        else:
            if not le.same_content(re_):
                yield le.path, le, re_
            le, re_ = next(lit, None), next(rit, None)


def _entries_outside(conn: sqlite3.Connection, refs: list[RangeRef], shared: set[str]) -> Iterator[Entry]:
    for ref in refs:
        if ref.range_id not in shared:
            yield from range_entries(conn, ref.range_id)
