"""The `hashtale` command. Each subcommand lives in its own module, imported only when it runs,
so `hashtale tag` does not pay for Flask and `hashtale serve` does not pay for training code.

A command module exposes `add_arguments(parser)` and `run(args) -> int | None`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, relative to this package, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": (".db.migrate_command", "create or upgrade the database schema (Alembic)"),
    "train-storyteller": (".training.train_storyteller", "train the char-level LSTM storyteller on story corpora (resumable)"),
    "evaluate-storyteller": (".training.evaluate_storyteller", "storyteller validation loss (nats/char) and generation speed"),
    "serve": (".serve", "run webhook + worker + beat with the configured database, broker and models"),
    "tag": (".tag", "print hashtags and a story for one photo (in-process, no server)"),
    "worker": (".worker.celery_worker", "run a Celery worker for the configured broker and queue"),
    "worker-health": (".worker.health", "exit 0 if this host's worker is alive (Celery ping, or its heartbeat file)"),
    "extract-features": (".training.features", "encode a HARRISON-format folder's images once into the feature cache"),
    "train-hashtagger": (".training.train_hashtagger", "train the attention hashtagger or a baseline (resumable)"),
    "evaluate": (".training.evaluate", "score hashtag models on a HARRISON-format split: BLEU, ROUGE-L, P@1, R@5, A@5"),
    "ensemble-hashtagger": (".training.ensemble", "average trained SAT hashtaggers into one inference checkpoint"),
    "tune-decoding": (".training.logit_adjustment", "choose a hashtagger's logit adjustment and min_score on its validation posts"),
    "attention": (".training.attention_png", "draw an image with one attention heat map per suggested hashtag"),
    "triton": (".inference.tritonserver", "run a local tritonserver (from the nvidia-pytriton wheel) on triton_repo/"),
    "export": (".inference.repository", "export the models' checkpoints into triton_repo/<model>/1/ for Triton"),
    "gc-media": (".webhook.media_gc", "remove photo files no post references (left by a database outage mid-request)"),
    "create-admin": (".review.admins", "create an admin account for the review pages (password hashed)"),
    "report": (".review.report", "the review study's figures (relevant hashtags, story context, closeness): Markdown + PNG"),
    "export-reviews": (".review.export_reviews", "write approved, reviewer-corrected hashtags as a HARRISON-format split for training"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in sorted(COMMANDS.items())]
        print("usage: hashtale COMMAND [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    name, rest = argv[0], argv[1:]
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name, __package__)
    parser = argparse.ArgumentParser(prog=f"hashtale {name}", description=help_)
    module.add_arguments(parser)
    result = module.run(parser.parse_args(rest))
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
