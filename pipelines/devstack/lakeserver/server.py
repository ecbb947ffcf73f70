"""Serving: open the listening socket (a busy port is one clear sentence), then run uvicorn on it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from pipelines import logs
from pipelines.devstack.lakeserver.app import build_app
from pipelines.devstack.lakeserver.auth import load_or_create
from pipelines.devstack.lakeserver.store import Store
from pipelines.errors import StackError

log = logging.getLogger("flywheel.lakeserver")
LOCK_FILE = "server.lock"
MAX_HEADER_BYTES = 64 * 1024  # request line and headers; lakeFS clients send well under 8 KiB


def _configure_logging(level: str) -> None:
    """Flywheel's format (text, or JSON lines with FLYWHEEL_LOG_FORMAT=json) for this server and uvicorn."""
    logs.configure("INFO")
    handlers = logging.getLogger("flywheel").handlers
    for name in ("uvicorn",):
        logger = logging.getLogger(name)
        logger.handlers = list(handlers)
        logger.setLevel(level.upper())
        logger.propagate = False


def exposure_warning(host: str) -> str | None:
    """What to tell the user when `host` lets other machines connect (None for loopback only).

    The API uses HTTP Basic auth over plain HTTP: on any other interface the access key and secret cross
    the network in clear text. A hostname counts as exposed, since it may resolve to anything.
    """
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass
    return (
        f"listening on {host}, which other machines can reach: the lakeFS access key and secret travel in "
        "clear text (HTTP Basic auth over plain HTTP) unless TLS terminates in front of this server; "
        "use --host 127.0.0.1 to keep it on this machine"
    )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StackError(
                f"port {port} on {host} is already in use: stop what runs there or pick another with --port"
            ) from exc
        raise StackError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    return sock


@contextlib.contextmanager
def lock_data_dir(data_dir: Path) -> Iterator[None]:
    """Holds an exclusive flock on <data_dir>/server.lock for the block, or refuses in one sentence.

    Two servers on one directory break each other: startup clears tmp/ (the other's uploads in flight)
    and both write metadata. The kernel drops the lock when the process dies, even on kill -9, so a
    crash never leaves a stale lock; the pid inside is only there to name the holder.
    """
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise StackError(
                f"the data directory {data_dir} is in use by another lakeFS server (pid {holder}, which holds "
                f"{path}): stop that server, or give this one another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def serve(data_dir: Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    sock = bind(host, port)  # before anything slow, so a busy port fails fast
    warning = exposure_warning(host)
    if warning:  # on stderr whatever the log level (both `python -m` and `flywheel lakefs serve` land here)
        print(f"lakeserver: warning: {warning}", file=sys.stderr, flush=True)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.closing(sock), lock_data_dir(data_dir):  # before Store(), which clears tmp/
        _serve_locked(sock, data_dir, host, port, log_level)


def _serve_locked(sock: socket.socket, data_dir: Path, host: str, port: int, log_level: str) -> None:
    credentials = load_or_create(data_dir)
    app = build_app(Store(data_dir), credentials)
    _configure_logging(log_level)
    log.info("listening on http://%s:%d (lakeFS API at /api/v1), data in %s", host, port, data_dir)
    # log_config=None: uvicorn's loggers go through the handler configured above.
    # h11, not httptools (uvicorn's pick when installed): httptools buffers a request head of any size,
    # so one unauthenticated client could make the server read megabytes of headers. h11 answers 400
    # and closes once the head passes MAX_HEADER_BYTES; per-request cost is within a few percent here.
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=None,
        access_log=False,
        lifespan="off",
        http="h11",
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    uvicorn.Server(config).run(sockets=[sock])
