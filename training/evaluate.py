"""Score any set of hashtag models on a HARRISON-format split, in one run:

    hashtale evaluate --data var/runs/sat/split/test \
        --model models/checkpoints/hashtagger.pt --model var/runs/show-and-tell/best.pt \
        --model var/runs/multilabel/best.pt --out var/eval

BLEU-1..4 and ROUGE-L on each model's best hashtag sequence (as in the original hashtag-story work),
P@1, R@5, A@5 on its k ranked distinct tags (as in the HARRISON benchmark). Writes <out>/results.md
(a Markdown table) and <out>/results.json. Features come from the shared cache (encoded once, float32);
with `--precision bf16` (or a fine-tuned encoder) the images are encoded as the service encodes them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

from models.image import preprocess
from models.tagger import PRECISIONS, Tagger
from settings import PROJECT_ROOT
from training.features import DEFAULT_STORE, FeatureStore
from training.harrison import read_split
from training.metrics import all_metrics

RANK_K = 5
BATCH_SIZE = 256
ENCODE_BATCH = 8  # images per encoder pass when encoding here: the fastest size on CPU (see triton_repo encode_chunk)
# BLEU-1 reported by the original work on HARRISON (80/20 split), for the comparison table
ORIGINAL_BLEU1 = {"soft attention": 0.0825, "Show-and-Tell": 0.1321, "multi-label CNN": 0.0047}
COLUMNS = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "P@1", f"R@{RANK_K}", f"A@{RANK_K}"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="HARRISON-format split to score on")
    p.add_argument("--model", action="append", required=True, dest="models",
                   help="hashtagger checkpoint (repeat for several models; 'shipped' = the service's default)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "var" / "eval"), help="folder for results.md and results.json")
    p.add_argument("--store", default=str(DEFAULT_STORE), help="feature cache root")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="the encoder's arithmetic (the service's ENCODER_PRECISION); fp32 uses the feature cache")


def evaluate(tagger: Tagger, feats: torch.Tensor, truth: list[list[str]]) -> dict[str, float]:
    """Metrics, plus the decoding checks: results holding a tag twice, and results short of k tags."""
    sequences, ranked = [], []
    for start in tqdm(range(0, len(feats), BATCH_SIZE), desc=tagger.name, unit="batch", leave=False):
        for d in tagger.decode(feats[start:start + BATCH_SIZE], RANK_K):
            sequences.append(d.sequence)
            ranked.append([t.text for t in d.tags])
    metrics = all_metrics(sequences, ranked, truth, RANK_K)
    metrics["results_with_duplicates"] = sum(len(set(r)) != len(r) or len(set(s)) != len(s)
                                             for r, s in zip(ranked, sequences))
    metrics[f"results_short_of_{RANK_K}"] = sum(len(r) < RANK_K for r in ranked)
    return metrics


def markdown_table(rows: list[dict], data: str, n_posts: int) -> str:
    lines = [f"Hashtag models on `{data}` ({n_posts} posts).", "",
             "| model | version | " + " | ".join(COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['version']} | " + " | ".join(f"{r['metrics'][c]:.4f}" for c in COLUMNS) + " |")
    lines += ["", "Original work on HARRISON (BLEU-1): " +
              ", ".join(f"{name} {value}" for name, value in ORIGINAL_BLEU1.items()) + "."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    examples = read_split(args.data)
    truth = [e.tags for e in examples]
    rows = []
    for spec in args.models:
        tagger = Tagger.load(None if spec == "shipped" else spec, precision=args.precision)
        store = FeatureStore(args.store, tagger.encoder.config.backbone)
        paths = [e.image for e in examples]
        if tagger.encoder.trainable or tagger.precision != "fp32":  # encode the images themselves
            feats = _encode(tagger, paths)
        else:
            store.extract(paths, tagger.encoder)
            feats = store.load(paths)
        metrics = evaluate(tagger, feats, truth)
        rows.append({"model": tagger.name, "checkpoint": spec, "version": tagger.version, "precision": tagger.precision,
                     "metrics": metrics})
        print(f"{tagger.name} ({spec}): " + "  ".join(f"{c} {metrics[c]:.4f}" for c in COLUMNS))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown_table(rows, args.data, len(examples)))
    (out / "results.json").write_text(json.dumps({"data": args.data, "posts": len(examples), "k": RANK_K,
                                                  "models": rows}, indent=1))
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


@torch.no_grad()
def _encode(tagger: Tagger, paths: list[Path]) -> torch.Tensor:
    feats = []
    for start in tqdm(range(0, len(paths), ENCODE_BATCH), desc="encode", unit="batch", leave=False):
        images = torch.stack([preprocess(p.read_bytes()) for p in paths[start:start + ENCODE_BATCH]])  # (B, 3, 224, 224)
        feats.append(tagger.encode(images).cpu())  # (B, L, D)
    return torch.cat(feats)
