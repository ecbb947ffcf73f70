"""Knowledge distillation: a narrower TabularNet trained on the train split against the teacher's soft targets.

Loss per row: alpha * T^2 * BCE(student_logit / T, sigmoid(teacher_logit / T)) + (1 - alpha) * BCE(student_logit,
label). The temperature T softens both sides so the student learns the teacher's ranking between confident
rows too; T^2 keeps that term's gradient on the scale of the label term. The best validation-AUC epoch is kept.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.optimize.data import cpu_context
from pipelines.spec.model import ModelSpec
from pipelines.training.loop import Tensors, predict
from pipelines.training.metrics import classification_metrics
from pipelines.training.model import TabularNet

TEMPERATURE = 2.0
ALPHA = 0.7  # weight of the teacher's soft targets against the labels


def student_architecture(teacher_architecture: dict, width: float) -> dict:
    """The teacher's architecture with every hidden width scaled by `width` (at least 1 unit per layer)."""
    student = dict(teacher_architecture)
    student["hidden_dims"] = [max(1, round(h * width)) for h in teacher_architecture["hidden_dims"]]
    return student


@torch.no_grad()
def teacher_logits(teacher: nn.Module, data: Tensors, chunk: int = 8192) -> torch.Tensor:
    teacher.eval()
    parts = [
        teacher(data.numeric[i : i + chunk], data.categorical[i : i + chunk]).float()
        for i in range(0, len(data), chunk)
    ]
    return torch.cat(parts) if parts else torch.zeros(0)


def distill(
    teacher: nn.Module,
    architecture: dict,
    train_data: Tensors,
    val_data: Tensors,
    settings: ModelSpec,
    epochs: int,
    seed: int,
) -> TabularNet:
    """Train a TabularNet(**architecture) from scratch on the teacher's soft targets and the labels."""
    torch.manual_seed(seed)  # the student's initial weights
    student = TabularNet(**architecture)
    soft = torch.sigmoid(teacher_logits(teacher, train_data) / TEMPERATURE)
    optimizer = torch.optim.AdamW(student.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    n, batch = len(train_data), settings.batch_size
    ctx = cpu_context()
    best_state, best_score = copy.deepcopy(student.state_dict()), -math.inf
    for epoch in range(1, epochs + 1):
        student.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        torch.manual_seed(seed * 1_000_003 + epoch)  # dropout masks
        for step in range(math.ceil(n / batch)):
            idx = order[step * batch : (step + 1) * batch]
            logits = student(train_data.numeric[idx], train_data.categorical[idx])
            distilled = F.binary_cross_entropy_with_logits(logits / TEMPERATURE, soft[idx]) * TEMPERATURE**2
            supervised = F.binary_cross_entropy_with_logits(logits, train_data.labels[idx])
            loss = ALPHA * distilled + (1 - ALPHA) * supervised
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        probs = predict(student, val_data, ctx, bf16=False)
        metrics = classification_metrics(val_data.labels.numpy(), probs)
        score = metrics["auc"] if np.isfinite(metrics["auc"]) else -metrics["log_loss"]
        if score > best_score:
            best_score, best_state = score, copy.deepcopy(student.state_dict())
    student.load_state_dict(best_state)
    return student.eval()
