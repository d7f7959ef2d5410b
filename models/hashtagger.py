"""Show, Attend and Tell (Xu et al. 2015), soft attention, applied to hashtags: an LSTM decoder that
looks at the 49 annotation vectors of the encoder and emits one hashtag per step."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.vocab import PAD_ID


@dataclass
class SATConfig:
    vocab_size: int
    feature_dim: int = 1280  # D, channels of an annotation vector
    num_locations: int = 49  # L, 7 x 7 grid
    embed_dim: int = 256  # as in the original
    hidden_dim: int = 512  # as in the original
    attention_dim: int = 128  # small: the float16 checkpoint stays under its 12 MB budget
    dropout: float = 0.5
    alpha_c: float = 1.0  # lambda of the doubly stochastic regulariser


class SoftAttention(nn.Module):
    """f_att: e_ti = w . tanh(W_a a_i + W_h h_{t-1}); alpha_t = softmax_i(e_t); z_t = sum_i alpha_ti a_i."""

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int):
        super().__init__()
        self.feature_proj = nn.Linear(feature_dim, attention_dim)
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def forward(self, feats: torch.Tensor, projected: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # feats (B, L, D), projected = feature_proj(feats) (B, L, A) computed once per image, h (B, H)
        e = self.score(torch.tanh(projected + self.hidden_proj(h).unsqueeze(1))).squeeze(2)  # (B, L)
        alpha = F.softmax(e, dim=1)  # (B, L)
        z = torch.bmm(alpha.unsqueeze(1), feats).squeeze(1)  # (B, D)
        return z, alpha


class SATHashtagger(nn.Module):
    def __init__(self, config: SATConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.attention = SoftAttention(config.feature_dim, config.hidden_dim, config.attention_dim)
        self.init_h = nn.Linear(config.feature_dim, config.hidden_dim)
        self.init_c = nn.Linear(config.feature_dim, config.hidden_dim)
        self.gate = nn.Linear(config.hidden_dim, 1)  # beta_t = sigmoid(f_beta(h_{t-1})), a scalar per step
        self.lstm = nn.LSTMCell(config.embed_dim + config.feature_dim, config.hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_dim, config.vocab_size)

    def init_state(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Decoder state before the first tag: h_0, c_0 from the mean annotation, plus the attention's
        per-image projection (kept in the state so beam search reorders it along with h and c)."""
        mean = feats.mean(dim=1)  # (B, D)
        h = torch.tanh(self.init_h(mean))  # (B, H)
        c = torch.tanh(self.init_c(mean))  # (B, H)
        return h, c, self.attention.feature_proj(feats)  # (B, H), (B, H), (B, L, A)

    def step(self, feats: torch.Tensor, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]
             ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """One decoder step: previous tokens (B,) -> logits (B, V), attention (B, L), new state."""
        h, c, projected = state
        z, alpha = self.attention(feats, projected, h)  # (B, D), (B, L)
        z = torch.sigmoid(self.gate(h)) * z  # (B, D), the gating scalar beta_t
        h, c = self.lstm(torch.cat([self.embed(tokens), z], dim=1), (h, c))  # (B, H) each
        logits = self.head(self.dropout(h))  # (B, V)
        return logits, alpha, (h, c, projected)

    def forward(self, feats: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """feats (B, L, D); targets (B, T) = <start> tags... <end> <pad>... (teacher forcing).
        Returns logits (B, T-1, V) predicting targets[:, 1:], and the loss
        -log P(y|x) + lambda * sum_i (1 - sum_t alpha_ti)^2 (both averaged over the batch)."""
        assert targets is not None, "the decoder trains with teacher forcing; use beam search to decode"
        inputs, labels = targets[:, :-1], targets[:, 1:]  # (B, T-1) each
        state = self.init_state(feats)
        logits, alphas = [], []
        for t in range(inputs.size(1)):
            step_logits, alpha, state = self.step(feats, inputs[:, t], state)
            logits.append(step_logits)
            alphas.append(alpha)
        logits = torch.stack(logits, dim=1)  # (B, T-1, V)
        alphas = torch.stack(alphas, dim=1)  # (B, T-1, L)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=PAD_ID)
        loss = nll + self.config.alpha_c * doubly_stochastic(alphas, labels != PAD_ID)
        return logits, loss


def doubly_stochastic(alphas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """lambda-free regulariser sum_i (1 - sum_t alpha_ti)^2, averaged over the batch; only real
    (non-pad) steps attend. alphas (B, T, L), mask (B, T) bool."""
    attended = (alphas * mask.unsqueeze(2)).sum(dim=1)  # (B, L)
    return ((1.0 - attended) ** 2).sum(dim=1).mean()
