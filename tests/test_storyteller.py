"""The storyteller model: shapes, tag-set conditioning, the sampling cell, a tiny real training run (loss falls,
resume, export)."""
from __future__ import annotations

import json

import pytest
import torch

from hashtale.cli import main
from hashtale.models.chars import CharVocab, clean_tag, prompt_for
from hashtale.models.checkpoint import load_checkpoint
from hashtale.models.sentences import ends_at_sentence_end
from hashtale.models.sampling import StorySpec
from hashtale.models.storyteller import CONDITIONS, IGNORE_INDEX, NO_TAG, StepCell, Storyteller, StorytellerConfig
from hashtale.models.storyteller_runtime import CHECKPOINT_KIND, StoryWriter
from tests.support.data import SHARED_DATASETS
from hashtale.training.story_quality import starts_mid_word, words

AESOP = SHARED_DATASETS / "aesop" / "aesop_for_children.json"
N_FABLES = 40  # a small real corpus for the tiny training run
TINY = ["--n-embd", "16", "--n-hidden", "48", "--n-tag-embd", "8", "--batch-size", "8", "--seq-len", "50",
        "--threads", "1"]


def test_forward_shapes_and_loss():
    config = StorytellerConfig(vocab_size=30, n_embd=8, n_hidden=12, n_layer=2)
    model = Storyteller(config)
    idx = torch.randint(0, 30, (3, 7))
    logits, loss, (h, c) = model(idx)
    assert logits.shape == (3, 7, 30) and loss is None
    assert h.shape == c.shape == (2, 3, 12)
    targets = idx.clone()
    targets[:, :2] = IGNORE_INDEX
    _, loss, _ = model(idx, targets, state=(h, c))
    assert loss.ndim == 0 and loss.item() > 0


@pytest.mark.parametrize("condition", CONDITIONS)
def test_step_cell_matches_forward(condition):
    model = Storyteller(StorytellerConfig(vocab_size=30, n_embd=8, n_hidden=12, n_layer=3, n_tags=6, n_tag_embd=4,
                                          condition=condition)).eval()
    idx = torch.randint(0, 30, (4, 9))
    tags = torch.tensor([[1, 2], [3, NO_TAG], [NO_TAG, NO_TAG], [5, 4]])  # (B, K); row 2: no known hashtag
    with torch.no_grad():
        logits, _, (h, c) = model(idx, tags=tags)
        cell = StepCell(model)
        state = cell.start_state(tags)
        for t in range(9):
            step_logits, state = cell(idx[:, t], state)
            assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
    assert torch.allclose(torch.stack(state[0:-1:2]), h, atol=1e-5)
    assert torch.allclose(torch.stack(state[1:-1:2]), c, atol=1e-5)


@pytest.mark.parametrize("condition", ["init", "input", "input+init"])
def test_the_tag_set_changes_every_step_or_the_start(condition):
    torch.manual_seed(0)
    model = Storyteller(StorytellerConfig(vocab_size=30, n_embd=8, n_hidden=12, n_tags=6, n_tag_embd=4,
                                          condition=condition, dropout=0.0)).eval()
    idx = torch.randint(0, 30, (1, 5)).expand(2, 5)
    with torch.no_grad():
        logits, _, _ = model(idx, tags=torch.tensor([[1], [2]]))
        same, _, _ = model(idx, tags=torch.tensor([[2, 1], [1, 2]]))  # a set: order does not matter
    assert not torch.allclose(logits[0], logits[1])
    assert torch.allclose(same[0], same[1], atol=1e-6)


def test_vocabulary_maps_any_hashtag():
    vocab = CharVocab.from_texts("Abc.")
    assert vocab.tokens[0] == "<unk>"
    assert 0 not in vocab.encode(prompt_for(["#Sunset2024", "beach"]))
    assert prompt_for(["#Sunset2024", "", "beach"]) == "#sunset2024 #beach\n" and prompt_for([]) == "\n"
    assert vocab.encode("é") == [0] and vocab.decode([0, vocab.index["A"]]) == "A"
    assert clean_tag("  #Sea Side\n") == "seaside"


def test_shipped_stories_name_their_subject_in_several_words_once_each_and_end_at_a_sentence_end():
    writer = StoryWriter.load()  # the shipped checkpoint and the service's steering
    assert writer.trained
    naming = set(writer.tag_words["ocean"])  # ocean, sea, waves
    stories = writer.write([StorySpec(("#ocean",), 500, 0.6, 20, seed) for seed in range(6)])
    named = [[w for w in words(story) if w in naming or w.rstrip("s") in naming] for story in stories]
    for story, names in zip(stories, named):
        assert ends_at_sentence_end(story) and not starts_mid_word(story), story
        assert len(names) <= 2 * len(naming), story  # steered once each (the model may add one of its own)
    assert sum(len(set(names)) >= 2 for names in named) >= 4  # most name the subject in two words or more


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of real Aesop fables in the stories/ format (JSON lines)."""
    if not AESOP.exists():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    folder = tmp_path_factory.mktemp("fables")
    records = [{"title": f["title"], "text": f["fable"]} for f in json.loads(AESOP.read_text())[:N_FABLES]]
    (folder / "aesop.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.mark.slow  # a training run
def test_tiny_training_run_loss_falls_resumes_and_exports(corpus, tmp_path):
    out = tmp_path / "run"
    common = ["train-storyteller", "--corpus", f"stories:{corpus}", "--val-fraction", "0.1", "--out", str(out), *TINY]
    assert main([*common, "--epochs", "2", "--lr", "1e-2"]) == 0
    last = load_checkpoint(out / "last.pt", kind=CHECKPOINT_KIND)
    history = last["extra"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["val_loss"] < history[0]["val_loss"] < 3.0  # nats/char; uniform over ~60 chars is ~4.1
    assert last["optimizer"] is not None and (out / "loss.png").stat().st_size > 0

    export = tmp_path / "storyteller.pt"
    assert main([*common, "--epochs", "3", "--lr", "1e-2", "--resume", str(out / "last.pt"),
                 "--export", str(export)]) == 0
    resumed = load_checkpoint(out / "last.pt", kind=CHECKPOINT_KIND)
    assert [h["epoch"] for h in resumed["extra"]["history"]] == [1, 2, 3]
    assert resumed["step"] > last["step"]

    # The exported file alone (float16, no optimizer) rebuilds the model: no corpus needed.
    shipped = torch.load(export, weights_only=False)
    assert shipped["optimizer"] is None and shipped["model"]["lm_head.weight"].dtype == torch.float16
    writer = StoryWriter.load(export)
    assert writer.trained and len(writer.version) == 12
    assert "fox" in writer.tags and writer.model.config.condition == "input+init"
    stories = writer.write([StorySpec(("#fox", "sea"), 80, 0.8, 10, seed) for seed in range(8)])
    assert all(len(story) > 20 and (story[0].isupper() or story[0] in "“‘\"'") for story in stories)


def test_story_context_tags_photos_at_the_taggers_own_input_size(photo_paths):
    from hashtale.training.evaluate_storyteller import predict_hashtags
    from hashtale.training.harrison import Example

    class Recorder:  # a tagger whose encoder takes another side than the default
        input_size = 64
        sides: list[tuple[int, int]] = []

        def suggest(self, images, k):
            self.sides.append(tuple(images.shape[2:]))
            return [[] for _ in images]

    tagger = Recorder()
    assert predict_hashtags(tagger, [Example(p, ["pizza"]) for p in photo_paths[:2]]) == [(), ()]
    assert tagger.sides == [(64, 64)]
