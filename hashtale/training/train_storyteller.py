"""Train the storyteller (char-level LSTM conditioned on hashtag sets) on tagged passages; validate; stop early; resume.

    hashtale train-storyteller --corpus stories:../shared/datasets/stories --out var/storyteller

Each batch holds whole passages of similar length (each starts from the story-start state), read in truncated-BPTT
chunks of --seq-len characters with the state carried across chunks. Each epoch draws every passage a new tag set
(`hashtale.training.stories.training_tags`). Validation uses each held-out passage's top hashtags.
Writes to --out: `last.pt` (with optimizer state and the position in the epoch, for --resume), `best.pt` (best
validation loss), `loss.png`. `--export PATH` also writes the best weights as a float16, inference-only checkpoint.
"""
from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from hashtale.models.chars import CharVocab
from hashtale.models.checkpoint import load_checkpoint, save_checkpoint
from hashtale.models.storyteller import CONDITIONS, Storyteller, StorytellerConfig
from hashtale.models.storyteller_runtime import CHECKPOINT_KIND, tag_index_of
from hashtale.training.evaluate_storyteller import DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTION, validation_loss
from hashtale.training.lexicon import DEFAULT_TAG_FILES, TagLexicon, load_tag_vocabulary
from hashtale.training.stories import batches, corpus_text, encode_batch, load_corpus, split_stories, training_tags

GRAD_CLIP = 5.0  # max global gradient norm, as char-rnn
SECONDS_PER_MINUTE = 60


def plot_losses(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]  # fractional: validation runs every --eval-minutes
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
                        help="stories to train on, with --val-fraction of each held out (kinds: stories, personabank, aesop, text)")
    parser.add_argument("--extra-corpus", action="append", default=[], metavar="KIND:PATH",
                        help="stories used for training only")
    parser.add_argument("--tag-files", nargs="+", default=[str(p) for p in DEFAULT_TAG_FILES],
                        help="the hashtag vocabulary: the union of these tag lists (the hashtagger's)")
    parser.add_argument("--out", default="var/storyteller", help="folder for last.pt, best.pt, loss.png")
    parser.add_argument("--resume", default=None, help="a last.pt to continue from (model, optimizer, history, position)")
    parser.add_argument("--export", default=None, help="also write the best model here, float16, inference-only")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION)
    parser.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED)
    defaults = StorytellerConfig()
    parser.add_argument("--condition", choices=CONDITIONS, default="input+init", help="where the model sees the tag set")
    parser.add_argument("--n-embd", type=int, default=defaults.n_embd)
    parser.add_argument("--n-hidden", type=int, default=defaults.n_hidden)
    parser.add_argument("--n-layer", type=int, default=defaults.n_layer)
    parser.add_argument("--n-tag-embd", type=int, default=defaults.n_tag_embd)
    parser.add_argument("--dropout", type=float, default=defaults.dropout)
    parser.add_argument("--optimizer", choices=("rmsprop", "adam"), default="adam")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lr-decay", type=float, default=0.5, help="learning-rate factor after a validation that did not improve")
    parser.add_argument("--batch-size", type=int, default=32, help="passages per batch")
    parser.add_argument("--seq-len", type=int, default=128, help="characters per truncated-BPTT chunk")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--eval-minutes", type=float, default=10, help="validate and save this often (and at each epoch end)")
    parser.add_argument("--patience", type=int, default=3, help="validations without improvement before stopping")
    parser.add_argument("--max-minutes", type=float, default=0, help="stop (validate, save) after this long; 0: no limit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lexicon = TagLexicon(load_tag_vocabulary(args.tag_files))
    train, val = [], []
    for spec in args.corpus:
        tr, va = split_stories(load_corpus(spec, lexicon), args.val_fraction, args.split_seed)
        train, val = train + tr, val + va
    for spec in args.extra_corpus:
        train += load_corpus(spec, lexicon)
    if not train or not val:
        raise SystemExit("need training and held-out stories: give --corpus (and a --val-fraction > 0)")

    if args.resume:
        ckpt = load_checkpoint(args.resume, kind=CHECKPOINT_KIND)
        config, vocab, tags = StorytellerConfig(**ckpt["model_args"]), CharVocab(ckpt["vocab"]), ckpt["extra"]["tags"]
    else:
        tags = lexicon.vocabulary
        config = StorytellerConfig(n_embd=args.n_embd, n_hidden=args.n_hidden, n_layer=args.n_layer, dropout=args.dropout,
                                   n_tags=len(tags) + 1, n_tag_embd=args.n_tag_embd, condition=args.condition)
        vocab = CharVocab.from_texts(corpus_text(train))
        config.vocab_size = len(vocab)
    tag_index = tag_index_of(tags)
    tag_words = {t: lexicon.words.get(t, ()) for t in tags}  # for the sampler's mention steering (hashtale.models.steering)
    model = Storyteller(config)
    opt_class = torch.optim.RMSprop if args.optimizer == "rmsprop" else torch.optim.Adam
    optimizer = opt_class(model.parameters(), lr=args.lr)
    history, best, bad_evals, step, epoch0, position = [], math.inf, 0, 0, 1, 0
    if args.resume:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        extra = ckpt["extra"]
        history, best, bad_evals, step = extra["history"], extra["best"], extra["bad_evals"], ckpt["step"]
        epoch0, position = extra["epoch"], extra["position"]
        print(f"resumed from {args.resume}: epoch {epoch0} batch {position}, step {step}, best {best:.4f}")
    n_tagged = sum(bool(s.tags) for s in train + val)
    print(f"{model.num_params():,} parameters, vocab {len(vocab)}, {len(tags)} hashtags, condition {config.condition}; "
          f"{len(train)} training passages ({len(corpus_text(train)):,} chars), {len(val)} held out "
          f"({len(corpus_text(val)):,} chars); {n_tagged} of {len(train) + len(val)} passages have >= 1 hashtag", flush=True)

    start = last_eval = time.monotonic()
    stop = False

    def evaluate_and_save(epoch: int, position: int, n_batches: int, total: float, n: int) -> bool:
        """Validate, save last.pt (and best.pt); -> True when training should stop (patience)."""
        nonlocal best, bad_evals
        val_loss = validation_loss(model, val, vocab, tag_index)
        train_loss = total / max(n, 1)
        history.append({"epoch": epoch - 1 + position / n_batches, "step": step, "train_loss": train_loss,
                        "val_loss": val_loss, "lr": optimizer.param_groups[0]["lr"],
                        "minutes": (time.monotonic() - start) / 60})
        improved = val_loss < best
        best, bad_evals = (val_loss, 0) if improved else (best, bad_evals + 1)
        print(f"epoch {epoch} batch {position}/{n_batches} step {step}: train {train_loss:.4f} val {val_loss:.4f} "
              f"nats/char{' (best)' if improved else ''}", flush=True)
        metrics = {"val_loss": val_loss, "best_val_loss": best, "train_loss": train_loss}
        extra = {"history": history, "best": best, "bad_evals": bad_evals, "epoch": epoch, "position": position,
                 "args": vars(args), "tags": tags, "tag_words": tag_words}
        if improved:
            save_checkpoint(out / "best.pt", kind=CHECKPOINT_KIND, model=model, model_args=model.model_args,
                            vocab=vocab.tokens, step=step, metrics=metrics, extra=extra)
        save_checkpoint(out / "last.pt", kind=CHECKPOINT_KIND, model=model, model_args=model.model_args,
                        vocab=vocab.tokens, step=step, metrics=metrics, optimizer=optimizer, extra=extra)
        plot_losses(history, out / "loss.png")
        if not improved:
            for group in optimizer.param_groups:
                group["lr"] *= args.lr_decay
        return bad_evals >= args.patience

    for epoch in range(epoch0, args.epochs + 1):
        rng = random.Random(args.seed * 1_000_003 + epoch)
        plan = batches(train, args.batch_size, rng)
        tag_sets = [training_tags(s, rng) for s in train]
        model.train()
        total, n = 0.0, 0
        for b in tqdm(range(position, len(plan)), desc=f"epoch {epoch}", unit="batch", mininterval=30):
            rows = plan[b]
            x_all, y_all, tag_ids = encode_batch([train[i] for i in rows], [tag_sets[i] for i in rows], vocab, tag_index)
            state = None  # every passage starts a story
            for t in range(0, x_all.size(1), args.seq_len):
                x, y = x_all[:, t:t + args.seq_len], y_all[:, t:t + args.seq_len]  # (B, T)
                if state is not None:
                    state = tuple(s.detach() for s in state)  # truncated BPTT: no gradient into the previous chunk
                _, loss, state = model(x, y, state, tags=tag_ids)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
                optimizer.step()
                step, total, n = step + 1, total + loss.item(), n + 1
            out_of_time = args.max_minutes and time.monotonic() - start > args.max_minutes * SECONDS_PER_MINUTE
            if out_of_time or time.monotonic() - last_eval > args.eval_minutes * SECONDS_PER_MINUTE:
                last_eval = time.monotonic()
                stop = evaluate_and_save(epoch, b + 1, len(plan), total, n) or bool(out_of_time)
                total, n = 0.0, 0
                model.train()
                if stop:
                    break
        if stop:
            print("early stop" if not out_of_time else f"time budget of {args.max_minutes} min reached")
            break
        if n:
            stop = evaluate_and_save(epoch + 1, 0, len(plan), total, n)
            last_eval = time.monotonic()
        position = 0
        if stop:
            print("early stop")
            break

    if args.export:
        best_ckpt = load_checkpoint(out / "best.pt", kind=CHECKPOINT_KIND)
        model.load_state_dict(best_ckpt["model"])
        save_checkpoint(args.export, kind=CHECKPOINT_KIND, model=model, model_args=model.model_args, vocab=vocab.tokens,
                        step=best_ckpt["step"], metrics=best_ckpt["metrics"], half=True,
                        extra={"history": history, "args": vars(args), "tags": tags, "tag_words": tag_words})
        print(f"exported {args.export} ({Path(args.export).stat().st_size / 2**20:.1f} MiB)")
    print(f"best validation loss {best:.4f} nats/char")
    return 0
