"""The tabular network: one embedding per categorical input, concatenated with the dense inputs, then an MLP.

Width and depth come from the spec (`model.hidden_dims`, `embedding_dim`, `dropout`). The defaults are
small (a few thousand parameters); `hidden_dims: [4096, 4096, 2048]` gives ~30M parameters for GPU users.
The module returns logits; `predict_proba` applies the sigmoid. Training uses BCE-with-logits for stability.
"""

from __future__ import annotations

import torch
from torch import nn

from pipelines.spec.model import ModelSpec


class TabularNet(nn.Module):
    def __init__(
        self,
        numeric_width: int,
        cardinalities: list[int],
        hidden_dims: list[int],
        embedding_dim: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.numeric_width = numeric_width
        self.cardinalities = list(cardinalities)
        # Index 0 of every table is "unknown or null" (see preprocess.UNKNOWN_INDEX).
        self.embeddings = nn.ModuleList(nn.Embedding(n, embedding_dim) for n in cardinalities)
        layers: list[nn.Module] = []
        width = numeric_width + embedding_dim * len(cardinalities)
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    @classmethod
    def from_spec(cls, settings: ModelSpec, numeric_width: int, cardinalities: list[int]) -> TabularNet:
        return cls(
            numeric_width=numeric_width,
            cardinalities=cardinalities,
            hidden_dims=list(settings.hidden_dims),
            embedding_dim=settings.embedding_dim,
            dropout=settings.dropout,
        )

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric]
        parts += [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.head(self.mlp(torch.cat(parts, dim=1))).squeeze(1)

    @torch.no_grad()
    def predict_proba(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(numeric, categorical).float())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
