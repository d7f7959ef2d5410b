"""The storyteller model: shapes, the sampling cell, a tiny real training run (loss falls, resume, export)."""
from __future__ import annotations

import json

import pytest
import torch

from cli import main
from models.chars import CharVocab, clean_tag, prompt_for
from models.checkpoint import load_checkpoint
from models.sampling import StorySpec
from models.storyteller import IGNORE_INDEX, StepCell, Storyteller, StorytellerConfig
from models.writer import CHECKPOINT_KIND, StoryWriter
from tests.conftest import SHARED_DATASETS

AESOP = SHARED_DATASETS / "aesop" / "aesop_for_children.json"
N_FABLES = 40  # a small real corpus for the tiny training run
TINY = ["--n-embd", "16", "--n-hidden", "48", "--batch-size", "8", "--seq-len", "50", "--threads", "1"]


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


def test_step_cell_matches_forward():
    model = Storyteller(StorytellerConfig(vocab_size=30, n_embd=8, n_hidden=12, n_layer=3)).eval()
    idx = torch.randint(0, 30, (4, 9))
    with torch.no_grad():
        logits, _, (h, c) = model(idx)
        cell = StepCell(model)
        state = cell.zero_state(4)
        for t in range(9):
            step_logits, state = cell(idx[:, t], state)
            assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
    assert torch.allclose(torch.stack(state[0::2]), h, atol=1e-5)
    assert torch.allclose(torch.stack(state[1::2]), c, atol=1e-5)


def test_vocabulary_maps_any_hashtag():
    vocab = CharVocab.from_texts("Abc.")
    assert vocab.tokens[0] == "<unk>"
    assert 0 not in vocab.encode(prompt_for("#Sunset2024"))
    assert vocab.encode("é") == [0] and vocab.decode([0, vocab.index["A"]]) == "A"
    assert clean_tag("  #Sea Side\n") == "seaside"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder of real Aesop fables, as plain .txt stories."""
    if not AESOP.exists():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    folder = tmp_path_factory.mktemp("fables")
    for i, fable in enumerate(json.loads(AESOP.read_text())[:N_FABLES]):
        (folder / f"{i:03d}_{fable['title'].replace(' ', '_')}.txt").write_text(fable["fable"])
    return folder


def test_tiny_training_run_loss_falls_resumes_and_exports(corpus, tmp_path):
    out = tmp_path / "run"
    common = ["train-storyteller", "--corpus", f"text:{corpus}", "--tag-vocabulary", "", "--out", str(out), *TINY]
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
    story = writer.write([StorySpec("#fox", 80, 0.8, 10, 0)])[0]
    assert len(story) > 20
