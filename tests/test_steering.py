"""Mention steering: which characters get a bonus, and that a steered word is written once, not pushed again."""
from __future__ import annotations

import string

from hashtale.models.chars import CharVocab
from hashtale.models.steering import MentionSteer, SteerConfig

VOCAB = CharVocab.from_texts(string.ascii_letters + " .,”")
CONFIG = SteerConfig()


def _boosted(steer: MentionSteer, row: int = 0) -> dict[str, float]:
    bonus = steer.bonus([row], len(VOCAB))
    return {} if bonus is None else {VOCAB.tokens[i]: float(v) for i, v in enumerate(bonus[0]) if v}


def _write(steer: MentionSteer, text: str, row: int = 0) -> None:
    for ch in text:
        steer.advance([row], [ch])


def test_steers_toward_each_naming_word_until_it_is_written_once():
    steer = MentionSteer([("#Ketch", "unknown-tag")], {"ketch": ("ship", "boat")}, VOCAB, SteerConfig(min_gap=0))
    assert _boosted(steer) == {c: CONFIG.start_bonus for c in "sSbB"}  # a word start: the first letters
    _write(steer, "Th")
    assert _boosted(steer) == {}  # inside another word: nothing
    _write(steer, "e sh")
    assert _boosted(steer) == {"i": CONFIG.continue_bonus, "I": CONFIG.continue_bonus}
    _write(steer, "ip")
    assert set(_boosted(steer)) == set(" .,s”")  # complete: end the word
    _write(steer, "s ")  # "ships" is written: "ship" is not steered again, "boat" still is
    assert _boosted(steer) == {c: CONFIG.start_bonus for c in "bB"}
    _write(steer, "a boat.")
    assert steer.bonus([0], len(VOCAB)) is None  # every naming word written once: nothing left to steer


def test_words_per_tag_and_steered_tags_bound_the_words():
    tag_words = {"ocean": ("ocean", "sea", "waves"), "tree": ("tree", "oak", "pine"), "sky": ("sky",)}
    steer = MentionSteer([("ocean", "tree", "sky")], tag_words, VOCAB, SteerConfig(steer_tags=2, words_per_tag=2))
    assert steer.targets[0] == {"ocean", "sea", "tree", "oak"}  # the first 2 words of the first 2 hashtags
    shared = MentionSteer([("tshirt", "longsleeve")], {"tshirt": ("tshirt", "shirt"), "longsleeve": ("sleeve", "shirt")},
                          VOCAB)
    assert shared.targets[0] == {"tshirt", "shirt", "sleeve"}  # a word naming two hashtags is steered once


def test_rows_are_independent_and_unknown_tags_name_themselves():
    steer = MentionSteer([("fox",), ("f-16",)], {}, VOCAB)  # (the default config)
    assert _boosted(steer, 0) == {"f": CONFIG.start_bonus, "F": CONFIG.start_bonus}
    assert _boosted(steer, 1) == {}  # not a word, no lexicon entry
    _write(steer, "Foxes ", row=0)
    assert steer.bonus([0, 1], len(VOCAB)) is None


def test_a_word_the_model_keeps_missing_is_dropped():
    steer = MentionSteer([("longsleeve",)], {"longsleeve": ("longsleeve", "sleeve")}, VOCAB,
                         SteerConfig(max_misses=2, min_gap=0))
    _write(steer, "She was long ")  # pushed along "longsleeve", became "long": one miss
    assert steer.targets[0] == {"longsleeve", "sleeve"}
    _write(steer, "and she longed ")  # the second miss: no longer steered, the text is not pulled to "long" again
    assert steer.targets[0] == {"sleeve"}
    _write(steer, "to sleep, with a sleeve.")  # one miss of "sleeve", then written
    assert steer.bonus([0], len(VOCAB)) is None


def test_opening_bonus_and_gap_between_mentions():
    config = SteerConfig(start_bonus=1.0, continue_bonus=5.0, opening_bonus=2.0, min_gap=2)
    steer = MentionSteer([("ocean",)], {"ocean": ("ocean", "sea", "waves")}, VOCAB, config)
    assert _boosted(steer) == {c: 2.0 for c in "oOsSwW"}  # the story's first steered word: the opening bonus
    _write(steer, "The se")
    assert _boosted(steer) == {"a": 5.0, "A": 5.0}
    _write(steer, "a ")
    assert _boosted(steer) == {}  # a gap of two words with no bonus at all
    _write(steer, "and wa")
    assert _boosted(steer) == {}  # even a word begun like "waves" is let be
    _write(steer, "s ")
    assert _boosted(steer) == {c: 1.0 for c in "oOwW"}  # then the plain start bonus, for the words not yet written
