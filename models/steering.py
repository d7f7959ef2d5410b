"""Mention steering: nudge each story to name its top hashtags once, in words the corpus uses for them.

The tag-set conditioning alone changes the text only a little (see the model card), so the sampler adds a bonus (in
nats) to the logits of characters that start or continue a word naming one of the story's top `STEER_TAGS` hashtags
(the hashtag itself or a near word: `tag_words`, from training/lexicon.py, stored in the checkpoint), until the story
has named that hashtag once. The bonus shifts the model's own distribution (a letter it finds unlikely stays
unlikely: 3 nats is a factor of 20), top-k and temperature still apply, and a named hashtag is never pushed again,
so a story cannot win by repeating its tags. Per row and from the row's own text only: a story still depends only on its spec.
"""
from __future__ import annotations

import torch

from models.chars import clean_tag

STEER_TAGS = 5  # the set's first (best ranked) hashtags that are steered: all the service suggests
START_BONUS = 1.0  # nats: the first letter of a word that would name a steered hashtag, at a word start
CONTINUE_BONUS = 3.0  # nats: the next letter of such a word once it has begun
WORD_ENDINGS = ("", "s", "es")  # "shirts" names #shirt
WORD_BREAKS = " ,.;:!?”’\"'"  # end a word that is complete, so "shirt" does not run on into "shirtror"


class MentionSteer:
    """Per-row state: the word being written and, for the hashtags not yet named, a table from each prefix of a
    naming word to the characters that continue it."""

    def __init__(self, hashtags_per_row: list[tuple[str, ...]], tag_words: dict[str, tuple[str, ...]], vocab,
                 start_bonus: float = START_BONUS, continue_bonus: float = CONTINUE_BONUS):
        self.vocab = vocab
        self.start_bonus, self.continue_bonus = start_bonus, continue_bonus
        self.break_ids = vocab.ids_of(WORD_BREAKS + "s")
        self.targets: list[dict[str, tuple[str, ...]]] = []  # per row: hashtag -> words that name it
        for hashtags in hashtags_per_row:
            tags = [t for t in dict.fromkeys(clean_tag(h) for h in hashtags) if t][:STEER_TAGS]
            self.targets.append({t: words for t in tags if (words := tag_words.get(t) or self._own_word(t))})
        self.next_ids = [self._table(t) for t in self.targets]  # per row: prefix -> character ids to boost
        self.word = ["" for _ in hashtags_per_row]  # lower-case letters of the word being written
        self.at_start = [True for _ in hashtags_per_row]  # the next character starts a word

    @staticmethod
    def _own_word(tag: str) -> tuple[str, ...]:
        return (tag,) if tag.isalpha() else ()

    def _table(self, targets: dict[str, tuple[str, ...]]) -> dict[str, list[int]]:
        table: dict[str, set[int]] = {}
        for words in targets.values():
            for w in words:
                for k in range(len(w)):
                    table.setdefault(w[:k], set()).update(self.vocab.ids_of({w[k], w[k].upper()}))
                table.setdefault(w, set()).update(self.break_ids)
        return {prefix: sorted(ids) for prefix, ids in table.items()}

    def bonus(self, rows: list[int], vocab_size: int) -> torch.Tensor | None:
        """(b, V) float64 bonus for the active `rows` (None when no row is steered any more)."""
        at, ids, values = [], [], []
        for j, r in enumerate(rows):
            prefix = self.word[r]
            if not (prefix or self.at_start[r]):
                continue
            boosted = self.next_ids[r].get(prefix, ())
            at += [j] * len(boosted)
            ids += boosted
            values += [self.continue_bonus if prefix else self.start_bonus] * len(boosted)
        if not any(self.next_ids[r] for r in rows):
            return None
        out = torch.zeros(len(rows), vocab_size, dtype=torch.float64)
        out[at, ids] = torch.tensor(values, dtype=torch.float64)
        return out

    def advance(self, rows: list[int], chars: list[str]) -> None:
        """Record each active row's new character; a finished word that names a hashtag stops its steering."""
        for r, ch in zip(rows, chars):
            if ch.isalpha():
                self.word[r] += ch.lower()
                continue
            word = self.word[r]
            if word and self.targets[r]:
                named = [t for t, words in self.targets[r].items()
                         if any(word == w + end for w in words for end in WORD_ENDINGS)]
                for t in named:
                    del self.targets[r][t]
                if named:
                    self.next_ids[r] = self._table(self.targets[r])
            self.word[r] = ""
            self.at_start[r] = ch.isspace() or ch in "\"'“‘(-"
