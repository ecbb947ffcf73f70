"""HTTP layer: the lakeFS v1 routes the official SDK calls, as a Starlette app.

Handlers are thin: parse the request, call the store (in a worker thread; SQLite and disk I/O block),
shape the answer as swagger.yml says. Errors are `{"message": ...}` with lakeFS's status codes, so the
SDK raises its own exceptions (NotFoundException, ConflictException, ...).
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from email.utils import formatdate

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from pipelines.devstack.lakeserver import names, wire
from pipelines.devstack.lakeserver.auth import BasicAuthMiddleware, Credentials
from pipelines.devstack.lakeserver.errors import (
    BadRequest,
    Conflict,
    LakeServerError,
    PayloadTooLarge,
    RangeNotSatisfiable,
)
from pipelines.devstack.lakeserver.store import Store, metadata_json

VERSION = "1.0.0-flywheel-embedded"
API = "/api/v1"
META_HEADER = "x-lakefs-meta-"
INLINE_BODY_LIMIT = 16 * 1024 * 1024  # larger reads are streamed
UPLOAD_BUFFER = 4 * 1024 * 1024
MAX_UPLOAD_BYTES = 5 * 1024**3  # one object, as S3's single PUT (and so lakeFS on S3) allows
log = logging.getLogger("flywheel.lakeserver")


class Api:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _p(self, request: Request, name: str) -> str:
        return request.path_params[name]

    # ---- server ------------------------------------------------------------------------------------

    async def healthcheck(self, request: Request) -> Response:
        return Response(status_code=204)

    async def setup_state(self, request: Request) -> Response:
        return wire.json_response({"state": "initialized", "comm_prefs_missing": False})

    async def setup(self, request: Request) -> Response:
        return wire.error_response(
            409, "lakeFS is already set up: credentials are in the data directory (credentials.json)"
        )

    async def config(self, request: Request) -> Response:
        return wire.json_response({"version_config": self._version(), "storage_config": self._storage_config()})

    async def version(self, request: Request) -> Response:
        return wire.json_response(self._version())

    async def storage(self, request: Request) -> Response:
        return wire.json_response(self._storage_config())

    async def user(self, request: Request) -> Response:
        return wire.json_response({"user": {"id": request.scope.get("user", "admin"), "creation_date": 0}})

    @staticmethod
    def _version() -> dict:
        return {"version": VERSION, "upgrade_recommended": False}

    @staticmethod
    def _storage_config() -> dict:
        return {
            "blockstore_type": "local",
            "blockstore_namespace_example": f"{names.NAMESPACE_PREFIX}example-repo",
            "blockstore_namespace_ValidityRegex": names.NAMESPACE_REGEX,  # enforced by names.storage_namespace
            "default_namespace_prefix": names.NAMESPACE_PREFIX,
            "pre_sign_support": False,
            "pre_sign_support_ui": False,
            "import_support": False,
            "import_validity_regex": "^local://",
            "pre_sign_multipart_upload": False,
        }

    # ---- repositories ------------------------------------------------------------------------------

    async def list_repositories(self, request: Request) -> Response:
        q = request.query_params
        amount = wire.query_amount(request)
        repos, more = await run_in_threadpool(
            self.store.list_repositories, q.get("prefix", ""), q.get("after", ""), amount
        )
        return wire.json_response(
            {
                "pagination": wire.pagination(more, len(repos), repos[-1]["id"] if repos else "", amount),
                "results": repos,
            }
        )

    async def create_repository(self, request: Request) -> Response:
        body = await wire.json_body(request)
        if wire.query_bool(request, "bare"):
            raise BadRequest("bare repositories are not supported by the embedded server")
        repo = await run_in_threadpool(
            self.store.create_repository,
            wire.body_str(body, "name"),
            wire.body_str(body, "storage_namespace"),
            wire.body_str(body, "default_branch") or "main",
        )
        return wire.json_response(repo, 201)

    async def get_repository(self, request: Request) -> Response:
        return wire.json_response(await run_in_threadpool(self.store.get_repository, self._p(request, "repository")))

    async def delete_repository(self, request: Request) -> Response:
        await run_in_threadpool(self.store.delete_repository, self._p(request, "repository"))
        return Response(status_code=204)

    async def repository_metadata(self, request: Request) -> Response:
        await run_in_threadpool(self.store.get_repository, self._p(request, "repository"))
        return wire.json_response({})

    # ---- branches and tags -------------------------------------------------------------------------

    async def list_branches(self, request: Request) -> Response:
        return await self._list_refs(request, self.store.list_branches)

    async def list_tags(self, request: Request) -> Response:
        return await self._list_refs(request, self.store.list_tags)

    async def _list_refs(self, request: Request, lister) -> Response:
        q = request.query_params
        amount = wire.query_amount(request)
        rows, more = await run_in_threadpool(
            lister, self._p(request, "repository"), q.get("prefix", ""), q.get("after", ""), amount
        )
        results = [wire.ref_item(n, c) for n, c in rows]
        return wire.json_response(
            {"pagination": wire.pagination(more, len(results), rows[-1][0] if rows else "", amount), "results": results}
        )

    async def create_branch(self, request: Request) -> Response:
        body = await wire.json_body(request)
        commit_id = await run_in_threadpool(
            self.store.create_branch,
            self._p(request, "repository"),
            wire.body_str(body, "name"),
            wire.body_str(body, "source"),
        )
        return PlainTextResponse(commit_id, status_code=201, media_type="text/html")

    async def get_branch(self, request: Request) -> Response:
        branch = self._p(request, "branch")
        commit_id = await run_in_threadpool(self.store.get_branch, self._p(request, "repository"), branch)
        return wire.json_response(wire.ref_item(branch, commit_id))

    async def delete_branch(self, request: Request) -> Response:
        await run_in_threadpool(self.store.delete_branch, self._p(request, "repository"), self._p(request, "branch"))
        return Response(status_code=204)

    async def reset_branch(self, request: Request) -> Response:
        body = await wire.json_body(request)
        await run_in_threadpool(
            self.store.reset_branch,
            self._p(request, "repository"),
            self._p(request, "branch"),
            wire.body_str(body, "type"),
            wire.body_str(body, "path"),
        )
        return Response(status_code=204)

    async def hard_reset(self, request: Request) -> Response:
        ref = request.query_params.get("ref")
        if not ref:
            raise BadRequest("missing ref: pass ?ref=<commit, branch or tag>")
        await run_in_threadpool(self.store.hard_reset, self._p(request, "repository"), self._p(request, "branch"), ref)
        return Response(status_code=204)

    async def revert(self, request: Request) -> Response:
        body = await wire.json_body(request)
        overrides = wire.body_object(body, "commit_overrides")
        await run_in_threadpool(
            self.store.revert,
            self._p(request, "repository"),
            self._p(request, "branch"),
            wire.body_str(body, "ref"),
            wire.body_int(body, "parent_number") or 0,
            wire.body_str(overrides, "message") or None,
            metadata_json(overrides.get("metadata")),
            wire.body_bool(body, "allow_empty"),
        )
        return Response(status_code=204)

    async def cherry_pick(self, request: Request) -> Response:
        body = await wire.json_body(request)
        overrides = wire.body_object(body, "commit_overrides")
        commit = await run_in_threadpool(
            self.store.cherry_pick,
            self._p(request, "repository"),
            self._p(request, "branch"),
            wire.body_str(body, "ref"),
            wire.body_int(body, "parent_number") or 0,
            wire.body_str(overrides, "message") or None,
            metadata_json(overrides.get("metadata")) or None,
        )
        return wire.json_response(commit, 201)

    async def copy_object(self, request: Request) -> Response:
        body = await wire.json_body(request)
        entry, namespace = await run_in_threadpool(
            self.store.copy_object,
            self._p(request, "repository"),
            self._p(request, "branch"),
            request.query_params.get("dest_path", ""),
            wire.body_str(body, "src_ref"),
            wire.body_str(body, "src_path"),
        )
        return wire.json_response(wire.object_stats(entry, namespace), 201)

    async def create_tag(self, request: Request) -> Response:
        body = await wire.json_body(request)
        tag = wire.body_str(body, "id")
        commit_id = await run_in_threadpool(
            self.store.create_tag,
            self._p(request, "repository"),
            tag,
            wire.body_str(body, "ref"),
            wire.body_bool(body, "force"),
        )
        return wire.json_response(wire.ref_item(tag, commit_id), 201)

    async def get_tag(self, request: Request) -> Response:
        tag = self._p(request, "tag")
        return wire.json_response(
            wire.ref_item(tag, await run_in_threadpool(self.store.get_tag, self._p(request, "repository"), tag))
        )

    async def delete_tag(self, request: Request) -> Response:
        await run_in_threadpool(self.store.delete_tag, self._p(request, "repository"), self._p(request, "tag"))
        return Response(status_code=204)

    # ---- commits -----------------------------------------------------------------------------------

    async def commit(self, request: Request) -> Response:
        if request.query_params.get("source_metarange"):
            raise BadRequest("source_metarange is not supported by the embedded server")
        body = await wire.json_body(request)
        if not isinstance(body.get("message"), str):
            raise BadRequest("commit message is required")
        date = wire.body_int(body, "date")
        commit = await run_in_threadpool(
            self.store.commit,
            self._p(request, "repository"),
            self._p(request, "branch"),
            body["message"],
            metadata_json(body.get("metadata")),
            wire.body_bool(body, "allow_empty"),
            date or None,
        )
        return wire.json_response(commit, 201)

    async def get_commit(self, request: Request) -> Response:
        repo, ref = self._p(request, "repository"), self._p(request, "commitId")  # lakeFS accepts any ref here
        return wire.json_response(await run_in_threadpool(self.store.resolve_commit, repo, ref))

    async def log(self, request: Request) -> Response:
        q = request.query_params
        if q.getlist("objects") or q.getlist("prefixes") or q.get("since"):
            raise BadRequest("log filters objects, prefixes and since are not supported by the embedded server")
        amount = wire.query_amount(request)
        commits, more = await run_in_threadpool(
            self.store.log,
            self._p(request, "repository"),
            self._p(request, "ref"),
            q.get("after", ""),
            amount,
            wire.query_bool(request, "first_parent"),
            wire.query_bool(request, "limit"),
            q.get("stop_at", ""),
        )
        last = commits[-1]["id"] if commits else ""
        return wire.json_response({"pagination": wire.pagination(more, len(commits), last, amount), "results": commits})

    # ---- diff and merge ----------------------------------------------------------------------------

    async def diff_branch(self, request: Request) -> Response:
        changes = await run_in_threadpool(
            self.store.diff_branch, self._p(request, "repository"), self._p(request, "branch")
        )
        return wire.json_response(wire.diff_page(request, changes))

    async def diff_refs(self, request: Request) -> Response:
        kind = request.query_params.get("type", "three_dot")
        if kind not in ("two_dot", "three_dot"):
            raise BadRequest("type must be two_dot or three_dot")
        changes = await run_in_threadpool(
            self.store.diff_refs,
            self._p(request, "repository"),
            self._p(request, "leftRef"),
            self._p(request, "rightRef"),
            kind == "three_dot",
        )
        return wire.json_response(wire.diff_page(request, changes))

    async def merge(self, request: Request) -> Response:
        body = await wire.json_body(request)
        try:
            commit_id = await self._merge(request, body)
        except Conflict as exc:  # swagger.yml: a merge conflict answers a MergeResult
            return wire.json_response({"reference": "", "message": exc.message}, 409)
        return wire.json_response({"reference": commit_id})

    async def _merge(self, request: Request, body: dict) -> str:
        return await run_in_threadpool(
            self.store.merge,
            self._p(request, "repository"),
            self._p(request, "sourceRef"),
            self._p(request, "destinationBranch"),
            wire.body_str(body, "message"),
            metadata_json(body.get("metadata")),
            wire.body_str(body, "strategy") or None,
            wire.body_bool(body, "allow_empty"),
            wire.body_bool(body, "squash_merge"),
        )

    # ---- objects -----------------------------------------------------------------------------------

    async def upload_object(self, request: Request) -> Response:
        repo, branch = self._p(request, "repository"), self._p(request, "branch")
        path = names.path(request.query_params.get("path"))
        await run_in_threadpool(self.store.get_branch, repo, branch)  # fail before reading the body
        content_type = request.headers.get("content-type") or "application/octet-stream"
        writer = self.store.blobs.writer()
        try:
            if content_type.startswith("multipart/form-data"):
                body = await wire.bounded_body(request, wire.MULTIPART_BODY_LIMIT, "multipart upload")
                content, content_type = wire.multipart_content(body, content_type)
                writer.write(content)
            else:
                wire.check_declared_size(request, MAX_UPLOAD_BYTES, "upload")
                # Hash and write in a worker thread, 4 MiB at a time (hashlib releases the GIL), so a
                # large upload neither blocks the event loop nor pays a thread hop per 64 KiB chunk.
                pending: list[bytes] = []
                buffered = 0
                async for chunk in request.stream():
                    pending.append(chunk)
                    buffered += len(chunk)
                    if writer.size + buffered > MAX_UPLOAD_BYTES:
                        raise PayloadTooLarge(f"upload is over the limit of {MAX_UPLOAD_BYTES} bytes")
                    if buffered >= UPLOAD_BUFFER:
                        await run_in_threadpool(writer.write, b"".join(pending))
                        pending, buffered = [], 0
                if pending:
                    writer.write(b"".join(pending))
            blob, md5, size = await run_in_threadpool(writer.finish)
        except BaseException:
            writer.abort()
            raise
        metadata = {k[len(META_HEADER) :]: v for k, v in request.headers.items() if k.startswith(META_HEADER)}
        entry, namespace = await run_in_threadpool(
            self.store.stage,
            repo,
            branch,
            path,
            blob,
            size,
            md5,
            content_type,
            metadata,
            request.headers.get("if-none-match") == "*",
            request.headers.get("if-match"),
        )
        return wire.json_response(wire.object_stats(entry, namespace), 201)

    async def delete_object(self, request: Request) -> Response:
        path = names.path(request.query_params.get("path"))
        await run_in_threadpool(
            self.store.delete_objects, self._p(request, "repository"), self._p(request, "branch"), [path], False
        )
        return Response(status_code=204)

    async def delete_objects(self, request: Request) -> Response:
        body = await wire.json_body(request)
        paths = body.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise BadRequest("paths must be a list of object paths")
        if len(paths) > 1000:
            raise BadRequest("at most 1000 paths per delete request")
        await run_in_threadpool(
            self.store.delete_objects, self._p(request, "repository"), self._p(request, "branch"), paths, True
        )
        return wire.json_response({"errors": []})

    async def stat_object(self, request: Request) -> Response:
        entry, namespace = await run_in_threadpool(
            self.store.get_object,
            self._p(request, "repository"),
            self._p(request, "ref"),
            request.query_params.get("path"),
        )
        return wire.json_response(wire.object_stats(entry, namespace, wire.query_bool(request, "user_metadata", True)))

    async def list_objects(self, request: Request) -> Response:
        q = request.query_params
        amount = wire.query_amount(request)
        listed, more, namespace = await run_in_threadpool(
            self.store.list_objects,
            self._p(request, "repository"),
            self._p(request, "ref"),
            q.get("prefix", ""),
            q.get("after", ""),
            amount,
            q.get("delimiter", ""),
        )
        user_metadata = wire.query_bool(request, "user_metadata", True)
        results = [
            wire.common_prefix(x.path) if x.entry is None else wire.object_stats(x.entry, namespace, user_metadata)
            for x in listed
        ]
        last = listed[-1].path if listed else ""
        return wire.json_response({"pagination": wire.pagination(more, len(results), last, amount), "results": results})

    def get_object(self, request: Request) -> Response:
        """Sync handler (Starlette runs it in a thread): reads the blob file directly."""
        head = request.method == "HEAD"
        try:
            entry, _ = self.store.get_object(
                self._p(request, "repository"), self._p(request, "ref"), request.query_params.get("path")
            )
        except LakeServerError as exc:
            if head:
                return Response(status_code=exc.status)
            raise
        etag = f'"{entry.checksum}"'
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(entry.mtime, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Type": entry.content_type or "application/octet-stream",
        }
        if request.headers.get("if-none-match") in (etag, entry.checksum):
            return Response(status_code=304, headers=headers)
        start, end = 0, entry.size - 1
        status = 200
        spec = request.headers.get("range")
        if spec:
            try:
                start, end = wire.parse_range(spec, entry.size)
            except RangeNotSatisfiable as exc:
                if head:
                    return Response(status_code=416, headers={"Content-Range": f"bytes */{entry.size}"})
                return wire.error_response(416, exc.message, {"Content-Range": f"bytes */{entry.size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        length = max(end - start + 1, 0)
        headers["Content-Length"] = str(length)
        if head:
            return Response(status_code=status, headers=headers)
        blob_path = self.store.blob_path(entry)
        if length <= INLINE_BODY_LIMIT:
            with open(blob_path, "rb") as f:
                f.seek(start)
                data = f.read(length)
            return Response(data, status_code=status, headers=headers)
        return StreamingResponse(wire.read_file(blob_path, start, length), status_code=status, headers=headers)


Handler = Callable[[Request], Awaitable[Response] | Response]


def _dispatch(handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint for all methods of a path; sync handlers (blocking file reads) run in a worker thread."""

    async def endpoint(request: Request) -> Response:
        handler = handlers["GET" if request.method == "HEAD" else request.method]
        if inspect.iscoroutinefunction(handler):
            return await handler(request)
        return await run_in_threadpool(handler, request)

    return endpoint


def _not_implemented(what: str) -> Handler:
    async def endpoint(request: Request) -> Response:
        return wire.error_response(
            501, f"{what} ({request.method} {request.url.path}) is not implemented by the embedded lakeFS server"
        )

    return endpoint


def build_app(store: Store, credentials: Credentials) -> Starlette:
    api = Api(store)
    r = f"{API}/repositories/{{repository}}"
    endpoints: list[tuple[str, str, Handler]] = [
        (f"{API}/healthcheck", "GET", api.healthcheck),
        (f"{API}/setup_lakefs", "GET", api.setup_state),
        (f"{API}/setup_lakefs", "POST", api.setup),
        (f"{API}/config", "GET", api.config),
        (f"{API}/config/version", "GET", api.version),
        (f"{API}/config/storage", "GET", api.storage),
        (f"{API}/user", "GET", api.user),
        (f"{API}/repositories", "GET", api.list_repositories),
        (f"{API}/repositories", "POST", api.create_repository),
        (r, "GET", api.get_repository),
        (r, "DELETE", api.delete_repository),
        (f"{r}/metadata", "GET", api.repository_metadata),
        (f"{r}/branches", "GET", api.list_branches),
        (f"{r}/branches", "POST", api.create_branch),
        (f"{r}/branches/{{branch}}", "GET", api.get_branch),
        (f"{r}/branches/{{branch}}", "DELETE", api.delete_branch),
        (f"{r}/branches/{{branch}}", "PUT", api.reset_branch),
        (f"{r}/branches/{{branch}}/hard_reset", "PUT", api.hard_reset),
        (f"{r}/branches/{{branch}}/revert", "POST", api.revert),
        (f"{r}/branches/{{branch}}/commits", "POST", api.commit),
        (f"{r}/branches/{{branch}}/cherry-pick", "POST", api.cherry_pick),
        (f"{r}/branches/{{branch}}/objects/copy", "POST", api.copy_object),
        (f"{r}/branches/{{branch}}/diff", "GET", api.diff_branch),
        (f"{r}/branches/{{branch}}/objects", "POST", api.upload_object),
        (f"{r}/branches/{{branch}}/objects", "DELETE", api.delete_object),
        (f"{r}/branches/{{branch}}/objects/delete", "POST", api.delete_objects),
        (f"{r}/refs/{{ref}}/commits", "GET", api.log),
        (f"{r}/refs/{{sourceRef}}/merge/{{destinationBranch}}", "POST", api.merge),
        (f"{r}/refs/{{leftRef}}/diff/{{rightRef}}", "GET", api.diff_refs),
        (f"{r}/commits/{{commitId}}", "GET", api.get_commit),
        (f"{r}/refs/{{ref}}/objects", "GET", api.get_object),
        (f"{r}/refs/{{ref}}/objects/stat", "GET", api.stat_object),
        (f"{r}/refs/{{ref}}/objects/ls", "GET", api.list_objects),
        (f"{r}/tags", "GET", api.list_tags),
        (f"{r}/tags", "POST", api.create_tag),
        (f"{r}/tags/{{tag}}", "GET", api.get_tag),
        (f"{r}/tags/{{tag}}", "DELETE", api.delete_tag),
        # Documented on paths served above, not implemented here: 501 says so (and Allow lists them).
        (f"{r}/metadata", "POST", _not_implemented("setting repository metadata")),
        (f"{r}/metadata", "DELETE", _not_implemented("deleting repository metadata")),
        (f"{r}/branches/{{branch}}/objects", "PUT", _not_implemented("staging an object by physical address")),
        (f"{r}/refs/{{sourceRef}}/merge/{{destinationBranch}}", "GET", _not_implemented("finding a merge base")),
    ]
    by_path: dict[str, dict[str, Handler]] = {}
    for path, method, handler in endpoints:
        by_path.setdefault(path, {})[method] = handler
    # One route per path, so a 405's Allow header lists every method the path supports (RFC 9110).
    routes = [Route(path, _dispatch(handlers), methods=list(handlers)) for path, handlers in by_path.items()]

    async def store_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LakeServerError)
        return wire.error_response(exc.status, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return wire.error_response(404, f"no such API route: {request.method} {request.url.path}")
        return wire.error_response(exc.status_code, str(exc.detail), exc.headers)  # e.g. 405's Allow

    async def server_error(request: Request, exc: Exception) -> Response:
        # The details (paths, values) stay in the server log; the client gets an id to find them by.
        error_id = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", error_id, request.method, request.url.path)
        return wire.error_response(500, f"internal server error (id {error_id}; details in the lakeFS server log)")

    app = Starlette(
        routes=routes,
        exception_handlers={LakeServerError: store_error, HTTPException: http_error, Exception: server_error},
    )
    app.add_middleware(
        BasicAuthMiddleware, credentials=credentials, open_paths={f"{API}/healthcheck", f"{API}/setup_lakefs"}
    )
    return app
