"""Story corpus loaders and the training streams, on the real shared corpora."""
from __future__ import annotations

import random

import pytest

from models.chars import CharVocab, prompt_for
from models.storyteller import IGNORE_INDEX
from tests.conftest import SHARED_DATASETS
from training.stories import (
    encode_stories, load_aesop, load_corpus, load_personabank, load_tag_vocabulary, load_text_folder, split_stories,
)

PERSONABANK = SHARED_DATASETS / "personabank" / "original"
AESOP = SHARED_DATASETS / "aesop" / "aesop_for_children.json"
TAG_VOCABULARY = SHARED_DATASETS / "harrison" / "vocab_index.txt"
N_PERSONABANK = 108
N_AESOP = 146


@pytest.fixture(scope="module")
def personabank():
    if not PERSONABANK.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return load_personabank(PERSONABANK)


def test_personabank_drops_name_markers_and_reads_topics(personabank):
    assert len(personabank) == N_PERSONABANK
    assert "#" in (PERSONABANK / "a009_my_new_bunny_interp.txt").read_text()
    assert all("#" not in s.text and "\n" not in s.text for s in personabank)
    bunny = next(s for s in personabank if s.title == "my new bunny interp")
    assert bunny.tags[0] == "pets"  # the CSV topic comes first
    assert "bunny" in bunny.tags  # a title word the story uses
    assert "John " in bunny.text or "John," in bunny.text or "John." in bunny.text  # "John#" -> "John"


def test_aesop_tags_are_title_nouns():
    stories = load_aesop(AESOP)
    assert len(stories) == N_AESOP
    frogs = stories[0]
    assert frogs.title == "The Frogs and the Ox"
    assert frogs.tags == ["frog", "ox"]  # singular where the fable uses it; "the", "and" are not tags
    assert frogs.text.startswith("An Ox came down")


def test_text_folder_and_vocabulary_tags(tmp_path):
    (tmp_path / "red_fox.txt").write_text("The red fox ran to the sea.\nIt was a happy day at the beach.\n")
    (tmp_path / "empty.txt").write_text("  \n")
    stories = load_text_folder(tmp_path)
    assert [s.title for s in stories] == ["empty", "red fox"]
    assert stories[1].text == "The red fox ran to the sea. It was a happy day at the beach."
    kept = load_corpus(f"text:{tmp_path}", frozenset({"sea", "beach", "dog", "the"}))
    assert len(kept) == 1  # the empty story is dropped
    assert kept[0].tags == ["red", "fox"]
    assert kept[0].related == ["beach", "sea"]  # vocabulary words in the story; stopwords never


def test_load_corpus_rejects_unknown_kind():
    with pytest.raises(ValueError, match="KIND:PATH"):
        load_corpus("poems:/tmp")


def test_tag_vocabulary_reads_harrison_format():
    vocab = load_tag_vocabulary(TAG_VOCABULARY)
    assert {"love", "friend", "beach"} <= vocab


def test_split_holds_out_ten_percent_by_fixed_seed(personabank):
    train, val = split_stories(personabank, 0.1, seed=1337)
    again_train, again_val = split_stories(personabank, 0.1, seed=1337)
    _, other_val = split_stories(personabank, 0.1, seed=1)
    assert len(val) == 11 and len(train) == N_PERSONABANK - 11
    assert [s.title for s in val] == [s.title for s in again_val]
    assert [s.title for s in val] != [s.title for s in other_val]
    assert not {s.title for s in train} & {s.title for s in val}


def test_stream_scores_story_characters_only(personabank):
    stories = personabank[:3]
    vocab = CharVocab.from_texts(*(s.text for s in stories))
    inputs, targets = encode_stories(stories, vocab)
    assert inputs.shape == targets.shape
    text = vocab.decode(inputs.tolist())
    first = prompt_for(stories[0].tags[0])
    assert text.startswith(first + stories[0].text[:20])
    # Targets inside a priming line ("#tag\n") carry no loss; every story character does.
    assert (targets[: len(first) - 1] == IGNORE_INDEX).all()
    assert targets[len(first) - 1] == vocab.index[stories[0].text[0]]
    n_prompt_chars = sum(len(prompt_for(s.tags[0])) for s in stories)
    assert int((targets == IGNORE_INDEX).sum()) == n_prompt_chars - 1  # the stream's first character is no target


def test_training_stream_varies_tags_and_order(personabank):
    stories = personabank[:20]
    vocab = CharVocab.from_texts(*(s.text for s in stories))
    a = vocab.decode(encode_stories(stories, vocab, random.Random(1))[0].tolist())
    b = vocab.decode(encode_stories(stories, vocab, random.Random(2))[0].tolist())
    assert a != b and len(a) == pytest.approx(len(b), rel=0.01)
    heads = {line for line in a.split("\n") if line.startswith("#")}
    assert len(heads) >= 10  # each story primed with a tag
