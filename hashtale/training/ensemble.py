"""Average several trained SAT hashtaggers into one inference checkpoint (hashtale.models.hashtagger.SATEnsemble):

    hashtale ensemble-hashtagger --checkpoint var/runs/sat-rare/best.pt --checkpoint var/runs/lite0-seed2/best.pt \
        --out var/runs/ensemble/hashtagger.pt
    hashtale tune-decoding --checkpoint var/runs/ensemble/hashtagger.pt --run var/runs/sat-rare --write

The members must share the vocabulary and the (frozen) encoder, and should share the training posts: the first
member's training arguments travel with the ensemble, so tune-decoding chooses its decoding on the same validation
posts. The ensemble's logit adjustment and `min_score` are left to tune-decoding (a member's do not carry over).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict

from hashtale.models.checkpoint import load_checkpoint, save_checkpoint
from hashtale.models.hashtagger import SATEnsemble
from hashtale.models.hashtagger_runtime import CHECKPOINT_KIND, DEFAULT_MIN_SCORE, ENSEMBLE_ARCH, build_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", action="append", required=True, dest="checkpoints",
                   help="a trained sat checkpoint (repeat: two or more)")
    p.add_argument("--out", required=True, help="the float16 ensemble checkpoint to write")


def build_ensemble(paths: list[str]) -> tuple[SATEnsemble, dict]:
    """(the ensemble, the first member's checkpoint)."""
    ckpts = [load_checkpoint(p, kind=CHECKPOINT_KIND) for p in paths]
    first = ckpts[0]
    for path, ckpt in zip(paths, ckpts):
        args = ckpt["model_args"]
        if args["arch"] != "sat" or ckpt["extra"].get("encoder_state"):
            raise SystemExit(f"{path}: an ensemble averages sat decoders on the same frozen encoder")
        if ckpt["vocab"] != first["vocab"] or args["encoder"] != first["model_args"]["encoder"]:
            raise SystemExit(f"{path}: another vocabulary or encoder than {paths[0]}")
    ensemble = build_model(ENSEMBLE_ARCH, {"members": [ckpt["model_args"]["config"] for ckpt in ckpts]})
    for member, ckpt in zip(ensemble.members, ckpts):
        member.load_state_dict(ckpt["model"])
    return ensemble, first


def run(args: argparse.Namespace) -> int:
    if len(args.checkpoints) < 2:
        raise SystemExit("an ensemble needs two or more --checkpoint")
    ensemble, first = build_ensemble(args.checkpoints)
    model_args = {k: v for k, v in first["model_args"].items() if k not in ("logit_adjustment", "label_transfer")}
    model_args.update(arch=ENSEMBLE_ARCH, config=asdict(ensemble.config), min_score=DEFAULT_MIN_SCORE)
    extra = {"epoch": first["extra"].get("epoch"), "train_args": first["extra"]["train_args"],
             "members": list(args.checkpoints)}
    save_checkpoint(args.out, kind=CHECKPOINT_KIND, model=ensemble, model_args=model_args, vocab=first["vocab"],
                    step=first["step"], metrics={}, extra=extra, half=True)
    print(f"wrote {args.out}: {len(args.checkpoints)} members, "
          f"{sum(p.numel() for p in ensemble.parameters()):,} decoder parameters")
    return 0
