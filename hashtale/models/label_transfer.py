"""Label transfer: the tags of a photo's nearest training photos as extra evidence for every decoder step.

Non-parametric evidence in the spirit of JEC (Makadia et al. 2008) and 2PKNN (Verma & Jawahar 2012), which lift
rare tags' recall on Corel-5k: a tag that a handful of training photos carry is hard for a softmax to learn, but
easy to copy from a photo that looks alike. A photo is described by its mean annotation vector (the decoder's
image-level input), L2-normalised, centred and projected on the training photos' top principal components, and
normalised again (cosine similarity in the projection). The `k` most similar training photos vote for their tags,
each with weight softmax(similarity / `temperature`) over the k; vote_v in 0..1 is the weighted share of
neighbours carrying tag v. Every step's logits of tag v get

    weight * log(1 + vote_v / eps_v),   eps_v = eps * (q_v / mean_u q_u) ** balance

added (0 for a tag no neighbour carries, and for <end> and the other special tokens, so the stop keeps its
footing). eps_v is the vote at which the evidence is weight * log 2: `eps` for a tag of average frequency, and with
`balance` > 0 smaller for a tag few training photos carry (q_v: the share of the bank's photos carrying v), so
that one neighbour with a rare tag counts for more than one with #sky, which most neighbours carry anyway
(balance 1: the vote relative to the tag's share, as a pointwise mutual information). The bank (projection and
the training photos' keys and tag ids) and the hyperparameters travel in the checkpoint
(`extra["label_transfer_bank"]`, `model_args["label_transfer"]`); both are built and chosen on the run's training /
validation posts by `hashtale tune-decoding --label-transfer` (hashtale.training.logit_adjustment). On top of the
shipped decoder's logit adjustment it validated within noise of the model without it (checkpoints/hashtagger.md),
so the shipped checkpoint carries none."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hashtale.models.vocab import PAD_ID, SPECIALS

DEFAULT_COMPONENTS = 256  # principal components kept: the keys of ~11k photos are 5.7 MB in float16
BUILD_CHUNK = 1024  # photos whose annotation vectors are averaged at once when a bank is built


@dataclass(frozen=True, eq=False)  # tensors: compared by identity
class LabelTransferBank:
    mean: torch.Tensor  # (D,) float32, mean of the training photos' normalised mean annotation vectors
    projection: torch.Tensor  # (D, P) float32, top principal components (columns)
    keys: torch.Tensor  # (N, P) float32, the training photos' normalised projected vectors
    tags: torch.Tensor  # (N, T) int64, each training photo's tag ids, padded with PAD_ID

    @classmethod
    def build(cls, feats: torch.Tensor, tag_ids: list[list[int]], components: int = DEFAULT_COMPONENTS
              ) -> "LabelTransferBank":
        """feats (N, L, D) annotation vectors of the training photos; tag_ids their tags' vocabulary ids."""
        # in chunks: a float32 copy of every photo's annotation vectors at once would be N x L x D x 4 bytes
        x = F.normalize(torch.cat([part.float().mean(dim=1) for part in feats.split(BUILD_CHUNK)]), dim=1)  # (N, D)
        mean = x.mean(dim=0)  # (D,)
        # principal axes of the centred vectors: right singular vectors, by decreasing variance
        _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)  # vh (min(N, D), D)
        projection = vh[:components].T.contiguous()  # (D, P)
        keys = F.normalize((x - mean) @ projection, dim=1)  # (N, P)
        width = max(map(len, tag_ids))
        tags = torch.full((len(tag_ids), width), PAD_ID, dtype=torch.long)  # (N, T)
        for row, ids in enumerate(tag_ids):
            tags[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return cls(mean, projection, keys, tags)

    def key(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, L, D) annotation vectors -> (B, P) unit vectors to compare by dot product."""
        x = F.normalize(feats.float().mean(dim=1), dim=1)  # (B, D)
        return F.normalize((x - self.mean) @ self.projection, dim=1)  # (B, P)

    def to_state(self) -> dict[str, torch.Tensor]:
        """Tensors to store: float16 (the keys' cosine similarities change by ~1e-3), tag ids int16."""
        return {"mean": self.mean.half(), "projection": self.projection.half(), "keys": self.keys.half(),
                "tags": self.tags.short()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> "LabelTransferBank":
        return cls(state["mean"].float(), state["projection"].float(), state["keys"].float(), state["tags"].long())


@dataclass(frozen=True, eq=False)
class LabelTransfer:
    bank: LabelTransferBank
    k: int  # neighbours that vote
    temperature: float  # of the softmax over the k similarities (cosine, -1..1)
    weight: float  # of the evidence added to the logits
    eps: float  # vote at which the evidence of a tag of average frequency is weight * log 2
    balance: float = 0.0  # exponent of the tag's share in its eps (0: the same eps for every tag)

    def vote(self, feats: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """(B, L, D) -> (B, V) similarity-weighted share of the k nearest training photos carrying each tag."""
        sims = self.key(feats) @ self.bank.keys.T  # (B, N)
        top, idx = sims.topk(min(self.k, sims.size(1)), dim=1)  # (B, k) each
        weights = F.softmax(top / self.temperature, dim=1)  # (B, k)
        tags = self.bank.tags[idx]  # (B, k, T)
        votes = torch.zeros(len(feats), vocab_size)  # (B, V)
        votes.scatter_add_(1, tags.flatten(1), weights.unsqueeze(2).expand_as(tags).flatten(1))
        votes[:, :len(SPECIALS)] = 0.0  # <pad> collected the padding; specials get no evidence
        return votes

    def key(self, feats: torch.Tensor) -> torch.Tensor:
        return self.bank.key(feats.cpu())

    def bias(self, feats: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """(B, L, D) -> (B, V) float32 added to every step's logits."""
        return self.weight * torch.log1p(self.vote(feats, vocab_size) / self.tag_eps(vocab_size))

    def tag_eps(self, vocab_size: int) -> torch.Tensor:
        """(V,) each tag's eps_v (see the module's docstring)."""
        if not self.balance:
            return torch.full((vocab_size,), self.eps)
        counts = torch.zeros(vocab_size).index_add_(0, self.bank.tags.flatten(), torch.ones(self.bank.tags.numel()))
        share = counts[len(SPECIALS):].clamp(min=1) / len(self.bank.tags)  # (V - specials,), >= one photo's share
        eps = torch.full((vocab_size,), self.eps)  # specials: their vote is 0 anyway
        eps[len(SPECIALS):] = self.eps * (share / share.mean()) ** self.balance
        return eps

    def to_args(self) -> dict:
        return {"k": self.k, "temperature": self.temperature, "weight": self.weight, "eps": self.eps,
                "balance": self.balance}

    @classmethod
    def from_checkpoint(cls, args: dict | None, state: dict | None) -> "LabelTransfer | None":
        if not args or state is None:
            return None
        return cls(LabelTransferBank.from_state(state), k=int(args["k"]), temperature=float(args["temperature"]),
                   weight=float(args["weight"]), eps=float(args["eps"]), balance=float(args.get("balance", 0.0)))
