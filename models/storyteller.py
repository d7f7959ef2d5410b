"""The storyteller: a character-level LSTM language model (embedding -> 2-layer LSTM -> softmax over characters).

Trained with truncated backpropagation through time: `forward` takes and returns the recurrent state, so the
trainer carries it across consecutive chunks (detached) and the sampler carries it one character at a time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -1  # target id of positions that carry no loss (the priming line)

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (n_layer, B, n_hidden)


@dataclass
class StorytellerConfig:
    vocab_size: int = 100
    n_embd: int = 1024  # as the original storyteller
    n_hidden: int = 256
    n_layer: int = 2
    dropout: float = 0.25


class Storyteller(nn.Module):
    def __init__(self, config: StorytellerConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.lstm = nn.LSTM(config.n_embd, config.n_hidden, config.n_layer, batch_first=True,
                            dropout=config.dropout if config.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.n_hidden, config.vocab_size)

    @property
    def model_args(self) -> dict:
        return asdict(self.config)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: State | None = None):
        """idx (B, T) character ids -> (logits (B, T, V), mean loss in nats/char or None, state)."""
        x = self.drop(self.wte(idx))  # (B, T, n_embd)
        h, state = self.lstm(x, state)  # (B, T, n_hidden), state: 2 x (n_layer, B, n_hidden)
        logits = self.lm_head(self.drop(h))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss, state


class StepCell:
    """The trained Storyteller, one character per call, for sampling: the same maths as `forward` in eval mode,
    with the embedding folded into the first layer's input weights (a (V, 4H) lookup table) and each upper
    layer's two matrix products fused into one, so a step reads about half the weights `forward` would."""

    def __init__(self, model: Storyteller):
        lstm, n_layer = model.lstm, model.config.n_layer
        w = {name: p.detach() for name, p in lstm.named_parameters()}
        self.table = torch.addmm(w["bias_ih_l0"] + w["bias_hh_l0"], model.wte.weight.detach(),
                                 w["weight_ih_l0"].t())  # (V, 4H)
        self.w_hh0 = w["weight_hh_l0"].t().contiguous()  # (H, 4H)
        self.upper = [(torch.cat([w[f"weight_ih_l{k}"], w[f"weight_hh_l{k}"]], dim=1).t().contiguous(),  # (2H, 4H)
                       w[f"bias_ih_l{k}"] + w[f"bias_hh_l{k}"])  # (4H,)
                      for k in range(1, n_layer)]
        self.head_w = model.lm_head.weight.detach().t().contiguous()  # (H, V)
        self.head_b = model.lm_head.bias.detach()  # (V,)
        self.n_layer, self.n_hidden = n_layer, model.config.n_hidden

    def zero_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        """(h_0, c_0, h_1, c_1, ...), each (B, H): flat, so a sampler can mask or select rows of every tensor alike."""
        return tuple(self.head_b.new_zeros(batch, self.n_hidden) for _ in range(2 * self.n_layer))

    @staticmethod
    def _cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = gates.chunk(4, dim=-1)  # each (B, H); PyTorch's gate order
        c = torch.addcmul(torch.sigmoid(f) * c, torch.sigmoid(i), torch.tanh(g))  # (B, H)
        return torch.sigmoid(o) * torch.tanh(c), c

    def __call__(self, idx: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple]:
        """idx (B,) character ids, state (h_0, c_0, ...) each (B, H) -> (logits (B, V), new state)."""
        x, c = self._cell(torch.addmm(self.table[idx], state[0], self.w_hh0), state[1])  # (B, H)
        new_state = [x, c]
        for k, (w, b) in enumerate(self.upper, start=1):
            x, c = self._cell(torch.addmm(b, torch.cat([x, state[2 * k]], dim=-1), w), state[2 * k + 1])  # (B, H)
            new_state += [x, c]
        logits = torch.addmm(self.head_b, x, self.head_w)  # (B, V)
        return logits, tuple(new_state)
