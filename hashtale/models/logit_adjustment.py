"""Post-hoc logit adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021).

A decoder trained with softmax cross-entropy learns P(token | ...) under the training distribution of its
targets, where a frequent tag (#sky) is a target hundreds of times more often than a rare one (#lynx): its
logits carry that head start. Subtracting tau * log(prior) from every step's logits removes tau of it
(tau = 1: the balanced-error optimum of the paper), which raises rare tags' recall at some cost to the
frequent ones' precision: what the Corel-5k per-class means (over all classes) reward.

The prior is each token's share of the training steps' targets: the tags of every training post plus one
<end> per post (so the stop competes on the same footing). Tokens that never are a target (<pad>, <start>,
<unk>) get no adjustment; beam search masks them anyway. tau and the prior travel in the checkpoint's model
args (`logit_adjustment`), chosen on validation posts by hashtale.training.logit_adjustment."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LogitAdjustment:
    tau: float  # strength: 0 = the trained model as it is
    log_prior: tuple[float, ...]  # (V,) natural log of each token's share of the training targets; 0 if never one

    def bias(self) -> torch.Tensor:
        """(V,) float32, added to each step's logits."""
        return -self.tau * torch.tensor(self.log_prior, dtype=torch.float32)

    def to_args(self) -> dict:
        return {"tau": self.tau, "log_prior": list(self.log_prior)}

    @classmethod
    def from_args(cls, args: dict | None) -> "LogitAdjustment | None":
        return None if not args else cls(tau=float(args["tau"]), log_prior=tuple(args["log_prior"]))
