"""Request parsing and response shapes shared by the handlers: JSON bodies, pagination, object
stats, byte ranges, multipart uploads and diff pages, all as swagger.yml spells them."""

from __future__ import annotations

import email.parser
import email.policy
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from pipelines.devstack.lakeserver.errors import BadRequest, PayloadTooLarge, RangeNotSatisfiable
from pipelines.devstack.lakeserver.store import page_size
from pipelines.devstack.lakeserver.trees import Entry

JSON_BODY_LIMIT = 8 * 1024 * 1024  # commit metadata, merge and delete requests are a few KiB
MULTIPART_BODY_LIMIT = 64 * 1024 * 1024  # held in memory; the SDK's high-level writer streams raw bodies
MAX_JSON_DEPTH = 32  # lakeFS request bodies are at most 3 levels deep (commit_overrides.metadata.key)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def json_response(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    return value.lower() in ("true", "1", "yes")


def query_amount(request: Request) -> int | None:
    raw = request.query_params.get("amount")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise BadRequest(f"amount must be an integer, got {raw!r}") from exc


def pagination(has_more: bool, results: int, next_offset: str, amount: int | None) -> dict:
    return {
        "has_more": has_more,
        "next_offset": next_offset if has_more else "",
        "results": results,
        "max_per_page": page_size(amount) if amount and amount > 0 else 1000,
    }


def check_declared_size(request: Request, limit: int, what: str) -> None:
    """413 before reading anything when Content-Length already says the body is too large."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} of {int(declared)} bytes is over the limit of {limit} bytes")


async def bounded_body(request: Request, limit: int, what: str) -> bytes:
    """The whole request body, or 413 as soon as it passes `limit` bytes (a chunked body has no Content-Length)."""
    check_declared_size(request, limit, what)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def body_int(body: dict, name: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int | None:
    """An optional integer field of a JSON body within [low, high] (swagger's int64 by default: what SQLite
    stores); anything else is a 400 naming the field."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequest(f"{name} must be an integer, got {_short(value)}")
    try:
        number = int(value)
    except ValueError as exc:  # also a string of more than 4300 digits
        raise BadRequest(f"{name} must be an integer, got {_short(value)}") from exc
    if not low <= number <= high:
        raise BadRequest(f"{name} must be an integer between {low} and {high}, got {_short(value)}")
    return number


def body_str(body: dict, name: str, default: str = "") -> str:
    """An optional string field of a JSON body (missing or null: default); any other type is a 400."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string, got {_short(value)}")
    return value


def body_bool(body: dict, name: str) -> bool:
    """An optional boolean field of a JSON body (missing or null: false); any other type is a 400."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false, got {_short(value)}")
    return value


def body_object(body: dict, name: str) -> dict:
    """An optional JSON-object field of a JSON body (missing or null: {}); any other type is a 400."""
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    """A bounded rendering of a client's value for an error message (repr of a huge value is huge)."""
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "an object"
    if isinstance(value, int) and abs(value).bit_length() > 256:
        return "an integer of more than 77 digits"
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 80 else text[:77] + "..."


async def json_body(request: Request) -> dict:
    raw = await bounded_body(request, JSON_BODY_LIMIT, "JSON request body")
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except RecursionError as exc:  # the C decoder recurses once per level
        raise BadRequest(f"request body is nested more than {MAX_JSON_DEPTH} levels deep") from exc
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    _check_json(body)
    return body


def _check_json(body: Any) -> None:
    """400 for what json.loads accepts but nothing downstream can handle: nesting deeper than any lakeFS
    request (recursion in whatever walks it later) and lone UTF-16 surrogates (`\\ud800`), which are not
    Unicode, so they cannot be encoded to UTF-8 for SQLite, hashing or the answer."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:  # iterative: the check itself must not recurse
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"request body is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise BadRequest(
            f"request body has a lone UTF-16 surrogate (U+{ord(text[exc.start]):04X}) in a string: "
            "send valid Unicode (escape characters above U+FFFF as a surrogate pair)"
        ) from exc


def object_stats(entry: Entry, namespace: str, user_metadata: bool = True) -> dict:
    return {
        "path": entry.path,
        "path_type": "object",
        "physical_address": f"{namespace.rstrip('/')}/data/{entry.blob}",
        "checksum": entry.checksum,
        "size_bytes": entry.size,
        "mtime": entry.mtime,
        "metadata": json.loads(entry.metadata) if user_metadata else {},
        "content_type": entry.content_type,
    }


def common_prefix(path: str) -> dict:
    return {"path": path, "path_type": "common_prefix", "physical_address": "", "checksum": "", "mtime": 0}


def ref_item(name: str, commit_id: str) -> dict:
    return {"id": name, "commit_id": commit_id}


def read_file(path: Path, start: int, length: int):
    with open(path, "rb") as f:
        f.seek(start)
        while length > 0:
            chunk = f.read(min(length, 4 * 1024 * 1024))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def parse_range(spec: str, size: int) -> tuple[int, int]:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range, clamped to the object like lakeFS does."""
    unit, _, rng = spec.partition("=")
    first, sep, last = rng.partition("-")
    if unit.strip() != "bytes" or not sep or "," in rng:
        raise RangeNotSatisfiable(f"unsupported Range {spec!r}: use bytes=start-end", size)
    try:
        if first == "":
            n = int(last)
            start, end = max(size - n, 0), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError as exc:
        raise RangeNotSatisfiable(f"invalid Range {spec!r}", size) from exc
    if start >= size or start > end:
        raise RangeNotSatisfiable(f"Range {spec!r} starts beyond the object's {size} bytes", size)
    return start, end


def multipart_content(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The `content` part of a multipart/form-data upload (the generated SDK's upload_object)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "content":
            return part.get_payload(decode=True) or b"", part.get_content_type()
    raise BadRequest("multipart upload without a 'content' part")


def diff_page(request: Request, changes: list[tuple[str, str, Entry | None]]) -> dict:
    q = request.query_params
    prefix, after, delimiter = q.get("prefix", ""), q.get("after", ""), q.get("delimiter", "")
    amount = query_amount(request)
    size = page_size(amount)
    results: list[dict] = []
    for kind, path, entry in changes:
        if not path.startswith(prefix):
            continue
        if delimiter:
            cut = path.find(delimiter, len(prefix))
            if cut >= 0:
                common = path[: cut + len(delimiter)]
                if common > after and (not results or results[-1]["path"] != common):
                    results.append({"type": "prefix_changed", "path": common, "path_type": "common_prefix"})
                continue
        if path <= after:
            continue
        item = {"type": kind, "path": path, "path_type": "object"}
        if entry is not None and entry.blob is not None:
            item["size_bytes"] = entry.size
        results.append(item)
        if len(results) > size:
            break
    more = len(results) > size
    results = results[:size]
    next_offset = results[-1]["path"] if results else ""
    return {"pagination": pagination(more, len(results), next_offset, amount), "results": results}
