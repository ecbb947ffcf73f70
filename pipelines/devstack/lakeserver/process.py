"""Start the embedded server as a child process and wait for it (used by the embedded stack).

    proc = start(data_dir, port=8000, log_path=data_dir / "server.log")
    wait_healthy("http://127.0.0.1:8000", timeout_s=30, proc=proc)
    key, secret = read_credentials(data_dir)

The endpoint is given without `/api/v1`: the lakeFS SDK appends it to a host with no path (a host with
the suffix works as well). That is also how a real lakeFS is addressed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipelines.devstack.lakeserver.auth import credentials_path, read_stored
from pipelines.errors import StackError

REPO_ROOT = Path(__file__).resolve().parents[2]


def endpoint_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def server_command(data_dir: Path, host: str, port: int) -> list[str]:
    """The command line that runs the server (this module's start() and the embedded stack both use it)."""
    module = [sys.executable, "-m", "pipelines.devstack.lakeserver"]
    return [*module, "--data-dir", str(data_dir), "--host", host, "--port", str(port)]


def start(
    data_dir: Path,
    port: int,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    env: dict[str, str | None] | None = None,
) -> subprocess.Popen:
    """Launches `python -m pipelines.devstack.lakeserver` in its own session; output goes to log_path (appended).

    `env` adds to this process's environment (None removes a variable), e.g. LAKEFS_ACCESS_KEY_ID and
    LAKEFS_SECRET_ACCESS_KEY to impose credentials instead of generating them.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    merged = {**os.environ, **(env or {})}
    child_env = {k: v for k, v in merged.items() if v is not None}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH")]))
    cmd = server_command(data_dir, host, port)
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env, start_new_session=True
        )
    finally:
        if log_path:
            out.close()


def wait_healthy(
    endpoint: str, timeout_s: float = 30.0, proc: subprocess.Popen | None = None, log_path: Path | None = None
) -> None:
    """Polls GET /api/v1/healthcheck until it answers 204; fails early if proc exits."""
    url = endpoint.rstrip("/")
    url = (url if url.endswith("/api/v1") else url + "/api/v1") + "/healthcheck"
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = _tail(log_path)
            raise StackError(
                f"the embedded lakeFS server exited with code {proc.returncode} before becoming healthy"
                + (f": {tail}" if tail else "")
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 204:
                    return
                last_error = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(getattr(exc, "reason", exc))
        time.sleep(0.05)
    raise StackError(f"lakeFS at {endpoint} did not become healthy within {timeout_s:.0f}s ({last_error})")


def read_credentials(data_dir: Path) -> tuple[str, str]:
    """(access key id, secret) the server in data_dir accepts; written at its first start."""
    path = credentials_path(Path(data_dir))
    if not path.exists():
        raise StackError(f"no lakeFS credentials at {path}: start the server once (flywheel up)")
    return read_stored(path)


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within timeout_s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log_path: Path | None, lines: int = 3) -> str:
    if log_path is None or not Path(log_path).exists():
        return ""
    text = Path(log_path).read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])
