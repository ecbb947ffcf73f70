"""Logging for compute code: human-readable by default, one JSON object a line with FLYWHEEL_LOG_FORMAT=json
(for shipping to ELK). Inside Dagster, assets use `context.log`; this is for the CLI, servers and workers."""

from __future__ import annotations

import json
import logging
import sys
import time

from pipelines.config import setting

_CONFIGURED = False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            payload.update(extra)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure(level: str | None = None, fmt: str | None = None) -> None:
    global _CONFIGURED
    if _CONFIGURED:
        return
    handler = logging.StreamHandler(sys.stderr)
    if (fmt or setting("FLYWHEEL_LOG_FORMAT", "text")) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("flywheel")
    root.addHandler(handler)
    root.setLevel((level or setting("FLYWHEEL_LOG_LEVEL") or "INFO").upper())
    root.propagate = False
    _CONFIGURED = True


def get_logger(name: str) -> logging.Logger:
    """A logger under the `flywheel` hierarchy; pass structured fields with `extra={"fields": {...}}`."""
    configure()
    return logging.getLogger(f"flywheel.{name}")
