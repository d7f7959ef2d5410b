"""Decoder CPU cost per photo: reading the set off the beam (the best hypothesis' tags, or every hypothesis' tags by
their marginal probability) at beam widths 5 and 10, with the shipped checkpoint's decoder, logit adjustment and label
transfer, on annotation vectors of one photo alone and of 8 (Triton's encode_chunk), on one thread by default.

    .venv/bin/python -m bench.decoding [--threads 1] [--repeats 20] [--checkpoint PATH]

The annotation vectors are random (the decode's work does not depend on them beyond how many steps the beam takes:
every variant runs on the same vectors). Prints the CPU first, then one Markdown row per variant: CPU milliseconds
per photo (this process's CPU time), the fastest of `--repeats`.
"""
from __future__ import annotations

import argparse

import torch

from bench import machine
from bench.encoder import CHUNK
from hashtale.models.hashtagger_runtime import SET_DECODINGS, Tagger

WIDTHS = (5, 10)
SEED = 0


@torch.inference_mode()
def ms_per_photo(tagger: Tagger, feats: torch.Tensor, repeats: int) -> float:
    return machine.cpu_ms_per_item(lambda: tagger.decode(feats, tagger.max_tags), len(feats), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--checkpoint", default=None, help="default: the shipped hashtagger")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine.describe())
    tagger = Tagger.load(args.checkpoint)
    rows, cols = tagger.attention_shape
    dim = tagger.decoder.config.feature_dim
    feats = torch.rand(CHUNK, rows * cols, dim, generator=torch.Generator().manual_seed(SEED))  # (8, L, D)
    print(f"{tagger.name} {tagger.version}, {args.threads} thread(s)\n")
    print("| set decoding | beam width | ms per photo, alone | ms per photo, 8 at a time |")
    print("|---|---:|---:|---:|")
    for set_decoding in SET_DECODINGS:
        for width in WIDTHS:
            tagger.set_decoding, tagger.beam_width = set_decoding, width
            alone, chunk = ms_per_photo(tagger, feats[:1], args.repeats), ms_per_photo(tagger, feats, args.repeats)
            print(f"| {set_decoding} | {width} | {alone:.2f} | {chunk:.2f} |", flush=True)


if __name__ == "__main__":
    main()
