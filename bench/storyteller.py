"""Storyteller generation speed on the CPU, comparing variants in one run.

    .venv/bin/python -m bench.storyteller [--checkpoint PATH] [--length 500] [--threads 1 2] [--batches 1 32 128]

Variants, each for 1 story and for --batches stories at once (each story conditioned on its own hashtag set):
- `step-cell`: what `StoryWriter.write` runs (embedding folded into the first layer, fused upper-layer matmuls), with
  mention steering (hashtale/models/steering.py) when the checkpoint has its tag words;
- `no-steer`: the same without mention steering;
- `nn.LSTM`: the same sampling loop (steered) calling the module's `forward` one character at a time.
Figures are characters of finished stories per second of wall-clock time and per second of this process's CPU time
(best of --repeats runs): on a machine shared with other jobs the second is the fairer figure for one thread.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from bench import machine
from hashtale.models.sampling import StepCell, StorySpec, generate
from hashtale.models.storyteller_runtime import StoryWriter

TAG_SETS = (("leopard", "wildcat"), ("ocean", "beach", "sand"), ("dalmatian",), ("pizza", "food"),
            ("ketch", "sea"), ("forest", "tree"), ("fox",), ("castle", "garden"))
TEMPERATURE = 0.6  # as the service (settings.story_temperature)
TOP_K = 20


class ModuleStep:
    """The baseline: one `Storyteller.forward` call (nn.LSTM) per character."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def start_state(self, tags):
        """(h_0, c_0, ..., tags): the module's own initial state for the tag set, the tags carried along."""
        batch = tags.size(0)
        init = self.model.initial_state(self.model.tag_vector(tags, batch), batch)
        if init is None:
            init = tuple(torch.zeros(self.config.n_layer, batch, self.config.n_hidden) for _ in range(2))
        return tuple(t for pair in zip(*init) for t in pair) + (tags,)

    def __call__(self, idx, state):
        h, c = torch.stack(state[0:-1:2]), torch.stack(state[1:-1:2])  # each (n_layer, B, H)
        logits, _, (h, c) = self.model(idx[:, None], state=(h, c), tags=state[-1])  # (B, 1, V)
        return logits[:, -1], tuple(t for pair in zip(h, c) for t in pair) + (state[-1],)


def measure(writer: StoryWriter, step, steer: bool, batch: int, length: int, repeats: int
            ) -> tuple[float, float, float]:
    """-> (chars per wall-clock second, chars per CPU second, chars per story)."""
    specs = [StorySpec(TAG_SETS[i % len(TAG_SETS)], length, TEMPERATURE, TOP_K, i) for i in range(batch)]
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        stories = generate(writer.model, writer.vocab, specs, writer.tag_index, step=step,
                           tag_words=writer.tag_words if steer else None, steering=writer.steering)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        chars = sum(map(len, stories))
        best_wall, best_cpu = max(best_wall, chars / wall), max(best_cpu, chars / cpu)
    return best_wall, best_cpu, chars / batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 128])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    writer = StoryWriter.load(args.checkpoint)
    config = writer.model.config
    print(f"{machine.describe()}\ntorch {torch.__version__}")
    print(f"{writer.name} {writer.version} trained={writer.trained}: n_embd={config.n_embd} n_hidden={config.n_hidden} "
          f"n_layer={config.n_layer} condition={config.condition} params={writer.model.num_params():,}; "
          f"stories of ~{args.length} chars, "
          f"temperature {TEMPERATURE}, top-k {TOP_K}; best of {args.repeats}")
    print(f"{'variant':<10} {'threads':>7} {'stories':>7} {'chars/story':>11} {'chars/s':>10} {'chars/cpu-s':>11}")
    variants = {"step-cell": (StepCell, True), "no-steer": (StepCell, False), "nn.LSTM": (ModuleStep, True)}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, (step, steer) in variants.items():
            measure(writer, step, steer, 1, args.length // 10, 1)  # warm-up
            for batch in args.batches:
                wall, cpu, per_story = measure(writer, step, steer, batch, args.length, args.repeats)
                print(f"{name:<10} {threads:>7} {batch:>7} {per_story:>11.0f} {wall:>10,.0f} {cpu:>11,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
