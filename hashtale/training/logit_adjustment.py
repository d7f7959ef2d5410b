"""Choose a trained hashtagger's decoding on its validation posts: the logit adjustment tau
(hashtale.models.logit_adjustment) and `min_score`, jointly, and store both in the checkpoint.

    hashtale tune-decoding --checkpoint var/runs/sat/best.pt                 # print the grid, change nothing
    hashtale tune-decoding --checkpoint var/runs/sat/best.pt --write         # store the chosen tau and min_score
    hashtale tune-decoding --checkpoint var/runs/sat/best.pt --label-transfer --ks 10 20 --weights 0 1 2 --write
    hashtale tune-decoding --checkpoint var/runs/sat/best.pt --cross-validate var/runs/cv/fold0 ... --write

The validation posts are the run's own (`train-hashtagger`'s split of the training posts, rebuilt from the
checkpoint's training arguments and `--run`, the run folder holding split/); the prior is counted on the
run's training posts. For every tau the validation posts are decoded once; every `min_score` of the training
grid is scored on the same decodes. The choice maximises the training's validation score (the mean over the
data folders of the per-class F1 of the emitted sets) among the (tau, min_score) pairs that keep
- the P@1 of every single-tag data folder (validation posts with fewer than 1.5 tags on average: `photos/`) within
  `--p1-tolerance` of its P@1 without adjustment: the first tag is what a single-object photo is judged on;
- the mean number of emitted tags of every multi-tag data folder (Corel-5k) within [--min-tags,
  --max-tags-per-post].
With `--label-transfer` the label-transfer bank (hashtale.models.label_transfer) is built from the run's training
posts (never the validation posts) and its k, temperature, weight, eps and balance are searched jointly with tau
and `min_score` (weight 0: no label transfer); `--write` then also stores the bank and the chosen settings, or
removes them when weight 0 wins. The P@1 reference is then tau 0 without label transfer. Without
`--label-transfer` a checkpoint's own label transfer (if any) is kept, and decodes every candidate.
`--set-decodings` and `--beam-widths` add how a set is read off the beam to the grid (hashtale.models.beam: the best
hypothesis' tags, or every hypothesis' tags by their marginal probability over the beam, `min_score` then applying
to that probability), chosen jointly and written with the rest; by default the checkpoint's own reading is kept.
With `--cross-validate RUN...` the choice is made instead on the training posts that cross-validation runs held out
(`train-hashtagger --folds K --fold I`, one run per fold, each trained without its fold): each run's model decodes its
own fold, with its own prior and (with `--label-transfer`) a bank of its own training posts, and the folds' decodes
are scored together, so every training post counts once, as a post the model deciding on it never saw. The
validation posts of one run are ~10 % of the training posts, too few for the rare tags that Corel-5k's per-class means
weigh as much as the frequent ones (a tag seen twice in training is rarely among them); the folds hold out every
training post. The chosen settings are written into `--checkpoint` (prior and bank from its own training posts).
Test splits play no part.
"""
from __future__ import annotations

import argparse
import itertools
import math
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from hashtale.models.checkpoint import load_checkpoint, update_checkpoint
from hashtale.models.label_transfer import DEFAULT_COMPONENTS, LabelTransfer, LabelTransferBank
from hashtale.models.logit_adjustment import LogitAdjustment
from hashtale.models.hashtagger_runtime import CHECKPOINT_KIND, SET_DECODINGS, Tagger
from hashtale.training.features import DEFAULT_STORE, FeatureStore
from hashtale.training.harrison import Example
from hashtale.training.train_hashtagger import _training_examples, held_out_fold, target_ids, threshold_rows

TAUS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0)
P1_TOLERANCE = 0.005  # a P@1 drop smaller than this on the validation photos is noise (~4 of ~780 posts)
SINGLE_TAG_MEAN = 1.5  # tags per validation post below which a data folder is one of single-object photos
MIN_TAGS, MAX_TAGS = 2.0, 5.0  # mean emitted tags per multi-tag photo: issue 9's range (Corel-5k has 3.4)
DECODE_BATCH = 256
# label transfer's grid (--label-transfer): neighbours, softmax temperature, weight (0: none), eps, balance
KS, TEMPERATURES, WEIGHTS, EPSILONS, BALANCES = (10,), (0.05,), (0.0, 0.25, 0.5), (0.1,), (0.0, 0.5, 1.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a train-hashtagger checkpoint (best.pt, or an export of one)")
    p.add_argument("--run", default=None,
                   help="the run folder holding split/ (default: the checkpoint's training --out)")
    p.add_argument("--store", default=str(DEFAULT_STORE), help="feature cache root")
    p.add_argument("--taus", type=float, nargs="+", default=list(TAUS), help="candidate adjustment strengths")
    p.add_argument("--p1-tolerance", type=float, default=P1_TOLERANCE,
                   help="largest P@1 drop of a single-tag data folder accepted against tau 0")
    p.add_argument("--min-tags", type=float, default=MIN_TAGS, help="least mean emitted tags of a multi-tag data folder")
    p.add_argument("--max-tags-per-post", type=float, default=MAX_TAGS,
                   help="most mean emitted tags of a multi-tag data folder")
    p.add_argument("--label-transfer", action="store_true",
                   help="build the training posts' label-transfer bank and search its settings too")
    p.add_argument("--components", type=int, default=DEFAULT_COMPONENTS, help="label transfer: principal components")
    p.add_argument("--ks", type=int, nargs="+", default=list(KS), help="label transfer: neighbours that vote")
    p.add_argument("--temperatures", type=float, nargs="+", default=list(TEMPERATURES),
                   help="label transfer: softmax temperatures over the neighbours' cosine similarities")
    p.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS),
                   help="label transfer: weights of the evidence (0: without label transfer)")
    p.add_argument("--eps", type=float, nargs="+", default=list(EPSILONS),
                   help="label transfer: vote at which the evidence of a tag of average frequency is weight * log 2")
    p.add_argument("--balances", type=float, nargs="+", default=list(BALANCES),
                   help="label transfer: exponent of a tag's share in its eps (0: the same for every tag)")
    p.add_argument("--set-decodings", nargs="+", choices=SET_DECODINGS, default=None,
                   help="how a set is read off the beam (default: the checkpoint's own): its best hypothesis' tags, or "
                        "every hypothesis' tags by their marginal probability over the beam")
    p.add_argument("--beam-widths", type=int, nargs="+", default=None, help="beam widths (default: the checkpoint's own)")
    p.add_argument("--cross-validate", nargs="+", metavar="RUN", default=None,
                   help="choose on the posts that cross-validation runs (train-hashtagger --folds K --fold I, one run "
                        "folder per fold) held out, each decoded by its own fold's model, instead of the checkpoint's "
                        "validation posts; --checkpoint is only written to")
    p.add_argument("--write", action="store_true",
                   help="store the chosen tau and min_score (and label transfer) in the checkpoint")


def step_log_prior(examples: list[Example], vocab, max_tags: int) -> tuple[float, ...]:
    """(V,) log share of each token among the training steps' targets (tags and <end>), 0 for non-targets."""
    counts = Counter(i for e in examples for i in target_ids(vocab, e.tags, max_tags)[1:])  # without <start>
    total = sum(counts.values())
    return tuple(math.log(counts[i] / total) if counts[i] else 0.0 for i in range(len(vocab)))


def run(args: argparse.Namespace) -> int:
    ckpt = load_checkpoint(args.checkpoint, kind=CHECKPOINT_KIND)
    if ckpt["model_args"]["arch"] == "multilabel":
        raise SystemExit("logit adjustment applies to the sequence decoders (sat, show-and-tell)")
    # label-transfer settings to try: (k, temperature, weight, eps, balance), weight 0 = without; without
    # --label-transfer only OWN, a checkpoint's own label transfer (if any), kept. The P@1 reference: tau 0, `reference`.
    specs = list(dict.fromkeys(_settings(args))) if args.label_transfer else [OWN]
    reference = WITHOUT if args.label_transfer else OWN
    if args.cross_validate:  # each fold's model decodes the training posts its fold held out
        parts = [_Part.held_out(Path(run)) for run in args.cross_validate]
    else:
        parts = [_Part.validation(Path(args.checkpoint), args.run)]
    own = parts[0].tagger  # the set decodings and beam widths to try: by default the checkpoints' own
    readings = list(itertools.product(args.set_decodings or [own.set_decoding], args.beam_widths or [own.beam_width]))
    decoded: dict[tuple, list] = {}  # (tau, spec, (set decoding, beam width)) -> decodes of every part's posts, in order
    for part in parts:
        print(f"{part.describe()}: {len(part.train)} training posts (the prior), {len(part.posts)} posts decoded")
        for key, sets in part.decode(args.store, args.taus, specs, args.components, readings).items():
            decoded.setdefault(key, []).extend(sets)
    truth = [e.tags for part in parts for e in part.posts]
    sources = [s for part in parts for s in part.sources]

    grid = []  # (tau, min_score, spec, reading, row)
    for (tau, spec, reading), sets in decoded.items():
        rows = threshold_rows(sets, truth, sources)
        grid += [(tau, m, spec, reading, row) for m, row in rows]
        m, row = max(rows, key=lambda r: r[1]["score"])
        print(f"tau {tau:.2f} {_describe(spec)} {_reading(reading)}: best min_score {m:.2f} score {row['score']:.4f}  " +
              "  ".join(f"{k} {v:.4f}" for k, v in row.items() if "/" in k), flush=True)

    folders = sorted(set(sources))
    posts = [e for part in parts for e in part.posts]
    mean_tags = {f: sum(len(e.tags) for e, s in zip(posts, sources) if s == f) / sources.count(f) for f in folders}
    single = [f for f in folders if mean_tags[f] < SINGLE_TAG_MEAN]
    multi = [f for f in folders if f not in single]
    # the P@1 reference: tau 0, `reference`, the checkpoint's own reading of the beam if tried, else the first tried
    base = (0.0, reference, (own.set_decoding, own.beam_width))
    base = base if base in decoded else (0.0, reference, readings[0])
    base_p1 = {f: next(row[f"P@1/{f}"] for tau, _, spec, reading, row in grid if (tau, spec, reading) == base)
               for f in single} if base in decoded else {}  # else none
    ok = lambda row: (  # noqa: E731
        all(row[f"P@1/{f}"] >= p1 - args.p1_tolerance for f, p1 in base_p1.items())
        and all(args.min_tags <= row[f"tags/{f}"] <= args.max_tags_per_post for f in multi))
    admissible = [g for g in grid if ok(g[4])]
    if not admissible:
        raise SystemExit("no (tau, min_score) meets the constraints")
    tau, min_score, spec, reading, row = max(admissible, key=lambda g: g[4]["score"])
    print(f"chosen: tau {tau} min_score {min_score} {_describe(spec)} {_reading(reading)} score {row['score']:.4f}  " +
          "  ".join(f"{k} {v:.4f}" for k, v in row.items() if "/" in k))
    if args.write:
        # its own training posts give the prior and the bank (without folds, the part decoded above: bank built once)
        target = _Part.validation(Path(args.checkpoint), args.run) if args.cross_validate else parts[0]
        adjustment = LogitAdjustment(tau, target.log_prior()).to_args() if tau else None
        changes, extra = {"min_score": min_score, "logit_adjustment": adjustment, "set_decoding": reading[0],
                          "beam_width": reading[1]}, {}
        if args.label_transfer:
            transfer = target.transfer(args.store, spec, args.components)
            changes["label_transfer"] = transfer.to_args() if transfer else None
            extra = bank_entry(transfer.bank if transfer else None)
        update_checkpoint(args.checkpoint, model_args=changes, extra=extra)
        print(f"wrote tau {tau}, min_score {min_score}, {_describe(spec)} and {_reading(reading)} into {args.checkpoint}")
    return 0


OWN = "own"  # a label-transfer spec: the checkpoint's own (if any), kept
WITHOUT = (0, 0.0, 0.0, 0.0, 0.0)  # a label-transfer spec: none


class _Part:
    """One trained model and the posts it decodes: its own validation posts, or the training posts its
    cross-validation fold held out. `train`: its training posts (the prior; the label-transfer bank)."""

    def __init__(self, checkpoint: Path, run: Path | None, held_out: bool):
        self.checkpoint, self.tagger = checkpoint, Tagger.load(checkpoint)
        self.own_transfer = self.tagger.label_transfer  # decoding swaps the tagger's own out
        self.train_args = argparse.Namespace(**load_checkpoint(checkpoint, kind=CHECKPOINT_KIND)["extra"]["train_args"])
        run = run or Path(self.train_args.out)
        known = lambda e: any(t in self.tagger.vocab.index for t in e.tags)  # noqa: E731  (as training keeps them)
        (train, _), (val, val_src) = _training_examples(self.train_args, run)
        self.train = [e for e in train if known(e)]
        if held_out:  # all of them: a tag the fold never trained on counts as missed, as on a test split
            if not getattr(self.train_args, "folds", 0):
                raise SystemExit(f"{run} is not a cross-validation run (train-hashtagger --folds K --fold I)")
            self.posts, self.sources = held_out_fold(self.train_args, run)
        else:
            self.posts, self.sources = map(list, zip(*[(e, s) for e, s in zip(val, val_src) if known(e)]))
        self._bank = None

    @classmethod
    def validation(cls, checkpoint: Path, run: str | None) -> "_Part":
        return cls(checkpoint, Path(run) if run else None, held_out=False)

    @classmethod
    def held_out(cls, run: Path) -> "_Part":
        return cls(run / "best.pt", run, held_out=True)

    def describe(self) -> str:
        fold = getattr(self.train_args, "folds", 0)
        return f"{self.checkpoint}" + (f" (fold {self.train_args.fold} of {fold})" if fold else "")

    def log_prior(self) -> tuple[float, ...]:
        return step_log_prior(self.train, self.tagger.vocab, self.train_args.max_tags)

    def transfer(self, store_root: str, spec, components: int) -> LabelTransfer | None:
        if spec == OWN:
            return self.own_transfer
        if spec == WITHOUT:
            return None
        if self._bank is None:
            store = FeatureStore(store_root, self.tagger.encoder.config.backbone)
            paths = [e.image for e in self.train]
            store.extract(paths, self.tagger.encoder)
            bank = LabelTransferBank.build(store.annotations(paths, self.tagger.encoder),
                                           [self.tagger.vocab.encode(e.tags)[1:-1] for e in self.train], components)
            self._bank = LabelTransferBank.from_state(bank.to_state())  # decode with the float16 bank as stored
        return LabelTransfer(self._bank, *spec)

    def decode(self, store_root: str, taus, specs, components: int, readings) -> dict[tuple, list]:
        """(tau, spec, reading) -> per post its emitted candidates [(tag, score)], at `min_score` 0; a reading is a
        (set decoding, beam width)."""
        tagger, log_prior = self.tagger, self.log_prior()
        store = FeatureStore(store_root, tagger.encoder.config.backbone)
        paths = [e.image for e in self.posts]
        store.extract(paths, tagger.encoder)
        feats = store.annotations(paths, tagger.encoder)  # (N, L, D)
        out = {}
        # one line of progress per setting: a decode of thousands of posts takes minutes, and the grid prints its
        # results only once every part is decoded
        for tau, spec, reading in tqdm(list(itertools.product(taus, specs, readings)), desc=f"decoding {self.describe()}",
                                       unit="setting"):
            tagger.adjustment = LogitAdjustment(tau, log_prior) if tau else None
            tagger.label_transfer = self.transfer(store_root, spec, components)
            tagger.min_score = 0.0
            tagger.set_decoding, tagger.beam_width = reading
            out[(tau, spec, reading)] = [[(t.text, t.score) for t in d.tags]
                                for start in range(0, len(feats), DECODE_BATCH)
                                for d in tagger.decode(feats[start:start + DECODE_BATCH].float(), tagger.max_tags)]
        return out


def _settings(args: argparse.Namespace):
    """(k, temperature, weight, eps, balance) of the label-transfer grid; weight 0 once (the rest do not matter)."""
    for k, temp, w, eps, balance in itertools.product(args.ks, args.temperatures, args.weights, args.eps,
                                                      args.balances):
        yield WITHOUT if not w else (k, temp, w, eps, balance)


def _describe(spec) -> str:
    if spec == OWN:
        return "the checkpoint's own label transfer (if any)"
    if spec == WITHOUT:
        return "no label transfer"
    return "label transfer " + " ".join(f"{k} {v:g}" for k, v in zip(("k", "temperature", "weight", "eps", "balance"),
                                                                   spec))


def _reading(reading: tuple[str, int]) -> str:
    return f"{reading[0]} set, beam {reading[1]}"


def bank_entry(bank: LabelTransferBank | None) -> dict:
    """A checkpoint's extra entry for a label-transfer bank (float16; None removes it)."""
    return {"label_transfer_bank": bank.to_state() if bank is not None else None}

