"""HARRISON-format lists: the real HARRISON files, the shared photos, splits written and re-read."""
from pathlib import Path

import pytest

from hashtale.models.vocab import END_ID, SPECIALS, START_ID, Vocab
from hashtale.training.harrison import Example, holdout_split, read_split, write_split
from tests.support.data import SHARED_DATASETS

HARRISON_POSTS = 57_383
HARRISON_TAGS = 997
PHOTO_TAGS = 118  # distinct tags in tag_list.txt (the README says 117: "kids" comes on top)


def test_reads_the_real_harrison_lists():
    if not (SHARED_DATASETS / "harrison").is_dir():
        pytest.skip("shared datasets absent")
    examples = read_split(SHARED_DATASETS / "harrison")
    assert len(examples) == HARRISON_POSTS
    assert examples[0].tags == ["sea", "instapic", "instagram", "trip", "travel"]
    assert all(1 <= len(e.tags) <= 10 for e in examples)
    vocab = Vocab.build([e.tags for e in examples])
    assert len(vocab.tags) == HARRISON_TAGS
    assert len(Vocab.build([e.tags for e in examples], top_k=100).tags) == 100


def test_reads_the_shared_photos(photo_paths):
    examples = read_split(photo_paths[0].parents[2])
    assert len(examples) == len(photo_paths)
    assert all(e.image.is_file() for e in examples[:50])
    assert len(Vocab.build([e.tags for e in examples]).tags) == PHOTO_TAGS


def test_split_written_relative_and_read_back(tmp_path, photo_paths):
    examples = [Example(p, ["a", "b"] if i % 2 else ["c"]) for i, p in enumerate(photo_paths[:10])]
    kept, held = holdout_split(examples, 0.2, seed=3)
    assert len(held) == 2 and len(kept) == 8
    assert {e.image for e in kept}.isdisjoint({e.image for e in held})
    assert holdout_split(examples, 0.2, seed=3) == (kept, held)  # a fixed seed gives the same split
    folder = write_split(tmp_path / "split" / "test", held)
    assert not Path((folder / "data_list.txt").read_text().split()[0]).is_absolute()
    assert read_split(folder) == held


def test_line_count_mismatch_is_an_error(tmp_path):
    (tmp_path / "data_list.txt").write_text("a.jpg\nb.jpg\n")
    (tmp_path / "tag_list.txt").write_text("x\n")
    with pytest.raises(ValueError, match="2 images but 1 tag lines"):
        read_split(tmp_path)


def test_vocab_min_count_order_and_encoding():
    vocab = Vocab.build([["b", "a"], ["a"], ["c", "a", "b"]], min_count=2)
    assert vocab.tokens == [*SPECIALS, "a", "b"]  # by count, "c" (1) dropped
    assert vocab.encode(["b", "c", "a"]) == [START_ID, 5, 4, END_ID]
    assert vocab.decode([START_ID, 5, 4, END_ID, 4]) == ["b", "a"]
