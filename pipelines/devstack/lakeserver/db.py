"""SQLite metadata: schema, per-thread connections, and read/write transactions.

WAL with synchronous=FULL: a transaction acknowledged to a client survives a crash, and readers see a
consistent snapshot while one writer commits. Writers take the lock up front (BEGIN IMMEDIATE), so two
writers on different branches serialize on the database instead of failing half-way.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (
    id TEXT PRIMARY KEY, storage_namespace TEXT NOT NULL, default_branch TEXT NOT NULL,
    creation_date INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS branches (
    repo TEXT NOT NULL, name TEXT NOT NULL, commit_id TEXT NOT NULL, PRIMARY KEY (repo, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    repo TEXT NOT NULL, name TEXT NOT NULL, commit_id TEXT NOT NULL, PRIMARY KEY (repo, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (
    repo TEXT NOT NULL, id TEXT NOT NULL, parents TEXT NOT NULL, committer TEXT NOT NULL,
    message TEXT NOT NULL, creation_date INTEGER NOT NULL, meta_range_id TEXT NOT NULL,
    metadata TEXT NOT NULL, generation INTEGER NOT NULL, PRIMARY KEY (repo, id)
) WITHOUT ROWID;
-- Uncommitted changes per branch; blob NULL is a tombstone (deleted since the head commit).
CREATE TABLE IF NOT EXISTS staging (
    repo TEXT NOT NULL, branch TEXT NOT NULL, path TEXT NOT NULL, blob TEXT, size INTEGER, mtime INTEGER,
    content_type TEXT, metadata TEXT, checksum TEXT, PRIMARY KEY (repo, branch, path)
) WITHOUT ROWID;
-- Immutable, content-addressed: a range is a sorted run of entries; a metarange lists ranges by max key.
CREATE TABLE IF NOT EXISTS ranges (
    range_id TEXT NOT NULL, path TEXT NOT NULL, blob TEXT NOT NULL, size INTEGER NOT NULL,
    mtime INTEGER NOT NULL, content_type TEXT NOT NULL, metadata TEXT NOT NULL, checksum TEXT NOT NULL,
    PRIMARY KEY (range_id, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metaranges (
    metarange_id TEXT NOT NULL, max_key TEXT NOT NULL, range_id TEXT NOT NULL, min_key TEXT NOT NULL,
    count INTEGER NOT NULL, PRIMARY KEY (metarange_id, max_key)
) WITHOUT ROWID;
"""


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._conn().executescript(SCHEMA)  # idempotent DDL, committed as one script

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: transactions are explicit (BEGIN / BEGIN IMMEDIATE) below.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("PRAGMA cache_size=-32000")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for the duration of the block."""
        conn = self._conn()
        if conn.in_transaction:  # nested inside a write: reuse it
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: either every statement in the block is durable, or none is visible."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
