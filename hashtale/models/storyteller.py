"""The storyteller: a character-level LSTM language model (embedding -> 2-layer LSTM -> softmax over characters),
conditioned on the post's hashtag set.

The tag set is a learned embedding per hashtag, averaged over the set (an empty set, or only unknown tags, gives a
zero vector). `condition` says where the model sees it:
- "prime": nowhere; only the priming line `#tag #tag\n` names the tags (the original design);
- "init": it sets the LSTM's initial hidden state (h_0 = tanh(W z) per layer);
- "input": it is concatenated to every character's embedding, so every step sees it;
- "input+init": both.
Trained with truncated backpropagation through time: `forward` takes and returns the recurrent state, so the
trainer carries it across consecutive chunks (detached) and the sampler carries it one character at a time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -1  # target id of positions that carry no loss (the priming line)
NO_TAG = 0  # tag id of padding and of hashtags the model does not know
CONDITIONS = ("prime", "init", "input", "input+init")

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (n_layer, B, n_hidden)


@dataclass
class StorytellerConfig:
    vocab_size: int = 100
    n_embd: int = 1024  # as the original storyteller
    n_hidden: int = 256
    n_layer: int = 2
    dropout: float = 0.25
    n_tags: int = 0  # hashtag vocabulary, NO_TAG included; 0: not conditioned
    n_tag_embd: int = 64
    condition: str = "prime"  # one of CONDITIONS


def tag_set_vector(embedding: nn.Embedding, tags: torch.Tensor) -> torch.Tensor:
    """tags (B, K) ids, NO_TAG-padded -> (B, n_tag_embd): the mean embedding of each row's known tags (0 if none)."""
    known = (tags != NO_TAG).unsqueeze(-1).float()  # (B, K, 1)
    return (embedding(tags) * known).sum(1) / known.sum(1).clamp(min=1.0)


class Storyteller(nn.Module):
    def __init__(self, config: StorytellerConfig):
        super().__init__()
        self.config = config
        if config.condition not in CONDITIONS:
            raise ValueError(f"condition {config.condition!r}: expected one of {CONDITIONS}")
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.uses_input = config.condition in ("input", "input+init")
        self.uses_init = config.condition in ("init", "input+init")
        if self.uses_input or self.uses_init:
            self.wtag = nn.Embedding(config.n_tags, config.n_tag_embd, padding_idx=NO_TAG)
        if self.uses_init:
            self.tag_to_state = nn.Linear(config.n_tag_embd, config.n_layer * config.n_hidden)
        n_in = config.n_embd + (config.n_tag_embd if self.uses_input else 0)
        self.lstm = nn.LSTM(n_in, config.n_hidden, config.n_layer, batch_first=True,
                            dropout=config.dropout if config.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.n_hidden, config.vocab_size)

    @property
    def model_args(self) -> dict:
        return asdict(self.config)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def tag_vector(self, tags: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """tags (B, K) or None -> (B, n_tag_embd), or None for a model that is not conditioned."""
        if not (self.uses_input or self.uses_init):
            return None
        if tags is None:
            tags = torch.full((batch, 1), NO_TAG, dtype=torch.long, device=self.wte.weight.device)
        return tag_set_vector(self.wtag, tags)

    def initial_state(self, z: torch.Tensor | None, batch: int) -> State | None:
        """The state a story starts from: from the tag-set vector z (B, n_tag_embd) when conditioned on "init"."""
        if not self.uses_init:
            return None
        h = torch.tanh(self.tag_to_state(z)).view(batch, self.config.n_layer, self.config.n_hidden)
        h = h.transpose(0, 1).contiguous()  # (n_layer, B, H)
        return h, torch.zeros_like(h)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: State | None = None,
                tags: torch.Tensor | None = None):
        """idx (B, T) character ids, tags (B, K) tag ids of each row's hashtag set (NO_TAG-padded) ->
        (logits (B, T, V), mean loss in nats/char or None, state). state None: a story's start."""
        B, T = idx.shape
        z = self.tag_vector(tags, B)  # (B, n_tag_embd) or None
        if state is None:
            state = self.initial_state(z, B)
        x = self.wte(idx)  # (B, T, n_embd)
        if self.uses_input:
            x = torch.cat([x, z[:, None, :].expand(B, T, z.size(-1))], dim=-1)  # (B, T, n_embd + n_tag_embd)
        h, state = self.lstm(self.drop(x), state)  # (B, T, n_hidden), state: 2 x (n_layer, B, n_hidden)
        logits = self.lm_head(self.drop(h))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss, state


class StepCell:
    """The trained Storyteller, one character per call, for sampling: the same maths as `forward` in eval mode,
    with the embedding folded into the first layer's input weights (a (V, 4H) lookup table), the tag-set vector's
    share of the first layer's gates computed once per story (a (B, 4H) bias), and each upper layer's two matrix
    products fused into one, so a step reads about half the weights `forward` would."""

    def __init__(self, model: Storyteller):
        lstm, n_layer, n_embd = model.lstm, model.config.n_layer, model.config.n_embd
        w = {name: p.detach() for name, p in lstm.named_parameters()}
        self.model = model
        self.table = torch.addmm(w["bias_ih_l0"] + w["bias_hh_l0"], model.wte.weight.detach(),
                                 w["weight_ih_l0"][:, :n_embd].t())  # (V, 4H)
        self.w_tag = w["weight_ih_l0"][:, n_embd:].t().contiguous()  # (n_tag_embd, 4H); empty unless "input"
        self.w_hh0 = w["weight_hh_l0"].t().contiguous()  # (H, 4H)
        self.upper = [(torch.cat([w[f"weight_ih_l{k}"], w[f"weight_hh_l{k}"]], dim=1).t().contiguous(),  # (2H, 4H)
                       w[f"bias_ih_l{k}"] + w[f"bias_hh_l{k}"])  # (4H,)
                      for k in range(1, n_layer)]
        self.head_w = model.lm_head.weight.detach().t().contiguous()  # (H, V)
        self.head_b = model.lm_head.bias.detach()  # (V,)
        self.n_layer, self.n_hidden = n_layer, model.config.n_hidden

    def start_state(self, tags: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """tags (B, K) NO_TAG-padded -> (h_0, c_0, h_1, c_1, ..., tag_gates), each (B, H) and the last (B, 4H):
        flat, so a sampler can mask or select rows of every tensor alike; tag_gates never changes."""
        batch = tags.size(0)
        z = self.model.tag_vector(tags, batch)  # (B, n_tag_embd) or None
        init = self.model.initial_state(z, batch)  # 2 x (n_layer, B, H) or None
        zeros = self.head_b.new_zeros(batch, self.n_hidden)
        layers = [(init[0][k], init[1][k]) if init is not None else (zeros, zeros) for k in range(self.n_layer)]
        tag_gates = z @ self.w_tag if self.model.uses_input else self.head_b.new_zeros(batch, 4 * self.n_hidden)
        return tuple(t for pair in layers for t in pair) + (tag_gates,)

    @staticmethod
    def _cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = gates.chunk(4, dim=-1)  # each (B, H); PyTorch's gate order
        c = torch.addcmul(torch.sigmoid(f) * c, torch.sigmoid(i), torch.tanh(g))  # (B, H)
        return torch.sigmoid(o) * torch.tanh(c), c

    def __call__(self, idx: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple]:
        """idx (B,) character ids, state from `start_state` -> (logits (B, V), new state)."""
        tag_gates = state[-1]  # (B, 4H)
        x, c = self._cell(torch.addmm(self.table[idx] + tag_gates, state[0], self.w_hh0), state[1])  # (B, H)
        new_state = [x, c]
        for k, (w, b) in enumerate(self.upper, start=1):
            x, c = self._cell(torch.addmm(b, torch.cat([x, state[2 * k]], dim=-1), w), state[2 * k + 1])  # (B, H)
            new_state += [x, c]
        logits = torch.addmm(self.head_b, x, self.head_w)  # (B, V)
        return logits, tuple(new_state) + (tag_gates,)
