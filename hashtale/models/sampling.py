"""Batched story sampling with temperature and top-k, ending on a sentence boundary near the requested length.

Guarantee: a story depends only on its own `StorySpec` (and the model), not on what it is batched with.
- Each row draws all its noise up front from its own `torch.Generator(random_seed)`: one Gumbel number per
  (character position, vocabulary entry), so its random stream does not depend on other rows or on when the batch
  stops. A character is argmax(logit / temperature + gumbel) over the row's top-k characters (the Gumbel-max trick:
  an exact sample of softmax(top-k logits / temperature)).
- The row's hashtag set conditions it (`StepCell.start_state`) and primes it (`#tag #tag\n`); priming is masked per
  row and where a row stops (`story_end`) is decided from that row's own text only.
- Selection runs in float64 and the noise is indexed by character id, so the candidates' order does not matter.
  Float differences between batch sizes or servers (about 1e-6 in the logits) can change a character only when
  two perturbed scores are that close, or a logit ties with the k-th best: about once in 10^5 characters.
  In practice the same spec gives the same story in a batch, alone, in-process and through Triton.
- top_k = 1 (or temperature = 0) is greedy: the noise cannot change the argmax and the story is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from hashtale.models.chars import FRAMING_CHARS, CharVocab, clean_tag, prompt_for
from hashtale.models.sentences import END_MARKS, SENTENCE_START_CHARS, sentence_ends
from hashtale.models.steering import MentionSteer, SteerConfig
from hashtale.models.storyteller import NO_TAG, StepCell, Storyteller

OVERRUN_FRACTION = 0.6  # may write up to 60% past the requested length looking for a sentence end
MIN_OVERRUN = 40  # characters, so short stories also get room to finish a sentence
CLOSE_AFTER_FRACTION = 0.25  # past 125% of the length with no sentence end yet...
CLOSE_BONUS = 2.0  # ...nats added to the end marks . ! ?, so the model closes its sentence (the text stays its own)
CHECK_EVERY = 32  # characters between checks for finished rows
ELLIPSIS = "..."  # closes a story that never reached a sentence end at all (practically unreachable)


@dataclass(frozen=True)
class StorySpec:
    hashtags: tuple[str, ...]  # the post's hashtag set, best first (with or without '#'); may be empty
    length: int  # characters, approximate
    temperature: float  # 0 means greedy
    top_k: int  # 0 or >= vocabulary size means the whole vocabulary
    random_seed: int


def max_story_chars(length: int) -> int:
    return length + max(int(length * OVERRUN_FRACTION), MIN_OVERRUN)


def story_end(text: str, length: int) -> str | None:
    """The finished story if `text` (generated so far) already decides it, else None.

    Stops at the sentence end (hashtale.models.sentences) closest to `length`: the decision is made at the first
    sentence end at or past `length`, so it depends only on the text up to that point. With none by `max_story_chars`
    the story ends at its last sentence end before; only a text with no sentence end at all is cut after a word, with
    "...".
    """
    limit = max_story_chars(length)
    ends = sentence_ends(text[:limit])
    after = [e for e in ends if e >= length]
    before = [e for e in ends if e < length]
    if after:
        cut = after[0]
        if before and length - before[-1] < after[0] - length:
            cut = before[-1]
        return text[:cut].strip()
    if len(text) < limit:
        return None
    if before:
        return text[: before[-1]].strip()
    head = text[:length]
    if " " in head.strip():
        head = head.rstrip().rsplit(" ", 1)[0]
    return head.strip() + ELLIPSIS


def gumbel_noise(spec: StorySpec, steps: int, vocab_size: int) -> torch.Tensor:
    """The row's noise for `steps` characters: (steps, V) float64 standard Gumbel, from its own generator."""
    gen = torch.Generator().manual_seed(spec.random_seed)
    uniform = torch.rand(steps, vocab_size, generator=gen, dtype=torch.float64)  # (steps, V), in [0, 1)
    return -torch.log(-torch.log(uniform))  # u = 0 gives -inf: never picked


def _pick(scores: torch.Tensor, kth: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """scores (B, V) float64 = logits / temperature, kth (B, 1) = index of each row's k-th best (k-1),
    noise (B, V) Gumbel -> ids (B,): argmax of scores + noise among each row's top-k."""
    k_max = int(kth.max()) + 1
    threshold = scores.topk(k_max, dim=-1).values.gather(-1, kth)  # (B, 1): each row's k-th best score
    return scores.masked_fill(scores < threshold, float("-inf")).add_(noise).argmax(dim=-1)  # (B,)


def tag_ids(specs: list[StorySpec], tag_index: dict[str, int]) -> torch.Tensor:
    """(B, K) the model's ids of each spec's known hashtags, NO_TAG-padded (unknown hashtags are left out)."""
    rows = [[tag_index[t] for t in dict.fromkeys(clean_tag(h) for h in s.hashtags) if t in tag_index] for s in specs]
    ids = torch.full((len(specs), max([1] + [len(r) for r in rows])), NO_TAG, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return ids


@torch.inference_mode()
def generate(model: Storyteller, vocab: CharVocab, specs: list[StorySpec], tag_index: dict[str, int] | None = None,
             step=StepCell, tag_words: dict[str, tuple[str, ...]] | None = None,
             steering: SteerConfig = SteerConfig()) -> list[str]:
    """Write one story per spec, all rows advancing together one character per step.

    `tag_index` maps the model's hashtags to ids (None: no hashtag is known to the model).
    `tag_words`: the words that name each hashtag, for mention steering (hashtale.models.steering, `steering` says how
    strongly); None: no steering.
    `step(model)` builds the per-character function (bench/storyteller.py compares variants)."""
    if not specs:
        return []
    model.eval()
    device = model.lm_head.weight.device  # noise is drawn on the CPU (the same on every device), then moved
    vocab_size = len(vocab)
    limits = [max_story_chars(s.length) for s in specs]
    close_from = torch.tensor([int(s.length * (1 + CLOSE_AFTER_FRACTION)) for s in specs])  # (B,) characters
    steps = max(limits)
    greedy = [s.temperature <= 0 or s.top_k == 1 for s in specs]
    kth = torch.tensor([[0 if g else (s.top_k if 0 < s.top_k < vocab_size else vocab_size) - 1]
                        for s, g in zip(specs, greedy)], device=device)  # (B, 1)
    inv_temperature = torch.tensor([[1.0 if g else 1.0 / s.temperature] for s, g in zip(specs, greedy)],
                                   dtype=torch.float64, device=device)  # (B, 1)
    ban = torch.zeros(vocab_size, dtype=torch.float64)  # (V,)
    ban[[0] + vocab.ids_of(FRAMING_CHARS)] = float("-inf")  # <unk> and the framing never appear in a story
    ban = ban.to(device)
    first_ban = torch.full((vocab_size,), float("-inf"), dtype=torch.float64)  # (V,)
    first_ban[vocab.ids_of(SENTENCE_START_CHARS)] = 0.0  # a story never starts mid-word
    first_ban = first_ban.to(device)
    end_bonus = torch.zeros(vocab_size, dtype=torch.float64)  # (V,)
    end_bonus[vocab.ids_of(END_MARKS)] = CLOSE_BONUS
    end_bonus = end_bonus.to(device)
    noise = torch.zeros(steps, len(specs), vocab_size, dtype=torch.float64)  # (steps, B, V)
    for row, (spec, limit) in enumerate(zip(specs, limits)):
        noise[:limit, row] = gumbel_noise(spec, limit, vocab_size)
    noise = noise.to(device)

    # Prime all rows together; a row whose prompt has ended keeps its state, so it ends as if primed alone.
    step_fn = step(model)
    prompts = [vocab.encode(prompt_for(s.hashtags)) for s in specs]
    prompt_len = torch.tensor([len(p) for p in prompts])  # (B,)
    prompt_ids = torch.zeros(len(specs), int(prompt_len.max()), dtype=torch.long)  # (B, P)
    for row, ids in enumerate(prompts):
        prompt_ids[row, : len(ids)] = torch.tensor(ids)
    prompt_len, prompt_ids = prompt_len.to(device), prompt_ids.to(device)
    state = step_fn.start_state(tag_ids(specs, tag_index or {}).to(device))
    logits = torch.zeros(len(specs), vocab_size, device=device)  # (B, V)
    for t in range(prompt_ids.size(1)):
        new_logits, new_state = step_fn(prompt_ids[:, t], state)
        live = (t < prompt_len)[:, None]  # (B, 1)
        logits = torch.where(live, new_logits, logits)  # (B, V)
        state = tuple(torch.where(live, new, old) for new, old in zip(new_state, state))

    steer = MentionSteer([s.hashtags for s in specs], tag_words, vocab, steering) if tag_words is not None else None
    active = list(range(len(specs)))  # rows still writing
    written: list[list[int]] = [[] for _ in specs]
    pending: list[torch.Tensor] = []  # ids (b,) of the steps since the last check
    stories: list[str | None] = [None] * len(specs)
    for t in range(steps):
        bias = ban + first_ban if t == 0 else ban  # (V,)
        if bool((close_from <= t).any()):  # a row this long has not stopped: no sentence end closer to its length yet
            bias = bias + (close_from <= t)[:, None].to(device) * end_bonus  # (b, V)
        bonus = steer.bonus(active, vocab_size) if steer is not None else None  # (b, V) or None
        if bonus is not None:
            bias = bias + bonus.to(device)
        scores = (logits.double() + bias) * inv_temperature  # (b, V)
        ids = _pick(scores, kth, noise[t])  # (b,)
        if steer is not None:
            steer.advance(active, [vocab.tokens[i] for i in ids.tolist()])
        pending.append(ids)
        if (t + 1) % CHECK_EVERY == 0 or t + 1 == steps:
            keep = []
            for j, chars in enumerate(torch.stack(pending, dim=1).tolist()):  # (b, steps since check)
                row = active[j]
                written[row] += chars
                stories[row] = story_end(vocab.decode(written[row]), specs[row].length)
                if stories[row] is None:
                    keep.append(j)
            pending = []
            if not keep:
                break
            if len(keep) < len(active):
                sel = torch.tensor(keep, device=device)
                active = [active[j] for j in keep]
                ids, kth, inv_temperature = ids[sel], kth[sel], inv_temperature[sel]
                close_from = close_from[sel.cpu()]
                noise = noise[:, sel]
                state = tuple(s[sel] for s in state)
        logits, state = step_fn(ids, state)  # (b, V)
    return [s if s is not None else "" for s in stories]
