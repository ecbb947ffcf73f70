"""The version store: repositories, branches, tags, commits, objects, diff and merge.

A branch is a row pointing at a commit plus its staged (uncommitted) entries, so creating one is a
single insert whatever the repository holds. A commit is immutable, identified by the sha256 of its
content, and points at a metarange (see trees). Every mutation is one SQLite transaction: a commit
writes its ranges, its row and the branch move together, or not at all.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.devstack.lakeserver import history, names, trees
from pipelines.devstack.lakeserver.blobs import BlobStore
from pipelines.devstack.lakeserver.db import Database
from pipelines.devstack.lakeserver.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from pipelines.devstack.lakeserver.refs import parse as parse_ref
from pipelines.devstack.lakeserver.trees import Entry

MAX_AMOUNT = 1000
DEFAULT_AMOUNT = 100
COMMITTER = "admin"
_HEX = frozenset("0123456789abcdef")
MAX_CHAR = chr(0x10FFFF)


def page_size(amount: int | None) -> int:
    if amount is None or amount <= 0:
        return DEFAULT_AMOUNT
    return min(amount, MAX_AMOUNT)


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with prefix (None: no bound).

    Trailing U+10FFFF (the largest code point) cannot be incremented: every string starting with
    `ab<max>` is below `ac`, and nothing at all is above a prefix made only of U+10FFFF.
    """
    trimmed = prefix.rstrip(MAX_CHAR)
    if not trimmed:
        return None
    return trimmed[:-1] + chr(ord(trimmed[-1]) + 1)


@dataclass(frozen=True)
class View:
    """What a ref resolves to: a commit, its tree, and the branch whose staged changes overlay it."""

    commit_id: str
    metarange_id: str
    branch: str | None


@dataclass(frozen=True)
class Listed:
    """One listing result: an entry, or a common prefix (entry None)."""

    path: str
    entry: Entry | None


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # objects are readable by their owner only
        self.db = Database(data_dir / "metadata.db")
        self.blobs = BlobStore(data_dir)

    # ---- repositories -------------------------------------------------------------------------------

    def create_repository(self, name: str, storage_namespace: str, default_branch: str) -> dict:
        names.repository(name)
        names.branch(default_branch)
        names.storage_namespace(storage_namespace)
        now = int(time.time())
        with self.db.write() as conn:
            if conn.execute("SELECT 1 FROM repos WHERE id=?", (name,)).fetchone():
                raise Conflict(f"repository {name!r} already exists")
            conn.execute("INSERT INTO repos VALUES (?,?,?,?)", (name, storage_namespace, default_branch, now))
            # Like lakeFS: the default branch starts at an empty "Repository created" commit.
            commit_id = self._insert_commit(
                conn, name, [], "Repository created", {}, trees.EMPTY_METARANGE, now, COMMITTER
            )
            conn.execute("INSERT INTO branches VALUES (?,?,?)", (name, default_branch, commit_id))
        return self.get_repository(name)

    def get_repository(self, name: str) -> dict:
        with self.db.read() as conn:
            return self._repo(conn, name)

    def _repo(self, conn: sqlite3.Connection, name: str) -> dict:
        row = conn.execute(
            "SELECT id, storage_namespace, default_branch, creation_date FROM repos WHERE id=?", (name,)
        ).fetchone()
        if row is None:
            raise NotFound(f"repository {name!r} not found")
        return {"id": row[0], "storage_namespace": row[1], "default_branch": row[2], "creation_date": row[3]}

    def list_repositories(self, prefix: str, after: str, amount: int | None) -> tuple[list[dict], bool]:
        with self.db.read() as conn:
            ids, more = _page_names(conn, "SELECT id FROM repos WHERE 1=1", (), "id", prefix, after, amount)
            return [self._repo(conn, i) for i in ids], more

    def delete_repository(self, name: str) -> None:
        with self.db.write() as conn:
            self._repo(conn, name)
            conn.execute("DELETE FROM repos WHERE id=?", (name,))
            # Ranges and blobs are shared and content-addressed; they stay (no garbage collection yet).
            for table in ("branches", "tags", "commits", "staging"):
                conn.execute(f"DELETE FROM {table} WHERE repo=?", (name,))

    # ---- refs ---------------------------------------------------------------------------------------

    def _commit_row(self, conn: sqlite3.Connection, repo: str, commit_id: str) -> dict | None:
        row = conn.execute(
            "SELECT id, parents, committer, message, creation_date, meta_range_id, metadata, generation "
            "FROM commits WHERE repo=? AND id=?",
            (repo, commit_id),
        ).fetchone()
        if row is None:
            return None
        return {
            "id": row[0],
            "parents": json.loads(row[1]),
            "committer": row[2],
            "message": row[3],
            "creation_date": row[4],
            "meta_range_id": row[5],
            "metadata": json.loads(row[6]),
            "generation": row[7],
            "version": 1,
        }

    def _commit(self, conn: sqlite3.Connection, repo: str, commit_id: str) -> dict:
        commit = self._commit_row(conn, repo, commit_id)
        if commit is None:
            raise NotFound(f"commit {commit_id!r} not found in repository {repo!r}")
        return commit

    def _branch_commit(self, conn: sqlite3.Connection, repo: str, branch: str) -> str | None:
        row = conn.execute("SELECT commit_id FROM branches WHERE repo=? AND name=?", (repo, branch)).fetchone()
        return row[0] if row else None

    def _require_branch(self, conn: sqlite3.Connection, repo: str, branch: str) -> str:
        self._repo(conn, repo)
        commit_id = self._branch_commit(conn, repo, branch)
        if commit_id is None:
            raise NotFound(f"branch {branch!r} not found in repository {repo!r}")
        return commit_id

    def _resolve(self, conn: sqlite3.Connection, repo: str, ref: str) -> View:
        self._repo(conn, repo)
        expr = parse_ref(ref)
        branch = None
        commit_id = self._branch_commit(conn, repo, expr.base)
        if commit_id is not None:
            branch = expr.base
        else:
            row = conn.execute("SELECT commit_id FROM tags WHERE repo=? AND name=?", (repo, expr.base)).fetchone()
            if row:
                commit_id = row[0]
            elif 6 <= len(expr.base) <= 64 and _HEX.issuperset(expr.base):
                rows = conn.execute(
                    "SELECT id FROM commits WHERE repo=? AND id>=? AND id<? LIMIT 2",
                    (repo, expr.base, expr.base + "g"),
                ).fetchall()
                if len(rows) > 1:
                    raise BadRequest(f"ambiguous commit id prefix {expr.base!r}: give more characters")
                commit_id = rows[0][0] if rows else None
        if commit_id is None:
            raise NotFound(f"ref {ref!r} not found in repository {repo!r} (not a branch, tag or commit id)")
        for kind, n in expr.modifiers:
            branch = None
            for _ in range(n if kind == "~" else min(n, 1)):  # `^0` is the commit itself, as in git
                parents = self._commit(conn, repo, commit_id)["parents"]
                index = 0 if kind == "~" else n - 1
                if index >= len(parents):
                    raise NotFound(f"ref {ref!r}: commit {commit_id[:12]} has no such parent")
                commit_id = parents[index]
        if expr.committed_only:
            branch = None
        commit = self._commit(conn, repo, commit_id)
        return View(commit_id, commit["meta_range_id"], branch)

    def resolve_commit(self, repo: str, ref: str) -> dict:
        with self.db.read() as conn:
            return self._commit(conn, repo, self._resolve(conn, repo, ref).commit_id)

    # ---- branches -----------------------------------------------------------------------------------

    def create_branch(self, repo: str, name: str, source: str) -> str:
        names.branch(name)
        with self.db.write() as conn:
            view = self._resolve(conn, repo, source)
            if self._branch_commit(conn, repo, name) is not None:
                raise Conflict(f"branch {name!r} already exists in repository {repo!r}")
            if conn.execute("SELECT 1 FROM tags WHERE repo=? AND name=?", (repo, name)).fetchone():
                raise Conflict(f"{name!r} is already a tag in repository {repo!r}")
            conn.execute("INSERT INTO branches VALUES (?,?,?)", (repo, name, view.commit_id))
            return view.commit_id

    def get_branch(self, repo: str, name: str) -> str:
        with self.db.read() as conn:
            return self._require_branch(conn, repo, name)

    def list_branches(self, repo: str, prefix: str, after: str, amount: int | None) -> tuple[list, bool]:
        return self._list_refs("branches", repo, prefix, after, amount)

    def _list_refs(self, table: str, repo: str, prefix: str, after: str, amount: int | None):
        with self.db.read() as conn:
            self._repo(conn, repo)
            sql = f"SELECT name FROM {table} WHERE repo=?"
            found, more = _page_names(conn, sql, (repo,), "name", prefix, after, amount)
            rows = [
                (n, conn.execute(f"SELECT commit_id FROM {table} WHERE repo=? AND name=?", (repo, n)).fetchone()[0])
                for n in found
            ]
            return rows, more

    def delete_branch(self, repo: str, name: str) -> None:
        with self.db.write() as conn:
            self._require_branch(conn, repo, name)
            if self._repo(conn, repo)["default_branch"] == name:
                raise BadRequest(f"cannot delete {name!r}: it is the default branch of {repo!r}")
            conn.execute("DELETE FROM branches WHERE repo=? AND name=?", (repo, name))
            conn.execute("DELETE FROM staging WHERE repo=? AND branch=?", (repo, name))

    def reset_branch(self, repo: str, branch: str, kind: str, path: str | None) -> None:
        with self.db.write() as conn:
            self._require_branch(conn, repo, branch)
            if kind == "reset":
                conn.execute("DELETE FROM staging WHERE repo=? AND branch=?", (repo, branch))
            elif kind == "object":
                conn.execute(
                    "DELETE FROM staging WHERE repo=? AND branch=? AND path=?", (repo, branch, names.path(path))
                )
            elif kind == "common_prefix":
                prefix = path or ""
                end = prefix_end(prefix)
                sql = "DELETE FROM staging WHERE repo=? AND branch=? AND path>=?"
                args: tuple = (repo, branch, prefix)
                if end is not None:
                    sql, args = sql + " AND path<?", (*args, end)
                conn.execute(sql, args)
            else:
                raise BadRequest(f"unknown reset type {kind!r}: use reset, object or common_prefix")

    def hard_reset(self, repo: str, branch: str, ref: str) -> None:
        with self.db.write() as conn:
            self._require_branch(conn, repo, branch)
            view = self._resolve(conn, repo, ref)
            conn.execute("DELETE FROM staging WHERE repo=? AND branch=?", (repo, branch))
            conn.execute("UPDATE branches SET commit_id=? WHERE repo=? AND name=?", (view.commit_id, repo, branch))

    # ---- tags ---------------------------------------------------------------------------------------

    def create_tag(self, repo: str, name: str, ref: str, force: bool = False) -> str:
        names.tag(name)
        with self.db.write() as conn:
            view = self._resolve(conn, repo, ref)
            exists = conn.execute("SELECT 1 FROM tags WHERE repo=? AND name=?", (repo, name)).fetchone()
            if exists and not force:
                raise Conflict(f"tag {name!r} already exists in repository {repo!r}")
            conn.execute("INSERT OR REPLACE INTO tags VALUES (?,?,?)", (repo, name, view.commit_id))
            return view.commit_id

    def get_tag(self, repo: str, name: str) -> str:
        with self.db.read() as conn:
            self._repo(conn, repo)
            row = conn.execute("SELECT commit_id FROM tags WHERE repo=? AND name=?", (repo, name)).fetchone()
            if row is None:
                raise NotFound(f"tag {name!r} not found in repository {repo!r}")
            return row[0]

    def list_tags(self, repo: str, prefix: str, after: str, amount: int | None) -> tuple[list, bool]:
        return self._list_refs("tags", repo, prefix, after, amount)

    def delete_tag(self, repo: str, name: str) -> None:
        self.get_tag(repo, name)
        with self.db.write() as conn:
            conn.execute("DELETE FROM tags WHERE repo=? AND name=?", (repo, name))

    # ---- commits ------------------------------------------------------------------------------------

    def _insert_commit(
        self,
        conn: sqlite3.Connection,
        repo: str,
        parents: list[str],
        message: str,
        metadata: dict[str, str],
        metarange_id: str,
        creation_date: int,
        committer: str,
    ) -> str:
        generation = 1 + max((self._commit(conn, repo, p)["generation"] for p in parents), default=0)
        content = {
            "parents": parents,
            "committer": committer,
            "message": message,
            "metadata": metadata,
            "meta_range_id": metarange_id,
            "creation_date": creation_date,
        }
        commit_id = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        conn.execute(
            "INSERT OR IGNORE INTO commits VALUES (?,?,?,?,?,?,?,?,?)",
            (
                repo,
                commit_id,
                json.dumps(parents),
                committer,
                message,
                creation_date,
                metarange_id,
                json.dumps(metadata, sort_keys=True),
                generation,
            ),
        )
        return commit_id

    def commit(
        self,
        repo: str,
        branch: str,
        message: str,
        metadata: dict[str, str] | None,
        allow_empty: bool = False,
        date: int | None = None,
    ) -> dict:
        with self.db.write() as conn:
            head = self._require_branch(conn, repo, branch)
            staged = _staged(conn, repo, branch)
            if not staged and not allow_empty:
                raise BadRequest(f"commit on {branch!r}: no changes (nothing uploaded or deleted since the head)")
            base = self._commit(conn, repo, head)
            metarange = trees.apply_changes(conn, base["meta_range_id"], staged)
            commit_id = self._insert_commit(
                conn, repo, [head], message, metadata or {}, metarange, date or int(time.time()), COMMITTER
            )
            conn.execute("UPDATE branches SET commit_id=? WHERE repo=? AND name=?", (commit_id, repo, branch))
            conn.execute("DELETE FROM staging WHERE repo=? AND branch=?", (repo, branch))
            return self._commit(conn, repo, commit_id)

    def log(
        self,
        repo: str,
        ref: str,
        after: str,
        amount: int | None,
        first_parent: bool = False,
        limit: bool = False,
        stop_at: str = "",
    ) -> tuple[list[dict], bool]:
        """Commits reachable from ref, newest generation first; `after` is the last id already seen."""
        size = page_size(amount)
        with self.db.read() as conn:
            start = self._resolve(conn, repo, ref).commit_id
            stop = self._resolve(conn, repo, stop_at).commit_id if stop_at else None
            results: list[dict] = []
            seen_after = not after
            for commit in history.walk(lambda c: self._commit(conn, repo, c), start, first_parent):
                if seen_after:
                    results.append(commit)
                    if len(results) > size:
                        break
                elif commit["id"] == after:
                    seen_after = True
                if stop is not None and commit["id"] == stop:
                    break
            more = len(results) > size and not limit
            return results[:size], more

    # ---- objects ------------------------------------------------------------------------------------

    def stage(
        self,
        repo: str,
        branch: str,
        path: str,
        blob: str,
        size: int,
        checksum: str,
        content_type: str,
        metadata: dict[str, str],
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> tuple[Entry, str]:
        """Records an uploaded blob at path on branch; returns the entry and the storage namespace."""
        names.path(path)
        entry = Entry(path, blob, size, int(time.time()), content_type, json.dumps(metadata, sort_keys=True), checksum)
        with self.db.write() as conn:
            head = self._require_branch(conn, repo, branch)
            if if_none_match or if_match is not None:
                current = self._lookup(
                    conn, repo, View(head, self._commit(conn, repo, head)["meta_range_id"], branch), path
                )
                if if_none_match and current is not None:
                    raise PreconditionFailed(f"object {path!r} already exists on {branch!r} (If-None-Match: *)")
                if if_match is not None and (current is None or current.checksum != if_match.strip('"')):
                    raise PreconditionFailed(f"object {path!r} on {branch!r} does not match If-Match {if_match}")
            conn.execute("INSERT OR REPLACE INTO staging VALUES (?,?,?,?,?,?,?,?,?)", (repo, branch, *entry))
            return entry, self._repo(conn, repo)["storage_namespace"]

    def stage_many(self, repo: str, branch: str, entries: list[Entry]) -> None:
        """Bulk staging for local tools (benchmark setup, imports); the HTTP API stages one at a time."""
        with self.db.write() as conn:
            self._require_branch(conn, repo, branch)
            conn.executemany(
                "INSERT OR REPLACE INTO staging VALUES (?,?,?,?,?,?,?,?,?)", [(repo, branch, *e) for e in entries]
            )

    def _lookup(self, conn: sqlite3.Connection, repo: str, view: View, path: str) -> Entry | None:
        if view.branch is not None:
            row = conn.execute(
                "SELECT path, blob, size, mtime, content_type, metadata, checksum FROM staging "
                "WHERE repo=? AND branch=? AND path=?",
                (repo, view.branch, path),
            ).fetchone()
            if row is not None:
                entry = Entry(*row)
                return entry if entry.blob is not None else None
        return trees.lookup(conn, view.metarange_id, path)

    def get_object(self, repo: str, ref: str, path: str) -> tuple[Entry, str]:
        names.path(path)
        with self.db.read() as conn:
            entry = self._lookup(conn, repo, self._resolve(conn, repo, ref), path)
            if entry is None:
                raise NotFound(f"object {path!r} not found at {ref!r} in repository {repo!r}")
            return entry, self._repo(conn, repo)["storage_namespace"]

    def blob_path(self, entry: Entry) -> Path:
        assert entry.blob is not None
        return self.blobs.path_of(entry.blob)

    def delete_objects(self, repo: str, branch: str, paths: list[str], missing_ok: bool) -> list[str]:
        """Stages deletions; returns the paths that did not exist (an error unless missing_ok)."""
        missing = []
        with self.db.write() as conn:
            head = self._require_branch(conn, repo, branch)
            metarange = self._commit(conn, repo, head)["meta_range_id"]
            view = View(head, metarange, branch)
            for path in paths:
                names.path(path)
                if self._lookup(conn, repo, view, path) is None:
                    missing.append(path)
                    continue
                if trees.lookup(conn, metarange, path) is None:  # only ever staged: just forget it
                    conn.execute("DELETE FROM staging WHERE repo=? AND branch=? AND path=?", (repo, branch, path))
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO staging VALUES (?,?,?,NULL,0,0,'','{}','')", (repo, branch, path)
                    )
            if missing and not missing_ok:
                raise NotFound(f"object {missing[0]!r} not found on branch {branch!r}")
        return missing

    def list_objects(
        self, repo: str, ref: str, prefix: str, after: str, amount: int | None, delimiter: str
    ) -> tuple[list[Listed], bool, str]:
        size = page_size(amount)
        with self.db.read() as conn:
            view = self._resolve(conn, repo, ref)
            namespace = self._repo(conn, repo)["storage_namespace"]
            start = prefix
            if after:
                # A common prefix returned as `after` must skip everything under it.
                skip = prefix_end(after) if delimiter and after.endswith(delimiter) else after + "\x00"
                if skip is None:  # `after` was all U+10FFFF: nothing sorts after it
                    return [], False, namespace
                start = max(start, skip)
            out: list[Listed] = []
            while len(out) <= size:
                restarted = False
                for entry in self._iter_view(conn, repo, view, start):
                    if not entry.path.startswith(prefix):
                        break
                    if delimiter:
                        cut = entry.path.find(delimiter, len(prefix))
                        if cut >= 0:
                            common = entry.path[: cut + len(delimiter)]
                            out.append(Listed(common, None))
                            end = prefix_end(common)
                            restarted = end is not None  # None: nothing sorts after this common prefix
                            start = end or start
                            break
                    out.append(Listed(entry.path, entry))
                    if len(out) > size:
                        break
                if not restarted:
                    break
            return out[:size], len(out) > size, namespace

    def _iter_view(self, conn: sqlite3.Connection, repo: str, view: View, start: str) -> Iterator[Entry]:
        committed = trees.iterate(conn, view.metarange_id, start)
        if view.branch is None:
            yield from committed
            return
        # Lazy: a listing page reads only as many staged rows as it returns.
        staged = (
            Entry(*r)
            for r in conn.execute(
                "SELECT path, blob, size, mtime, content_type, metadata, checksum FROM staging "
                "WHERE repo=? AND branch=? AND path>=? ORDER BY path",
                (repo, view.branch, start),
            )
        )
        c, s = next(committed, None), next(staged, None)
        while c is not None or s is not None:
            if s is None or (c is not None and c.path < s.path):
                yield c
                c = next(committed, None)
            else:
                if c is not None and c.path == s.path:
                    c = next(committed, None)
                if s.blob is not None:
                    yield s
                s = next(staged, None)

    # ---- diff, merge, revert ------------------------------------------------------------------------

    def diff_branch(self, repo: str, branch: str) -> list[tuple[str, str, Entry | None]]:
        """Uncommitted changes: (type, path, new entry or None)."""
        with self.db.read() as conn:
            head = self._require_branch(conn, repo, branch)
            metarange = self._commit(conn, repo, head)["meta_range_id"]
            out = []
            for entry in _staged(conn, repo, branch):
                base = trees.lookup(conn, metarange, entry.path)
                if entry.blob is None:
                    out.append(("removed", entry.path, None))
                elif base is None:
                    out.append(("added", entry.path, entry))
                else:
                    out.append(("changed", entry.path, entry))
            return out

    def diff_refs(self, repo: str, left: str, right: str, three_dot: bool) -> list[tuple[str, str, Entry | None]]:
        with self.db.read() as conn:
            lv, rv = self._resolve(conn, repo, left), self._resolve(conn, repo, right)
            base_mr = lv.metarange_id
            if three_dot:
                base = history.merge_base(lambda c: self._commit(conn, repo, c), lv.commit_id, rv.commit_id)
                if base is not None:
                    base_mr = self._commit(conn, repo, base)["meta_range_id"]
            return [
                ("removed" if r is None else "added" if le is None else "changed", path, r)
                for path, le, r in trees.diff(conn, base_mr, rv.metarange_id)
            ]

    def merge(
        self,
        repo: str,
        source: str,
        destination: str,
        message: str,
        metadata: dict[str, str] | None,
        strategy: str | None,
        allow_empty: bool = False,
        squash: bool = False,
    ) -> str:
        if strategy not in (None, "", "source-wins", "dest-wins"):
            raise BadRequest(f"unknown merge strategy {strategy!r}: use source-wins or dest-wins")
        with self.db.write() as conn:
            dest_head = self._require_branch(conn, repo, destination)
            if _staged(conn, repo, destination, limit=1):
                raise BadRequest(f"cannot merge into {destination!r}: it has uncommitted changes; commit or reset them")
            src = self._resolve(conn, repo, source).commit_id
            base = history.merge_base(lambda c: self._commit(conn, repo, c), src, dest_head)
            if base == src and not allow_empty:
                raise BadRequest(f"merge {source!r} into {destination!r}: no changes (already merged)")
            if base == dest_head and not squash and not allow_empty:
                conn.execute("UPDATE branches SET commit_id=? WHERE repo=? AND name=?", (src, repo, destination))
                return src  # fast-forward
            mr = {c: self._commit(conn, repo, c)["meta_range_id"] for c in {src, dest_head, base} if c}
            base_mr = mr[base] if base else trees.EMPTY_METARANGE
            ours = {p: r for p, _, r in trees.diff(conn, base_mr, mr[dest_head])}
            changes: list[Entry] = []
            conflicts: list[str] = []
            for path, _, theirs in trees.diff(conn, base_mr, mr[src]):
                if path in ours:
                    mine = ours[path]
                    same = (mine is None and theirs is None) or (theirs is not None and theirs.same_content(mine))
                    if same or strategy == "dest-wins":
                        continue
                    if strategy != "source-wins":
                        conflicts.append(path)
                        continue
                changes.append(theirs if theirs is not None else _tombstone(path))
            if conflicts:
                shown = ", ".join(repr(p) for p in conflicts[:5])
                raise Conflict(
                    f"merge {source!r} into {destination!r}: {len(conflicts)} conflicting path(s): {shown}; "
                    "resolve them or pass strategy source-wins/dest-wins"
                )
            metarange = trees.apply_changes(conn, mr[dest_head], changes)
            parents = [dest_head] if squash else [dest_head, src]
            commit_id = self._insert_commit(
                conn,
                repo,
                parents,
                message or f"Merge '{source}' into '{destination}'",
                metadata or {},
                metarange,
                int(time.time()),
                COMMITTER,
            )
            conn.execute("UPDATE branches SET commit_id=? WHERE repo=? AND name=?", (commit_id, repo, destination))
            return commit_id

    def revert(
        self,
        repo: str,
        branch: str,
        ref: str,
        parent_number: int,
        message: str | None,
        metadata: dict[str, str] | None,
        allow_empty: bool = False,
    ) -> str:
        """A new commit on branch undoing the changes `ref` made relative to its parent."""
        return self._replay(repo, branch, ref, parent_number, message, metadata, allow_empty, undo=True)["id"]

    def cherry_pick(
        self, repo: str, branch: str, ref: str, parent_number: int, message: str | None, metadata: dict | None
    ) -> dict:
        """A new commit on branch repeating the changes `ref` made relative to its parent."""
        return self._replay(repo, branch, ref, parent_number, message, metadata, False, undo=False)

    def _replay(
        self,
        repo: str,
        branch: str,
        ref: str,
        parent_number: int,
        message: str | None,
        metadata: dict[str, str] | None,
        allow_empty: bool,
        undo: bool,
    ) -> dict:
        action = "revert" if undo else "cherry-pick"
        with self.db.write() as conn:
            head = self._require_branch(conn, repo, branch)
            if _staged(conn, repo, branch, limit=1):
                raise BadRequest(f"cannot {action} on {branch!r}: it has uncommitted changes; commit or reset them")
            target = self._commit(conn, repo, self._resolve(conn, repo, ref).commit_id)
            parents = target["parents"]
            if len(parents) > 1 and parent_number < 1:
                raise BadRequest(f"commit {target['id'][:12]} is a merge: give parent_number (1..{len(parents)})")
            index = max(parent_number, 1) - 1
            if index >= len(parents):
                raise BadRequest(f"commit {target['id'][:12]} has no parent number {max(parent_number, 1)}")
            parent_mr = self._commit(conn, repo, parents[index])["meta_range_id"]
            before, after = (target["meta_range_id"], parent_mr) if undo else (parent_mr, target["meta_range_id"])
            head_mr = self._commit(conn, repo, head)["meta_range_id"]
            changes = []
            for path, expected, wanted in trees.diff(conn, before, after):
                current = trees.lookup(conn, head_mr, path)
                if not ((current is None and expected is None) or (expected and expected.same_content(current))):
                    raise Conflict(f"{action} {target['id'][:12]} on {branch!r}: {path!r} changed since; do it by hand")
                changes.append(wanted if wanted is not None else _tombstone(path))
            if not changes and not allow_empty:
                raise BadRequest(f"{action} {target['id'][:12]} on {branch!r}: no changes")
            metarange = trees.apply_changes(conn, head_mr, changes)
            if undo:
                message, metadata = message or f"Revert {target['id']}", metadata or {}
            else:
                message, metadata = message or target["message"], metadata or target["metadata"]
            commit_id = self._insert_commit(
                conn, repo, [head], message, metadata, metarange, int(time.time()), COMMITTER
            )
            conn.execute("UPDATE branches SET commit_id=? WHERE repo=? AND name=?", (commit_id, repo, branch))
            return self._commit(conn, repo, commit_id)

    def copy_object(self, repo: str, branch: str, dest_path: str, src_ref: str, src_path: str) -> tuple[Entry, str]:
        """Stages dest_path on branch as a copy of src_path at src_ref: same blob, nothing rewritten."""
        names.path(dest_path)
        names.path(src_path)
        with self.db.write() as conn:
            self._require_branch(conn, repo, branch)
            source = self._lookup(conn, repo, self._resolve(conn, repo, src_ref or branch), src_path)
            if source is None:
                raise NotFound(f"object {src_path!r} not found at {src_ref or branch!r} in repository {repo!r}")
            entry = source._replace(path=dest_path, mtime=int(time.time()))
            conn.execute("INSERT OR REPLACE INTO staging VALUES (?,?,?,?,?,?,?,?,?)", (repo, branch, *entry))
            return entry, self._repo(conn, repo)["storage_namespace"]


def _tombstone(path: str) -> Entry:
    return Entry(path, None, 0, 0, "", "{}", "")


def _staged(conn: sqlite3.Connection, repo: str, branch: str, limit: int = -1) -> list[Entry]:
    rows = conn.execute(
        "SELECT path, blob, size, mtime, content_type, metadata, checksum FROM staging "
        "WHERE repo=? AND branch=? ORDER BY path LIMIT ?",
        (repo, branch, limit),
    ).fetchall()
    return [Entry(*r) for r in rows]


def _page_names(
    conn: sqlite3.Connection, sql: str, args: tuple, column: str, prefix: str, after: str, amount: int | None
) -> tuple[list[str], bool]:
    size = page_size(amount)
    sql += f" AND {column}>? AND {column}>=?"
    args = (*args, after or "", prefix or "")
    end = prefix_end(prefix)
    if end is not None:
        sql += f" AND {column}<?"
        args = (*args, end)
    rows = conn.execute(sql + f" ORDER BY {column} LIMIT ?", (*args, size + 1)).fetchall()
    return [r[0] for r in rows[:size]], len(rows) > size


def metadata_json(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise BadRequest("metadata must be an object of string values")
    return metadata
