"""The hashtag vocabulary: special tokens first, then tags by descending frequency."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
PAD_ID, START_ID, END_ID, UNK_ID = range(len(SPECIALS))


class Vocab:
    def __init__(self, tokens: list[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a hashtag vocabulary starts with {SPECIALS}")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, tag_lists: Iterable[list[str]], min_count: int = 1, top_k: int | None = None) -> "Vocab":
        """Keep tags seen at least `min_count` times, then at most the `top_k` most frequent.
        Ties break alphabetically so the vocabulary does not depend on file order."""
        counts = Counter(tag for tags in tag_lists for tag in tags)
        ranked = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        if top_k is not None:
            ranked = ranked[:top_k]
        return cls(list(SPECIALS) + ranked)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def tags(self) -> list[str]:
        return self.tokens[len(SPECIALS):]

    def encode(self, tags: list[str]) -> list[int]:
        """Tags -> [<start>, ids..., <end>]; unknown tags are dropped (they carry nothing to learn)."""
        ids = [self.index[t] for t in tags if t in self.index]
        return [START_ID, *ids, END_ID]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Token ids -> tags, stopping at <end> and skipping the other special tokens."""
        out = []
        for i in ids:
            if i == END_ID:
                break
            if i >= len(SPECIALS):
                out.append(self.tokens[i])
        return out
