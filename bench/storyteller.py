"""Storyteller generation speed on the CPU, comparing variants in one run.

    .venv/bin/python bench/storyteller.py [--checkpoint PATH] [--length 500] [--threads 1 2]

Variants, each for 1 story and for 32 stories at once:
- `step-cell`: what `StoryWriter.write` runs (embedding folded into the first layer, fused upper-layer matmuls);
- `nn.LSTM`: the same sampling loop calling the module's `forward` one character at a time.
Figures are characters of finished stories per second of wall-clock time and per second of this process's CPU time
(best of --repeats runs): on a machine shared with other jobs the second is the fairer figure for one thread.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.sampling import StepCell, StorySpec, generate  # noqa: E402
from models.writer import StoryWriter  # noqa: E402

TAGS = ("sea", "dog", "love", "food", "friend", "travel", "fox", "garden")
TEMPERATURE = 0.8
TOP_K = 20


class ModuleStep:
    """The baseline: one `Storyteller.forward` call (nn.LSTM) per character."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def zero_state(self, batch):
        return tuple(torch.zeros(batch, self.config.n_hidden) for _ in range(2 * self.config.n_layer))

    def __call__(self, idx, state):
        h, c = torch.stack(state[0::2]), torch.stack(state[1::2])  # each (n_layer, B, H)
        logits, _, (h, c) = self.model(idx[:, None], state=(h, c))  # (B, 1, V)
        return logits[:, -1], tuple(t for pair in zip(h, c) for t in pair)


def measure(writer: StoryWriter, step, batch: int, length: int, repeats: int) -> tuple[float, float, float]:
    """-> (chars per wall-clock second, chars per CPU second, chars per story)."""
    specs = [StorySpec(TAGS[i % len(TAGS)], length, TEMPERATURE, TOP_K, i) for i in range(batch)]
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        stories = generate(writer.model, writer.vocab, specs, step=step)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        chars = sum(map(len, stories))
        best_wall, best_cpu = max(best_wall, chars / wall), max(best_cpu, chars / cpu)
    return best_wall, best_cpu, chars / batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    writer = StoryWriter.load(args.checkpoint)
    config = writer.model.config
    print(f"{writer.name} {writer.version} trained={writer.trained}: n_embd={config.n_embd} n_hidden={config.n_hidden} "
          f"n_layer={config.n_layer} params={writer.model.num_params():,}; stories of ~{args.length} chars, "
          f"temperature {TEMPERATURE}, top-k {TOP_K}; best of {args.repeats}")
    print(f"{'variant':<10} {'threads':>7} {'stories':>7} {'chars/story':>11} {'chars/s':>10} {'chars/cpu-s':>11}")
    variants = {"step-cell": StepCell, "nn.LSTM": ModuleStep}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, step in variants.items():
            measure(writer, step, 1, args.length // 10, 1)  # warm-up
            for batch in args.batches:
                wall, cpu, per_story = measure(writer, step, batch, args.length, args.repeats)
                print(f"{name:<10} {threads:>7} {batch:>7} {per_story:>11.0f} {wall:>10,.0f} {cpu:>11,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
