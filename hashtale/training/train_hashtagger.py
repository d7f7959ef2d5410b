"""Train the attention hashtagger (or a baseline) on HARRISON-format folders.

    hashtale train-hashtagger --data ../shared/datasets/photos --holdout 0.2 \
        --extra-data ../shared/datasets/corel5k/train --out var/runs/sat
    hashtale train-hashtagger --out var/runs/sat --resume          # continue where it stopped

Encoder activations come from the feature cache (computed once; missing images are encoded first): a
frozen encoder's annotation vectors are computed once, and `--finetune-blocks N` (N <= the cache's top
stages) trains the encoder's top N stages on the cached activations, so an epoch stays cheap on a CPU.
`--crops N` also trains on N random-crop views of every training photo (`extract-features --crops`), each row one
view drawn at random: augmentation whose encoder cost is paid once, at extraction.
`--holdout F` sets F of `--data` aside (fixed `--split-seed`) and writes both parts as HARRISON folders under
<out>/split/ so evaluation (and anyone) can reuse them; `--extra-data` folders train in full (their own test
splits stay untouched). Validation (early stopping, model selection, the `min_score` threshold) is carved
from the training posts only. `--folds K --fold I` also holds fold I of K of the training posts out of training
(the validation posts stay the same), for `tune-decoding --cross-validate` to choose the decoding on them.

The validation score is the mean over the data folders of the per-class F1 of the emitted sets (the
Corel-5k benchmark's headline figure; for single-tag photos it follows P@1), at the `min_score` threshold
that maximises it on the same validation posts (stored in the checkpoint's model args).

<out>/last.pt resumes (weights, optimizer, epoch, history, random state); <out>/best.pt is the best epoch;
<out>/loss.png plots the curves; `--export PATH` writes best.pt as a float16 inference checkpoint (the
shipped hashtale/models/checkpoints/hashtagger.pt).
"""
from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import asdict
from pathlib import Path

import time

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from hashtale.models.checkpoint import load_checkpoint, save_checkpoint
from hashtale.models.encoder import BACKBONES, DEFAULT_BACKBONE, Encoder, EncoderConfig
from hashtale.models.hashtagger_runtime import (
    ARCHS, CHECKPOINT_KIND, DEFAULT_BEAM_WIDTH, DEFAULT_MAX_TAGS, ENSEMBLE_ARCH, Tagger, build_model, model_name,
)
from hashtale.models.vocab import PAD_ID, Vocab
from hashtale.settings import PROJECT_ROOT
from hashtale.models.hashtagger import AUX_LOSSES, AUX_POOLS, TAG_ORDERS
from hashtale.training.features import CACHE_TOP_STAGES, DEFAULT_STORE, STORE_PRECISIONS, FeatureStore
from hashtale.training.harrison import Example, holdout_split, read_split, write_split
from hashtale.training.metrics import annotation_metrics, precision_at_1

DEFAULT_SPLIT_SEED = 20161605  # HARRISON's arXiv id: any fixed number, written down once
VAL_SEED = 7
FOLD_SEED = 11  # cross-validation folds of the training posts
# candidate min_score thresholds tried on the validation posts, step 0.05
MIN_SCORES = tuple(round(0.05 * i, 2) for i in range(19))


class _Posts(Dataset):
    """Rows of (cached encoder activations or annotation vectors, float16; tag ids). With several views (the
    photos as they are and mirrored), each row is one view chosen at random, uniformly, every time it is read."""

    def __init__(self, examples: list[Example], vocab: Vocab, views: list[torch.Tensor], max_tags: int):
        self.examples, self.vocab, self.views, self.max_tags = examples, vocab, views, max_tags

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        view = int(torch.randint(len(self.views), ())) if len(self.views) > 1 else 0  # the global, resumed RNG
        return self.views[view][i], target_ids(self.vocab, self.examples[i].tags, self.max_tags)


def target_ids(vocab: Vocab, tags: list[str], max_tags: int) -> list[int]:
    """A post's training targets: <start>, at most `max_tags` tag ids, <end>."""
    ids = vocab.encode(tags)
    return ids[: max_tags + 1] + ids[-1:] if len(ids) > max_tags + 2 else ids  # keep <end>


def _collate(batch, arch: str, vocab_size: int):
    x = torch.stack([b[0] for b in batch])  # (B, L, D) annotation vectors or (B, C, h, w) activations
    if arch == "multilabel":
        y = torch.zeros(len(batch), vocab_size)  # (B, V) multi-hot
        for row, (_, ids) in enumerate(batch):
            y[row, ids] = 1.0
        return x, y
    T = max(len(ids) for _, ids in batch)
    y = torch.full((len(batch), T), PAD_ID, dtype=torch.long)  # (B, T)
    for row, (_, ids) in enumerate(batch):
        y[row, : len(ids)] = torch.tensor(ids)
    return x, y


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="HARRISON-format folder (data_list.txt + tag_list.txt); any such folder works")
    p.add_argument("--extra-data", action="append", default=[],
                   help="another HARRISON-format folder trained on in full, vocabularies united (repeatable)")
    p.add_argument("--out", default=str(PROJECT_ROOT / "var" / "runs" / "sat"), help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt (its settings win)")
    p.add_argument("--arch", default="sat", choices=sorted(set(ARCHS) - {ENSEMBLE_ARCH}))
    p.add_argument("--holdout", type=float, default=0.0, help="fraction of --data held out as <out>/split/test")
    p.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED)
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="of the training posts, for model selection; 0: a refit on all of them for exactly --epochs, "
                        "the last epoch kept (its decoding from tune-decoding --cross-validate)")
    p.add_argument("--folds", type=int, default=0,
                   help="cross-validation: split the training posts (not the validation posts) into this many folds")
    p.add_argument("--fold", type=int, default=0, help="with --folds: the fold held out of training")
    p.add_argument("--min-count", type=int, default=1, help="keep tags seen at least this often")
    p.add_argument("--top-k", type=int, default=None, help="keep at most this many tags")
    p.add_argument("--max-tags", type=int, default=DEFAULT_MAX_TAGS, help="tags per post used / at most decoded")
    p.add_argument("--tag-order", default="rare", choices=TAG_ORDERS, help="training order of a photo's tags")
    p.add_argument("--aux-weight", type=float, default=0.0, help="weight of the auxiliary multi-label loss (sat)")
    p.add_argument("--aux-guide", action="store_true", help="add the auxiliary head's logits to every step's (sat)")
    p.add_argument("--aux-loss", default="bce", choices=AUX_LOSSES, help="loss of the auxiliary multi-label head (sat)")
    p.add_argument("--aux-pool", default="mean", choices=AUX_POOLS,
                   help="what the auxiliary head reads: the mean annotation, or the mean and the maximum (sat)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=4, help="epochs without a better validation score before stopping")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--encoder-lr", type=float, default=None,
                   help="learning rate of the fine-tuned encoder stages (default: --lr)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--ema", type=float, default=0.0,
                   help="decay of an exponential moving average of the decoder's weights, updated every batch, which "
                        "validation scores and best.pt keeps (0: off; e.g. 0.999)")
    p.add_argument("--embed-dim", type=int, default=256)
    p.add_argument("--hidden-dim", type=int, default=512)
    p.add_argument("--attention-dim", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--alpha-c", type=float, default=1.0, help="lambda of the doubly stochastic attention regulariser")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=sorted(BACKBONES))
    p.add_argument("--weights", default=None, help="local weights file for a torchvision backbone")
    p.add_argument("--finetune-blocks", type=int, default=0,
                   help=f"train the encoder's top N stages too (N <= {CACHE_TOP_STAGES}, on the cached activations)")
    p.add_argument("--store", default=str(DEFAULT_STORE), help="feature cache root")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--hflip", action="store_true",
                   help="train on each photo or its mirror image, at random (the mirrored views are cached once)")
    p.add_argument("--crops", type=int, default=0,
                   help="also train on this many random-crop views of each photo (cached once, see extract-features)")
    p.add_argument("--crop-precision", default="fp32", choices=STORE_PRECISIONS,
                   help="arithmetic the random-crop views are encoded in (bf16: fast on CPUs with native bfloat16)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--export", default=None, help="write the best model here as a float16 inference checkpoint")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    last = out / "last.pt"
    resume = load_checkpoint(last, kind=CHECKPOINT_KIND) if args.resume else None
    if resume is not None:
        # settings added since the run started keep their defaults
        args = argparse.Namespace(**{**vars(args), **resume["extra"]["train_args"], "resume": True, "export": args.export,
                                     "epochs": args.epochs, "workers": args.workers})
    elif args.data is None:
        raise SystemExit("--data is required unless --resume")
    if args.finetune_blocks > CACHE_TOP_STAGES:
        raise SystemExit(f"--finetune-blocks is at most {CACHE_TOP_STAGES}: the cache holds what enters those stages")
    (train_ex, train_src), (val_ex, val_src) = _training_examples(args, out)
    vocab = Vocab(resume["vocab"]) if resume else Vocab.build([e.tags for e in train_ex], args.min_count, args.top_k)
    # posts whose tags all fell out of the vocabulary teach nothing
    keep = lambda ex, src: [(e, s) for e, s in zip(ex, src) if any(t in vocab.index for t in e.tags)]  # noqa: E731
    (train_ex, train_src), (val_ex, val_src) = ((list(part) for part in zip(*keep(ex, src))) if ex else ([], [])
                                                for ex, src in ((train_ex, train_src), (val_ex, val_src)))
    enc_cfg = EncoderConfig(backbone=args.backbone, weights=args.weights, finetune_blocks=args.finetune_blocks)
    encoder = Encoder(enc_cfg)
    dim, rows, cols, _ = BACKBONES[args.backbone]
    config = _model_config(args, len(vocab), dim, rows * cols)
    model_args = {"arch": args.arch, "config": config, "encoder": asdict(enc_cfg), "attention_shape": [rows, cols],
                  "beam_width": DEFAULT_BEAM_WIDTH, "max_tags": args.max_tags, "min_score": 0.0}
    torch.manual_seed(args.seed)
    model = build_model(args.arch, config)
    tuned_params = [p for p in encoder.parameters() if p.requires_grad]
    groups = [{"params": list(model.parameters())}]
    if tuned_params:  # pretrained weights: a smaller step keeps what ImageNet taught them
        groups.append({"params": tuned_params, "lr": args.encoder_lr or args.lr})
    optimizer = torch.optim.Adam(groups, lr=args.lr, weight_decay=args.weight_decay)
    # the weights validation scores and best.pt keeps: the trained ones, or their moving average (Polyak averaging)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema)) if args.ema else None
    scored = ema.module if ema is not None else model
    state = {"epoch": 0, "best": -math.inf, "bad_epochs": 0, "history": [], "seconds": 0.0}
    if resume is not None:
        model.load_state_dict(resume["model"])
        if ema is not None:
            ema.load_state_dict(resume["extra"]["ema_state"])
        if resume["extra"].get("encoder_state"):
            encoder.load_tuned_state(resume["extra"]["encoder_state"])
        optimizer.load_state_dict(resume["optimizer"])
        state = {k: resume["extra"][k] for k in state}
        model_args["min_score"] = resume["model_args"]["min_score"]
        torch.set_rng_state(resume["extra"]["rng"])
        print(f"resuming {last} after epoch {state['epoch']} (best validation score {state['best']:.4f})")

    store = FeatureStore(args.store, args.backbone)
    store.extract([e.image for e in train_ex + val_ex], encoder, workers=args.workers)
    # validation sees the photos as served; training also their mirror images with --hflip, random crops with --crops
    train_stores = [store, FeatureStore(args.store, args.backbone, hflip=True)] if args.hflip else [store]
    train_stores += [FeatureStore(args.store, args.backbone, crop=n, precision=args.crop_precision)
                     for n in range(1, args.crops + 1)]
    for extra_store in train_stores[1:]:
        extra_store.extract([e.image for e in train_ex], encoder, workers=args.workers)
    # The top stages train, or many views would not fit in memory as annotation vectors (~25x the activations):
    # keep what enters the top stages and run them every batch.
    tuned = encoder.trainable or args.crops > 0
    if tuned:
        train_x = [s.load([e.image for e in train_ex]) for s in train_stores]
        val_x = store.load([e.image for e in val_ex]) if val_ex else None
    else:  # frozen: the annotation vectors once
        train_x = [s.annotations([e.image for e in train_ex], encoder) for s in train_stores]
        val_x = store.annotations([e.image for e in val_ex], encoder) if val_ex else None
    features = lambda x: encoder.top(x.float(), store.top_stages) if tuned else x.float()  # noqa: E731  (B, L, D)
    collate = lambda batch: _collate(batch, args.arch, len(vocab))  # noqa: E731
    gen = torch.Generator().manual_seed(args.seed + state["epoch"])
    train_loader = DataLoader(_Posts(train_ex, vocab, train_x, args.max_tags), batch_size=args.batch_size,
                              shuffle=True, collate_fn=collate, num_workers=args.workers, generator=gen)
    val_loader = DataLoader(_Posts(val_ex, vocab, [val_x], args.max_tags), batch_size=args.batch_size,
                            collate_fn=collate, num_workers=args.workers)
    print(f"{args.arch}: {len(train_ex)} train / {len(val_ex)} val posts, {len(vocab.tags)} tags, "
          f"{sum(p.numel() for p in model.parameters()):,} decoder parameters, "
          f"encoder {'top ' + str(args.finetune_blocks) + ' stages fine-tuned' if encoder.trainable else 'frozen'}"
          f"{', mirrored views' if args.hflip else ''}{f', {args.crops} random-crop views' if args.crops else ''}")

    while state["epoch"] < args.epochs and state["bad_epochs"] < args.patience:
        epoch = state["epoch"] + 1
        started = time.perf_counter()
        model.train()
        encoder.train()
        total, n = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{args.epochs}", unit="batch", leave=False)
        for x, y in bar:
            _, loss = model(features(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            total, n = total + loss.item() * len(x), n + len(x)
            bar.set_postfix(loss=f"{total / n:.4f}")
        if val_ex:
            val, min_score = _validate(scored, encoder, features, vocab, args.arch, val_loader, val_ex, val_src,
                                       model_args)
            improved = val["score"] > state["best"]
            state["best"] = max(state["best"], val["score"])
        else:  # a refit on every training post (--val-fraction 0) for a fixed --epochs: the last epoch is the model
            val, min_score, improved = {}, model_args["min_score"], True
        state["seconds"] += time.perf_counter() - started
        row = {"epoch": epoch, "train_loss": total / max(n, 1), "min_score": min_score, **val}
        state["history"].append(row)
        state["epoch"] = epoch
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        scores = f"val loss {val['loss']:.4f}  score {val['score']:.4f} (min_score {min_score})  " if val else ""
        print(f"epoch {epoch}: train loss {row['train_loss']:.4f}  {scores}" +
              "  ".join(f"{k} {v:.4f}" for k, v in val.items() if "/" in k) +
              f"  {state['seconds']:.0f} s{'  *' if improved else ''}")
        extra = {"train_args": vars(args), "rng": torch.get_rng_state(), **state,
                 "encoder_state": encoder.tuned_state() or None,
                 "ema_state": ema.state_dict() if ema is not None else None}
        metrics = {k: v for k, v in row.items() if k != "epoch"}
        if improved:
            save_checkpoint(out / "best.pt", kind=CHECKPOINT_KIND, model=scored,
                            model_args={**model_args, "min_score": min_score},
                            vocab=vocab.tokens, step=epoch, metrics=metrics, extra=extra)
        save_checkpoint(last, kind=CHECKPOINT_KIND, model=model, model_args={**model_args, "min_score": min_score},
                        vocab=vocab.tokens, step=epoch, metrics=metrics, optimizer=optimizer, extra=extra)
        plot_history(state["history"], out / "loss.png", model_name(args.arch, args.backbone))
        (out / "history.json").write_text(json.dumps(state["history"], indent=1))
    if state["bad_epochs"] >= args.patience:
        print(f"early stop: no better validation score for {args.patience} epochs")
    print(f"trained {state['epoch']} epochs in {state['seconds']:.0f} s "
          f"(decoder{' and encoder top' if encoder.trainable else ''})")
    if args.export:
        export_inference_checkpoint(out / "best.pt", args.export)
        print(f"exported {args.export}")
    return 0


def export_inference_checkpoint(best: str | Path, path: str | Path) -> Path:
    """Best checkpoint -> float16 inference checkpoint without optimizer or training state."""
    ckpt = load_checkpoint(best, kind=CHECKPOINT_KIND)
    model = build_model(ckpt["model_args"]["arch"], ckpt["model_args"]["config"])
    model.load_state_dict(ckpt["model"])
    extra = {"epoch": ckpt["extra"]["epoch"], "train_args": ckpt["extra"]["train_args"]}
    if ckpt["extra"].get("label_transfer_bank"):  # written by tune-decoding --label-transfer, already float16
        extra["label_transfer_bank"] = ckpt["extra"]["label_transfer_bank"]
    if ckpt["extra"].get("encoder_state"):
        extra["encoder_state"] = {k: v.half() if v.is_floating_point() else v
                                  for k, v in ckpt["extra"]["encoder_state"].items()}
    return save_checkpoint(path, kind=CHECKPOINT_KIND, model=model, model_args=ckpt["model_args"], vocab=ckpt["vocab"],
                           step=ckpt["step"], metrics=ckpt["metrics"], extra=extra, half=True)


def _training_examples(args, out: Path) -> tuple[tuple[list[Example], list[int]], tuple[list[Example], list[int]]]:
    """((train, source), (val, source)); source = index of the folder (0: --data, then --extra-data).
    With --holdout the split folders of --data are written once and re-read on resume. With --folds the
    training posts lack the held-out fold (`held_out_fold`)."""
    (examples, sources), train_i, val_i = _examples_and_split(args, out)
    if getattr(args, "folds", 0):  # checkpoints from before cross-validation have no folds
        train_i = [train_i[j] for j in fold_split(len(train_i), args.folds, args.fold)[0]]
    return ([examples[i] for i in train_i], [sources[i] for i in train_i]), \
        ([examples[i] for i in val_i], [sources[i] for i in val_i])


def held_out_fold(args, out: Path) -> tuple[list[Example], list[int]]:
    """(examples, source) of the training posts that the run's cross-validation fold (--folds, --fold) held out."""
    (examples, sources), train_i, _val_i = _examples_and_split(args, out)
    held = [train_i[j] for j in fold_split(len(train_i), args.folds, args.fold)[1]]
    return [examples[i] for i in held], [sources[i] for i in held]


def fold_split(n: int, folds: int, fold: int) -> tuple[list[int], list[int]]:
    """Positions 0..n-1 kept and held out by cross-validation fold `fold` of `folds`: every position is held out by
    exactly one fold (a fixed shuffle, dealt round-robin)."""
    if not 0 <= fold < folds:
        raise SystemExit(f"--fold must be in 0..{folds - 1}")
    order = list(range(n))
    random.Random(FOLD_SEED).shuffle(order)
    held = set(order[fold::folds])
    return [i for i in range(n) if i not in held], sorted(held)


def _examples_and_split(args, out: Path) -> tuple[tuple[list[Example], list[int]], list[int], list[int]]:
    """((examples, source), training indices, validation indices) of every post of the run's data folders."""
    split_dir = out / "split"
    if args.holdout > 0:
        if not (split_dir / "train" / "data_list.txt").exists():
            kept, held = holdout_split(read_split(args.data), args.holdout, args.split_seed)
            write_split(split_dir / "train", kept)
            write_split(split_dir / "test", held)
            print(f"held out {len(held)} posts in {split_dir / 'test'} (seed {args.split_seed})")
        folders = [split_dir / "train"]
    else:
        folders = [Path(args.data)]
    examples, sources = [], []
    for source, folder in enumerate(folders + [Path(f) for f in args.extra_data]):
        part = [e for e in read_split(folder) if e.tags]  # a post without tags teaches nothing
        examples += part
        sources += [source] * len(part)
    order = list(range(len(examples)))
    train_i, val_i = holdout_split(order, args.val_fraction, VAL_SEED)
    return (examples, sources), train_i, val_i


def _model_config(args, vocab_size: int, dim: int, locations: int) -> dict:
    common = {"vocab_size": vocab_size, "feature_dim": dim, "num_locations": locations, "dropout": args.dropout}
    if args.arch == "sat":
        return {**common, "embed_dim": args.embed_dim, "hidden_dim": args.hidden_dim, "attention_dim": args.attention_dim,
                "alpha_c": args.alpha_c, "tag_order": args.tag_order, "aux_weight": args.aux_weight,
                "aux_guide": args.aux_guide, "aux_loss": args.aux_loss, "aux_pool": args.aux_pool}
    if args.arch == "show-and-tell":
        if args.tag_order == "predicted":
            raise SystemExit("Show-and-Tell trains with a fixed tag order: --tag-order frequent or rare")
        return {**common, "embed_dim": args.embed_dim, "hidden_dim": args.hidden_dim, "tag_order": args.tag_order}
    return {**common, "hidden_dim": args.hidden_dim}


@torch.no_grad()
def _validate(model, encoder, features, vocab, arch, loader, examples, sources, model_args
              ) -> tuple[dict[str, float], float]:
    """Validation loss and, at the best `min_score`, the score (mean per-class F1 over the data folders), with
    each folder's per-class F1 and P@1 ("F1/<i>", "P@1/<i>"). Returns (metrics, min_score)."""
    model.eval()
    encoder.eval()
    tagger = Tagger(encoder, model, vocab, arch, name="validation", version="", trained=True,
                    max_tags=model_args["max_tags"], min_score=0.0)
    total, n, decoded = 0.0, 0, []
    for x, y in loader:
        feats = features(x)  # (B, L, D)
        _, loss = model(feats, y)
        total, n = total + loss.item() * len(x), n + len(x)
        decoded += [[(t.text, t.score) for t in d.tags] for d in tagger.decode(feats, model_args["max_tags"])]
    rows = threshold_rows(decoded, [e.tags for e in examples], sources)
    min_score, row = max(rows, key=lambda r: r[1]["score"])
    return {"loss": total / max(n, 1), **row}, min_score


def threshold_rows(decoded: list[list[tuple[str, float]]], truth: list[list[str]], sources: list[int]
                   ) -> list[tuple[float, dict[str, float]]]:
    """The validation figures of decoded sets ((tag, score) in the model's order) at every candidate
    `min_score`: per data folder its per-class F1, P@1 and emitted tags per post ("F1/<i>", "P@1/<i>",
    "tags/<i>"), and the score, the mean of the folders' per-class F1. [(min_score, row)], in MIN_SCORES order."""
    out = []
    for min_score in MIN_SCORES:
        emitted = [[text for i, (text, score) in enumerate(d) if i == 0 or score >= min_score] for d in decoded]
        row = {}
        for source in sorted(set(sources)):
            part = [i for i, s in enumerate(sources) if s == source]
            pred, true = [emitted[i] for i in part], [truth[i] for i in part]
            row[f"F1/{source}"] = annotation_metrics(pred, true)["per-class F1"]
            row[f"P@1/{source}"] = precision_at_1(pred, true)
            row[f"tags/{source}"] = sum(map(len, pred)) / max(len(pred), 1)
        row["score"] = sum(v for k, v in row.items() if k.startswith("F1/")) / len(set(sources))
        out.append((min_score, row))
    return out


def plot_history(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_p) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    validated = [h for h in history if "score" in h]  # none in a refit (--val-fraction 0)
    val_epochs = [h["epoch"] for h in validated]
    ax_loss.plot(val_epochs, [h["loss"] for h in validated], marker="o", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title=f"{title}: loss")
    ax_loss.legend()
    ax_p.plot(val_epochs, [h["score"] for h in validated], marker="o", label="score")
    for key in sorted(k for k in history[0] if k.startswith(("F1/", "P@1/"))):
        ax_p.plot(val_epochs, [h[key] for h in validated], marker=".", label=key)
    ax_p.set(xlabel="epoch", ylabel="validation score", title=f"{title}: validation", ylim=(0, 1))
    ax_p.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
