"""Hashtag metrics against hand-computed values."""
import math

import pytest

from hashtale.training.metrics import accuracy_at_k, all_metrics, bleu, precision_at_1, recall_at_k, rouge_l


def test_bleu_unigram_precision_and_brevity_penalty():
    # 2 of 3 candidate tags are right; candidate (3) longer than references (2 + 2 = 4)? no: 3 < 4 -> penalty
    cands = [["beach", "sea"], ["dog"]]
    refs = [["sea", "sun"], ["cat", "cute"]]
    b = bleu(cands, refs)
    assert b[0] == pytest.approx(math.exp(1 - 4 / 3) * 1 / 3)
    assert b[1:] == [0.0, 0.0, 0.0]  # no matching bigram


def test_bleu_perfect_match_is_one_for_every_order():
    seqs = [["a", "b", "c", "d", "e"]]
    assert bleu(seqs, seqs) == pytest.approx([1.0, 1.0, 1.0, 1.0])


def test_rouge_l_uses_longest_common_subsequence():
    # LCS("a b c", "a c") = 2: p = 2/3, r = 1, F(beta=1.2) = (1 + 1.44) p r / (r + 1.44 p)
    p, r = 2 / 3, 1.0
    expected = 2.44 * p * r / (r + 1.44 * p)
    assert rouge_l([["a", "b", "c"]], [["a", "c"]]) == pytest.approx(expected)
    assert rouge_l([["x"]], [["y"]]) == 0.0


def test_ranking_metrics():
    ranked = [["sea", "beach", "sun"], ["dog", "cat"], ["car"]]
    truth = [["beach", "sun"], ["dog"], ["tree"]]
    assert precision_at_1(ranked, truth) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, truth, 5) == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert recall_at_k(ranked, truth, 2) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert accuracy_at_k(ranked, truth, 1) == pytest.approx(1 / 3)
    assert accuracy_at_k(ranked, truth, 5) == pytest.approx(2 / 3)


def test_posts_without_tags_are_left_out_of_ranking_metrics():
    assert precision_at_1([["a"], ["b"]], [["a"], []]) == 1.0


def test_all_metrics_names():
    m = all_metrics([["a"]], [["a", "b"]], [["a"]])
    assert set(m) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "P@1", "R@5", "A@5", "per-class P",
                      "per-class R", "per-class F1", "per-image P", "per-image R", "per-image F1", "N+"}
    assert m["P@1"] == m["A@5"] == m["BLEU-1"] == 1.0
