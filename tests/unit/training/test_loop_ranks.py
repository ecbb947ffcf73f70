"""Two gloo ranks in this machine's processes: they resume from rank 0's checkpoint and stop at the same epoch,
even when the other rank cannot see the checkpoint files (another node) or scores validation differently."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pipelines.training.checkpoint import CheckpointStore
from pipelines.training.distributed import DistContext
from pipelines.training.loop import LoopConfig, Tensors, train

pytestmark = pytest.mark.slow  # seconds each: `make test-unit` leaves it to `make test`

CFG = LoopConfig(epochs=5, batch_size=64, learning_rate=0.05, weight_decay=0.0, patience=1, seed=1, monitor="loss")


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.linear(x_num).squeeze(-1)


def _data(seed: int, n: int = 256) -> Tensors:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    return Tensors.from_arrays(x, np.zeros((n, 0), dtype=np.int64), y, torch.device("cpu"))


def _worker(rank: int, port: int, dirs: list[str], out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2, timeout=timedelta(seconds=30)
    )
    try:
        ctx = DistContext(rank=rank, world_size=2, local_rank=rank, device=torch.device("cpu"), backend="gloo")
        torch.manual_seed(0)
        # Rank 1 scores validation on other rows: its own early-stopping verdict would differ from rank 0's.
        result = train(Tiny(), _data(1), _data(2 + rank), CFG, ctx, CheckpointStore(dirs[rank]))
        record = {"epochs": [int(h["epoch"]) for h in result.history], "resumed_from": result.resumed_from}
        record["best_epoch"], record["stopped_early"] = result.best_epoch, result.stopped_early
        Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    finally:
        dist.destroy_process_group()


def test_ranks_resume_from_rank_zero_and_stop_together(tmp_path: Path) -> None:
    single = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), backend="none")
    torch.manual_seed(0)
    ckpt0, ckpt1 = tmp_path / "node0", tmp_path / "node1"  # rank 1's node does not see rank 0's files
    first = LoopConfig(**{**CFG.__dict__, "epochs": 2, "patience": 99})
    train(Tiny(), _data(1), _data(2), first, single, CheckpointStore(ckpt0))
    assert CheckpointStore(ckpt0).epochs() == [1, 2] and CheckpointStore(ckpt1).epochs() == []

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, [str(ckpt0), str(ckpt1)], str(tmp_path)), nprocs=2, join=True)

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    assert ranks[0]["resumed_from"] == 2 and ranks[0]["epochs"][:3] == [1, 2, 3]
