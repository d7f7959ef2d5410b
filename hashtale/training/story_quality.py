"""Does a generated story read as text? Word-level checks against the training corpus's vocabulary, and whether it
starts and ends where a sentence does."""
from __future__ import annotations

import re

from hashtale.models.sentences import ends_at_sentence_end  # the sampler's definition, so the two cannot disagree

_WORD = re.compile(r"[a-z]+(?:['’][a-z]+)*")
NGRAM = 3


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def corpus_vocabulary(texts) -> frozenset[str]:
    return frozenset(w for text in texts for w in words(text))


def non_words(text: str, vocabulary: frozenset[str]) -> tuple[int, int]:
    """(tokens not in the corpus vocabulary, tokens)."""
    tokens = words(text)
    return sum(t not in vocabulary for t in tokens), len(tokens)


def distinct_ngrams(text: str, n: int = NGRAM) -> tuple[int, int]:
    """(distinct word n-grams, n-grams): their ratio is 1 for a story that never repeats a phrase."""
    tokens = words(text)
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)), len(grams)


def starts_mid_word(text: str) -> bool:
    """A story starts mid-word (or mid-sentence) when it is empty or its first character is a lower-case letter
    (e.g. "tiful connime." or "s was the Ass")."""
    first = text.lstrip()[:1]
    return not first or first.islower()
