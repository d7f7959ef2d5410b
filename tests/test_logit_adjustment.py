"""Post-hoc logit adjustment: the prior of the training steps' targets, the bias, and its place in a checkpoint."""
import math

import pytest
import torch

from hashtale.models.checkpoint import load_checkpoint, save_checkpoint, update_model_args
from hashtale.models.logit_adjustment import LogitAdjustment
from hashtale.models.vocab import END_ID, SPECIALS, Vocab
from hashtale.training.harrison import Example
from hashtale.training.logit_adjustment import step_log_prior


def test_prior_counts_every_tag_and_one_end_per_post(tmp_path):
    vocab = Vocab(list(SPECIALS) + ["sky", "tiger", "lynx"])
    posts = [Example(tmp_path / "a.jpg", ["sky", "tiger"]), Example(tmp_path / "b.jpg", ["sky"]),
             Example(tmp_path / "c.jpg", ["sky", "lynx", "tiger"])]
    log_prior = step_log_prior(posts, vocab, max_tags=2)  # c keeps its first two tags
    total = 2 + 1 + 2 + 3  # tags kept + one <end> per post
    shares = {"sky": 3, "tiger": 1, "lynx": 1}
    assert log_prior[END_ID] == pytest.approx(math.log(3 / total))
    for tag, n in shares.items():
        assert log_prior[vocab.index[tag]] == pytest.approx(math.log(n / total))
    assert [log_prior[i] for i in range(len(SPECIALS)) if i != END_ID] == [0.0, 0.0, 0.0]


def test_bias_raises_rare_tags_more_than_frequent_ones_and_tau_zero_is_none():
    adjustment = LogitAdjustment(tau=0.5, log_prior=(0.0, math.log(0.5), math.log(0.01)))
    bias = adjustment.bias()
    assert bias.tolist() == pytest.approx([0.0, -0.5 * math.log(0.5), -0.5 * math.log(0.01)])
    assert LogitAdjustment.from_args(adjustment.to_args()) == adjustment
    assert LogitAdjustment.from_args(None) is None


def test_update_model_args_keeps_float16_weights(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", kind="hashtagger", model=torch.nn.Linear(2, 2),
                           model_args={"min_score": 0.1, "arch": "sat"}, vocab=list(SPECIALS), step=1, metrics={},
                           half=True)
    update_model_args(path, min_score=0.3, logit_adjustment={"tau": 0.5, "log_prior": [0.0] * 4})
    raw = torch.load(path, map_location="cpu", weights_only=False)
    assert raw["model"]["weight"].dtype == torch.float16
    assert raw["model_args"] == {"min_score": 0.3, "arch": "sat", "logit_adjustment": {"tau": 0.5, "log_prior": [0.0] * 4}}
    update_model_args(path, logit_adjustment=None)
    assert "logit_adjustment" not in load_checkpoint(path)["model_args"]
