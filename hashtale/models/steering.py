"""Mention steering: nudge each story to name its hashtags, in words the corpus uses for them, each word once.

The tag-set conditioning alone changes the text only a little (see the model card), so the sampler adds a bonus (in
nats, before the temperature) to the logits of characters that start or continue a word naming one of the story's top
`steer_tags` hashtags: the hashtag itself and its near words (`tag_words`, from hashtale/training/lexicon.py, stored in
the checkpoint: "ocean", "sea", "waves" for #ocean), up to `words_per_tag` of them per hashtag. Each such word is
steered until the story has written it once, then never again, so a story names its subject in a few different words
instead of repeating one tag. Three rules keep the text a story rather than a list:
- after a steered word, `min_gap` words get no bonus at all, so the mentions spread over the story;
- a word the model keeps turning into another ("long" for "longsleeve", "horse" for "horizon") is dropped after
  `max_misses` tries, so the text is not pulled into "long long sleeping" loops;
- the bonus shifts the model's own distribution (top-k and temperature still apply): it completes a word the model
  has begun, it does not write one the model finds unlikely.
Per row and from the row's own text only: a story still depends only on its spec.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from hashtale.models.chars import clean_tag

WORD_ENDINGS = ("", "s", "es")  # "shirts" names #shirt
WORD_BREAKS = " ,.;:!?”’\"'"  # end a word that is complete, so "shirt" does not run on into "shirtror"
WORD_OPENERS = "\"'“‘(-"  # after these a word starts
MISS_PREFIX = 3  # letters a written word shares with a steered word for it to count as a miss of it


@dataclass(frozen=True)
class SteerConfig:
    steer_tags: int = 5  # the set's first (best ranked) hashtags that are steered: all the service suggests
    words_per_tag: int = 3  # naming words steered per hashtag: its own word first, then its lexicon words in order
    start_bonus: float = 2.0  # nats: the first letter of a steered word, at a word start
    continue_bonus: float = 5.0  # nats: the next letter of such a word once it has begun (and ending it when complete)
    opening_bonus: float | None = None  # nats: the start bonus until the story's first steered word (None: start_bonus)
    max_misses: int = 2  # a steered word is dropped after this many words that began like it and became another
    min_gap: int = 8  # words after a steered word with no bonus at all: mentions spread over the story


class MentionSteer:
    """Per-row state: the word being written and, for the steered words not yet written, a table from each prefix of
    such a word to the characters that continue it."""

    def __init__(self, hashtags_per_row: list[tuple[str, ...]], tag_words: dict[str, tuple[str, ...]], vocab,
                 config: SteerConfig = SteerConfig()):
        self.vocab, self.config = vocab, config
        self.break_ids = vocab.ids_of(WORD_BREAKS + "s")
        self.targets: list[set[str]] = []  # per row: the words still to be written once
        for hashtags in hashtags_per_row:
            tags = [t for t in dict.fromkeys(clean_tag(h) for h in hashtags) if t][:config.steer_tags]
            words = [w for t in tags for w in (tag_words.get(t) or self._own_word(t))[:config.words_per_tag]]
            self.targets.append(set(words))
        self.next_ids = [self._table(t) for t in self.targets]  # per row: prefix -> character ids to boost
        self.word = ["" for _ in hashtags_per_row]  # lower-case letters of the word being written
        self.at_start = [True for _ in hashtags_per_row]  # the next character starts a word
        self.opened = [False for _ in hashtags_per_row]  # the row has written one of its steered words
        self.gap = [0 for _ in hashtags_per_row]  # words still to write, without any bonus, before the next mention
        self.misses: list[dict[str, int]] = [{} for _ in hashtags_per_row]  # per row: steered word -> misses

    @staticmethod
    def _own_word(tag: str) -> tuple[str, ...]:
        return (tag,) if tag.isalpha() else ()

    def _table(self, words: set[str]) -> dict[str, list[int]]:
        table: dict[str, set[int]] = {}
        for w in words:
            for k in range(len(w)):
                table.setdefault(w[:k], set()).update(self.vocab.ids_of({w[k], w[k].upper()}))
            table.setdefault(w, set()).update(self.break_ids)
        return {prefix: sorted(ids) for prefix, ids in table.items()}

    def _missed(self, row: int, target: str, word: str) -> bool:
        """Count `word` as a miss of `target` when it was pushed along it (a common prefix of MISS_PREFIX letters or
        more: "long" for "longsleeve", "horse" for "horizon") and became another word; True when the target has
        missed too often, so a word the model will not write does not turn the story into "long long sleeping"."""
        if word[:MISS_PREFIX] != target[:MISS_PREFIX] or len(word) < MISS_PREFIX:
            return False
        self.misses[row][target] = self.misses[row].get(target, 0) + 1
        return self.misses[row][target] >= self.config.max_misses

    def bonus(self, rows: list[int], vocab_size: int) -> torch.Tensor | None:
        """(b, V) float64 bonus for the active `rows` (None when no row is steered any more)."""
        if not any(self.next_ids[r] for r in rows):
            return None
        at, ids, values = [], [], []
        for j, r in enumerate(rows):
            prefix = self.word[r]
            if self.gap[r] or not (prefix or self.at_start[r]):  # in a gap even a word begun like one is let be
                continue
            boosted = self.next_ids[r].get(prefix, ())
            at += [j] * len(boosted)
            ids += boosted
            start = self.config.start_bonus if self.opened[r] or self.config.opening_bonus is None \
                else self.config.opening_bonus
            values += [self.config.continue_bonus if prefix else start] * len(boosted)
        out = torch.zeros(len(rows), vocab_size, dtype=torch.float64)
        out[at, ids] = torch.tensor(values, dtype=torch.float64)
        return out

    def advance(self, rows: list[int], chars: list[str]) -> None:
        """Record each active row's new character; a finished steered word is not steered again."""
        for r, ch in zip(rows, chars):
            if ch.isalpha():
                self.word[r] += ch.lower()
                continue
            word = self.word[r]
            if word and self.gap[r]:
                self.gap[r] -= 1
            if word and self.targets[r]:
                written = {w for w in self.targets[r] if any(word == w + end for end in WORD_ENDINGS)}
                self.opened[r] = self.opened[r] or bool(written)
                if written:
                    self.gap[r] = self.config.min_gap
                dropped = written | {w for w in self.targets[r] - written if self._missed(r, w, word)}
                if dropped:
                    self.targets[r] -= dropped
                    self.next_ids[r] = self._table(self.targets[r])
            self.word[r] = ""
            self.at_start[r] = ch.isspace() or ch in WORD_OPENERS
