"""Credentials and HTTP Basic authentication.

The access key and secret come from LAKEFS_ACCESS_KEY_ID / LAKEFS_SECRET_ACCESS_KEY when both are set;
otherwise they are generated at first start and kept in <data dir>/credentials.json (mode 0600), so
clients on the same machine can read them (see process.read_credentials).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from pipelines.errors import StackError

CREDENTIALS_FILE = "credentials.json"
KEY_ENV = "LAKEFS_ACCESS_KEY_ID"
SECRET_ENV = "LAKEFS_SECRET_ACCESS_KEY"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def matches(self, key: str, secret: str) -> bool:
        # Constant-time on both parts, and no short-circuit, so timing says nothing about either.
        key_ok = hmac.compare_digest(key.encode(), self.access_key_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.secret_access_key.encode())
        return key_ok & secret_ok


def credentials_path(data_dir: Path) -> Path:
    return data_dir / CREDENTIALS_FILE


def load_or_create(data_dir: Path) -> Credentials:
    key, secret = os.environ.get(KEY_ENV), os.environ.get(SECRET_ENV)
    path = credentials_path(data_dir)
    if key and secret:
        creds = Credentials(key, secret)
    elif path.exists():
        return Credentials(*read_stored(path))
    else:
        # Same shapes as lakeFS keys: AKIAJ + 14 characters, and a 40-character secret.
        creds = Credentials("AKIAJ" + secrets.token_hex(7).upper(), secrets.token_urlsafe(30)[:40])
    _write_private(path, {"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key})
    return creds


def read_stored(path: Path) -> tuple[str, str]:
    """(access key id, secret) from a credentials file; a damaged file is one sentence, not a traceback."""
    try:
        stored = json.loads(path.read_text())
        key, secret = stored["access_key_id"], stored["secret_access_key"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(
            f"the lakeFS credentials file {path} is damaged ({type(exc).__name__}): delete it to generate new "
            f"credentials at the next start, or set {KEY_ENV} and {SECRET_ENV}"
        ) from exc
    return str(key), str(secret)


def _write_private(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def parse_basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    # Non-ASCII in the header (b64decode raises ValueError) or in the decoded pair is simply not a credential.
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    key, sep, secret = decoded.partition(":")
    return (key, secret) if sep else None


class BasicAuthMiddleware:
    """Every request outside open_paths needs the access key and secret, or gets 401."""

    def __init__(self, app: ASGIApp, credentials: Credentials, open_paths: set[str]) -> None:
        self.app = app
        self.credentials = credentials
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        parsed = parse_basic(header) if header else None
        if parsed is None or not self.credentials.matches(*parsed):
            reason = "missing credentials" if not header else "invalid access key or secret"
            body = json.dumps({"message": f"unauthorized: {reason} (HTTP Basic auth with the lakeFS access key)"})
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Basic realm="lakeFS"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})
            return
        scope["user"] = parsed[0]
        await self.app(scope, receive, send)
