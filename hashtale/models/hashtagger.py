"""Show, Attend and Tell (Xu et al. 2015), soft attention, applied to hashtags: an LSTM decoder that
looks at the L annotation vectors of the encoder and emits one DISTINCT hashtag per step, attending for
each to where it is, until it emits <end>: the post's set of hashtags.

A photo's tags form a set, so the training order is a choice (`tag_order`):
- "frequent": most frequent tag first (the vocabulary's id order);
- "rare": rarest first, so the decoder meets rare tags while it is still confident;
- "predicted": order-free, the "orderless loss with predicted order" (OLA) of Yazici et al. (CVPR 2020):
  at each step the target is the one of the photo's remaining tags the model itself scores highest.
Tags already emitted are masked out of each step's softmax, in training as in beam search.
An optional multi-label head on the mean annotation (`aux_weight` > 0; binary cross-entropy, or the asymmetric
loss with `aux_loss` "asl"; with `aux_pool` "mean+max" on the mean and the channel-wise maximum over locations side
by side, so a tag whose object fills a few locations is not averaged away) is an auxiliary loss that trains the
image features for every tag of a photo at once; with `aux_guide` its logits are also added to every step's
logits, so the image-level evidence for each tag guides the decoder, which then learns what the steps add: the
order, when to stop, and what the attended region says."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from hashtale.models.asymmetric_loss import asymmetric_loss
from hashtale.models.vocab import END_ID, PAD_ID, SPECIALS

TAG_ORDERS = ("frequent", "rare", "predicted")
AUX_LOSSES = ("bce", "asl")  # binary cross-entropy, or the asymmetric loss (hashtale.models.asymmetric_loss)
AUX_POOLS = ("mean", "mean+max")  # what the auxiliary head reads: the mean annotation, or it and the maximum


@dataclass
class SATConfig:
    vocab_size: int
    feature_dim: int = 1280  # D, channels of an annotation vector
    num_locations: int = 49  # L, e.g. 7 x 7 grid
    embed_dim: int = 256  # as in the original
    hidden_dim: int = 512  # as in the original
    attention_dim: int = 128  # small: the float16 checkpoint stays under its 12 MB budget
    dropout: float = 0.5
    alpha_c: float = 1.0  # lambda of the doubly stochastic regulariser
    tag_order: str = "frequent"  # one of TAG_ORDERS
    aux_weight: float = 0.0  # weight of the auxiliary multi-label loss (0: no auxiliary head)
    aux_guide: bool = False  # add the auxiliary head's logits to every step's logits (needs aux_weight > 0)
    aux_loss: str = "bce"  # one of AUX_LOSSES
    aux_pool: str = "mean"  # one of AUX_POOLS


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
        if config.aux_pool not in AUX_POOLS:
            raise ValueError(f"unknown aux_pool {config.aux_pool!r}; choose one of {AUX_POOLS}")
        self._pools = 1 + (config.aux_pool == "mean+max")  # pooled vectors side by side at the head's input
        self.aux_head = (nn.Linear(self._pools * config.feature_dim, config.vocab_size) if config.aux_weight > 0
                         else None)

    def init_state(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Decoder state before the first tag: h_0, c_0 from the mean annotation, plus the attention's
        per-image projection and, when guided, the auxiliary logits (kept in the state so beam search reorders
        them along with h and c)."""
        mean = feats.mean(dim=1)  # (B, D)
        h = torch.tanh(self.init_h(mean))  # (B, H)
        c = torch.tanh(self.init_c(mean))  # (B, H)
        state = (h, c, self.attention.feature_proj(feats))  # (B, H), (B, H), (B, L, A)
        if self.config.aux_guide:
            state += (self.aux_logits(feats),)  # (B, V)
        return state

    def aux_logits(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> the auxiliary head's image-level logits (B, V)."""
        pooled = feats.mean(dim=1)  # (B, D)
        if self._pools == 2:
            pooled = torch.cat([pooled, feats.amax(dim=1)], dim=1)  # (B, 2D)
        return self.aux_head(pooled)

    def tag_maps(self, feats: torch.Tensor) -> torch.Tensor | None:
        """Where each tag's image-level evidence lies: the auxiliary head applied to every location (with the mean
        pool its logit is the mean of these, a class activation map, Zhou et al. 2016; with "mean+max", each
        location in both of the head's inputs: the logit of a photo that looked like that location everywhere),
        softmax over locations. (B, L, V), or None without an auxiliary head."""
        if self.aux_head is None:
            return None
        return F.softmax(self.aux_head(torch.cat([feats] * self._pools, dim=2)), dim=1)  # (B, L, V)

    def step(self, feats: torch.Tensor, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]
             ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """One decoder step: previous tokens (B,) -> logits (B, V), attention (B, L), new state."""
        h, c, projected, *guide = state
        z, alpha = self.attention(feats, projected, h)  # (B, D), (B, L)
        z = torch.sigmoid(self.gate(h)) * z  # (B, D), the gating scalar beta_t
        h, c = self.lstm(torch.cat([self.embed(tokens), z], dim=1), (h, c))  # (B, H) each
        logits = self.head(self.dropout(h))  # (B, V)
        if guide:
            logits = logits + guide[0]  # (B, V) the auxiliary head's image-level evidence
        return logits, alpha, (h, c, projected, *guide)

    def forward(self, feats: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """feats (B, L, D); targets (B, T) = <start> tags... <end> <pad>... (teacher forcing; the tags in
        any order, `tag_order` reorders them). Returns logits (B, T-1, V) of the steps, and the loss
        -log P(y|x) + lambda * sum_i (1 - sum_t alpha_ti)^2 [+ aux_weight * BCE or ASL] (averaged over the batch)."""
        assert targets is not None, "the decoder trains with teacher forcing; use beam search to decode"
        B, V = targets.size(0), self.config.vocab_size
        real = targets >= len(SPECIALS)  # (B, T) the tags
        remaining = torch.zeros(B, V, dtype=torch.bool, device=targets.device)  # (B, V) tags still to emit
        remaining[real.nonzero(as_tuple=True)[0], targets[real]] = True
        n_tags = real.sum(dim=1)  # (B,)
        order = order_tags(targets, self.config.tag_order)  # (B, T) tags in the training order, then <pad>
        emitted = torch.zeros(B, V, dtype=torch.bool, device=targets.device)  # (B, V) tags fed back so far
        rows = torch.arange(B, device=targets.device)
        state = self.init_state(feats)
        guide = state[3:]  # the auxiliary logits when guided
        tokens = targets[:, 0]  # (B,) <start>
        logits, alphas, labels = [], [], []
        for t in range(targets.size(1) - 1):
            step_logits, alpha, state = self.step(feats, tokens, state)
            step_logits = step_logits.masked_fill(emitted.clone(), float("-inf"))  # (B, V) distinct tags only
            if self.config.tag_order == "predicted":
                choice = step_logits.detach().masked_fill(~remaining, float("-inf")).argmax(dim=1)  # (B,)
            else:
                choice = order[:, t]
            label = torch.where(t < n_tags, choice, torch.where(t == n_tags, END_ID, PAD_ID))  # (B,)
            remaining[rows, label] = False
            emitted[rows, label] = label >= len(SPECIALS)
            logits.append(step_logits)
            alphas.append(alpha)
            labels.append(label)
            tokens = label
        logits = torch.stack(logits, dim=1)  # (B, T-1, V)
        alphas = torch.stack(alphas, dim=1)  # (B, T-1, L)
        labels = torch.stack(labels, dim=1)  # (B, T-1)
        nll = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=PAD_ID)
        loss = nll + self.config.alpha_c * doubly_stochastic(alphas, labels != PAD_ID)
        if self.aux_head is not None:
            aux = (guide[0] if guide else self.aux_logits(feats))[:, len(SPECIALS):]  # (B, V - specials)
            multi_hot = torch.zeros(B, V, device=feats.device)
            multi_hot[real.nonzero(as_tuple=True)[0], targets[real]] = 1.0
            aux_loss = asymmetric_loss if self.config.aux_loss == "asl" else F.binary_cross_entropy_with_logits
            loss = loss + self.config.aux_weight * aux_loss(aux, multi_hot[:, len(SPECIALS):])
        return logits, loss


@dataclass
class EnsembleConfig:
    members: list[dict]  # each member decoder's SATConfig fields (the same vocabulary and encoder)

    @property
    def aux_guide(self) -> bool:  # the runtime shows a guided decoder's class maps as its heat maps
        return bool(self.members[0].get("aux_guide", False))


class SATEnsemble(nn.Module):
    """Several SAT decoders trained alike (same recipe and data, different seeds) that decode as one: every step's
    logits are the mean of the members' (a product of the members' step distributions, renormalised), each member
    keeping its own state. Inference only (each member trains on its own). Heat maps: the first member's."""

    def __init__(self, config: EnsembleConfig):
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(SATHashtagger(SATConfig(**c)) for c in config.members)
        # each member's state: h, c, the attention's projection, and its auxiliary logits when guided
        self._sizes = [3 + int(m.config.aux_guide) for m in self.members]

    def init_state(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for m in self.members for t in m.init_state(feats))  # the members' states, one after another

    def step(self, feats: torch.Tensor, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]
             ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        logits, alphas, out, start = [], [], (), 0
        for member, size in zip(self.members, self._sizes):
            step_logits, alpha, member_state = member.step(feats, tokens, state[start:start + size])
            logits.append(step_logits)
            alphas.append(alpha)
            out += member_state
            start += size
        return torch.stack(logits).mean(dim=0), alphas[0], out  # (B, V), (B, L), flat state

    def tag_maps(self, feats: torch.Tensor) -> torch.Tensor | None:
        return self.members[0].tag_maps(feats)


def order_tags(targets: torch.Tensor, tag_order: str) -> torch.Tensor:
    """(B, T) token ids -> each row's tags in the training order ("rare": rarest first, else most frequent
    first; vocabulary ids rise as frequency falls), then <pad>."""
    real = targets >= len(SPECIALS)
    big = torch.iinfo(targets.dtype).max
    key = torch.where(real, -targets if tag_order == "rare" else targets, big)
    ids = targets.gather(1, key.argsort(dim=1, stable=True))  # (B, T) real tags first
    return torch.where(real.sum(1, keepdim=True) > torch.arange(targets.size(1), device=targets.device), ids, PAD_ID)


def doubly_stochastic(alphas: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """lambda-free regulariser sum_i (1 - sum_t alpha_ti)^2, averaged over the batch; only real
    (non-pad) steps attend. alphas (B, T, L), mask (B, T) bool."""
    attended = (alphas * mask.unsqueeze(2)).sum(dim=1)  # (B, L)
    return ((1.0 - attended) ** 2).sum(dim=1).mean()
