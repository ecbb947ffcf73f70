"""Starting and stopping the stack's own processes, and only those.

A process is recorded with its pid AND its creation time, so a recycled pid belonging to somebody else is
never signalled. Each service runs in its own session (process group), and stopping it also stops every
descendant it spawned (uvicorn workers, the Dagster daemon and code servers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil


@dataclass
class ProcessRecord:
    service: str
    pid: int
    create_time: float
    port: int
    url: str
    log: str
    command: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None when it is gone (or the pid was reused)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def alive(self) -> bool:
        return self.process() is not None


def spawn(
    service: str, command: list[str], env: dict[str, str], log_path: Path, cwd: Path, port: int, url: str
) -> tuple[subprocess.Popen, ProcessRecord]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        popen = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()
    create_time = psutil.Process(popen.pid).create_time()
    return popen, ProcessRecord(service, popen.pid, create_time, port, url, str(log_path), command)


def stop(record: ProcessRecord, timeout_s: float = 10.0) -> bool:
    """SIGTERM the service and its descendants, then SIGKILL what is left. True if anything was running."""
    proc = record.process()
    if proc is None:
        return False
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        family = [proc]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(family, timeout=timeout_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    # Reap our own child if we started it in this process (avoids zombies in tests).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(record.pid, os.WNOHANG)
    return True


def tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_gone(record: ProcessRecord, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not record.alive():
            return True
        time.sleep(0.1)
    return not record.alive()
