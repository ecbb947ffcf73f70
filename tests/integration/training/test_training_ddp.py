"""torchrun on CPU (gloo): one vs two workers, reproducibility, and surviving a killed worker."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.training.conftest import FAST, ROOT, torchrun, training_workers

pytestmark = pytest.mark.slow

# Global-batch semantics make 1 and 2 workers compute the same gradient; what differs is the dropout
# masks (drawn per rank) and float reduction order. Measured gap on this data: ~1e-3 AUC.
AUC_TOLERANCE = 0.01
LOSS_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def one_process(dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    run = torchrun(dataset_dir, tmp_path_factory.mktemp("one"), nproc=1)
    assert run.returncode == 0, run.output[-3000:]
    return run.result


def test_two_processes_match_one_process(one_process, dataset_dir: Path, tmp_path: Path) -> None:
    two = torchrun(dataset_dir, tmp_path / "two", nproc=2)
    assert two.returncode == 0, two.output[-3000:]
    assert two.result["world_size"] == 2 and "gloo" in two.result["hardware"]
    assert not (tmp_path / "two" / "ckpt").exists()  # nothing to resume after success: checkpoints removed
    assert one_process["world_size"] == 1
    a, b = one_process["metrics"], two.result["metrics"]
    assert a["test_auc"] > 0.75  # it learns
    assert abs(a["test_auc"] - b["test_auc"]) < AUC_TOLERANCE
    assert abs(a["test_log_loss"] - b["test_log_loss"]) < LOSS_TOLERANCE
    for h1, h2 in zip(one_process["history"], two.result["history"], strict=True):
        assert abs(h1["train_loss"] - h2["train_loss"]) < LOSS_TOLERANCE


def test_same_data_and_seed_give_the_same_metrics(one_process, dataset_dir: Path, tmp_path: Path) -> None:
    again = torchrun(dataset_dir, tmp_path / "again", nproc=1)
    assert again.returncode == 0, again.output[-3000:]
    assert again.result["metrics"]["test_auc"] == one_process["metrics"]["test_auc"]
    assert [h["train_loss"] for h in again.result["history"]] == [h["train_loss"] for h in one_process["history"]]
    other = torchrun(dataset_dir, tmp_path / "other-seed", nproc=1, args=[*FAST, "--no-mlflow", "--seed", "99"])
    assert other.result["metrics"]["test_auc"] != one_process["metrics"]["test_auc"]


def _workers(torchrun_pid: int) -> list[psutil.Process]:
    try:
        return training_workers(psutil.Process(torchrun_pid))
    except psutil.NoSuchProcess:
        return []


def test_a_killed_worker_is_restarted_and_resumes_from_its_checkpoint(dataset_dir: Path, tmp_path: Path) -> None:
    epochs = 5
    ckpt = tmp_path / "ckpt"
    result_file = tmp_path / "result.json"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "--max-restarts", "1", "-m", "pipelines.training.entry", "--data", str(dataset_dir),
        "--epochs", str(epochs), "--batch-size", "256", "--early-stopping-metric", "loss", "--no-mlflow",
        "--checkpoint-dir", str(ckpt), "--result-json", str(result_file), "--throttle-s", "1.0",
    ]  # fmt: skip
    # Own session: cleanup can kill torchrun and its workers together (killing torchrun alone orphans them).
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (ckpt / "epoch-00002.pt").exists():
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint of epoch 2 in time"
            time.sleep(0.1)
        victims = _workers(proc.pid)
        assert len(victims) == 2
        os.kill(victims[-1].pid, signal.SIGKILL)  # a worker dies mid-training, without any cleanup
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-3000:]
    import json

    result = json.loads(result_file.read_text())
    assert result["resumed_from"] is not None and result["resumed_from"] >= 2
    assert [int(h["epoch"]) for h in result["history"]] == list(range(1, epochs + 1))
    assert "resuming from the checkpoint of epoch" in output
    assert math.isfinite(result["metrics"]["test_auc"]) and result["metrics"]["test_auc"] > 0.7
    # Each epoch reseeds its batch order and dropout masks, so the resumed run is the uninterrupted run.
    args = ["--epochs", str(epochs), "--batch-size", "256", "--early-stopping-metric", "loss", "--no-mlflow"]
    uninterrupted = torchrun(dataset_dir, tmp_path / "uninterrupted", nproc=2, args=args)
    assert uninterrupted.result["metrics"]["test_auc"] == result["metrics"]["test_auc"]
