"""The storyteller's character vocabulary and its text format.

A training document is `#tag #tag\n` (the priming line: the hashtag set the passage is about, possibly empty)
followed by the story on one line and a blank line. Generation is primed with the post's `#tag #tag\n`.
Newlines and `#` only ever occur in that framing, never inside a story.
"""
from __future__ import annotations

import re
import string

UNK = "<unk>"  # index 0: every character the corpus never showed
TAG_MARK = "#"
STORY_START = "\n"  # ends the priming line
STORY_END = "\n\n"  # a blank line between documents
FRAMING_CHARS = frozenset({TAG_MARK, "\n"})  # never sampled inside a story

_WHITESPACE = re.compile(r"\s+")


def clean_tag(seed_text: str) -> str:
    """A hashtag as the model sees it: no leading '#', no whitespace or framing characters, lower case."""
    tag = seed_text.strip().lstrip(TAG_MARK).lower()
    return "".join(ch for ch in tag if not ch.isspace() and ch not in FRAMING_CHARS)


def clean_story(text: str) -> str:
    """One line, single spaces, no framing characters: what the model is taught to write."""
    text = text.replace(TAG_MARK, "")
    return _WHITESPACE.sub(" ", text).strip()


def prompt_for(tags) -> str:
    """The priming text for a story about the hashtags `tags` (in order; empty ones dropped)."""
    cleaned = [clean_tag(t) for t in tags]
    return " ".join(f"{TAG_MARK}{t}" for t in cleaned if t) + STORY_START


def format_document(tags, story: str) -> str:
    """One training document; `len(prompt_for(tags))` leading characters are the prompt."""
    return prompt_for(tags) + clean_story(story) + STORY_END


class CharVocab:
    """Characters <-> integer ids. Id 0 is <unk>; characters are listed in sorted order after it."""

    def __init__(self, tokens: list[str]):
        if not tokens or tokens[0] != UNK:
            raise ValueError(f"a vocabulary starts with {UNK!r}")
        if len(set(tokens)) != len(tokens) or any(len(t) != 1 for t in tokens[1:]):
            raise ValueError("vocabulary tokens after <unk> must be distinct single characters")
        self.tokens = list(tokens)
        self.index = {ch: i for i, ch in enumerate(tokens)}

    @classmethod
    def from_texts(cls, *texts: str) -> "CharVocab":
        """Every character of the texts; lower-case letters and the framing are always in, so any hashtag maps."""
        chars = set(string.ascii_lowercase) | set(string.digits) | set(FRAMING_CHARS) | {" "}
        for text in texts:
            chars.update(text)
        return cls([UNK] + sorted(chars))

    @classmethod
    def printable(cls) -> "CharVocab":
        """Printable ASCII and newline: the vocabulary of the untrained fallback model."""
        return cls.from_texts(string.printable.replace("\r", "").replace("\t", "").replace("\x0b", "").replace("\x0c", ""))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(ch, 0) for ch in text]

    def decode(self, ids) -> str:
        """<unk> decodes to nothing (the sampler never emits it)."""
        return "".join(self.tokens[i] for i in ids if i != 0)

    def ids_of(self, chars) -> list[int]:
        return [self.index[ch] for ch in chars if ch in self.index]
