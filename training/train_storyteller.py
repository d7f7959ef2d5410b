"""Train the storyteller (char-level LSTM) with truncated BPTT; validate each epoch; stop early; resume.

    hashtale train-storyteller --corpus aesop:../shared/datasets/aesop/aesop_for_children.json --out var/storyteller

Writes to --out: `last.pt` (with optimizer state, for --resume), `best.pt` (best validation loss), `loss.png`
(loss curves). `--export PATH` also writes the best weights as a float16, inference-only checkpoint.
"""
from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from models.chars import CharVocab
from models.checkpoint import load_checkpoint, save_checkpoint
from models.storyteller import Storyteller, StorytellerConfig
from models.writer import CHECKPOINT_KIND
from training.evaluate_storyteller import DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTION, validation_loss
from training.stories import (
    DEFAULT_TAG_VOCABULARY, corpus_text, encode_stories, load_corpus, load_tag_vocabulary, split_stories,
)

GRAD_CLIP = 5.0  # max global gradient norm, as char-rnn
SECONDS_PER_MINUTE = 60


def batchify(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the stream into `batch_size` contiguous lanes: (N,) -> (batch_size, N // batch_size), so chunk t+1 of a
    lane continues chunk t and the LSTM state can be carried across chunks."""
    n = inputs.numel() // batch_size
    return inputs[: n * batch_size].view(batch_size, n), targets[: n * batch_size].view(batch_size, n)


def plot_losses(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats/char)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", action="append", default=[], metavar="KIND:PATH",
                        help="stories to train on, with --val-fraction of each held out (kinds: personabank, aesop, text)")
    parser.add_argument("--extra-corpus", action="append", default=[], metavar="KIND:PATH",
                        help="stories used for training only")
    parser.add_argument("--tag-vocabulary", default=str(DEFAULT_TAG_VOCABULARY),
                        help="hashtag vocabulary (HARRISON vocab_index.txt); '' for none")
    parser.add_argument("--out", default="var/storyteller", help="folder for last.pt, best.pt, loss.png")
    parser.add_argument("--resume", default=None, help="a last.pt to continue from (model, optimizer, history)")
    parser.add_argument("--export", default=None, help="also write the best model here, float16, inference-only")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION)
    parser.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED)
    defaults = StorytellerConfig()
    parser.add_argument("--n-embd", type=int, default=defaults.n_embd)
    parser.add_argument("--n-hidden", type=int, default=defaults.n_hidden)
    parser.add_argument("--n-layer", type=int, default=defaults.n_layer)
    parser.add_argument("--dropout", type=float, default=defaults.dropout)
    parser.add_argument("--optimizer", choices=("rmsprop", "adam"), default="rmsprop")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lr-decay", type=float, default=0.5, help="learning-rate factor after an epoch that did not improve")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=100, help="characters per truncated-BPTT chunk")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=3, help="epochs without improvement before stopping")
    parser.add_argument("--max-minutes", type=float, default=0, help="stop (validate, save) after this long; 0: no limit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag_vocab = load_tag_vocabulary(args.tag_vocabulary) if args.tag_vocabulary else frozenset()
    train, val = [], []
    for spec in args.corpus:
        tr, va = split_stories(load_corpus(spec, tag_vocab), args.val_fraction, args.split_seed)
        train, val = train + tr, val + va
    for spec in args.extra_corpus:
        train += load_corpus(spec, tag_vocab)
    if not train or not val:
        raise SystemExit("need training and held-out stories: give --corpus (and a --val-fraction > 0)")

    if args.resume:
        ckpt = load_checkpoint(args.resume, kind=CHECKPOINT_KIND)
        config, vocab = StorytellerConfig(**ckpt["model_args"]), CharVocab(ckpt["vocab"])
    else:
        config = StorytellerConfig(n_embd=args.n_embd, n_hidden=args.n_hidden, n_layer=args.n_layer, dropout=args.dropout)
        vocab = CharVocab.from_texts(corpus_text(train))
        config.vocab_size = len(vocab)
    model = Storyteller(config)
    opt_class = torch.optim.RMSprop if args.optimizer == "rmsprop" else torch.optim.Adam
    optimizer = opt_class(model.parameters(), lr=args.lr)
    history, best, bad_epochs, step, epoch0 = [], math.inf, 0, 0, 0
    if args.resume:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        extra = ckpt["extra"]
        history, best, bad_epochs, epoch0, step = extra["history"], extra["best"], extra["bad_epochs"], extra["epoch"], ckpt["step"]
        print(f"resumed from {args.resume}: epoch {epoch0}, step {step}, best {best:.4f}")
    print(f"{model.num_params():,} parameters, vocab {len(vocab)}; {len(train)} training stories, {len(val)} held out")

    val_x, val_y = encode_stories(val, vocab)
    start = time.monotonic()
    out_of_time = False
    for epoch in range(epoch0 + 1, args.epochs + 1):
        model.train()
        xs, ys = batchify(*encode_stories(train, vocab, random.Random(args.seed * 1_000_003 + epoch)), args.batch_size)
        state, total, n = None, 0.0, 0
        bar = tqdm(range(0, xs.size(1), args.seq_len), desc=f"epoch {epoch}", unit="chunk")
        for t in bar:
            x, y = xs[:, t:t + args.seq_len], ys[:, t:t + args.seq_len]  # (B, T)
            if state is not None:
                state = tuple(s.detach() for s in state)  # truncated BPTT: no gradient into the previous chunk
            _, loss, state = model(x, y, state)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            step, total, n = step + 1, total + loss.item(), n + 1
            bar.set_postfix(loss=f"{total / n:.3f}")
            if args.max_minutes and time.monotonic() - start > args.max_minutes * SECONDS_PER_MINUTE:
                out_of_time = True
                break
        bar.close()
        val_loss = validation_loss(model, val_x, val_y)
        history.append({"epoch": epoch, "step": step, "train_loss": total / max(n, 1), "val_loss": val_loss,
                        "lr": optimizer.param_groups[0]["lr"], "minutes": (time.monotonic() - start) / SECONDS_PER_MINUTE})
        improved = val_loss < best
        best, bad_epochs = (val_loss, 0) if improved else (best, bad_epochs + 1)
        print(f"epoch {epoch}: train {total / max(n, 1):.4f} val {val_loss:.4f} nats/char"
              f"{' (best)' if improved else ''}", flush=True)
        metrics = {"val_loss": val_loss, "best_val_loss": best, "train_loss": total / max(n, 1)}
        extra = {"history": history, "best": best, "bad_epochs": bad_epochs, "epoch": epoch, "args": vars(args)}
        if improved:
            save_checkpoint(out / "best.pt", kind=CHECKPOINT_KIND, model=model, model_args=model.model_args,
                            vocab=vocab.tokens, step=step, metrics=metrics, extra=extra)
        save_checkpoint(out / "last.pt", kind=CHECKPOINT_KIND, model=model, model_args=model.model_args,
                        vocab=vocab.tokens, step=step, metrics=metrics, optimizer=optimizer, extra=extra)
        plot_losses(history, out / "loss.png")
        if not improved:
            for group in optimizer.param_groups:
                group["lr"] *= args.lr_decay
        if bad_epochs >= args.patience or out_of_time:
            print("early stop" if not out_of_time else f"time budget of {args.max_minutes} min reached")
            break

    if args.export:
        best_ckpt = load_checkpoint(out / "best.pt", kind=CHECKPOINT_KIND)
        model.load_state_dict(best_ckpt["model"])
        save_checkpoint(args.export, kind=CHECKPOINT_KIND, model=model, model_args=model.model_args, vocab=vocab.tokens,
                        step=best_ckpt["step"], metrics=best_ckpt["metrics"], half=True,
                        extra={"history": history, "args": vars(args)})
        print(f"exported {args.export} ({Path(args.export).stat().st_size / 2**20:.1f} MiB)")
    print(f"best validation loss {best:.4f} nats/char")
    return 0
