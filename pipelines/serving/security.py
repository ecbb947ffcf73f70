"""The admin bearer token: reload and rollout control need `Authorization: Bearer <token>`.

FLYWHEEL_SERVING_ADMIN_TOKEN (from a Secret in Kubernetes) wins; otherwise a random token is generated at the
first start and kept, owner-only (0600), in .flywheel/serving-admin-token, where the operator reads it.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from pipelines.config import setting, state_dir
from pipelines.errors import FlywheelError

TOKEN_SETTING = "FLYWHEEL_SERVING_ADMIN_TOKEN"
TOKEN_FILE = "serving-admin-token"


def token_path(directory: Path | None = None) -> Path:
    return (directory or state_dir()) / TOKEN_FILE


def admin_token(directory: Path | None = None) -> str:
    """The configured token, else the stored one, else a new one written 0600 (never readable by others)."""
    configured = (setting(TOKEN_SETTING) or "").strip()
    if configured:
        return configured
    path = token_path(directory)
    if path.exists():
        stored = path.read_text().strip()
        if stored:
            return stored
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        os.replace(tmp, path)
    except OSError as exc:  # a read-only file system (a restricted pod): the token must come from a Secret
        raise FlywheelError(
            f"cannot keep a generated admin token at {path} ({exc}): set {TOKEN_SETTING} (in Kubernetes from a Secret)"
        ) from None
    return token


def authorized(header: str | None, token: str) -> bool:
    """Constant-time check of an `Authorization: Bearer <token>` header."""
    if not header or not token:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
