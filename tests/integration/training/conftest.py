"""Fixtures for training tests: a small synthetic, learnable model table (local directory and a lakeFS
commit in its own repository on the shared embedded stack) and a torchrun helper."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[3]
# Small and fast on a shared 2-core machine; 3 epochs are enough to see learning and compare runs.
FAST = ["--epochs", "3", "--batch-size", "256"]


@dataclass
class TorchrunResult:
    returncode: int
    output: str
    result: dict | None


def torchrun(
    data: str | Path,
    out_dir: Path,
    nproc: int = 1,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    max_restarts: int = 0,
    timeout: float = 240,
) -> TorchrunResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    result_file = out_dir / "result.json"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
        "--max-restarts", str(max_restarts), "-m", "pipelines.training.entry",
        "--data", str(data), "--checkpoint-dir", str(out_dir / "ckpt"), "--result-json", str(result_file),
        *(args if args is not None else [*FAST, "--no-mlflow"]),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a timeout kills torchrun and its workers together
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    return TorchrunResult(proc.returncode, output, result)


def training_workers(parent: psutil.Process) -> list[psutil.Process]:
    """The torchrun workers below `parent`; processes that exit or are zombies meanwhile are skipped."""
    workers = []
    try:
        children = parent.children(recursive=True)
    except psutil.Error:
        return []
    for proc in children:
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:  # gone, or a zombie left by an earlier test
            continue
        if "pipelines.training.entry" in cmdline and "torch.distributed.run" not in cmdline:
            workers.append(proc)
    return workers
