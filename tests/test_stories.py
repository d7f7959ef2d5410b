"""Story corpora: passages, their hashtags (vocabulary words and the lexicon), the split, training batches."""
from __future__ import annotations

import random

import pytest

from hashtale.models.chars import CharVocab, prompt_for
from hashtale.models.sentences import ends_at_sentence_end
from hashtale.models.storyteller import IGNORE_INDEX, NO_TAG
from hashtale.models.storyteller_runtime import tag_index_of
from tests.support.data import SHARED_DATASETS
from hashtale.training.lexicon import LEXICON, TagLexicon, load_tag_vocabulary
from hashtale.training.stories import (
    MAX_PASSAGE_CHARS, MAX_TAGS, MIN_PASSAGE_CHARS, PASSAGE_CHARS, Story, batches, cut_passages, encode_batch,
    fable_key, load_corpus, load_personabank, split_stories, training_tags,
)

PERSONABANK = SHARED_DATASETS / "personabank" / "original"
STORIES = SHARED_DATASETS / "stories"
N_PERSONABANK = 108


@pytest.fixture(scope="module")
def lexicon() -> TagLexicon:
    if not STORIES.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return TagLexicon(load_tag_vocabulary())


def test_tag_vocabulary_is_the_union_of_photos_and_corel(lexicon):
    assert len(lexicon.vocabulary) == len(set(lexicon.vocabulary))
    assert {"tshirt", "ketch", "accordion", "sea", "ocean", "polar", "white-tailed"} <= set(lexicon.vocabulary)
    assert set(LEXICON) <= set(lexicon.vocabulary)  # no lexicon entry for a hashtag the tagger cannot emit


def test_passage_tags_come_from_words_and_near_words(lexicon):
    tags = lexicon.tags_of("The foxes sailed their ship over the sea. The sea was wide.")
    assert tags.index("sea") < tags.index("fox")  # named twice, before a hashtag named once
    assert {"fox", "ketch", "schooner", "ocean", "sea"} <= set(tags)  # 'foxes' is a fox; a ship is a ketch
    assert lexicon.tags_of("A puppy ran.") == ["dalmatian", "snoopy"]
    assert lexicon.mentions("He played the fiddle.", ["#accordion"]) and not lexicon.mentions("He ran.", ["accordion"])


def test_passages_cut_at_paragraph_and_sentence_ends():
    paragraph = "One sentence here, with words. " * 40  # ~1,240 chars: cut at sentence ends
    story = Story("t", "First short paragraph.\n" + paragraph.strip() + "\nA tail.", "g")
    passages = cut_passages(story)
    assert len(passages) >= 2 and all(p.group == "g" for p in passages)
    assert " ".join(p.text for p in passages) == " ".join(story.text.split())  # nothing lost or reordered
    for p in passages:
        assert p.text[0].isupper() and p.text.endswith(".")
        assert MIN_PASSAGE_CHARS <= len(p.text) <= PASSAGE_CHARS + MAX_PASSAGE_CHARS
    dialogue = "“Go to the sea,” said the Fox. “It is wide!” The Crow flew off... and came back. " * 12
    passages = cut_passages(Story("t", dialogue.strip(), "g"))  # one long paragraph of dialogue
    assert len(passages) >= 2
    assert all(p.text.startswith("“") and ends_at_sentence_end(p.text) for p in passages)  # never after "off..."


def test_story_corpus_passages_and_tags(lexicon):
    passages = load_corpus(f"stories:{STORIES}", lexicon)
    assert len(passages) > 8000 and all("\n" not in p.text and "#" not in p.text for p in passages)
    assert sum(bool(p.tags) for p in passages) / len(passages) > 0.9
    assert not any("short history" in p.title.lower() for p in passages)


def test_fable_translations_share_a_group():
    assert fable_key("The Lion’s Share") == fable_key("THE LION'S SHARE") == fable_key("The Lion's Share")
    assert fable_key("The Wolf And The Lamb") == fable_key("The Wolf and the Lamb")
    assert fable_key("The Fox and the Grapes") != fable_key("The Fox and the Crow")


def test_split_holds_out_whole_groups(lexicon):
    stories = [Story(f"s{i}", "Text.", f"g{i // 3}") for i in range(60)]  # 20 groups of 3 passages
    train, val = split_stories(stories, 0.1, seed=1337)
    assert len(val) == 6 and not {s.group for s in train} & {s.group for s in val}
    assert [s.title for s in split_stories(stories, 0.1, seed=1337)[1]] == [s.title for s in val]
    assert [s.title for s in split_stories(stories, 0.1, seed=1)[1]] != [s.title for s in val]


def test_personabank_loads_as_tagged_passages(lexicon):
    if not PERSONABANK.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    stories = load_personabank(PERSONABANK)
    assert len(stories) == N_PERSONABANK and all("#" not in s.text for s in stories)
    passages = load_corpus(f"personabank:{PERSONABANK}", lexicon)
    assert len(passages) > N_PERSONABANK and {p.group for p in passages} == {s.group for s in stories}


def test_training_tags_are_random_subsets():
    story = Story("t", "x", "g", tags=[f"t{i}" for i in range(12)])
    draws = [training_tags(story, random.Random(seed)) for seed in range(50)]
    assert all(1 <= len(d) <= MAX_TAGS and set(d) <= set(story.tags[:8]) for d in draws)
    assert len({tuple(d) for d in draws}) > 25
    assert training_tags(Story("t", "x", "g"), random.Random(0)) == []


def test_batch_scores_story_characters_only():
    stories = [Story("a", "A fox ran.", "a"), Story("b", "The sea is wide and deep.", "b")]
    vocab = CharVocab.from_texts(*(s.text for s in stories))
    tag_index = tag_index_of(["fox", "sea"])
    tag_sets = [["fox", "unknown"], []]
    inputs, targets, tags = encode_batch(stories, tag_sets, vocab, tag_index)
    assert inputs.shape == targets.shape and tags.tolist() == [[1], [NO_TAG]]  # unknown hashtags are dropped
    first = prompt_for(tag_sets[0])
    assert first == "#fox #unknown\n"
    assert vocab.decode(inputs[0].tolist()).startswith(first + "A fox ran.")
    assert (targets[0, : len(first) - 1] == IGNORE_INDEX).all()
    assert targets[0, len(first) - 1] == vocab.index["A"]
    scored = int((targets != IGNORE_INDEX).sum())
    assert scored == sum(len(s.text) + 2 for s in stories)  # each story and its blank line; padding never


def test_batches_cover_every_passage_once():
    stories = [Story(str(i), "x" * random.Random(i).randrange(10, 500), str(i)) for i in range(300)]
    plan = batches(stories, 16, random.Random(0))
    assert sorted(i for b in plan for i in b) == list(range(300)) and max(map(len, plan)) == 16
    assert batches(stories, 16) == batches(stories, 16)
