"""The training loop: DistributedDataParallel over tensors held on the device, global-batch semantics.

Global batches: every epoch draws one seeded permutation (identical on every rank); global batch k is
perm[k*B:(k+1)*B] and rank r trains on its rows [r::world]. Each rank's loss is its sum over rows times
world/B, so DDP's gradient average equals the single-process mean over the global batch: results depend
on the seed, not on the number of workers (up to float reduction order and dropout masks).

Every epoch reseeds from (seed, epoch, rank), so a run resumed from a checkpoint replays the same batches
and dropout masks as one that never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipelines.training.checkpoint import CheckpointStore
from pipelines.training.distributed import DistContext
from pipelines.training.metrics import classification_metrics


@dataclass
class Tensors:
    """One split as tensors on the training device."""

    numeric: torch.Tensor
    categorical: torch.Tensor
    labels: torch.Tensor  # float 0/1

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.numeric, self.categorical, self.labels

    @classmethod
    def from_arrays(cls, numeric: np.ndarray, categorical: np.ndarray, labels: np.ndarray, device) -> Tensors:
        pin = device.type == "cuda"
        out = [torch.from_numpy(np.ascontiguousarray(a)) for a in (numeric, categorical, labels)]
        if pin:
            out = [t.pin_memory() for t in out]
        numeric_t, cat_t, labels_t = (t.to(device, non_blocking=pin) for t in out)
        return cls(numeric_t, cat_t, labels_t.float())


@dataclass
class LoopConfig:
    epochs: int
    batch_size: int  # global, over all workers
    learning_rate: float
    weight_decay: float
    patience: int
    seed: int
    monitor: str = "auc"  # "auc" (higher is better) or "loss" (validation log loss, lower is better)
    bf16: bool = True  # autocast to bfloat16 on CUDA; ignored on CPU
    throttle_s: float = 0.0  # sleep after each epoch: slows a run down for fault-injection drills


@dataclass
class LoopResult:
    model: nn.Module  # the unwrapped module holding the best epoch's weights
    history: list[dict[str, float]]
    best_epoch: int
    best_score: float
    stopped_early: bool
    resumed_from: int | None
    train_seconds: float
    samples_seen: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.train_seconds if self.train_seconds > 0 else float("nan")


EpochCallback = Callable[[dict[str, float]], None]


def predict(model: nn.Module, data: Tensors, ctx: DistContext, bf16: bool = True, chunk: int = 65536) -> np.ndarray:
    """Probabilities for every row (in eval mode; every rank computes all rows, so no gather is needed)."""
    model.eval()
    out = []
    with torch.no_grad(), _autocast(ctx, bf16):
        for start in range(0, len(data), chunk):
            x_num = data.numeric[start : start + chunk].to(ctx.device, non_blocking=True)
            x_cat = data.categorical[start : start + chunk].to(ctx.device, non_blocking=True)
            logits = model(x_num, x_cat)
            out.append(torch.sigmoid(logits.float()))
    model.train()
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.float32)


def _autocast(ctx: DistContext, bf16: bool):
    """bfloat16 autocast on CUDA; on CPU a no-op context (entering a disabled autocast still costs time)."""
    if bf16 and ctx.device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _score(metrics: dict[str, float], monitor: str) -> float:
    """Higher is better. AUC falls back to -log loss when the validation split holds a single class."""
    if monitor == "auc" and not math.isnan(metrics["auc"]):
        return metrics["auc"]
    return -metrics["log_loss"]


def _from_main(ctx: DistContext, value: float) -> float:
    """Rank 0's value on every rank (unchanged in a single process)."""
    if not ctx.distributed:
        return value
    box = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    torch.distributed.broadcast(box, src=0)
    return float(box.item())


def train(
    model: nn.Module,
    train_data: Tensors,
    val_data: Tensors,
    cfg: LoopConfig,
    ctx: DistContext,
    checkpoints: CheckpointStore | None = None,
    on_epoch: EpochCallback | None = None,
    checkpoint_extra: dict[str, Any] | None = None,
) -> LoopResult:
    model.to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    history: list[dict[str, float]] = []
    best_state = copy.deepcopy(model.state_dict())
    best_score, best_epoch, bad_epochs, start_epoch, resumed_from = -math.inf, 0, 0, 1, None
    stopped_early = False

    # Rank 0's checkpoint is the one truth: on several nodes the other ranks cannot see its files (a pod's
    # emptyDir), and a rank that started over while rank 0 resumed would run other epochs and hang the group.
    state = checkpoints.load_latest() if checkpoints is not None and ctx.is_main else None
    if ctx.distributed and checkpoints is not None:
        box = [state]
        torch.distributed.broadcast_object_list(box, src=0)
        state = box[0]
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        best_state = state["best_state"]
        best_score, best_epoch, bad_epochs = state["best_score"], state["best_epoch"], state["bad_epochs"]
        history = list(state["history"])
        stopped_early = bool(state["stopped_early"])
        resumed_from = int(state["epoch"])
        start_epoch = resumed_from + 1

    # DDP broadcasts rank 0's weights at construction, so every rank starts from the same state.
    net = (
        DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
        if ctx.distributed
        else model
    )
    n = len(train_data)
    steps = math.ceil(n / cfg.batch_size)
    samples_seen, train_seconds = 0, 0.0
    model.train()

    for epoch in range(start_epoch, cfg.epochs + 1):
        if stopped_early:
            break
        t0 = time.perf_counter()
        order = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=order).to(train_data.labels.device)
        torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + ctx.rank)  # dropout masks
        loss_sum = torch.zeros((), device=ctx.device)
        # Hot loop: no per-step host sync (.item()), no copies when the data already lives on the device.
        stream = train_data.labels.device != ctx.device
        autocast = _autocast(ctx, cfg.bf16)
        for step in range(steps):
            batch = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            mine = batch[ctx.rank :: ctx.world_size] if ctx.world_size > 1 else batch
            x_num, x_cat, y = train_data.numeric[mine], train_data.categorical[mine], train_data.labels[mine]
            if stream:
                x_num, x_cat, y = (t.to(ctx.device, non_blocking=True) for t in (x_num, x_cat, y))
            with autocast:
                logits = net(x_num, x_cat)
            summed = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="sum")
            loss = summed * (ctx.world_size / batch.numel())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += summed.detach()
        if ctx.distributed:
            torch.distributed.all_reduce(loss_sum)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds
        samples_seen += n

        val_metrics = classification_metrics(val_data.labels.cpu().numpy(), predict(model, val_data, ctx, cfg.bf16))
        # Rank 0 decides: early stopping must stop every rank at the same epoch even if float noise
        # (another GPU, another reduction order) makes a rank's validation score differ in the last bit.
        score = _from_main(ctx, _score(val_metrics, cfg.monitor))
        if score > best_score:
            best_score, best_epoch, bad_epochs = score, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            bad_epochs += 1
        stopped_early = bad_epochs >= cfg.patience and epoch < cfg.epochs
        row = {
            "epoch": float(epoch),
            "train_loss": float(loss_sum.item()) / n,
            **{f"val_{k}": v for k, v in val_metrics.items()},
            "epoch_seconds": epoch_seconds,
            "samples_per_second": n / epoch_seconds,
        }
        history.append(row)

        if checkpoints is not None and ctx.is_main:
            checkpoints.save(
                epoch,
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "best_state": best_state,
                    "best_score": best_score,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "history": history,
                    "stopped_early": stopped_early,
                    **(checkpoint_extra or {}),
                },
            )
        ctx.barrier()  # no rank runs ahead of the checkpoint it might have to resume from
        if on_epoch is not None:
            on_epoch(row)
        if cfg.throttle_s:
            time.sleep(cfg.throttle_s)

    model.load_state_dict(best_state)
    return LoopResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        best_score=best_score,
        stopped_early=stopped_early,
        resumed_from=resumed_from,
        train_seconds=train_seconds,
        samples_seen=samples_seen,
    )
