"""The service's hashtagger: encoder + decoder + vocabulary from one self-describing checkpoint.

`Tagger.load()` reads the shipped `hashtale/models/checkpoints/hashtagger.pt`; without it the real architecture
runs with the ImageNet encoder and an untrained (seeded, deterministic) decoder, `trained=False`.
The same facade loads the baselines (Show-and-Tell, multi-label), so evaluation scores all models
through one code path.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from hashtale.models.beam import beam_search, emitted_tags, marginal_tags
from hashtale.models.checkpoint import file_version, load_checkpoint
from hashtale.models.encoder import DEFAULT_BACKBONE, BACKBONES, Encoder, EncoderConfig
from hashtale.models.hashtagger import EnsembleConfig, SATConfig, SATEnsemble, SATHashtagger
from hashtale.models.label_transfer import LabelTransfer
from hashtale.models.logit_adjustment import LogitAdjustment
from hashtale.models.multilabel import MultiLabelClassifier, MultiLabelConfig
from hashtale.models.show_and_tell import ShowAndTell, ShowTellConfig
from hashtale.models.vocab import SPECIALS, Vocab

CHECKPOINT_KIND = "hashtagger"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "hashtagger.pt"
# arch -> (module class, config class, short name used in model names)
ARCHS = {
    "sat": (SATHashtagger, SATConfig, "sat"),
    "sat-ensemble": (SATEnsemble, EnsembleConfig, "sat"),  # same family and name: several SAT decoders averaged
    "show-and-tell": (ShowAndTell, ShowTellConfig, "show-and-tell"),
    "multilabel": (MultiLabelClassifier, MultiLabelConfig, "multilabel"),
}
ENSEMBLE_ARCH = "sat-ensemble"  # built from trained "sat" checkpoints (hashtale ensemble-hashtagger), never trained
DEFAULT_BEAM_WIDTH = 5
DEFAULT_MAX_TAGS = 5  # most hashtags a decode may emit
DEFAULT_MIN_SCORE = 0.0  # emitted tags scoring below this are not shown (a checkpoint stores its validated value)
# how a post's set is read off the beam (hashtale.models.beam): the best hypothesis' tags, scored by their step
# probabilities, or every hypothesis' tags scored by their marginal probability over the beam
SET_DECODINGS = ("best", "marginal")
DEFAULT_SET_DECODING = "best"  # also what a checkpoint from before set_decoding decodes with
UNTRAINED_SEED = 0  # the untrained fallback's decoder is the same in every process
# The encoder's arithmetic (the decoder is always float32). "bf16": autocast to bfloat16 on channels-last
# activations, fast on CPUs with native bfloat16 (AVX512-BF16, AMX); float32 gets slower per image in a batch (its
# activations leave the cache). bench/encoder.py measures both; checkpoints/hashtagger.md has the figures and the
# quality of each. Results do not depend on the batch size. "auto": bf16 where oneDNN reports bfloat16 support
# (CPU; it does from AVX512 on, emulating it on CPUs without AVX512-BF16 or AMX, where fp32 may be faster) or the
# GPU has it.
PRECISIONS = ("auto", "fp32", "bf16")
# The untrained fallback needs some vocabulary: the most frequent HARRISON hashtags.
UNTRAINED_TAGS = ("love", "friend", "beach", "family", "sea", "food", "sky", "dog", "cat", "flower",
                  "travel", "summer", "nature", "sunset", "coffee", "city", "car", "baby", "cake", "tree")


@dataclass(frozen=True)
class TagPrediction:
    text: str
    score: float  # model probability of the tag at its step (or, "marginal", over the beam), 0..1
    # (rows, cols) float32 summing to 1: where the model found the tag (the emitting step's attention, or for a
    # guided decoder the tag's class activation map, see SATHashtagger.tag_maps); None for models without attention
    attention: np.ndarray | None


@dataclass(frozen=True)
class Decoded:
    tags: list[TagPrediction]  # the emitted set: 1..k distinct tags, in emission order (or surest first: "marginal")
    sequence: list[str]  # the same tags as text (what BLEU/ROUGE score)


def model_name(arch: str, backbone: str) -> str:
    return f"{ARCHS[arch][2]}-{backbone.replace('efficientnet-lite', 'effnetlite').replace('-', '')}"


def build_model(arch: str, config: dict) -> torch.nn.Module:
    cls, config_cls, _ = ARCHS[arch]
    return cls(config_cls(**config))


class Tagger:
    def __init__(self, encoder: Encoder, decoder: torch.nn.Module, vocab: Vocab, arch: str, *, name: str,
                 version: str, trained: bool, beam_width: int = DEFAULT_BEAM_WIDTH, max_tags: int = DEFAULT_MAX_TAGS,
                 min_score: float = DEFAULT_MIN_SCORE, adjustment: LogitAdjustment | None = None,
                 label_transfer: LabelTransfer | None = None, set_decoding: str = DEFAULT_SET_DECODING,
                 device: str = "cpu", precision: str = "fp32"):
        if set_decoding not in SET_DECODINGS:
            raise ValueError(f"unknown set_decoding {set_decoding!r}; choose one of {SET_DECODINGS}")
        self.encoder = encoder.to(device).eval()
        self.precision = resolve_precision(precision, device)
        self.decoder = decoder.to(device).eval()
        self.vocab, self.arch = vocab, arch
        self.name, self.version, self.trained = name, version, trained
        self.attention_shape: tuple[int, int] = tuple(encoder.attention_shape)
        self.input_size: int = encoder.input_size  # px, the side of the images `encode` takes
        self.beam_width, self.max_tags, self.min_score, self.device = beam_width, max_tags, min_score, device
        self.adjustment = adjustment  # post-hoc logit adjustment of every step (hashtale.models.logit_adjustment), or None
        # the nearest training photos' tags as evidence for every step (hashtale.models.label_transfer), or None
        self.label_transfer = label_transfer
        self.set_decoding = set_decoding  # one of SET_DECODINGS

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu", precision: str = "fp32") -> "Tagger":
        if path is None and not DEFAULT_CHECKPOINT.exists():
            return cls.untrained(device=device, precision=precision)
        path = Path(path) if path is not None else DEFAULT_CHECKPOINT
        ckpt = load_checkpoint(path, kind=CHECKPOINT_KIND)
        args = ckpt["model_args"]
        encoder = Encoder(EncoderConfig(**args["encoder"]))
        if ckpt["extra"].get("encoder_state"):  # fine-tuned encoder blocks travel with the checkpoint
            encoder.load_tuned_state(ckpt["extra"]["encoder_state"])
        encoder.fuse_for_inference()
        decoder = build_model(args["arch"], args["config"])
        decoder.load_state_dict(ckpt["model"])
        return cls(encoder, decoder, Vocab(ckpt["vocab"]), args["arch"], name=model_name(args["arch"], encoder.config.backbone),
                   version=file_version(path), trained=True, beam_width=args.get("beam_width", DEFAULT_BEAM_WIDTH),
                   max_tags=args.get("max_tags", DEFAULT_MAX_TAGS), min_score=args.get("min_score", DEFAULT_MIN_SCORE),
                   adjustment=LogitAdjustment.from_args(args.get("logit_adjustment")),
                   label_transfer=LabelTransfer.from_checkpoint(args.get("label_transfer"),
                                                                ckpt["extra"].get("label_transfer_bank")),
                   set_decoding=args.get("set_decoding", DEFAULT_SET_DECODING), device=device, precision=precision)

    @classmethod
    def untrained(cls, device: str = "cpu", precision: str = "fp32") -> "Tagger":
        vocab = Vocab(list(SPECIALS) + list(UNTRAINED_TAGS))
        encoder = Encoder(EncoderConfig(backbone=DEFAULT_BACKBONE)).fuse_for_inference()
        dim, rows, cols, _ = BACKBONES[DEFAULT_BACKBONE]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(UNTRAINED_SEED)
            decoder = SATHashtagger(SATConfig(vocab_size=len(vocab), feature_dim=dim, num_locations=rows * cols))
        return cls(encoder, decoder, vocab, "sat", name=model_name("sat", DEFAULT_BACKBONE), version="untrained",
                   trained=False, device=device, precision=precision)

    @torch.no_grad()
    def suggest(self, images: torch.Tensor, k: int = 5) -> list[list[TagPrediction]]:
        """images (B, 3, S, S) from hashtale.models.image.preprocess(size=input_size) -> per image its emitted set of
        at most k distinct tags."""
        return [d.tags for d in self.decode(self.encode(images), k)]

    @torch.no_grad()
    def encode(self, images: torch.Tensor, chunk: int = 0) -> torch.Tensor:
        """(B, 3, S, S) -> (B, L, D) float32 annotation vectors, `chunk` images per encoder pass (0: all B).
        On CPU a pass of 8 costs less per image than one of 32 (see PRECISIONS); the results are the same."""
        if chunk and len(images) > chunk:
            return torch.cat([self.encode(part) for part in images.split(chunk)])  # (B, L, D)
        images = images.to(self.device)
        if self.precision == "fp32":
            return self.encoder(images)
        with torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16):
            feats = self.encoder(images.contiguous(memory_format=torch.channels_last))  # (B, L, D) bfloat16
        return feats.float()

    @torch.no_grad()
    def warm_up(self, max_batch: int) -> None:
        """Encode and decode blank images at every batch size up to `max_batch`, so that oneDNN has built its
        kernels (one per shape, ~0.1 s each in bfloat16) before a request pays for them."""
        for batch in range(1, max_batch + 1):
            self.decode(self.encode(torch.zeros(batch, 3, self.input_size, self.input_size)))  # (batch, 3, S, S) -> tags

    @torch.no_grad()
    def decode(self, feats: torch.Tensor, k: int = 5) -> list[Decoded]:
        """Annotation vectors (B, L, D) -> per image the emitted set of at most k tags (k: upper bound; the
        decoder ends a set with <end>, and tags scoring below `min_score` are dropped)."""
        feats = feats.to(self.device).float()
        k = max(0, min(k, self.max_tags, len(self.vocab) - len(SPECIALS)))
        if k == 0:
            return [Decoded(tags=[], sequence=[]) for _ in range(len(feats))]
        if self.arch == "multilabel":
            return self._decode_multilabel(feats, k)
        # a guided decoder's tags come from the image-level evidence: their heat map is where that evidence lies
        maps = self.decoder.tag_maps(feats) if getattr(self.decoder.config, "aux_guide", False) else None  # (B, L, V)
        bias = self.logit_bias(feats)  # (V,) or (B, V) or None
        out = []
        for b, image_hyps in enumerate(beam_search(self.decoder, feats, beam_width=self.beam_width, max_len=k,
                                                   logit_bias=bias)):
            tags = [self._prediction(r.token, r.score, r.attention if maps is None else maps[b, :, r.token].cpu().numpy())
                    for r in self._set(image_hyps, k)]
            out.append(Decoded(tags=tags, sequence=[t.text for t in tags]))
        return out

    def _set(self, hyps, k: int):
        if self.set_decoding == "marginal":
            return marginal_tags(hyps, self.min_score, k)
        return emitted_tags(hyps[0], self.min_score)

    def logit_bias(self, feats: torch.Tensor) -> torch.Tensor | None:
        """What decoding adds to every step's logits for these (B, L, D) annotation vectors: the logit adjustment
        (V,) plus, with label transfer, each image's evidence, (B, V); None without either."""
        bias = self.adjustment.bias() if self.adjustment is not None else None  # (V,)
        if self.label_transfer is not None:
            evidence = self.label_transfer.bias(feats, len(self.vocab)).to(feats.device)  # (B, V)
            bias = evidence if bias is None else evidence + bias.to(feats.device)
        return bias

    def _decode_multilabel(self, feats: torch.Tensor, k: int) -> list[Decoded]:
        logits, _ = self.decoder(feats)  # (B, V)
        probs = torch.sigmoid(logits)  # (B, V), specials are 0
        out = []
        for row in probs:
            top = torch.argsort(row, descending=True, stable=True)[:k].tolist()
            # every tag the classifier believes in (p >= min_score), at least its best one
            tags = [self._prediction(t, float(row[t]), None) for i, t in enumerate(top) if i == 0 or row[t] >= self.min_score]
            out.append(Decoded(tags=tags, sequence=[t.text for t in tags]))
        return out

    def _prediction(self, token: int, score: float, attention: np.ndarray | None) -> TagPrediction:
        grid = None if attention is None else attention.reshape(self.attention_shape).astype(np.float32)
        return TagPrediction(text=self.vocab.tokens[token], score=float(score), attention=grid)

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "trained": self.trained, "arch": self.arch,
                "precision": self.precision,
                "encoder": asdict(self.encoder.config), "attention_shape": list(self.attention_shape)}


def resolve_precision(precision: str, device: str) -> str:
    """"fp32" or "bf16" for `device` (see PRECISIONS)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return "bf16" if native else "fp32"
