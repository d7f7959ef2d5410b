"""Evaluate a storyteller checkpoint: validation loss (nats/char) on held-out stories and generation speed.

    hashtale evaluate-storyteller --checkpoint var/storyteller-pb/best.pt \\
        --corpus personabank:../shared/datasets/personabank/original
"""
from __future__ import annotations

import argparse
import math
import re
import time

import torch

from models.sampling import StorySpec
from models.storyteller import IGNORE_INDEX, Storyteller
from models.writer import StoryWriter
from training.stories import DEFAULT_TAG_VOCABULARY, encode_stories, load_corpus, load_tag_vocabulary, split_stories

EVAL_CHUNK = 1024  # characters per forward call; the state carries across chunks, so the stream is read once
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_SPLIT_SEED = 1337
SPEED_LENGTH = 500  # characters per story in the speed test
SPEED_BATCH = 32
SPEED_TEMPERATURE = 0.8
SPEED_TOP_K = 20
SPEED_TAGS = ("sea", "dog", "love", "food", "friend", "travel", "fox", "garden")
CONTEXT_SEEDS = 4  # stories per tag in the seed-mention test


@torch.no_grad()
def validation_loss(model: Storyteller, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy in nats per scored character, reading the stream in order as one sequence."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for start in range(0, inputs.numel(), EVAL_CHUNK):
        x = inputs[None, start:start + EVAL_CHUNK]  # (1, T)
        y = targets[None, start:start + EVAL_CHUNK]  # (1, T)
        logits, _, state = model(x, state=state)  # (1, T, V)
        n = int((y != IGNORE_INDEX).sum())
        if n:
            loss = torch.nn.functional.cross_entropy(logits[0], y[0], ignore_index=IGNORE_INDEX, reduction="sum")
            total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(count, 1)


def generation_speed(writer: StoryWriter, batch: int, length: int = SPEED_LENGTH) -> tuple[float, list[str]]:
    """Characters per second writing `batch` stories at once."""
    specs = [StorySpec(SPEED_TAGS[i % len(SPEED_TAGS)], length, SPEED_TEMPERATURE, SPEED_TOP_K, i) for i in range(batch)]
    start = time.perf_counter()
    stories = writer.write(specs)
    elapsed = time.perf_counter() - start
    return sum(map(len, stories)) / elapsed, stories


def mentions(story: str, tag: str) -> bool:
    """Does the story name the tag (as a word start: "fox" counts in "Foxes", not in "outfox")?"""
    return re.search(rf"\b{re.escape(tag)}", story, flags=re.IGNORECASE) is not None


def seed_mention_rate(writer: StoryWriter, tags: tuple[str, ...], length: int = SPEED_LENGTH) -> tuple[float, float]:
    """How often a story names its hashtag, against a control: the same tag looked for in stories primed with the
    next tag of the list (same random seeds). -> (rate primed with the tag, control rate)."""
    specs, control = [], []
    for i, tag in enumerate(tags):
        for seed in range(CONTEXT_SEEDS):
            specs.append(StorySpec(tag, length, SPEED_TEMPERATURE, SPEED_TOP_K, seed))
            control.append(StorySpec(tags[(i + 1) % len(tags)], length, SPEED_TEMPERATURE, SPEED_TOP_K, seed))
    looked_for = [tag for tag in tags for _ in range(CONTEXT_SEEDS)]
    primed = writer.write(specs)
    unrelated = writer.write(control)
    rate = sum(map(mentions, primed, looked_for)) / len(specs)
    return rate, sum(map(mentions, unrelated, looked_for)) / len(specs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="storyteller checkpoint (default: the shipped one)")
    parser.add_argument("--corpus", action="append", default=[], metavar="KIND:PATH",
                        help="held-out stories come from these corpora (kinds: personabank, aesop, text)")
    parser.add_argument("--tag-vocabulary", default=str(DEFAULT_TAG_VOCABULARY),
                        help="the hashtag vocabulary used in training (it decides a story's tag when it has no other)")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION)
    parser.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    writer = StoryWriter.load(args.checkpoint)
    print(f"model {writer.name} version {writer.version} trained={writer.trained} "
          f"params={writer.model.num_params():,} vocab={len(writer.vocab)}")
    tag_vocab = load_tag_vocabulary(args.tag_vocabulary) if args.tag_vocabulary else frozenset()
    for spec in args.corpus:
        _, val = split_stories(load_corpus(spec, tag_vocab), args.val_fraction, args.split_seed)
        inputs, targets = encode_stories(val, writer.vocab)
        loss = validation_loss(writer.model, inputs, targets)
        print(f"validation {spec}: {len(val)} stories, {int((targets != IGNORE_INDEX).sum())} chars, "
              f"loss {loss:.4f} nats/char ({loss / math.log(2):.4f} bits/char)")
    generation_speed(writer, 1, length=SPEED_LENGTH // 10)  # warm-up
    for batch in (1, SPEED_BATCH):
        speed, stories = generation_speed(writer, batch)
        print(f"generation: {batch} stories of ~{SPEED_LENGTH} chars at once: {speed:,.0f} chars/s")
    rate, control = seed_mention_rate(writer, SPEED_TAGS)
    print(f"stories naming their hashtag ({', '.join(SPEED_TAGS)}; {CONTEXT_SEEDS} seeds each): {rate:.0%} "
          f"(primed with another hashtag: {control:.0%})")
    print(f"sample (#{SPEED_TAGS[0]}): {stories[0]}")
    return 0
