"""Multi-label classifier baseline: one independent sigmoid per hashtag on the mean image feature
(the original's "multi-label CNN"), trained with binary cross-entropy."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from hashtale.models.vocab import SPECIALS


@dataclass
class MultiLabelConfig:
    vocab_size: int
    feature_dim: int = 1280  # D
    num_locations: int = 49  # L (only averaged over)
    hidden_dim: int = 512
    dropout: float = 0.5


class MultiLabelClassifier(nn.Module):
    def __init__(self, config: MultiLabelConfig):
        super().__init__()
        self.config = config
        self.mlp = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(config.feature_dim, config.hidden_dim),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_dim, config.vocab_size),
        )

    def forward(self, feats: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """feats (B, L, D); targets (B, V) multi-hot. Returns logits (B, V) and the BCE loss over real tags."""
        logits = self.mlp(feats.mean(dim=1))  # (B, V)
        logits[:, : len(SPECIALS)] = float("-inf")  # special tokens are never tags
        if targets is None:
            return logits, None
        real = slice(len(SPECIALS), None)
        loss = F.binary_cross_entropy_with_logits(logits[:, real], targets[:, real].float())
        return logits, loss
