"""Validation of repository, branch and tag names and object paths (lakeFS's own rules).

Names end up in URLs and SQL parameters, never in file paths (objects are stored by content hash),
but rejecting bad names with 400 keeps the server compatible with what a real lakeFS accepts.
"""

from __future__ import annotations

import re

from pipelines.devstack.lakeserver.errors import BadRequest

_REPO = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
# lakeFS: branch ids are word characters and dashes; notably no '/', so run branches are `ingest-<id>`.
_BRANCH = re.compile(r"^\w[-\w]*$")
_TAG = re.compile(r"^\w[-\w.]*$")
MAX_PATH_BYTES = 1024
# Objects live in this server's data directory whatever the namespace says; it is a label, but only one
# form is accepted, the one /config/storage advertises (blockstore_namespace_ValidityRegex).
NAMESPACE_PREFIX = "local://"
NAMESPACE_REGEX = "^" + re.escape(NAMESPACE_PREFIX)


def repository(name: str) -> str:
    if not _REPO.match(name):
        raise BadRequest(
            f"invalid repository name {name!r}: use 3-63 lowercase letters, digits and dashes, "
            "starting with a letter or digit"
        )
    return name


def branch(name: str) -> str:
    if not _BRANCH.match(name) or len(name) > 255:
        raise BadRequest(f"invalid branch name {name!r}: use letters, digits, '_' and '-' only")
    return name


def tag(name: str) -> str:
    if not _TAG.match(name) or len(name) > 255:
        raise BadRequest(f"invalid tag name {name!r}: use letters, digits, '_', '-' and '.' only")
    return name


def path(value: str | None) -> str:
    if not value:
        raise BadRequest("missing object path: pass ?path=<key>")
    if "\x00" in value or len(value.encode()) > MAX_PATH_BYTES:
        raise BadRequest(f"invalid object path {value[:80]!r}: no NUL bytes, at most {MAX_PATH_BYTES} bytes")
    return value


def storage_namespace(value: str) -> str:
    if not value:
        raise BadRequest(f"storage_namespace is required, e.g. {NAMESPACE_PREFIX}my-repo")
    if not re.match(NAMESPACE_REGEX, value) or "\x00" in value or len(value.encode()) > MAX_PATH_BYTES:
        raise BadRequest(
            f"invalid storage_namespace {value[:80]!r}: this server stores objects locally, so it must start "
            f"with {NAMESPACE_PREFIX} (e.g. {NAMESPACE_PREFIX}my-repo), as GET /config/storage advertises"
        )
    return value
