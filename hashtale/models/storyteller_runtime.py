"""The storyteller as a service: load a checkpoint (or the untrained fallback) and write batches of stories."""
from __future__ import annotations

from pathlib import Path

import torch

from hashtale.models.chars import CharVocab
from hashtale.models.checkpoint import file_version, load_checkpoint
from hashtale.models.sampling import StorySpec, generate
from hashtale.models.steering import SteerConfig
from hashtale.models.storyteller import Storyteller, StorytellerConfig

CHECKPOINT_KIND = "storyteller"
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "storyteller.pt"
MODEL_NAME = "storyteller-char-lstm"
UNTRAINED_VERSION = "untrained"
UNTRAINED_SEED = 0  # the fallback's random weights are the same in every process (local and Triton agree)


def tag_index_of(tags: list[str]) -> dict[str, int]:
    """The model's hashtag ids: 1.. in checkpoint order (0 is NO_TAG: padding and unknown hashtags)."""
    return {tag: i + 1 for i, tag in enumerate(tags)}


class StoryWriter:
    def __init__(self, model: Storyteller, vocab: CharVocab, *, version: str, trained: bool, device: str = "cpu",
                 tags: list[str] = (), tag_words: dict[str, tuple[str, ...]] | None = None):
        self.model = model.to(device).eval()
        self.vocab = vocab
        self.tags = list(tags)  # the hashtags the model is conditioned on; others only prime it
        self.tag_index = tag_index_of(self.tags)
        self.tag_words = tag_words  # hashtag -> words naming it, for mention steering; None: no steering
        self.steering = SteerConfig()  # how strongly and toward how many words (hashtale.models.steering)
        self.name = MODEL_NAME
        self.version = version
        self.trained = trained
        self.device = device

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> "StoryWriter":
        """`path=None`: the shipped checkpoint, or, when it is absent, the real architecture with random weights."""
        if path is None and not SHIPPED_CHECKPOINT.exists():
            vocab = CharVocab.printable()
            with torch.random.fork_rng():
                torch.manual_seed(UNTRAINED_SEED)
                model = Storyteller(StorytellerConfig(vocab_size=len(vocab)))
            return cls(model, vocab, version=UNTRAINED_VERSION, trained=False, device=device)
        path = Path(path) if path is not None else SHIPPED_CHECKPOINT
        ckpt = load_checkpoint(path, kind=CHECKPOINT_KIND)
        model = Storyteller(StorytellerConfig(**ckpt["model_args"]))
        model.load_state_dict(ckpt["model"])
        return cls(model, CharVocab(ckpt["vocab"]), version=file_version(path), trained=True, device=device,
                   tags=ckpt["extra"].get("tags", []), tag_words=ckpt["extra"].get("tag_words"))

    def write(self, requests: list[StorySpec]) -> list[str]:
        """One story per request, in order; each depends only on its own spec (see hashtale.models.sampling)."""
        return generate(self.model, self.vocab, requests, self.tag_index, tag_words=self.tag_words,
                        steering=self.steering)


__all__ = ["StorySpec", "StoryWriter"]
