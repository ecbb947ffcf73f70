"""Process-group setup for torchrun (or a single plain process): gloo on CPU, NCCL on GPU."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from pipelines.config import int_setting, setting


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str  # "gloo" | "nccl" | "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend != "none"

    def barrier(self) -> None:
        if self.distributed:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.local_rank])
            else:
                dist.barrier()

    def hardware(self) -> str:
        """A short description recorded on the MLflow run, e.g. "2 x NVIDIA H100 (nccl)"."""
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
        else:
            name = f"CPU {platform.machine()} ({torch.get_num_threads()} threads/worker)"
        return f"{self.world_size} x {name}" + (f" ({self.backend})" if self.distributed else "")


def setup(device: str = "auto", timeout_s: float = 600.0) -> DistContext:
    """Join the torchrun process group when launched by torchrun; a single process otherwise.

    device: auto (CUDA when available), cpu or cuda.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA device is visible")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        # Workers share the machine's cores: one intra-op thread each avoids oversubscription.
        if world > 1 or setting("FLYWHEEL_TORCH_THREADS"):
            torch.set_num_threads(int_setting("FLYWHEEL_TORCH_THREADS", default=1, minimum=1))
        dev = torch.device("cpu")
    if world == 1:  # one process (by hand, or torchrun --nproc-per-node 1): no process group, no DDP
        return DistContext(rank=0, world_size=1, local_rank=0, device=dev, backend="none")
    backend = "nccl" if use_cuda else "gloo"
    kwargs = {"device_id": dev} if use_cuda else {}
    timeout = timedelta(seconds=timeout_s)
    dist.init_process_group(
        backend=backend,
        store=_attempt_store(rank, world, timeout),
        rank=rank,
        world_size=world,
        timeout=timeout,
        **kwargs,
    )
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev, backend=backend)


def _attempt_store(rank: int, world: int, timeout: timedelta) -> dist.Store:
    """The rendezvous store, with keys scoped to this torchrun attempt.

    torchrun keeps one store for the whole launch; after a restart (--max-restarts) the new workers would
    otherwise read the dead workers' addresses (same keys) and fail with "Connection refused".
    """
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    agent_hosts_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = dist.TCPStore(
        host_name=os.environ["MASTER_ADDR"],
        port=int(os.environ["MASTER_PORT"]),
        world_size=world,
        is_master=rank == 0 and not agent_hosts_store,
        timeout=timeout,
        wait_for_workers=False,
    )
    return dist.PrefixStore(f"flywheel/attempt-{attempt}", store)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
