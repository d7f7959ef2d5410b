"""Asymmetric loss for multi-label classification (ASL, Ridnik et al., ICCV 2021).

With hundreds of labels and a few positives per image, binary cross-entropy is dominated by the many easy
negatives, which pushes every rare label's probability down. ASL focuses the negatives (a focusing power
`gamma_neg` > `gamma_pos`, as in the focal loss) and shifts their probability by a margin `clip`, so
negatives already below it cost nothing: the positives of rare labels keep a larger share of the gradient."""
from __future__ import annotations

import torch

GAMMA_NEG = 4.0  # the paper's defaults
GAMMA_POS = 0.0
CLIP = 0.05
EPS = 1e-8  # keeps the logs finite


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, gamma_neg: float = GAMMA_NEG,
                    gamma_pos: float = GAMMA_POS, clip: float = CLIP) -> torch.Tensor:
    """logits, targets (B, C), targets 0/1 -> the mean over the B x C elements (the scale of a mean BCE)."""
    p = torch.sigmoid(logits)  # (B, C)
    p_neg = (p - clip).clamp(min=0.0)  # (B, C) shifted probability of the negatives
    pos = targets * (1.0 - p).pow(gamma_pos) * torch.log(p.clamp(min=EPS))
    neg = (1.0 - targets) * p_neg.pow(gamma_neg) * torch.log((1.0 - p_neg).clamp(min=EPS))
    return -(pos + neg).mean()
