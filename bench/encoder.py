"""Encoder CPU cost per photo: EfficientNet-Lite0/1/2 at their input sizes and Lite0+2 stacked (both at 256 px or
both at 320 px), float32 and bfloat16, as the service runs them (`Tagger.encode`: batch norms folded, channels-last
bfloat16 autocast), alone and in chunks of 8 (Triton's encode_chunk), on one thread by default.

    .venv/bin/python -m bench.encoder [--threads 1] [--repeats 20] [--backbones B ...] [--precisions fp32 ...]

Prints the CPU model and the flags that decide bfloat16 speed (avx512_bf16, amx_bf16), then one Markdown row
per backbone and precision: CPU milliseconds per photo (this process's CPU time, so time spent waiting for a
core shared with other processes does not count), alone and in a chunk of 8, the fastest of `--repeats`.
"""
from __future__ import annotations

import argparse

import torch

from bench import machine
from hashtale.models.encoder import BACKBONES, LITE_BACKBONES, STACKED_BACKBONES, Encoder, EncoderConfig
from hashtale.models.hashtagger_runtime import PRECISIONS, Tagger
from hashtale.models.vocab import SPECIALS, Vocab
from hashtale.models.hashtagger import SATConfig, SATHashtagger

CHUNK = 8  # images per encoder pass in the Triton model (config.pbtxt encode_chunk)


def tagger_for(backbone: str, precision: str) -> Tagger:
    """The service's encoder path for `backbone` (the decoder is irrelevant here: a tiny untrained one)."""
    encoder = Encoder(EncoderConfig(backbone=backbone)).fuse_for_inference()
    dim, rows, cols, _ = BACKBONES[backbone]
    vocab = Vocab(list(SPECIALS) + ["tag"])
    decoder = SATHashtagger(SATConfig(vocab_size=len(vocab), feature_dim=dim, num_locations=rows * cols))
    return Tagger(encoder, decoder, vocab, "sat", name=backbone, version="bench", trained=False, precision=precision)


@torch.inference_mode()
def ms_per_photo(tagger: Tagger, batch: int, repeats: int) -> float:
    images = torch.randn(batch, 3, tagger.input_size, tagger.input_size)  # (B, 3, S, S)
    return machine.cpu_ms_per_item(lambda: tagger.encode(images), batch, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backbones", nargs="+", default=sorted(LITE_BACKBONES) + sorted(STACKED_BACKBONES))
    served = [p for p in PRECISIONS if p != "auto"]  # the precisions a tagger runs, not the service's chooser
    parser.add_argument("--precisions", nargs="+", default=served, choices=served,
                        help="bf16 without avx512_bf16/AMX runs many times slower than fp32: skip it there")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine.describe())
    print(f"oneDNN bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}; torch {torch.__version__}, "
          f"{args.threads} thread(s)\n")
    print(f"| encoder | input | grid | precision | ms/photo alone | ms/photo in chunks of {CHUNK} |")
    print("|---|---:|---:|---|---:|---:|")
    for backbone in args.backbones:
        _, rows, cols, size = BACKBONES[backbone]
        for precision in args.precisions:
            tagger = tagger_for(backbone, precision)
            alone, chunked = ms_per_photo(tagger, 1, args.repeats), ms_per_photo(tagger, CHUNK, args.repeats)
            print(f"| {backbone} | {size} px | {rows}x{cols} | {precision} | {alone:.1f} | {chunked:.1f} |", flush=True)


if __name__ == "__main__":
    main()
