"""GPU path: NCCL, bf16 autocast, data held on the device. Skipped where no CUDA device is visible."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.integration.training.conftest import FAST, torchrun

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none visible)"),
]


def test_single_gpu_bf16_training(dataset_dir: Path, tmp_path: Path) -> None:
    run = torchrun(dataset_dir, tmp_path, nproc=1, args=[*FAST, "--no-mlflow", "--device", "cuda"])
    assert run.returncode == 0, run.output[-3000:]
    assert "nccl" not in run.result["hardware"]  # one process: no process group
    assert torch.cuda.get_device_name(0) in run.result["hardware"]
    assert run.result["metrics"]["test_auc"] > 0.75


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpus_with_nccl(dataset_dir: Path, tmp_path: Path) -> None:
    run = torchrun(dataset_dir, tmp_path, nproc=2, args=[*FAST, "--no-mlflow", "--device", "cuda"])
    assert run.returncode == 0, run.output[-3000:]
    assert "(nccl)" in run.result["hardware"] and run.result["world_size"] == 2
