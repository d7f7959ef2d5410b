"""Beam search: exact on a tiny vocabulary, distinct tags, always terminates; the emitted set."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hashtale.models.beam import Hypothesis, beam_search, emitted_tags, marginal_tags
from hashtale.models.hashtagger import SATConfig, SATHashtagger
from hashtale.models.show_and_tell import ShowAndTell, ShowTellConfig
from hashtale.models.hashtagger_runtime import Tagger
from hashtale.models.vocab import END_ID, PAD_ID, SPECIALS, START_ID, UNK_ID, Vocab

N_TAGS = 3
MAX_LEN = 3
L, D = 4, 8  # tiny grid and feature size


def _tiny_sat(seed=0):
    torch.manual_seed(seed)
    return SATHashtagger(SATConfig(vocab_size=len(SPECIALS) + N_TAGS, feature_dim=D, num_locations=L,
                                   embed_dim=6, hidden_dim=10, attention_dim=5, dropout=0.0)).eval()


def _exhaustive(model, feats):
    """Every sequence of distinct tags (1..MAX_LEN) scored under the same rules as the beam."""
    tags = list(range(len(SPECIALS), len(SPECIALS) + N_TAGS))
    results = []
    for n in range(1, MAX_LEN + 1):
        for seq in itertools.permutations(tags, n):
            state, tok, logp = model.init_state(feats), torch.tensor([START_ID]), 0.0
            for t in range(n + 1):
                logits, _, state = model.step(feats, tok, state)
                banned = [PAD_ID, START_ID, UNK_ID, *seq[:t]] + ([END_ID] if t == 0 else [])
                if t == MAX_LEN:
                    banned = [i for i in range(logits.size(1)) if i != END_ID]
                logits[0, banned] = float("-inf")
                nxt = seq[t] if t < n else END_ID
                logp += F.log_softmax(logits, dim=1)[0, nxt].item()
                tok = torch.tensor([nxt])
            results.append((logp, list(seq)))
    return sorted(results, key=lambda r: -r[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_matches_exhaustive_search(seed):
    model = _tiny_sat(seed)
    feats = torch.randn(1, L, D)
    exact = _exhaustive(model, feats)
    assert len(exact) == 3 + 6 + 6
    hyps = beam_search(model, feats, beam_width=len(exact) + 1, max_len=MAX_LEN)[0]
    assert [h.tokens for h in hyps] == [seq for _, seq in exact]
    assert [h.log_prob for h in hyps] == pytest.approx([lp for lp, _ in exact], abs=1e-5)
    # a narrow beam still finds a valid sequence whose score is what the model gives it
    best = beam_search(model, feats, beam_width=2, max_len=MAX_LEN)[0][0]
    assert best.log_prob == pytest.approx(dict((tuple(s), lp) for lp, s in exact)[tuple(best.tokens)], abs=1e-5)


def test_beam_search_batched_equals_one_by_one():
    model = _tiny_sat()
    feats = torch.randn(5, L, D)
    batched = beam_search(model, feats, beam_width=4, max_len=MAX_LEN)
    for b in range(5):
        single = beam_search(model, feats[b:b + 1], beam_width=4, max_len=MAX_LEN)[0]
        assert [h.tokens for h in single] == [h.tokens for h in batched[b]]


def test_thousand_decodes_distinct_and_terminating():
    """1,000 images through an untrained and a Show-and-Tell decoder with long limits."""
    torch.manual_seed(0)
    vocab_size = len(SPECIALS) + 30
    small = {"vocab_size": vocab_size, "feature_dim": D, "num_locations": L, "embed_dim": 16, "hidden_dim": 32,
             "dropout": 0.0}
    models = [SATHashtagger(SATConfig(**small, attention_dim=16)).eval(), ShowAndTell(ShowTellConfig(**small)).eval()]
    feats = torch.randn(1000, L, D) * 3
    for model in models:
        hyps = beam_search(model, feats, beam_width=5, max_len=8)
        for image_hyps in hyps:
            assert image_hyps, "every decode ends with at least one hypothesis"
            for h in image_hyps:
                assert 1 <= len(h.tokens) <= 8 and len(set(h.tokens)) == len(h.tokens)
                assert all(t >= len(SPECIALS) for t in h.tokens)
                assert all(0 < p <= 1 for p in h.step_probs)
            tags = emitted_tags(image_hyps[0], min_score=0.5)
            assert 1 <= len(tags) <= 8 and len({t.token for t in tags}) == len(tags)


def test_attention_of_every_step_sums_to_one():
    hyps = beam_search(_tiny_sat(), torch.randn(3, L, D), beam_width=3, max_len=MAX_LEN)
    for image_hyps in hyps:
        for h in image_hyps:
            assert h.attention.shape == (len(h.tokens), L)
            np.testing.assert_allclose(h.attention.sum(axis=1), 1.0, rtol=1e-5)


def test_emitted_tags_are_the_best_hypothesis_above_the_threshold():
    """No top-up from other hypotheses: only the best one's tags, each with its own step's attention, and
    those under min_score dropped (but never the first: a post gets at least one tag)."""
    att = np.eye(3, L, dtype=np.float32)
    best = Hypothesis(tokens=[6, 4, 5], log_prob=-1.0, step_probs=[0.3, 0.9, 0.2], attention=att)
    assert [t.token for t in emitted_tags(best)] == [6, 4, 5]
    kept = emitted_tags(best, min_score=0.5)
    assert [t.token for t in kept] == [6, 4] and [t.score for t in kept] == [0.3, 0.9]
    np.testing.assert_array_equal(kept[1].attention, att[1])


def test_marginal_tags_are_scored_by_the_probability_mass_of_the_hypotheses_holding_them():
    """Tag 7, left out of the best hypothesis but held by the two others, comes before tags the best one alone
    holds; each tag keeps the attention of its step in the best hypothesis holding it."""
    att = [np.full((n, L), i, dtype=np.float32) for i, n in enumerate((2, 2, 3))]
    hyps = [Hypothesis(tokens=[4, 5], log_prob=np.log(0.4), step_probs=[0.5, 0.5], attention=att[0]),
            Hypothesis(tokens=[7, 4], log_prob=np.log(0.3), step_probs=[0.5, 0.5], attention=att[1]),
            Hypothesis(tokens=[6, 7, 4], log_prob=np.log(0.2), step_probs=[0.5, 0.5, 0.5], attention=att[2])]
    tags = marginal_tags(hyps)
    assert [t.token for t in tags] == [4, 7, 5, 6]
    assert [t.score for t in tags] == pytest.approx([1.0, 5 / 9, 4 / 9, 2 / 9])  # 0.4 + 0.3 + 0.2 = 0.9 of mass in all
    assert [float(t.attention[0]) for t in tags] == [0, 1, 0, 2]
    assert [t.token for t in marginal_tags(hyps, min_score=0.3)] == [4, 7, 5]
    assert [t.token for t in marginal_tags(hyps, max_tags=2)] == [4, 7]
    assert [t.token for t in marginal_tags(hyps[2:], min_score=1.5)] == [6], "the first tag always stays"


def test_tagger_reads_the_set_off_the_beam_as_its_checkpoint_says():
    model = _tiny_sat(4)
    vocab = Vocab(list(SPECIALS) + ["a", "b", "c"])
    feats = torch.randn(30, L, D)
    marginal = Tagger(_TinyEncoder(), model, vocab, "sat", name="tiny", version="", trained=True, max_tags=MAX_LEN,
                      set_decoding="marginal")
    for k in (1, 2, 3):  # k bounds the hypotheses' length too
        hyps = beam_search(model, feats, beam_width=marginal.beam_width, max_len=k)
        for d, image_hyps in zip(marginal.decode(feats, k), hyps):
            assert [vocab.index[t] for t in d.sequence] == [r.token for r in marginal_tags(image_hyps, 0.0, k)]
            assert [t.score for t in d.tags] == sorted((t.score for t in d.tags), reverse=True)
    with pytest.raises(ValueError, match="set_decoding"):
        Tagger(_TinyEncoder(), model, vocab, "sat", name="tiny", version="", trained=True, set_decoding="union")


def test_tagger_emits_at_most_k_and_stops_on_end():
    model = _tiny_sat()
    tagger = Tagger(_TinyEncoder(), model, Vocab(list(SPECIALS) + ["a", "b", "c"]), "sat", name="tiny", version="",
                    trained=True, max_tags=MAX_LEN)
    feats = torch.randn(20, L, D)
    hyps = beam_search(model, feats, beam_width=tagger.beam_width, max_len=MAX_LEN)
    for k in (1, 2, 3, 10):
        for d, image_hyps in zip(tagger.decode(feats, k), hyps):
            assert 1 <= len(d.tags) <= min(k, MAX_LEN) and d.sequence == [t.text for t in d.tags]
            if k >= MAX_LEN:  # not truncated: exactly the best hypothesis, ended by <end>
                assert [tagger.vocab.index[t] for t in d.sequence] == image_hyps[0].tokens


class _TinyEncoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attention_shape, self.input_size = (2, 2), 64


def test_untrained_tagger_suggests_distinct_tags_on_a_real_photo(coffee_jpeg):
    from hashtale.models.image import preprocess

    tagger = Tagger.untrained()
    assert not tagger.trained and tagger.version == "untrained" and tagger.attention_shape == (7, 7)
    result = tagger.suggest(torch.stack([preprocess(coffee_jpeg, size=tagger.input_size)] * 2), k=5)
    assert len(result) == 2
    for preds in result:
        assert 1 <= len(preds) <= 5 and len({p.text for p in preds}) == len(preds)
        for p in preds:
            assert 0 < p.score <= 1
            assert p.attention.shape == (7, 7) and p.attention.dtype == np.float32
            assert p.attention.sum() == pytest.approx(1.0, abs=1e-5)
    assert [p.text for p in result[0]] == [p.text for p in Tagger.untrained().suggest(
        preprocess(coffee_jpeg, size=tagger.input_size).unsqueeze(0), k=5)[0]], "the untrained fallback is deterministic"


def test_logit_bias_is_added_to_every_step_before_the_rules():
    model = _tiny_sat(3)
    feats = torch.randn(2, L, D)
    bias = torch.randn(len(SPECIALS) + N_TAGS)

    class Shifted:  # the same model with the bias inside its logits
        init_state = staticmethod(model.init_state)

        @staticmethod
        def step(f, tokens, state):
            logits, alpha, state = model.step(f, tokens, state)
            return logits + bias, alpha, state

    got = beam_search(model, feats, beam_width=4, max_len=MAX_LEN, logit_bias=bias)
    want = beam_search(Shifted, feats, beam_width=4, max_len=MAX_LEN)
    for g, w in zip(got, want):
        assert [h.tokens for h in g] == [h.tokens for h in w]
        assert [h.log_prob for h in g] == pytest.approx([h.log_prob for h in w], abs=1e-5)
    favoured = len(SPECIALS) + 2
    forced = torch.zeros(len(SPECIALS) + N_TAGS)
    forced[favoured] = 50.0
    for hyps in beam_search(model, feats, beam_width=3, max_len=MAX_LEN, logit_bias=forced):
        assert hyps[0].tokens[0] == favoured and len(set(hyps[0].tokens)) == len(hyps[0].tokens)
