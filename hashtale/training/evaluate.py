"""Score any set of hashtag models on a HARRISON-format split, in one run:

    hashtale evaluate --data var/runs/sat/split/test \
        --model hashtale/models/checkpoints/hashtagger.pt --model var/runs/show-and-tell/best.pt \
        --model var/runs/multilabel/best.pt --out var/eval

Every score is of the EMITTED set (at most k = 5 tags, the model ends it with <end> and drops tags below its
`min_score`): the Corel-5k benchmark's per-class P/R/F1 (means over all classes of the split's vocabulary),
per-image P/R/F1 and N+ (hashtale.training.metrics.annotation_metrics, as its published code computes them);
P@1, R@5, A@5 on the emitted tags in order (HARRISON); BLEU-1..4 and ROUGE-L of the emitted tags in the
model's order (emission order, or surest first for a set read off the beam by marginal probability) against the
post's tags in file order (as the original hashtag-story work scored its generated hashtag sequence). Writes <out>/results.md (a Markdown table) and <out>/results.json.
Features come from the shared cache (encoded once, float32); with `--precision bf16` the images are
encoded as the service encodes them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

from hashtale.models.image import preprocess
from hashtale.models.hashtagger_runtime import PRECISIONS, Tagger
from hashtale.settings import PROJECT_ROOT
from hashtale.training.features import DEFAULT_STORE, FeatureStore
from hashtale.training.harrison import read_split
from hashtale.training.metrics import all_metrics

RANK_K = 5
BATCH_SIZE = 256
ENCODE_BATCH = 8  # images per encoder pass when encoding here: the fastest size on CPU (see triton_repo encode_chunk)
# BLEU-1 reported by the original work on HARRISON (80/20 split), for the comparison table
ORIGINAL_BLEU1 = {"soft attention": 0.0825, "Show-and-Tell": 0.1321, "multi-label CNN": 0.0047}
COLUMNS = ["per-class P", "per-class R", "per-class F1", "per-image P", "per-image R", "per-image F1", "N+",
           "tags/post", "P@1", f"R@{RANK_K}", f"A@{RANK_K}", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="HARRISON-format split to score on")
    p.add_argument("--model", action="append", required=True, dest="models",
                   help="hashtagger checkpoint (repeat for several models; 'shipped' = the service's default)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "var" / "eval"), help="folder for results.md and results.json")
    p.add_argument("--store", default=str(DEFAULT_STORE), help="feature cache root")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="the encoder's arithmetic (the service's ENCODER_PRECISION); fp32 uses the feature cache")


def evaluate(tagger: Tagger, feats: torch.Tensor, truth: list[list[str]]) -> dict[str, float]:
    """Metrics, plus the decoding checks: results holding a tag twice, and tags emitted outside the split's
    vocabulary (they are not in the benchmark's prediction matrix, so they lower no precision there)."""
    sequences, emitted = [], []
    for start in tqdm(range(0, len(feats), BATCH_SIZE), desc=tagger.name, unit="batch", leave=False):
        for d in tagger.decode(feats[start:start + BATCH_SIZE], RANK_K):
            sequences.append(d.sequence)
            emitted.append([t.text for t in d.tags])
    classes = sorted({t for tags in truth for t in tags})
    metrics = all_metrics(sequences, emitted, truth, RANK_K, classes)
    metrics["tags/post"] = sum(map(len, emitted)) / max(len(emitted), 1)
    metrics["results_with_duplicates"] = sum(len(set(r)) != len(r) for r in emitted)
    known = set(classes)
    metrics["tags_outside_vocabulary"] = sum(t not in known for r in emitted for t in r)
    metrics["classes"] = len(classes)
    return metrics


def markdown_table(rows: list[dict], data: str, n_posts: int) -> str:
    lines = [f"Hashtag models on `{data}` ({n_posts} posts).", "",
             "| model | checkpoint | version | " + " | ".join(COLUMNS) + " |",
             "|---|---|---|" + "---:|" * len(COLUMNS)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['checkpoint']} | {r['version']} | " + " | ".join(
            f"{r['metrics'][c]:.0f}" if c == "N+" else f"{r['metrics'][c]:.3f}" for c in COLUMNS) + " |")
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
        if tagger.precision != "fp32":  # encode the images themselves, as the service does
            feats = _encode(tagger, paths)
        else:  # the cached trunk activations through this model's (possibly fine-tuned) top stages
            store.extract(paths, tagger.encoder)
            feats = store.annotations(paths, tagger.encoder)
        metrics = evaluate(tagger, feats, truth)
        rows.append({"model": tagger.name, "checkpoint": spec, "version": tagger.version, "precision": tagger.precision,
                     "metrics": metrics})
        print(f"{tagger.name} ({spec}): " + "  ".join(f"{c} {metrics[c]:.4f}" for c in COLUMNS) +
              f"  duplicates {metrics['results_with_duplicates']}  outside vocabulary {metrics['tags_outside_vocabulary']}")
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
        images = torch.stack([preprocess(p.read_bytes(), size=tagger.input_size)
                              for p in paths[start:start + ENCODE_BATCH]])  # (B, 3, S, S)
        feats.append(tagger.encode(images).cpu())  # (B, L, D)
    return torch.cat(feats)
