"""Show and Tell (Vinyals et al. 2015) baseline: the mean image feature is fed once as the LSTM's first
input, then the decoder runs on hashtags alone, without attention."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from hashtale.models.hashtagger import order_tags
from hashtale.models.vocab import END_ID, PAD_ID, START_ID


@dataclass
class ShowTellConfig:
    vocab_size: int
    feature_dim: int = 1280  # D
    num_locations: int = 49  # L (only averaged over)
    embed_dim: int = 256
    hidden_dim: int = 512
    dropout: float = 0.5
    tag_order: str = "frequent"  # "frequent" or "rare" (see hashtale.models.hashtagger)


class ShowAndTell(nn.Module):
    def __init__(self, config: ShowTellConfig):
        super().__init__()
        self.config = config
        self.image_proj = nn.Linear(config.feature_dim, config.embed_dim)
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTMCell(config.embed_dim, config.hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_dim, config.vocab_size)

    def init_state(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the image through the LSTM as step -1 (x_{-1} = CNN(I)); its output is not scored."""
        x = self.dropout(self.image_proj(feats.mean(dim=1)))  # (B, E)
        h, c = self.lstm(x)  # (B, H) each, from a zero state
        return h, c

    def step(self, feats: torch.Tensor, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]
             ) -> tuple[torch.Tensor, None, tuple[torch.Tensor, ...]]:
        h, c = self.lstm(self.embed(tokens), state)  # (B, H) each
        return self.head(self.dropout(h)), None, (h, c)  # logits (B, V)

    def forward(self, feats: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """feats (B, L, D), targets (B, T) = <start> tags... <end> <pad>... in any order -> logits (B, T-1, V)
        of the steps and the loss -log P(y|x), the tags taught in `tag_order`."""
        assert targets is not None, "the decoder trains with teacher forcing; use beam search to decode"
        order = order_tags(targets, self.config.tag_order)  # (B, T) tags, then <pad>
        n_tags = (order != PAD_ID).sum(dim=1)  # (B,)
        labels = order.clone()
        labels[torch.arange(len(order)), n_tags] = END_ID  # a row holds at most T-2 tags
        labels = labels[:, :-1]  # (B, T-1)
        inputs = torch.cat([torch.full_like(order[:, :1], START_ID), order[:, :-2]], dim=1)  # (B, T-1)
        state = self.init_state(feats)
        logits = []
        for t in range(inputs.size(1)):
            step_logits, _, state = self.step(feats, inputs[:, t], state)
            logits.append(step_logits)
        logits = torch.stack(logits, dim=1)  # (B, T-1, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=PAD_ID)
        return logits, loss
