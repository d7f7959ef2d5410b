"""Train the attention hashtagger (or a baseline) on a HARRISON-format folder.

    hashtale train-hashtagger --data ../shared/datasets/photos --holdout 0.2 --out var/runs/sat
    hashtale train-hashtagger --out var/runs/sat --resume          # continue where it stopped

Encoder features come from the feature cache (computed once; missing images are encoded first), so
only the decoder trains and an epoch takes seconds on a CPU. `--finetune-blocks N` trains the top N
encoder blocks too, from the images. `--holdout F` sets F of the data aside (fixed `--split-seed`) and
writes both parts as HARRISON folders under <out>/split/ so evaluation (and anyone) can reuse them;
validation for early stopping is carved from the training part only.

<out>/last.pt resumes (weights, optimizer, epoch, history, random state); <out>/best.pt is the best
epoch by validation P@1; <out>/loss.png plots the curves; `--export PATH` writes best.pt as a
float16 inference checkpoint (the shipped models/checkpoints/hashtagger.pt).
"""
from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import asdict
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import BACKBONES, DEFAULT_BACKBONE, Encoder, EncoderConfig
from models.image import to_tensor
from models.tagger import ARCHS, CHECKPOINT_KIND, DEFAULT_BEAM_WIDTH, DEFAULT_MAX_TAGS, Tagger, build_model, model_name
from models.vocab import PAD_ID, Vocab
from settings import PROJECT_ROOT
from training.features import DEFAULT_STORE, FeatureStore
from training.harrison import Example, holdout_split, read_split, write_split
from training.metrics import accuracy_at_k, precision_at_1

DEFAULT_SPLIT_SEED = 20161605  # HARRISON's arXiv id: any fixed number, written down once
VAL_SEED = 7
RANK_K = 5


class _Posts(Dataset):
    """Rows of (features or image, tag ids); features are float16 (L, D) from the cache."""

    def __init__(self, examples: list[Example], vocab: Vocab, feats: torch.Tensor | None, max_tags: int):
        self.examples, self.vocab, self.feats, self.max_tags = examples, vocab, feats, max_tags

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        ex = self.examples[i]
        ids = self.vocab.encode(ex.tags)
        ids = ids[: self.max_tags + 1] + ids[-1:] if len(ids) > self.max_tags + 2 else ids  # keep <end>
        if self.feats is not None:
            return self.feats[i], ids
        with Image.open(ex.image) as img:
            return to_tensor(img.convert("RGB")), ids


def _collate(batch, arch: str, vocab_size: int):
    x = torch.stack([b[0] for b in batch])  # (B, L, D) features or (B, 3, 224, 224) images
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
    p.add_argument("--out", default=str(PROJECT_ROOT / "var" / "runs" / "sat"), help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt (its settings win)")
    p.add_argument("--arch", default="sat", choices=sorted(ARCHS))
    p.add_argument("--holdout", type=float, default=0.0, help="fraction held out as <out>/split/test (0: train on all)")
    p.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED)
    p.add_argument("--val-fraction", type=float, default=0.1, help="of the training part, for early stopping")
    p.add_argument("--min-count", type=int, default=1, help="keep tags seen at least this often")
    p.add_argument("--top-k", type=int, default=None, help="keep at most this many tags")
    p.add_argument("--max-tags", type=int, default=DEFAULT_MAX_TAGS, help="tags per post used / decoded")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=4, help="epochs without a better validation P@1 before stopping")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--embed-dim", type=int, default=256)
    p.add_argument("--hidden-dim", type=int, default=512)
    p.add_argument("--attention-dim", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--alpha-c", type=float, default=1.0, help="lambda of the doubly stochastic attention regulariser")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=sorted(BACKBONES))
    p.add_argument("--weights", default=None, help="local weights file for a torchvision backbone")
    p.add_argument("--finetune-blocks", type=int, default=0, help="train the top N encoder blocks (from images)")
    p.add_argument("--store", default=str(DEFAULT_STORE), help="feature cache root")
    p.add_argument("--cached-only", action="store_true",
                   help="train on the posts whose features are cached already, skipping the rest")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--export", default=None, help="write the best model here as a float16 inference checkpoint")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    last = out / "last.pt"
    resume = load_checkpoint(last, kind=CHECKPOINT_KIND) if args.resume else None
    if resume is not None:
        args = argparse.Namespace(**{**resume["extra"]["train_args"], "resume": True, "export": args.export,
                                     "epochs": args.epochs, "workers": args.workers})
    elif args.data is None:
        raise SystemExit("--data is required unless --resume")
    train_ex, val_ex = _training_examples(args, out)
    vocab = Vocab(resume["vocab"]) if resume else Vocab.build([e.tags for e in train_ex], args.min_count, args.top_k)
    # posts whose tags all fell out of the vocabulary teach nothing
    train_ex, val_ex = ([e for e in part if any(t in vocab.index for t in e.tags)] for part in (train_ex, val_ex))
    enc_cfg = EncoderConfig(backbone=args.backbone, weights=args.weights, finetune_blocks=args.finetune_blocks)
    encoder = Encoder(enc_cfg)
    dim, rows, cols = BACKBONES[args.backbone]
    config = _model_config(args, len(vocab), dim, rows * cols)
    model_args = {"arch": args.arch, "config": config, "encoder": asdict(enc_cfg), "attention_shape": [rows, cols],
                  "beam_width": DEFAULT_BEAM_WIDTH, "max_tags": args.max_tags}
    torch.manual_seed(args.seed)
    model = build_model(args.arch, config)
    params = [p for p in [*model.parameters(), *encoder.parameters()] if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    state = {"epoch": 0, "best": -math.inf, "bad_epochs": 0, "history": []}
    if resume is not None:
        model.load_state_dict(resume["model"])
        if resume["extra"].get("encoder_state"):
            encoder.load_state_dict(resume["extra"]["encoder_state"])
        optimizer.load_state_dict(resume["optimizer"])
        state = {k: resume["extra"][k] for k in state}
        torch.set_rng_state(resume["extra"]["rng"])
        print(f"resuming {last} after epoch {state['epoch']} (best val P@1 {state['best']:.4f})")

    cached = not encoder.trainable
    train_feats = val_feats = None
    if cached:
        store = FeatureStore(args.store, args.backbone)
        if args.cached_only:
            cached_paths = set(map(str, [e.image for e in train_ex + val_ex])) - set(map(str, store.missing(
                [e.image for e in train_ex + val_ex])))
            train_ex, val_ex = ([e for e in part if str(e.image) in cached_paths] for part in (train_ex, val_ex))
            print(f"--cached-only: {len(train_ex) + len(val_ex)} posts have cached features")
        store.extract([e.image for e in train_ex + val_ex], encoder, workers=args.workers)
        train_feats = store.load([e.image for e in train_ex])
        val_feats = store.load([e.image for e in val_ex])
    collate = lambda batch: _collate(batch, args.arch, len(vocab))  # noqa: E731
    gen = torch.Generator().manual_seed(args.seed + state["epoch"])
    train_loader = DataLoader(_Posts(train_ex, vocab, train_feats, args.max_tags), batch_size=args.batch_size,
                              shuffle=True, collate_fn=collate, num_workers=args.workers, generator=gen)
    val_loader = DataLoader(_Posts(val_ex, vocab, val_feats, args.max_tags), batch_size=args.batch_size,
                            collate_fn=collate, num_workers=args.workers)
    print(f"{args.arch}: {len(train_ex)} train / {len(val_ex)} val posts, {len(vocab.tags)} tags, "
          f"{sum(p.numel() for p in model.parameters()):,} decoder parameters, features {'cached' if cached else 'live'}")

    while state["epoch"] < args.epochs and state["bad_epochs"] < args.patience:
        epoch = state["epoch"] + 1
        model.train()
        encoder.train()
        total, n = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{args.epochs}", unit="batch", leave=False)
        for x, y in bar:
            feats = x.float() if cached else encoder(x)  # (B, L, D)
            _, loss = model(feats, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, n = total + loss.item() * len(x), n + len(x)
            bar.set_postfix(loss=f"{total / n:.4f}")
        val = _validate(model, encoder, vocab, args.arch, val_loader, cached, model_args)
        row = {"epoch": epoch, "train_loss": total / max(n, 1), **val}
        state["history"].append(row)
        state["epoch"] = epoch
        improved = val["P@1"] > state["best"]
        state["best"] = max(state["best"], val["P@1"])
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        print(f"epoch {epoch}: train loss {row['train_loss']:.4f}  val loss {val['loss']:.4f}  "
              f"val P@1 {val['P@1']:.4f}  A@5 {val['A@5']:.4f}{'  *' if improved else ''}")
        extra = {"train_args": vars(args), "rng": torch.get_rng_state(), **state,
                 "encoder_state": encoder.state_dict() if encoder.trainable else None}
        metrics = {k: v for k, v in row.items() if k != "epoch"}
        if improved:
            save_checkpoint(out / "best.pt", kind=CHECKPOINT_KIND, model=model, model_args=model_args,
                            vocab=vocab.tokens, step=epoch, metrics=metrics, extra=extra)
        save_checkpoint(last, kind=CHECKPOINT_KIND, model=model, model_args=model_args, vocab=vocab.tokens,
                        step=epoch, metrics=metrics, optimizer=optimizer, extra=extra)
        plot_history(state["history"], out / "loss.png", model_name(args.arch, args.backbone))
        (out / "history.json").write_text(json.dumps(state["history"], indent=1))
    if state["bad_epochs"] >= args.patience:
        print(f"early stop: no better validation P@1 for {args.patience} epochs")
    if args.export:
        export(out / "best.pt", args.export)
        print(f"exported {args.export}")
    return 0


def export(best: str | Path, path: str | Path) -> Path:
    """Best checkpoint -> float16 inference checkpoint without optimizer or training state."""
    ckpt = load_checkpoint(best, kind=CHECKPOINT_KIND)
    model = build_model(ckpt["model_args"]["arch"], ckpt["model_args"]["config"])
    model.load_state_dict(ckpt["model"])
    extra = {"epoch": ckpt["extra"]["epoch"], "train_args": ckpt["extra"]["train_args"]}
    if ckpt["extra"].get("encoder_state"):
        extra["encoder_state"] = {k: v.half() if v.is_floating_point() else v
                                  for k, v in ckpt["extra"]["encoder_state"].items()}
    return save_checkpoint(path, kind=CHECKPOINT_KIND, model=model, model_args=ckpt["model_args"], vocab=ckpt["vocab"],
                           step=ckpt["step"], metrics=ckpt["metrics"], extra=extra, half=True)


def _training_examples(args, out: Path) -> tuple[list[Example], list[Example]]:
    """(train, val). With --holdout the split folders are written once and re-read on resume."""
    split_dir = out / "split"
    if args.holdout > 0:
        if not (split_dir / "train" / "data_list.txt").exists():
            kept, held = holdout_split(read_split(args.data), args.holdout, args.split_seed)
            write_split(split_dir / "train", kept)
            write_split(split_dir / "test", held)
            print(f"held out {len(held)} posts in {split_dir / 'test'} (seed {args.split_seed})")
        examples = read_split(split_dir / "train")
    else:
        examples = read_split(args.data)
    examples = [e for e in examples if e.tags]  # a post without tags teaches nothing
    train, val = holdout_split(examples, args.val_fraction, VAL_SEED)
    return train, val


def _model_config(args, vocab_size: int, dim: int, locations: int) -> dict:
    common = {"vocab_size": vocab_size, "feature_dim": dim, "num_locations": locations, "dropout": args.dropout}
    if args.arch == "sat":
        return {**common, "embed_dim": args.embed_dim, "hidden_dim": args.hidden_dim,
                "attention_dim": args.attention_dim, "alpha_c": args.alpha_c}
    if args.arch == "show-and-tell":
        return {**common, "embed_dim": args.embed_dim, "hidden_dim": args.hidden_dim}
    return {**common, "hidden_dim": args.hidden_dim}


@torch.no_grad()
def _validate(model, encoder, vocab, arch, loader, cached, model_args) -> dict[str, float]:
    model.eval()
    encoder.eval()
    tagger = Tagger(encoder, model, vocab, arch, name="validation", version="", trained=True,
                    max_tags=model_args["max_tags"])
    total, n, ranked, truth = 0.0, 0, [], []
    for x, y in loader:
        feats = x.float() if cached else encoder(x)  # (B, L, D)
        _, loss = model(feats, y)
        total, n = total + loss.item() * len(x), n + len(x)
        ranked += [[t.text for t in d.tags] for d in tagger.decode(feats, RANK_K)]
        truth += [vocab.decode(row.tolist()[1:]) if arch != "multilabel" else
                  [vocab.tokens[i] for i in row.nonzero().flatten().tolist()] for row in y]
    return {"loss": total / max(n, 1), "P@1": precision_at_1(ranked, truth), "A@5": accuracy_at_k(ranked, truth, RANK_K)}


def plot_history(history: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_p) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax_loss.plot(epochs, [h["loss"] for h in history], marker="o", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title=f"{title}: loss")
    ax_loss.legend()
    ax_p.plot(epochs, [h["P@1"] for h in history], marker="o", label="P@1")
    ax_p.plot(epochs, [h["A@5"] for h in history], marker="o", label="A@5")
    ax_p.set(xlabel="epoch", ylabel="validation score", title=f"{title}: validation", ylim=(0, 1))
    ax_p.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
