"""Batched beam search over hashtag sequences, and the ranked set of DISTINCT hashtags it yields.

Rules, for every image and every hypothesis:
- a tag never appears twice in a hypothesis (emitted tags are masked), nor do <pad>/<start>/<unk>;
- <end> is masked at the first step (a post gets at least one tag) and allowed after it;
- a hypothesis ends on <end> or after `max_len` tags, so every decode terminates after at most
  `max_len` steps;
- step probabilities are renormalised over the tokens still allowed, so a hypothesis' score is the
  log-probability of the sequence under the constrained model.

`emitted_tags` turns the best finished hypothesis into the post's SET of hashtags: its tags in the order
they were emitted, each with its probability at the step that emitted it (0..1) and that step's attention,
keeping only those the model believes in (score >= `min_score`; the first tag always stays, so a post gets
at least one). The model decides how many by emitting <end>; `max_len` is only the upper bound.

`marginal_tags` is the other way to read a set off the beam: every tag of the finished hypotheses, scored by its
marginal probability, the share of the beam's probability mass held by the hypotheses that contain it (their
sequence probabilities renormalised over the beam), surest first. A tag that the best hypothesis leaves out but most
of the others hold is emitted; one that only the best hypothesis holds, on a thin margin, scores low. The set is the
same kind of answer (at most `max_len` distinct tags, each from a step of a hypothesis, kept at score >= `min_score`,
the first always), in order of belief instead of emission order.

`logit_bias` (V,), or (B, V) one row per image, is added to every step's logits before the rules apply: the
post-hoc logit adjustment -tau * log(prior) of Menon et al. (ICLR 2021), which trades the frequent tags' head
start for the rare tags' recall (see hashtale.training.logit_adjustment), plus each image's label-transfer
evidence (hashtale.models.label_transfer). Scores and probabilities are then those of the adjusted model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hashtale.models.vocab import END_ID, PAD_ID, START_ID, UNK_ID

NEG_INF = float("-inf")


@dataclass
class Hypothesis:
    tokens: list[int]  # tag ids, without <start>/<end>
    log_prob: float  # log P(sequence incl. its <end>) under the constrained model
    step_probs: list[float]  # probability of each tag at its step
    attention: np.ndarray | None  # (len(tokens), L) float32, None for models without attention


@dataclass
class RankedTag:
    token: int
    score: float  # probability 0..1
    attention: np.ndarray | None  # (L,) float32 summing to 1


@torch.no_grad()
def beam_search(model, feats: torch.Tensor, beam_width: int = 5, max_len: int = 5,
                logit_bias: torch.Tensor | None = None) -> list[list[Hypothesis]]:
    """feats (B, L, D) -> per image its `beam_width` best finished hypotheses, best first.
    `model` provides init_state(feats) and step(feats, tokens, state) -> (logits, alpha | None, state);
    `logit_bias` (V,) or (B, V) is added to each step's logits."""
    B, L, _ = feats.shape
    W = beam_width
    device = feats.device
    feats_w = feats.repeat_interleave(W, dim=0)  # (B*W, L, D)
    state = tuple(s.repeat_interleave(W, dim=0) for s in model.init_state(feats))
    tokens = torch.full((B * W,), START_ID, dtype=torch.long, device=device)
    scores = torch.full((B, W), NEG_INF, device=device)
    scores[:, 0] = 0.0  # one live beam at first: identical beams would only duplicate
    emitted = None  # (B*W, V) bool, tags already in each hypothesis
    done = torch.zeros(B * W, dtype=torch.bool, device=device)
    seqs = torch.zeros(B * W, 0, dtype=torch.long, device=device)  # (B*W, t) chosen tokens incl. <end>/<pad>
    probs = torch.zeros(B * W, 0, device=device)  # (B*W, t)
    alphas = torch.zeros(B * W, 0, L, device=device)  # (B*W, t, L)
    if logit_bias is not None:
        logit_bias = logit_bias.to(device)
        if logit_bias.dim() == 2:  # one row per image: one per hypothesis, rows stay with their image
            logit_bias = logit_bias.repeat_interleave(W, dim=0)  # (B*W, V)
    for t in range(max_len + 1):
        logits, alpha, state = model.step(feats_w, tokens, state)  # (B*W, V), (B*W, L) | None
        if logit_bias is not None:
            logits = logits + logit_bias  # (B*W, V)
        V = logits.size(1)
        if emitted is None:
            emitted = torch.zeros(B * W, V, dtype=torch.bool, device=device)
        mask = emitted.clone()
        mask[:, [PAD_ID, START_ID, UNK_ID]] = True
        if t == 0:
            mask[:, END_ID] = True
        if t == max_len:  # length limit reached: only <end> is left
            mask[:, :] = True
            mask[:, END_ID] = False
        logp = F.log_softmax(logits.float().masked_fill(mask, NEG_INF), dim=1)  # (B*W, V)
        # a finished hypothesis only extends with <pad>, at no cost, and keeps its place in the beam
        finished_row = torch.full_like(logp[0], NEG_INF)
        finished_row[PAD_ID] = 0.0
        logp = torch.where(done.unsqueeze(1), finished_row, logp)
        cand = (scores.view(B * W, 1) + logp).view(B, W * V)  # (B, W*V)
        top, idx = cand.topk(W, dim=1)  # (B, W) each
        beam = idx // V  # (B, W) source beam within the image
        tok = idx % V  # (B, W)
        src = (beam + torch.arange(B, device=device).unsqueeze(1) * W).view(-1)  # (B*W,) rows to copy
        tok = tok.view(-1)  # (B*W,)
        step_p = logp[src, tok].exp()  # (B*W,)
        scores = top
        seqs = torch.cat([seqs[src], tok.unsqueeze(1)], dim=1)
        probs = torch.cat([probs[src], step_p.unsqueeze(1)], dim=1)
        step_alpha = alpha[src] if alpha is not None else torch.zeros(B * W, L, device=device)
        alphas = torch.cat([alphas[src], step_alpha.unsqueeze(1)], dim=1)
        emitted = emitted[src]
        emitted[torch.arange(B * W, device=device), tok] = True
        done = done[src] | (tok == END_ID) | (tok == PAD_ID)
        state = tuple(s[src] for s in state)
        tokens = tok
        if bool(done.all()):
            break
    return _collect(seqs, probs, alphas, scores, B, W, has_attention=alpha is not None)


def _collect(seqs, probs, alphas, scores, B, W, has_attention) -> list[list[Hypothesis]]:
    seqs, probs, alphas, scores = seqs.cpu().numpy(), probs.cpu().numpy(), alphas.cpu().numpy(), scores.cpu().numpy()
    out = []
    for b in range(B):
        hyps = []
        for w in np.argsort(-scores[b], kind="stable"):
            if not np.isfinite(scores[b, w]):
                continue  # fewer distinct sequences exist than beams
            row = b * W + w
            n = int(np.argmax(seqs[row] == END_ID))  # number of tags before <end>
            hyps.append(Hypothesis(
                tokens=[int(x) for x in seqs[row, :n]],
                log_prob=float(scores[b, w]),
                step_probs=[float(p) for p in probs[row, :n]],
                attention=alphas[row, :n].astype(np.float32) if has_attention else None,
            ))
        out.append(hyps)
    return out


def emitted_tags(best: Hypothesis, min_score: float = 0.0) -> list[RankedTag]:
    """The distinct tags of the best hypothesis, in emission order, that score at least `min_score`
    (the first one always: a post gets at least one tag)."""
    return [RankedTag(tok, best.step_probs[i], best.attention[i] if best.attention is not None else None)
            for i, tok in enumerate(best.tokens) if i == 0 or best.step_probs[i] >= min_score]


def marginal_tags(hyps: list[Hypothesis], min_score: float = 0.0, max_tags: int | None = None) -> list[RankedTag]:
    """The distinct tags of the beam's finished hypotheses (best first, as `beam_search` returns them), each scored by
    the probability mass of the hypotheses holding it, renormalised over the beam; surest first (ties: in the order
    the best hypotheses hold them), at most `max_tags`, those scoring at least `min_score` (the first always). A tag's
    attention is that of its step in the best hypothesis holding it."""
    top = max(h.log_prob for h in hyps)
    weights = [math.exp(h.log_prob - top) for h in hyps]
    total = sum(weights)
    mass: dict[int, float] = {}
    attention: dict[int, np.ndarray | None] = {}
    for weight, hyp in zip(weights, hyps):
        for step, tok in enumerate(hyp.tokens):
            mass[tok] = mass.get(tok, 0.0) + weight / total
            if tok not in attention:
                attention[tok] = hyp.attention[step] if hyp.attention is not None else None
    ranked = sorted(mass, key=lambda tok: -mass[tok])[:max_tags]  # stable: first held first among equals
    return [RankedTag(tok, mass[tok], attention[tok]) for i, tok in enumerate(ranked) if i == 0 or mass[tok] >= min_score]
