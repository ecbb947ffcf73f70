"""lakeFS for Flywheel: client construction, `lakefs://` URIs, reads at immutable commits, and
write-audit-publish (WAP), all through the official `lakefs` SDK (plain Python, no Dagster).

Write-audit-publish: every run writes on its own branch, commits, is audited, and reaches `main`
only when told to:

    lake = Lake.from_env()
    wap = lake.wap(run_id).open()              # branch ingest-<run_id>, from main (or open(source=<commit>))
    wap.write_json("features/x/_meta/a.json", {...})
    commit_id = wap.commit("features for run ...", {keys.STAGE: "features"})   # + flywheel.run_id
    ...audit the data at wap.uri("features/x/") (an immutable commit)...
    wap.publish()                              # merge into main (retry-safe), then delete the branch

A branch that is never published stays for debugging (`lake.delete_branch` removes it). Publishing
may happen in another process: `lake.wap(run_id).publish()` finds the branch by name.

Branch names follow lakeFS's rules (letters, digits, '_' and '-'; no '/'), hence `ingest-<run_id>`.
Every call has a timeout; failures raise LakeError subclasses whose message says what failed and what
to do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lakefs
import urllib3
from lakefs import exceptions as lakefs_errors

from pipelines.config import float_setting, setting
from pipelines.errors import LakeError
from pipelines.lineage import keys
from pipelines.lineage.uris import URI_SCHEME, LakeURI, lake_uri  # noqa: F401  (re-exported: lake.LakeURI)

log = logging.getLogger(__name__)

ENDPOINT_ENV = "LAKEFS_ENDPOINT"
KEY_ENV = "LAKEFS_ACCESS_KEY_ID"
SECRET_ENV = "LAKEFS_SECRET_ACCESS_KEY"
REPOSITORY_ENV = "LAKEFS_REPOSITORY"
NAMESPACE_ENV = "LAKEFS_STORAGE_NAMESPACE"
TIMEOUT_ENV = "LAKEFS_TIMEOUT_S"
DEFAULT_REPOSITORY = "flywheel"
MAIN = "main"
_COPY_CHUNK = 8 * 1024 * 1024


class LakeUnavailableError(LakeError):
    """lakeFS could not be reached (refused, timed out, reset)."""


class LakeAuthError(LakeError):
    """lakeFS refused the credentials."""


class LakeNotFoundError(LakeError):
    """The repository, ref or object does not exist."""


class LakeConflictError(LakeError):
    """The change conflicts with the target (existing name, merge conflict)."""


# ---- settings and client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LakeFSSettings:
    endpoint: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    repository: str = DEFAULT_REPOSITORY
    storage_namespace: str | None = None  # default local://<repository>
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LakeFSSettings:
        """From the environment, then `.flywheel/stack.env` (written by `flywheel up`); overrides win."""
        get = setting if environ is None else environ.get
        values: dict[str, Any] = {
            "endpoint": get(ENDPOINT_ENV),
            "access_key_id": get(KEY_ENV),
            "secret_access_key": get(SECRET_ENV),
            "repository": get(REPOSITORY_ENV) or DEFAULT_REPOSITORY,
            "storage_namespace": get(NAMESPACE_ENV) or None,
            "read_timeout_s": float_setting(TIMEOUT_ENV, default=60.0, positive=True, environ=environ),
        }
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        env_names = {"endpoint": ENDPOINT_ENV, "access_key_id": KEY_ENV, "secret_access_key": SECRET_ENV}
        missing = [env for key, env in env_names.items() if not values[key]]
        if missing:
            raise LakeError(
                f"lakeFS is not configured: set {', '.join(missing)} "
                "(`flywheel up` writes them for the embedded stack to .flywheel/stack.env)"
            )
        return cls(**values)

    @property
    def namespace(self) -> str:
        return self.storage_namespace or f"local://{self.repository}"


def make_client(settings: LakeFSSettings) -> lakefs.Client:
    """An SDK client whose every HTTP request has a connect and a read timeout.

    The SDK has no client-wide timeout and most high-level calls do not forward one, so the default
    is set on this client's own connection pool (nothing global is changed).
    """
    client = lakefs.Client(host=settings.endpoint, username=settings.access_key_id, password=settings.secret_access_key)
    timeout = urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.read_timeout_s)
    pool = client.sdk_client._api.rest_client.pool_manager
    request = pool.request

    def request_with_timeout(method: str, url: str, *args: Any, **kwargs: Any):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = timeout
        return request(method, url, *args, **kwargs)

    pool.request = request_with_timeout
    pool.connection_pool_kw["timeout"] = timeout
    return client


# ---- URIs ------------------------------------------------------------------------------------------


def run_branch_name(run_id: str, prefix: str = "ingest") -> str:
    """`<prefix>-<run_id>` with anything lakeFS would reject in a branch name replaced by '-'."""
    return re.sub(r"[^\w-]", "-", f"{prefix}-{run_id}")


# ---- the facade ------------------------------------------------------------------------------------


class Lake:
    """One lakeFS repository, through the official SDK, with Flywheel's errors and conventions."""

    def __init__(self, settings: LakeFSSettings, client: lakefs.Client | None = None) -> None:
        self.settings = settings
        self.client = client or make_client(settings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Lake:
        return cls(LakeFSSettings.from_env(environ))

    @property
    def repository_id(self) -> str:
        return self.settings.repository

    @property
    def repository(self) -> lakefs.Repository:
        return lakefs.Repository(self.repository_id, client=self.client)

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Turns SDK and transport failures into one sentence: what failed, where, what to do."""
        where = f"lakeFS at {self.settings.endpoint}"
        try:
            yield
        except LakeError:
            raise
        except lakefs_errors.NotAuthorizedException as exc:
            raise LakeAuthError(
                f"{where} refused the credentials while {what}: check {KEY_ENV} and {SECRET_ENV} "
                "(the embedded server's are in .flywheel/stack.env)"
            ) from exc
        except lakefs_errors.NotFoundException as exc:
            raise LakeNotFoundError(f"{what}: not found in {where} ({_reason(exc)})") from exc
        except lakefs_errors.ConflictException as exc:
            raise LakeConflictError(f"{what}: conflict in {where} ({_reason(exc)})") from exc
        except lakefs_errors.ServerException as exc:
            raise LakeError(f"{what}: {where} answered {exc.status_code} ({_reason(exc)})") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise LakeUnavailableError(
                f"cannot reach {where} while {what} ({type(exc).__name__}): is it running? "
                f"`flywheel up` starts the embedded one; otherwise check {ENDPOINT_ENV}"
            ) from exc

    # -- repository and refs --

    def ensure_repository(self, default_branch: str = MAIN) -> None:
        """Creates the repository on first use (idempotent)."""
        with self._call(f"creating repository {self.repository_id!r}"):
            self.repository.create(
                storage_namespace=self.settings.namespace, default_branch=default_branch, exist_ok=True
            )

    def resolve(self, ref: str) -> str:
        """The commit id a branch, tag, commit id or expression (main~1) points at now."""
        with self._call(f"resolving ref {ref!r}"):
            return self.repository.ref(ref).get_commit().id

    def commit_info(self, ref: str) -> lakefs.Commit:
        with self._call(f"reading commit {ref!r}"):
            return self.repository.ref(ref).get_commit()

    def uri(self, ref: str, path: str = "") -> str:
        """An immutable lakefs:// URI: the ref is resolved to its commit id first."""
        return lake_uri(self.repository_id, self.resolve(ref), path)

    def branch_exists(self, name: str) -> bool:
        with self._call(f"looking up branch {name!r}"):
            try:
                self.repository.branch(name).get_commit()
                return True
            except lakefs_errors.NotFoundException:
                return False

    def create_branch(self, name: str, source: str = MAIN, exist_ok: bool = False) -> str:
        """Creates a branch from any ref (zero-copy); returns its head commit id."""
        with self._call(f"creating branch {name!r} from {source!r}"):
            branch = self.repository.branch(name).create(source, exist_ok=exist_ok)
            return branch.get_commit().id

    def delete_branch(self, name: str, missing_ok: bool = True) -> None:
        with self._call(f"deleting branch {name!r}"):
            try:
                self.repository.branch(name).delete()
            except lakefs_errors.NotFoundException:
                if not missing_ok:
                    raise

    def commit(
        self, branch: str, message: str, metadata: Mapping[str, str] | None = None, allow_empty: bool = False
    ) -> str:
        """Commits the branch's uncommitted changes; returns the new commit id."""
        meta = {k: str(v) for k, v in (metadata or {}).items()}
        with self._call(f"committing on branch {branch!r}"):
            ref = self.repository.branch(branch).commit(message, metadata=meta, allow_empty=allow_empty)
            return ref.id  # the SDK returns a Reference named by the new commit id

    def merge(
        self,
        source: str,
        into: str = MAIN,
        message: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Merges source into the branch `into`; returns the commit id `into` now points at."""
        kwargs: dict[str, Any] = {}
        if message:
            kwargs["message"] = message
        if metadata:
            kwargs["metadata"] = {k: str(v) for k, v in metadata.items()}
        with self._call(f"merging {source!r} into {into!r}"):
            return self.repository.ref(source).merge_into(self.repository.branch(into), **kwargs)

    def tag(self, name: str, ref: str, exist_ok: bool = False) -> str:
        with self._call(f"tagging {ref!r} as {name!r}"):
            return self.repository.tag(name).create(ref, exist_ok=exist_ok).get_commit().id

    def uncommitted(self, branch: str) -> list[str]:
        with self._call(f"listing uncommitted changes on {branch!r}"):
            return [c.path for c in self.repository.branch(branch).uncommitted()]

    # -- objects --

    def read_bytes(self, ref: str, path: str) -> bytes:
        with self._call(f"reading {path!r} at {ref!r}"), self.repository.ref(ref).object(path).reader("rb") as r:
            return r.read()

    def read_json(self, ref: str, path: str) -> Any:
        return json.loads(self.read_bytes(ref, path))

    def read_uri(self, uri: str) -> bytes:
        parsed = LakeURI.parse(uri)
        if parsed.repository != self.repository_id:
            raise LakeError(f"{uri} is in repository {parsed.repository!r}, this client reads {self.repository_id!r}")
        return self.read_bytes(parsed.ref, parsed.path)

    def download_file(self, ref: str, path: str, dest: Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (
            self._call(f"downloading {path!r} at {ref!r}"),
            self.repository.ref(ref).object(path).reader("rb") as r,
            open(dest, "wb") as f,
        ):
            while chunk := r.read(_COPY_CHUNK):
                f.write(chunk)
        return dest

    def exists(self, ref: str, path: str) -> bool:
        with self._call(f"checking {path!r} at {ref!r}"):
            return self.repository.ref(ref).object(path).exists()

    def list_objects(self, ref: str, prefix: str = "", max_amount: int | None = None) -> list[lakefs.ObjectInfo]:
        """Every object under prefix at ref (all pages), in path order."""
        with self._call(f"listing {prefix!r} at {ref!r}"):
            return list(self.repository.ref(ref).objects(prefix=prefix, max_amount=max_amount))

    def list_paths(self, ref: str, prefix: str = "") -> list[str]:
        return [o.path for o in self.list_objects(ref, prefix)]

    def write_bytes(
        self,
        branch: str,
        path: str,
        data: bytes | str,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        with self._call(f"writing {path!r} on branch {branch!r}"):
            self.repository.branch(branch).object(path).upload(
                data, mode="wb", content_type=content_type, metadata=dict(metadata) if metadata else None
            )

    def write_json(self, branch: str, path: str, value: Any, metadata: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        self.write_bytes(branch, path, payload, "application/json", metadata)

    def upload_file(self, branch: str, path: str, source: Path, content_type: str | None = None) -> None:
        with (
            self._call(f"uploading {source} to {path!r} on branch {branch!r}"),
            open(source, "rb") as f,
            self.repository.branch(branch).object(path).writer("wb", content_type=content_type) as w,
        ):
            shutil.copyfileobj(f, w, _COPY_CHUNK)

    def delete_objects(self, branch: str, paths: list[str]) -> None:
        with self._call(f"deleting {len(paths)} object(s) on branch {branch!r}"):
            for start in range(0, len(paths), 1000):
                self.repository.branch(branch).delete_objects(paths[start : start + 1000])

    # -- write-audit-publish --

    def wap(self, run_id: str, prefix: str = "ingest", into: str = MAIN) -> WriteAuditPublish:
        """The run's branch `<prefix>-<run_id>`, to be published into `into`; another process finds it by run id."""
        return WriteAuditPublish(self, run_branch_name(run_id, prefix), run_id, into)


class WriteAuditPublish:
    """One run's branch: write, commit with lineage, audit at the commit, publish only when told to.

    The one write-audit-publish of Flywheel: ingestion (pipelines.ingest.stages) and `flywheel dataset
    reset-offsets` both go through it. Publishing merges the branch into `into` and deletes it, and is
    retry-safe: a merge that an earlier attempt already made is recognized, never made twice.
    """

    def __init__(self, lake: Lake, branch: str, run_id: str, into: str = MAIN) -> None:
        self.lake = lake
        self.branch = branch
        self.run_id = run_id
        self.into = into
        self.commit_id: str | None = None
        self.published_commit_id: str | None = None

    def open(self, source: str | None = None, fresh: bool = True) -> WriteAuditPublish:
        """Creates the branch from `source` (default: `into`, or a commit id to pin the start);
        fresh=True first drops a leftover from an earlier attempt."""
        if fresh:
            self.lake.delete_branch(self.branch, missing_ok=True)
        self.lake.create_branch(self.branch, source or self.into, exist_ok=not fresh)
        return self

    def write_bytes(self, path: str, data: bytes | str, content_type: str | None = None, **meta: str) -> None:
        self.lake.write_bytes(self.branch, path, data, content_type, meta or None)

    def write_json(self, path: str, value: Any) -> None:
        self.lake.write_json(self.branch, path, value)

    def upload_file(self, path: str, source: Path, content_type: str | None = None) -> None:
        self.lake.upload_file(self.branch, path, source, content_type)

    def delete_objects(self, paths: list[str]) -> None:
        self.lake.delete_objects(self.branch, paths)

    def _lineage(self, metadata: Mapping[str, Any] | None) -> dict[str, str]:
        return {keys.RUN_ID: self.run_id, **{k: str(v) for k, v in (metadata or {}).items()}}

    def commit(self, message: str, metadata: Mapping[str, Any] | None = None, allow_empty: bool = False) -> str:
        self.commit_id = self.lake.commit(self.branch, message, self._lineage(metadata), allow_empty)
        return self.commit_id

    def uri(self, path: str = "") -> str:
        """Immutable URI at this run's commit (commit first)."""
        if self.commit_id is None:
            raise LakeError(f"nothing committed yet on {self.branch!r}: call commit() before asking for a URI")
        return lake_uri(self.lake.repository_id, self.commit_id, path)

    def already_merged(self) -> bool:
        """True when the branch holds no change that `into` lacks (a three-dot diff: since their merge base)."""
        with self.lake._call(f"diffing {self.branch!r} against {self.into!r}"):
            changes = self.lake.repository.ref(self.into).diff(self.branch, max_amount=1, type="three_dot")
            return next(iter(changes), None) is None

    def publish(self, message: str | None = None, metadata: Mapping[str, Any] | None = None) -> str:
        """Merges the branch into `into` and deletes it; returns the commit `into` points at now.

        Retry-safe: if an earlier attempt merged but did not get to delete the branch, the branch adds nothing
        to `into` any more, so the failed merge is taken as done. A conflict raises LakeConflictError.
        """
        text = message or f"Publish {self.branch} into {self.into}"
        try:
            commit_id = self.lake.merge(self.branch, self.into, text, self._lineage(metadata))
        except LakeConflictError:
            raise
        except LakeError:
            try:
                merged_before = self.already_merged()
            except LakeError:
                merged_before = False
            if not merged_before:
                raise  # the merge's own error
            commit_id = self.lake.resolve(self.into)
            log.info("%s was already merged into %s (an earlier attempt)", self.branch, self.into)
        self.lake.delete_branch(self.branch, missing_ok=True)
        self.published_commit_id = commit_id
        log.info("published %s into %s at %s", self.branch, self.into, commit_id)
        return commit_id

    def __enter__(self) -> WriteAuditPublish:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.published_commit_id is None:
            log.warning(
                "run %s failed (%s); branch %r is kept for debugging and %r is untouched",
                self.run_id,
                exc_type.__name__,
                self.branch,
                self.into,
            )


def _reason(exc: lakefs_errors.ServerException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(getattr(exc, "reason", "") or exc)


# ---- additions for ingestion (dataset history and run-branch housekeeping) ------------------------------


def commit_log(lake: Lake, ref: str, max_amount: int = 100) -> list[lakefs.Commit]:
    """The commits reachable from ref, newest first (at most max_amount)."""
    with lake._call(f"reading the log of {ref!r}"):
        return list(lake.repository.ref(ref).log(max_amount=max_amount))


def list_branches(lake: Lake, prefix: str = "") -> list[str]:
    """Branch names starting with prefix."""
    with lake._call(f"listing branches {prefix!r}*"):
        return [b.id for b in lake.repository.branches(prefix=prefix)]
