"""An embedded, single-node server for the subset of the lakeFS v1 REST API that Flywheel uses.

Run it with `python -m pipelines.devstack.lakeserver --data-dir DIR` (or `flywheel lakefs serve`); talk to it
with the official `lakefs` SDK at http://127.0.0.1:8000 (the SDK appends /api/v1).

Implemented: repositories (create, get, list, delete, metadata), branches (create from any ref, get,
list, delete, reset, hard reset, revert, cherry-pick), objects (upload raw or multipart, get with
ranges, head, stat, list with prefix/delimiter/pagination, delete, batch delete, copy), uncommitted
changes, commits with metadata, get commit, log, diff between refs (two- and three-dot), merge
(fast-forward, three-way, 409 on conflict, source-wins/dest-wins), tags, ref expressions (branch,
tag, commit id or unique prefix, `~N`, `^N`, `@`), config/version/storage/setup/healthcheck/user.
Not implemented: presigned URLs, imports, actions/hooks, auth management, branch protection, GC.

Modules: `names` (validation), `blobs` (content-addressed files), `db` (SQLite schema and
transactions), `trees` (immutable ranges and metaranges), `history` (log order, merge base), `refs`
(ref expressions), `store` (the versioning operations), `wire` (request/response shapes), `app`
(routes), `auth` (credentials, Basic auth), `server` (socket and uvicorn), `process` (start/wait).
"""
