"""Mention steering: which characters get a bonus, and that a named hashtag is not pushed again."""
from __future__ import annotations

import string

from models.chars import CharVocab
from models.steering import CONTINUE_BONUS, START_BONUS, MentionSteer

VOCAB = CharVocab.from_texts(string.ascii_letters + " .,")


def _boosted(steer: MentionSteer, row: int = 0) -> dict[str, float]:
    bonus = steer.bonus([row], len(VOCAB))
    return {} if bonus is None else {VOCAB.tokens[i]: float(v) for i, v in enumerate(bonus[0]) if v}


def _write(steer: MentionSteer, text: str, row: int = 0) -> None:
    for ch in text:
        steer.advance([row], [ch])


def test_steers_toward_a_naming_word_until_it_is_written():
    steer = MentionSteer([("#Ketch", "unknown-tag")], {"ketch": ("ship", "boat")}, VOCAB)
    assert _boosted(steer) == {c: START_BONUS for c in "sSbB"}  # a word start: the first letters
    _write(steer, "Th")
    assert _boosted(steer) == {}  # inside another word: nothing
    _write(steer, "e sh")
    assert _boosted(steer) == {"i": CONTINUE_BONUS, "I": CONTINUE_BONUS}
    _write(steer, "ip")
    assert set(_boosted(steer)) == set(" .,s")  # complete: end the word
    _write(steer, "s ")  # "ships" names #ketch
    assert steer.bonus([0], len(VOCAB)) is None  # nothing left to steer


def test_rows_are_independent_and_unknown_tags_name_themselves():
    steer = MentionSteer([("fox",), ("f-16",)], {}, VOCAB)
    assert _boosted(steer, 0) == {"f": START_BONUS, "F": START_BONUS}
    assert _boosted(steer, 1) == {}  # not a word, no lexicon entry
    _write(steer, "Foxes ", row=0)
    assert steer.bonus([0, 1], len(VOCAB)) is None
