"""Several SAT decoders decoding as one: the mean of their step logits, a checkpoint the runtime loads."""
import pytest
import torch

from hashtale import cli
from hashtale.models.beam import beam_search
from hashtale.models.checkpoint import load_checkpoint, save_checkpoint
from hashtale.models.encoder import BACKBONES, DEFAULT_BACKBONE
from hashtale.models.hashtagger import EnsembleConfig, SATConfig, SATEnsemble, SATHashtagger
from hashtale.models.hashtagger_runtime import CHECKPOINT_KIND, Tagger
from hashtale.models.vocab import SPECIALS, START_ID

L, D = 4, 8  # tiny grid and feature size
V = len(SPECIALS) + 4
CONFIG = dict(vocab_size=V, feature_dim=D, num_locations=L, embed_dim=6, hidden_dim=10, attention_dim=5, dropout=0.0,
              aux_weight=1.0, aux_guide=True)


def _members(n):
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(SATHashtagger(SATConfig(**CONFIG)).eval())
    return out


def _ensemble(members):
    ensemble = SATEnsemble(EnsembleConfig(members=[vars(m.config) for m in members])).eval()
    for slot, member in zip(ensemble.members, members):
        slot.load_state_dict(member.state_dict())
    return ensemble


def test_every_step_is_the_mean_of_the_members_logits():
    members = _members(2)
    ensemble = _ensemble(members)
    feats, tokens = torch.randn(3, L, D), torch.full((3,), START_ID)
    logits, alpha, state = ensemble.step(feats, tokens, ensemble.init_state(feats))
    alone = [m.step(feats, tokens, m.init_state(feats)) for m in members]
    assert torch.allclose(logits, (alone[0][0] + alone[1][0]) / 2, atol=1e-6)
    assert torch.equal(alpha, alone[0][1])  # the first member's attention and heat maps
    assert len(state) == 2 * 4 and torch.equal(ensemble.tag_maps(feats), members[0].tag_maps(feats))


def test_an_ensemble_of_one_decoder_twice_decodes_as_the_decoder():
    member = _members(1)[0]
    feats = torch.randn(2, L, D)
    got = beam_search(_ensemble([member, member]), feats, beam_width=3, max_len=3)
    want = beam_search(member, feats, beam_width=3, max_len=3)
    for g, w in zip(got, want):
        assert [h.tokens for h in g] == [h.tokens for h in w]
        assert [h.log_prob for h in g] == pytest.approx([h.log_prob for h in w], abs=1e-5)


def test_ensemble_command_writes_a_checkpoint_the_runtime_loads(tmp_path):
    dim, rows, cols, _ = BACKBONES[DEFAULT_BACKBONE]
    vocab = list(SPECIALS) + ["sky", "tiger", "lynx"]
    paths = []
    for seed in range(2):
        torch.manual_seed(seed)
        decoder = SATHashtagger(SATConfig(vocab_size=len(vocab), feature_dim=dim, num_locations=rows * cols,
                                          aux_weight=1.0, aux_guide=True))
        paths.append(save_checkpoint(
            tmp_path / f"m{seed}.pt", kind=CHECKPOINT_KIND, model=decoder, vocab=vocab, step=3, metrics={},
            model_args={"arch": "sat", "config": vars(decoder.config), "encoder": {"backbone": DEFAULT_BACKBONE},
                        "max_tags": 3, "min_score": 0.4, "logit_adjustment": {"tau": 1.0, "log_prior": [0.0] * 7}},
            extra={"epoch": 3, "train_args": {"out": "run"}}))
    out = tmp_path / "ensemble.pt"
    assert cli.main(["ensemble-hashtagger", "--checkpoint", str(paths[0]), "--checkpoint", str(paths[1]),
                     "--out", str(out)]) == 0
    ckpt = load_checkpoint(out)
    assert ckpt["model_args"]["arch"] == "sat-ensemble" and ckpt["model_args"]["min_score"] == 0.0
    assert "logit_adjustment" not in ckpt["model_args"] and ckpt["extra"]["train_args"] == {"out": "run"}
    tagger = Tagger.load(out)
    assert tagger.name == "sat-effnetlite0" and isinstance(tagger.decoder, SATEnsemble)
    for decoded in tagger.decode(torch.randn(2, rows * cols, dim), k=3):
        assert 1 <= len(decoded.tags) <= 3 and decoded.tags[0].attention.shape == (rows, cols)
