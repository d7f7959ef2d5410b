"""Batched story sampling with temperature and top-k, ending on a sentence boundary near the requested length.

Guarantee: a story depends only on its own `StorySpec` (and the model), not on what it is batched with.
- Each row draws all its uniform noise up front from its own `torch.Generator(random_seed)`, one number per
  character position, so its random stream does not depend on other rows or on when the batch stops.
- Each row is primed alone, and where a row stops (`story_end`) is decided from that row's own text only.
- The top-k/CDF step runs in float64 over the top-k set *ordered by character id*, not by probability, so tiny
  float differences between batch sizes or servers (about 1e-6 in the logits) can change a character only when
  the row's uniform number falls within ~1e-6 of a CDF step, or when two logits tie exactly at the k-th place.
  In practice the same spec gives the same story in a batch, alone, in-process and through Triton.
- top_k = 1 (or temperature = 0) is greedy: the noise is ignored and the story is fully deterministic.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from models.chars import FRAMING_CHARS, CharVocab, prompt_for
from models.storyteller import StepCell, Storyteller

OVERRUN_FRACTION = 0.25  # may write up to 25% past the requested length looking for a sentence end
MIN_OVERRUN = 40  # characters, so short stories also get room to finish a sentence
MIN_LENGTH_FRACTION = 0.5  # a sentence end earlier than half the length is too short to stop at
CHECK_EVERY = 32  # characters between checks for finished rows
ELLIPSIS = "..."  # closes a story that never reached a sentence end

# A sentence ends at . ! or ?, possibly followed by closing quotes/brackets, then whitespace.
SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)")


@dataclass(frozen=True)
class StorySpec:
    seed_text: str  # the hashtag the story is about (with or without '#')
    length: int  # characters, approximate
    temperature: float  # 0 means greedy
    top_k: int  # 0 or >= vocabulary size means the whole vocabulary
    random_seed: int


def max_story_chars(length: int) -> int:
    return length + max(int(length * OVERRUN_FRACTION), MIN_OVERRUN)


def story_end(text: str, length: int) -> str | None:
    """The finished story if `text` (generated so far) already decides it, else None.

    Stops at the sentence end closest to `length`: the decision is made at the first sentence end at or past
    `length` (or at `max_story_chars`), so it depends only on the text up to that point.
    """
    limit = max_story_chars(length)
    ends = [m.end() for m in SENTENCE_END.finditer(text[:limit])]
    after = [e for e in ends if e >= length]
    before = [e for e in ends if e < length]
    if after:
        cut = after[0]
        if before and length - before[-1] < after[0] - length:
            cut = before[-1]
        return text[:cut].strip()
    if len(text) < limit:
        return None
    if before and before[-1] >= length * MIN_LENGTH_FRACTION:
        return text[: before[-1]].strip()
    head = text[:length]
    if " " in head.strip():
        head = head.rstrip().rsplit(" ", 1)[0]
    return head.strip() + ELLIPSIS


def _pick(logits: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """logits (B, V) float64, temperature (B,), top_k (B,) in 1..V, noise (B,) uniform in [0, 1) -> ids (B,)."""
    k_max = int(top_k.max())
    top_values, top_ids = logits.topk(k_max, dim=-1)  # (B, K), best first
    rank = torch.arange(k_max).expand_as(top_values)  # (B, K)
    top_values = top_values.masked_fill(rank >= top_k[:, None], float("-inf"))
    order = top_ids.argsort(dim=-1)  # by character id: robust to near-ties in probability order
    top_ids = top_ids.gather(-1, order)  # (B, K)
    top_values = top_values.gather(-1, order)  # (B, K)
    probs = torch.softmax(top_values / temperature[:, None], dim=-1)  # (B, K)
    cdf = probs.cumsum(dim=-1)  # (B, K)
    choice = (cdf < noise[:, None] * cdf[:, -1:]).sum(dim=-1).clamp_(max=k_max - 1)  # (B,)
    return top_ids.gather(-1, choice[:, None]).squeeze(-1)  # (B,)


@torch.inference_mode()
def generate(model: Storyteller, vocab: CharVocab, specs: list[StorySpec]) -> list[str]:
    """Write one story per spec, all rows advancing together one character per step."""
    if not specs:
        return []
    model.eval()
    vocab_size = len(vocab)
    limits = [max_story_chars(s.length) for s in specs]
    steps = max(limits)
    greedy = [s.temperature <= 0 or s.top_k == 1 for s in specs]
    top_k = torch.tensor([1 if g else (s.top_k if 0 < s.top_k < vocab_size else vocab_size)
                          for s, g in zip(specs, greedy)])  # (B,)
    temperature = torch.tensor([1.0 if g else s.temperature for s, g in zip(specs, greedy)], dtype=torch.float64)
    noise = torch.zeros(len(specs), steps, dtype=torch.float64)  # (B, steps)
    for row, (spec, limit) in enumerate(zip(specs, limits)):
        gen = torch.Generator().manual_seed(spec.random_seed)
        noise[row, :limit] = torch.rand(limit, generator=gen, dtype=torch.float64)
    banned = torch.tensor([0] + vocab.ids_of(FRAMING_CHARS))  # <unk> and the framing never appear in a story

    # Prime all rows together; a row whose prompt has ended keeps its state, so it ends as if primed alone.
    step_fn = StepCell(model)
    prompts = [vocab.encode(prompt_for(s.seed_text)) for s in specs]
    prompt_len = torch.tensor([len(p) for p in prompts])  # (B,)
    prompt_ids = torch.zeros(len(specs), int(prompt_len.max()), dtype=torch.long)  # (B, P)
    for row, ids in enumerate(prompts):
        prompt_ids[row, : len(ids)] = torch.tensor(ids)
    state = step_fn.zero_state(len(specs))
    logits = torch.zeros(len(specs), vocab_size)  # (B, V)
    for t in range(prompt_ids.size(1)):
        new_logits, new_state = step_fn(prompt_ids[:, t], state)
        live = (t < prompt_len)[:, None]  # (B, 1)
        logits = torch.where(live, new_logits, logits)  # (B, V)
        state = tuple(torch.where(live[None], new, old) for new, old in zip(new_state, state))

    active = torch.arange(len(specs))  # rows still writing
    out = torch.zeros(len(specs), steps, dtype=torch.long)  # (B, steps)
    stories: list[str | None] = [None] * len(specs)
    for step in range(steps):
        scores = logits.double()  # (b, V)
        scores[:, banned] = float("-inf")
        ids = _pick(scores, temperature[active], top_k[active], noise[active, step])  # (b,)
        out[active, step] = ids
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == steps:
            keep = []
            for j, row in enumerate(active.tolist()):
                if stories[row] is None:
                    stories[row] = story_end(vocab.decode(out[row, : step + 1].tolist()), specs[row].length)
                if stories[row] is None:
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(active):
                sel = torch.tensor(keep)
                active, ids = active[sel], ids[sel]
                state = (state[0][:, sel], state[1][:, sel])
        logits, state = step_fn(ids, state)  # (b, V)
    return [s if s is not None else "" for s in stories]
