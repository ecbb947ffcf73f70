"""Global magnitude pruning of the Linear weights, a short fine-tune with the mask held, then made permanent.

Unstructured: the pruned weights become exact zeros in dense tensors, so the saved file and dense CPU kernels
are not smaller or faster by themselves; the candidate shows what the accuracy costs at that sparsity.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils import prune

from pipelines.optimize.data import cpu_context
from pipelines.spec.model import ModelSpec
from pipelines.training.loop import LoopConfig, Tensors, train

# Fine-tuning starts from trained weights: a smaller step than training's keeps what the teacher learnt.
FINETUNE_LR_SCALE = 0.3


def prunable(module: nn.Module) -> list[tuple[nn.Module, str]]:
    """The (layer, "weight") pairs pruning works on: every Linear layer (embeddings are lookups, kept whole)."""
    return [(m, "weight") for m in module.modules() if isinstance(m, nn.Linear)]


def zero_fraction(module: nn.Module) -> float:
    """Share of exactly-zero weights over all Linear layers."""
    weights = [getattr(m, name).detach() for m, name in prunable(module)]
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / total) if total else 0.0


def prune_and_finetune(
    teacher: nn.Module,
    amount: float,
    epochs: int,
    train_data: Tensors,
    val_data: Tensors,
    settings: ModelSpec,
    seed: int,
) -> nn.Module:
    """A copy of the teacher with the `amount` smallest-magnitude Linear weights (globally) set to zero,
    fine-tuned for `epochs` on train (best validation epoch kept; pruned weights stay zero), mask removed."""
    model = copy.deepcopy(teacher).cpu()
    targets = prunable(model)
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    if epochs > 0:
        cfg = LoopConfig(
            epochs=epochs,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate * FINETUNE_LR_SCALE,
            weight_decay=settings.weight_decay,
            patience=epochs + 1,  # a fine-tune this short runs every epoch; the best one is kept
            seed=seed,
            bf16=False,
        )
        # The mask is a forward pre-hook (weight = weight_orig * mask), so the pruned weights stay zero.
        train(model, train_data, val_data, cfg, cpu_context())
    for layer, name in targets:
        prune.remove(layer, name)  # weight becomes a plain Parameter holding the zeros; no hook at serving time
    return model.eval()
