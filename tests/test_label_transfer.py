"""Label transfer: the bank, the nearest photos' vote, the bias per image in beam search, its place in a checkpoint."""
import math

import pytest
import torch

from hashtale.models.beam import beam_search
from hashtale.models.checkpoint import save_checkpoint, update_checkpoint
from hashtale.models.encoder import BACKBONES, DEFAULT_BACKBONE
from hashtale.models.hashtagger import SATConfig, SATHashtagger
from hashtale.models.hashtagger_runtime import CHECKPOINT_KIND, Tagger
from hashtale.models.label_transfer import BUILD_CHUNK, LabelTransfer, LabelTransferBank
from hashtale.models.vocab import END_ID, PAD_ID, SPECIALS
from hashtale.training.logit_adjustment import bank_entry
from hashtale.training.train_hashtagger import export_inference_checkpoint

L, D = 4, 8  # tiny grid and feature size
V = len(SPECIALS) + 3


def _bank(components=3):
    torch.manual_seed(0)
    feats = torch.randn(6, L, D)  # six training photos
    tags = [[4], [4, 5], [5], [6], [6, 4], [5, 6]]
    return feats, LabelTransferBank.build(feats, tags, components)


def test_a_bank_built_chunk_by_chunk_keys_every_photo_as_served():
    torch.manual_seed(1)
    feats = torch.randn(2 * BUILD_CHUNK + 5, L, D).half()  # float16, as the feature cache gives them
    bank = LabelTransferBank.build(feats, [[4]] * len(feats), components=3)
    assert torch.allclose(bank.keys, bank.key(feats), atol=1e-5)  # a photo's stored key is the key it is served with


def test_a_training_photo_is_its_own_nearest_neighbour_and_votes_for_its_tags():
    feats, bank = _bank(components=5)
    transfer = LabelTransfer(bank, k=1, temperature=0.1, weight=2.0, eps=0.5)
    vote = transfer.vote(feats, V)  # (6, V)
    assert vote[1].tolist() == pytest.approx([0, 0, 0, 0, 1, 1, 0])  # photo 1 carries tags 4 and 5
    bias = transfer.bias(feats[:1], V)[0]
    assert bias[4].item() == pytest.approx(2.0 * math.log1p(1 / 0.5))
    assert bias[:len(SPECIALS)].tolist() == [0.0] * len(SPECIALS)  # <end> keeps its footing
    assert bias[5].item() == 0.0


def test_balance_makes_a_rare_tag_saturate_sooner():
    _, bank = _bank()
    tags = torch.tensor([[4, PAD_ID], [4, 5], [5, PAD_ID], [6, PAD_ID], [4, PAD_ID], [5, PAD_ID]])  # tag 6 is rare
    bank = LabelTransferBank(bank.mean, bank.projection, bank.keys, tags)
    flat = LabelTransfer(bank, k=2, temperature=0.1, weight=1.0, eps=0.1).tag_eps(V)
    assert flat.tolist() == pytest.approx([0.1] * V)
    eps = LabelTransfer(bank, k=2, temperature=0.1, weight=1.0, eps=0.1, balance=1.0).tag_eps(V)
    shares = torch.tensor([3, 3, 1]) / 6  # tags 4, 5, 6
    assert eps[len(SPECIALS):].tolist() == pytest.approx((0.1 * shares / shares.mean()).tolist())


def test_vote_weights_sum_to_one_over_the_neighbours():
    feats, bank = _bank()
    transfer = LabelTransfer(bank, k=4, temperature=0.2, weight=1.0, eps=0.1)
    vote = transfer.vote(torch.randn(3, L, D), V)
    # each neighbour spreads its weight over its 1..2 tags, in full: the votes sum to 1..2
    assert ((vote.sum(dim=1) >= 1 - 1e-5) & (vote.sum(dim=1) <= 2 + 1e-5)).all()
    assert (vote >= 0).all() and (vote <= 1 + 1e-5).all()


def test_a_bias_per_image_equals_decoding_each_image_with_its_own_bias():
    torch.manual_seed(1)
    model = SATHashtagger(SATConfig(vocab_size=V, feature_dim=D, num_locations=L, embed_dim=6, hidden_dim=10,
                                    attention_dim=5, dropout=0.0)).eval()
    feats, bias = torch.randn(3, L, D), 3 * torch.randn(3, V)
    together = beam_search(model, feats, beam_width=3, max_len=3, logit_bias=bias)
    for b in range(3):
        alone = beam_search(model, feats[b:b + 1], beam_width=3, max_len=3, logit_bias=bias[b])[0]
        assert [h.tokens for h in together[b]] == [h.tokens for h in alone]
        assert [h.log_prob for h in together[b]] == pytest.approx([h.log_prob for h in alone], abs=1e-5)


def test_the_checkpoint_carries_the_bank_and_its_settings(tmp_path):
    dim, rows, cols, _ = BACKBONES[DEFAULT_BACKBONE]
    vocab = list(SPECIALS) + ["sky", "tiger", "lynx"]
    torch.manual_seed(0)
    decoder = SATHashtagger(SATConfig(vocab_size=len(vocab), feature_dim=dim, num_locations=rows * cols))
    settings = {"k": 2, "temperature": 0.05, "weight": 1.5, "eps": 0.1, "balance": 0.5}
    path = save_checkpoint(tmp_path / "m.pt", kind=CHECKPOINT_KIND, model=decoder, vocab=vocab, step=1, metrics={},
                           model_args={"arch": "sat", "config": vars(decoder.config), "max_tags": 3, "min_score": 0.0,
                                       "encoder": {"backbone": DEFAULT_BACKBONE}, "label_transfer": settings},
                           half=True)
    assert Tagger.load(path).label_transfer is None  # settings without a bank: none
    feats = torch.randn(4, rows * cols, dim)
    bank = LabelTransferBank.build(feats, [[4], [5], [6], [4, 6]], components=3)
    update_checkpoint(path, extra=bank_entry(bank))
    tagger = Tagger.load(path)
    assert tagger.label_transfer.to_args() == settings
    assert tagger.label_transfer.bank.keys.shape == (4, 3)
    evidence = tagger.logit_bias(feats[3:])  # (1, V): photo 3's neighbours are itself and one other
    assert evidence.shape == (1, len(vocab)) and evidence[0, 4] > 0 and evidence[0, 6] > 0
    assert evidence[0, END_ID] == 0
    assert [len(d.tags) >= 1 for d in tagger.decode(feats)] == [True] * 4
    update_checkpoint(path, extra=bank_entry(None))
    assert Tagger.load(path).label_transfer is None


def test_the_export_of_a_training_checkpoint_keeps_its_bank(tmp_path):
    decoder = SATHashtagger(SATConfig(vocab_size=V, feature_dim=D, num_locations=L, embed_dim=6, hidden_dim=10,
                                      attention_dim=5))
    best = save_checkpoint(tmp_path / "best.pt", kind=CHECKPOINT_KIND, model=decoder, vocab=list(SPECIALS) + ["a"] * 3,
                           step=1, metrics={}, model_args={"arch": "sat", "config": vars(decoder.config)},
                           extra={"epoch": 1, "train_args": {}})
    _, bank = _bank()
    update_checkpoint(best, extra=bank_entry(bank))
    exported = torch.load(export_inference_checkpoint(best, tmp_path / "export.pt"), weights_only=False)
    assert torch.equal(exported["extra"]["label_transfer_bank"]["keys"], bank.to_state()["keys"])
