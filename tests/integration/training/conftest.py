"""Fixtures for training tests: a small synthetic, learnable model table (local directory and a lakeFS
commit in its own repository on the shared embedded stack) and a torchrun helper."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
import pytest

from pipelines.lake import Lake, LakeFSSettings
from pipelines.spec import load_spec
from pipelines.training.synthetic import write_dataset

ROOT = Path(__file__).resolve().parents[3]
ROWS = 4000
# Small and fast on a shared 2-core machine; 3 epochs are enough to see learning and compare runs.
FAST = ["--epochs", "3", "--batch-size", "256"]


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("training-data"), load_spec("transactions"), ROWS, seed=3, vocab=True)


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


@pytest.fixture(scope="session")
def lake_commit(stack_env: dict[str, str], dataset_dir: Path) -> tuple[Lake, str]:
    """The synthetic table committed to `main` of a fresh lakeFS repository; returns (lake, commit id)."""
    settings = replace(LakeFSSettings.from_env(), repository=f"training-{uuid.uuid4().hex[:8]}")
    lake = Lake(settings)
    lake.ensure_repository()
    for path in sorted(dataset_dir.rglob("*")):
        if path.is_file():
            lake.write_bytes("main", path.relative_to(dataset_dir).as_posix(), path.read_bytes())
    commit = lake.commit("main", "synthetic training table")
    return lake, commit


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
