"""Evaluate a storyteller checkpoint: held-out loss (nats/char), generation speed, and stories for photos.

    hashtale evaluate-storyteller --corpus stories:../shared/datasets/stories \
        --corpus personabank:../shared/datasets/personabank/original
    hashtale evaluate-storyteller --context --holdout ../shared/datasets/photos --data ../shared/datasets/corel5k/test

`--corpus`: loss on the held-out passages of a corpus (`--val-fraction` of its stories, the training split) or, with
`--all`, on every passage (a corpus the model never saw), with each passage's own top hashtags and, beside it, with
another passage's: the gap is what the model takes from the tag set.
`--context`: for each post of a HARRISON-format split, predict its hashtags with the hashtagger, write its story from
that set, and judge it (hashtale.training.judge): retrieval accuracy among 5 candidate sets (chance 20%), mention rate,
and the same figures for a control whose stories were written from another post's set; plus non-word share, distinct
word 3-grams, tag-word share, stories starting mid-word or not ending at a sentence end (hashtale.models.sentences).
`--train-part` judges posts of a HARRISON folder's training part (what --holdout leaves): tune there, never on a test
split.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import time
from pathlib import Path

import torch

from hashtale.models.chars import CharVocab
from hashtale.models.image import preprocess
from hashtale.models.sampling import StorySpec
from hashtale.models.steering import SteerConfig
from hashtale.models.storyteller import IGNORE_INDEX, Storyteller
from hashtale.models.storyteller_runtime import StoryWriter
from hashtale.training import judge, story_quality
from hashtale.training.harrison import Example, holdout_split, read_split
from hashtale.training.lexicon import DATASETS, DEFAULT_TAG_FILES, TagLexicon, load_tag_vocabulary
from hashtale.training.stories import MAX_TAGS, Story, batches, corpus_text, encode_batch, load_corpus, split_stories

EVAL_BATCH = 32  # passages per forward call
DEFAULT_VAL_FRACTION = 0.05
DEFAULT_SPLIT_SEED = 1337
HOLDOUT_FRACTION = 0.2  # the photos/ acceptance split: hashtale.training.harrison.holdout_split(examples, 0.2, 20161605)
HOLDOUT_SEED = 20161605
SPEED_LENGTH = 500  # characters per story in the speed test
SPEED_BATCHES = (1, 32, 128)
STORY_LENGTH = 500
STORY_TEMPERATURE = 0.6  # as the service (settings.story_temperature)
STORY_TOP_K = 20
STORY_BATCH = 64  # stories written in one sampling pass
IMAGE_BATCH = 32
TAGS_PER_POST = 5  # as the service (settings.hashtags_per_post)
SPEED_TAG_SETS = (("leopard", "wildcat"), ("ocean", "beach", "sand"), ("dalmatian",), ("pizza", "food"),
                  ("ketch", "sea"), ("forest", "tree"), ("fox",), ("castle", "garden"))
JUDGE_SEED = 0
SHUFFLE_SEED = 1


def validation_tags(stories: list[Story], shuffled: bool = False) -> list[list[str]]:
    """Each passage's MAX_TAGS most named hashtags; `shuffled`: those of the next passage with another top tag."""
    own = [s.tags[:MAX_TAGS] for s in stories]
    if not shuffled:
        return own
    out = []
    for i, tags in enumerate(own):
        j = next((j % len(own) for j in range(i + 1, i + len(own)) if own[j % len(own)][:1] != tags[:1]), i)
        out.append(own[j])
    return out


@torch.no_grad()
def validation_loss(model: Storyteller, stories: list[Story], vocab: CharVocab, tag_index: dict[str, int],
                    shuffled: bool = False) -> float:
    """Mean cross-entropy in nats per scored character (story text and its end), each passage from the story start,
    conditioned on its own top hashtags (or, `shuffled`, on another passage's)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    tag_sets = validation_tags(stories, shuffled)
    for rows in batches(stories, EVAL_BATCH):
        x, y, tags = encode_batch([stories[i] for i in rows], [tag_sets[i] for i in rows], vocab, tag_index)
        logits, _, _ = model(x, tags=tags)  # (B, L, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX,
                                                 reduction="sum")
        total, count = total + float(loss), count + int((y != IGNORE_INDEX).sum())
    model.train(was_training)
    return total / max(count, 1)


def generation_speed(writer: StoryWriter, batch: int, length: int = SPEED_LENGTH) -> tuple[float, list[str]]:
    """Characters per second writing `batch` stories at once."""
    specs = [StorySpec(SPEED_TAG_SETS[i % len(SPEED_TAG_SETS)], length, STORY_TEMPERATURE, STORY_TOP_K, i)
             for i in range(batch)]
    start = time.perf_counter()
    stories = writer.write(specs)
    elapsed = time.perf_counter() - start
    return sum(map(len, stories)) / elapsed, stories


def predict_hashtags(tagger, examples: list[Example], k: int = TAGS_PER_POST) -> list[tuple[str, ...]]:
    """Each photo's emitted hashtags, best first, as the service would store them."""
    out = []
    for start in range(0, len(examples), IMAGE_BATCH):
        images = torch.stack([preprocess(e.image.read_bytes(), size=tagger.input_size)
                              for e in examples[start:start + IMAGE_BATCH]])  # (B, 3, S, S), S = the encoder's side
        out += [tuple(p.text for p in tags) for tags in tagger.suggest(images, k)]
    return out


def write_stories(writer: StoryWriter, tag_sets: list[tuple[str, ...]], seeds: list[int]) -> list[str]:
    stories = []
    for start in range(0, len(tag_sets), STORY_BATCH):
        specs = [StorySpec(tags, STORY_LENGTH, STORY_TEMPERATURE, STORY_TOP_K, seed)
                 for tags, seed in zip(tag_sets[start:start + STORY_BATCH], seeds[start:start + STORY_BATCH])]
        stories += writer.write(specs)
    return stories


def shuffled_sets(tag_sets: list[tuple[str, ...]], seed: int) -> list[int]:
    """For each post, another post whose predicted set differs (with another top hashtag): the control's source."""
    rng = random.Random(seed)
    out = []
    for own in tag_sets:
        while True:
            j = rng.randrange(len(tag_sets))
            if tag_sets[j][:1] != own[:1]:
                out.append(j)
                break
    return out


def story_figures(stories: list[str], tag_sets: list[tuple[str, ...]], hits: list[bool], lexicon: TagLexicon,
                  vocabulary: frozenset[str]) -> dict:
    """Judge and text figures of stories against the hashtag sets they are judged with."""
    nonword = [story_quality.non_words(s, vocabulary) for s in stories]
    grams = [story_quality.distinct_ngrams(s) for s in stories]
    tag_words = [sum(bool(lexicon.tags_of(w) and set(lexicon.tags_of(w)) & set(tags)) for w in story_quality.words(s))
                 for s, tags in zip(stories, tag_sets)]
    n_tokens = sum(n for _, n in nonword)
    return {
        "retrieval": sum(hits) / len(hits),
        "mention": sum(lexicon.mentions(s, tags) for s, tags in zip(stories, tag_sets)) / len(stories),
        "non_word_share": sum(k for k, _ in nonword) / max(n_tokens, 1),
        "distinct_3grams": sum(d for d, _ in grams) / max(sum(n for _, n in grams), 1),
        "tag_word_share": sum(tag_words) / max(n_tokens, 1),
        "mid_word_starts": sum(map(story_quality.starts_mid_word, stories)) / len(stories),
        "sentence_end": sum(map(story_quality.ends_at_sentence_end, stories)) / len(stories),
        "mean_chars": sum(map(len, stories)) / len(stories),
    }


def context_evaluation(name: str, examples: list[Example], predicted: list[tuple[str, ...]], writer: StoryWriter,
                       judge_model, lexicon: TagLexicon, vocabulary: frozenset[str], out: Path | None) -> dict:
    start = time.perf_counter()
    seeds = list(range(len(examples)))
    stories = write_stories(writer, predicted, seeds)
    source = shuffled_sets(predicted, SHUFFLE_SEED)
    control = write_stories(writer, [predicted[j] for j in source], seeds)  # same seeds, another post's set
    candidates = judge.distractors(predicted, JUDGE_SEED)
    set_vectors = judge.embed(judge_model, [judge.tag_set_text(t) for t in predicted])
    hits = judge.retrieval_hits(judge.embed(judge_model, stories), set_vectors, candidates)
    control_hits = judge.retrieval_hits(judge.embed(judge_model, control), set_vectors, candidates)
    own = story_figures(stories, predicted, hits, lexicon, vocabulary)
    shuffled = story_figures(control, predicted, control_hits, lexicon, vocabulary)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for i, e in enumerate(examples):
                f.write(json.dumps({"image": str(e.image), "true": e.tags, "predicted": predicted[i],
                                    "story": stories[i], "hit": hits[i],
                                    "candidates": [list(predicted[j]) for j in candidates[i]],
                                    "control_from": list(predicted[source[i]]), "control": control[i],
                                    "control_hit": control_hits[i]}, ensure_ascii=False) + "\n")
    print(f"{name}: {len(examples)} posts, {time.perf_counter() - start:.0f} s", flush=True)
    return {"posts": len(examples), "own": own, "shuffled": shuffled}


def print_context_table(results: dict[str, dict]) -> None:
    keys = ("retrieval", "mention", "non_word_share", "distinct_3grams", "tag_word_share", "mid_word_starts",
            "sentence_end", "mean_chars")
    print("| split | stories from | posts | " + " | ".join(keys) + " |")
    print("|---|---|---:|" + "---:|" * len(keys))
    for name, r in results.items():
        for which, label in (("own", "predicted tags"), ("shuffled", "shuffled tags (control)")):
            print(f"| {name} | {label} | {r['posts']} | " + " | ".join(f"{r[which][k]:.3f}" for k in keys[:-1])
                  + f" | {r[which]['mean_chars']:.0f} |")


def steer_config(overrides: list[str]) -> SteerConfig:
    """The service's SteerConfig with `FIELD=VALUE` overrides, each converted to its field's type."""
    config = SteerConfig()
    for item in overrides:
        field, value = item.split("=", 1)
        default = getattr(config, field)  # AttributeError names an unknown field
        config = dataclasses.replace(config, **{field: float(value) if default is None else type(default)(value)})
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="storyteller checkpoint (default: the shipped one)")
    parser.add_argument("--corpus", action="append", default=[], metavar="KIND:PATH",
                        help="held-out loss on these corpora (kinds: stories, personabank, aesop, text)")
    parser.add_argument("--all", action="store_true", help="--corpus: every passage, not the held-out split")
    parser.add_argument("--tag-files", nargs="+", default=[str(p) for p in DEFAULT_TAG_FILES],
                        help="the hashtag vocabulary (the union of these tag lists)")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION)
    parser.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED)
    parser.add_argument("--speed", action="store_true", help="measure generation speed (1, 32, 128 stories at once)")
    parser.add_argument("--context", action="store_true", help="judge stories written for photos (--data/--holdout)")
    parser.add_argument("--data", action="append", default=[], help="--context: a HARRISON-format split, every post")
    parser.add_argument("--holdout", action="append", default=[],
                        help=f"--context: a HARRISON-format folder, its {HOLDOUT_FRACTION:.0%} holdout (seed {HOLDOUT_SEED})")
    parser.add_argument("--train-part", action="append", default=[],
                        help="--context: a HARRISON-format folder, the training part that --holdout leaves (for tuning)")
    parser.add_argument("--limit", type=int, default=0, help="--context: at most this many posts per split, evenly spaced (0: all)")
    parser.add_argument("--hashtagger", default=None, help="--context: hashtagger checkpoint (default: the shipped one)")
    parser.add_argument("--tag-sets", action="append", default=[],
                        help="--context: predicted hashtags from files instead (JSON lines: image, predicted), e.g. "
                             "an earlier run's --out files or another hashtagger's code")
    parser.add_argument("--vocabulary-corpus", default=f"stories:{DATASETS / 'stories'}",
                        help="--context: the training corpus whose words count as words")
    parser.add_argument("--out", default=None, help="--context: write each split's posts, tags and stories here (JSONL)")
    parser.add_argument("--no-steer", action="store_true", help="sample without mention steering (an ablation)")
    parser.add_argument("--steer", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a hashtale.models.steering.SteerConfig field (tuning), e.g. --steer start_bonus=1")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    writer = StoryWriter.load(args.checkpoint)
    if args.no_steer:
        writer.tag_words = None
    writer.steering = steer_config(args.steer)
    print(f"model {writer.name} version {writer.version} trained={writer.trained} params={writer.model.num_params():,} "
          f"vocab={len(writer.vocab)} hashtags={len(writer.tags)} condition={writer.model.config.condition} "
          f"steering={writer.steering if writer.tag_words is not None else 'off'}")
    lexicon = TagLexicon(load_tag_vocabulary(args.tag_files))
    for spec in args.corpus:
        passages = load_corpus(spec, lexicon)
        held = passages if args.all else split_stories(passages, args.val_fraction, args.split_seed)[1]
        own = validation_loss(writer.model, held, writer.vocab, writer.tag_index)
        other = validation_loss(writer.model, held, writer.vocab, writer.tag_index, shuffled=True)
        print(f"{'all' if args.all else 'held-out'} {spec}: {len(held)} passages, {len(corpus_text(held)):,} chars, "
              f"{sum(bool(p.tags) for p in held)} with >= 1 hashtag; loss {own:.4f} nats/char "
              f"({own / math.log(2):.4f} bits/char); with another passage's hashtags {other:.4f}", flush=True)
    if args.speed:
        generation_speed(writer, 1, length=SPEED_LENGTH // 10)  # warm-up
        for batch in SPEED_BATCHES:
            speed, stories = generation_speed(writer, batch)
            print(f"generation: {batch} stories of ~{SPEED_LENGTH} chars at once: {speed:,.0f} chars/s", flush=True)
        print(f"sample ({' '.join('#' + t for t in SPEED_TAG_SETS[0])}): {stories[0]}")
    if args.context:
        if args.tag_sets:
            given = {}
            for path in args.tag_sets:
                for line in Path(path).read_text(encoding="utf-8").splitlines():
                    record = json.loads(line)
                    given[record["image"]] = tuple(record["predicted"])
            print(f"hashtags predicted beforehand: {' '.join(args.tag_sets)} ({len(given)} photos)")
        else:
            from hashtale.models.hashtagger_runtime import Tagger

            tagger = Tagger.load(args.hashtagger)
            print(f"hashtagger {tagger.name} {tagger.version}")
        judge_model = judge.load_judge()
        vocabulary = story_quality.corpus_vocabulary(p.text for p in load_corpus(args.vocabulary_corpus, lexicon))
        splits = [(Path(d).name, read_split(d)) for d in args.data]
        splits += [(f"{Path(d).name}-holdout", holdout_split(read_split(d), HOLDOUT_FRACTION, HOLDOUT_SEED)[1])
                   for d in args.holdout]
        splits += [(f"{Path(d).name}-train", holdout_split(read_split(d), HOLDOUT_FRACTION, HOLDOUT_SEED)[0])
                   for d in args.train_part]
        results = {}
        for name, examples in splits:
            if args.limit and len(examples) > args.limit:  # evenly spaced: the lists are often grouped by subject
                examples = [examples[i * len(examples) // args.limit] for i in range(args.limit)]
            predicted = ([given[str(e.image)] for e in examples] if args.tag_sets
                         else predict_hashtags(tagger, examples))
            results[name] = context_evaluation(name, examples, predicted, writer, judge_model, lexicon, vocabulary,
                                               Path(args.out) if args.out else None)
        print_context_table(results)
        if args.out:
            (Path(args.out) / "context.json").write_text(json.dumps(results, indent=2))
    return 0
