"""The `local` backend: both models run in this process with PyTorch.

The models are loaded once, on first use, under a lock: Celery's prefork children and gunicorn's threads
may call in concurrently, and the first call must not load them twice. Forward passes run without the lock
(the models are in eval mode and keep no state between calls).

The batched calls run one model pass for all their items (the worker batches across posts: hashtale/worker/batching.py);
the single-item calls are batches of one.
"""
from __future__ import annotations

import logging
import threading

import torch

from hashtale.inference import (
    InferenceUnavailable, Outcome, StoryRequest, StoryResult, SuggestedHashtag, TagResult, only,
)
from hashtale.models.image import InvalidImage, preprocess
from hashtale.settings import Settings

logger = logging.getLogger(__name__)

NO_ATTENTION = (0, 0)  # the attention grid's shape for models that have none
# Images per encoder pass: on CPU a pass of 8 costs less per image than larger ones
# (hashtale/models/hashtagger_runtime.py), as in triton_repo/hashtagger's encode_chunk.
ENCODE_CHUNK = 8


class LocalBackend:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._tagger = None
        self._writer = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "LocalBackend":
        return cls(settings)

    def models(self):
        """(Tagger, StoryWriter), loaded on the first call. Raises InferenceUnavailable."""
        with self._lock:
            if self._tagger is None:
                from hashtale.models.hashtagger_runtime import Tagger
                from hashtale.models.storyteller_runtime import StoryWriter

                if self.settings.torch_threads > 0:
                    torch.set_num_threads(self.settings.torch_threads)
                try:
                    tagger = Tagger.load(self.settings.hashtagger_checkpoint or None,
                                         precision=self.settings.encoder_precision)
                    writer = StoryWriter.load(self.settings.storyteller_checkpoint or None)
                except (OSError, RuntimeError, ValueError) as exc:  # unreadable or incompatible checkpoint
                    # Transient from the tasks' point of view: posts wait (retrying) until it is fixed.
                    raise InferenceUnavailable(f"local models could not be loaded: {exc}") from exc
                for model in (tagger, writer):
                    if model.trained:
                        logger.info("loaded %s %s", model.name, model.version)
                    else:
                        logger.warning("%s is UNTRAINED (real architecture, no trained weights yet): its output "
                                       "is not meaningful", model.name)
                self._tagger, self._writer = tagger, writer
        return self._tagger, self._writer

    def check_ready(self) -> None:
        self.models()

    def warm_up(self, max_batch: int) -> None:
        tagger, _ = self.models()
        tagger.warm_up(min(max_batch, ENCODE_CHUNK))  # larger batches run in passes of at most ENCODE_CHUNK

    def suggest_hashtags(self, image: bytes, k: int) -> TagResult:
        return only(self.suggest_hashtags_batch([image], k))

    def suggest_hashtags_batch(self, images: list[bytes], k: int) -> list[Outcome[TagResult]]:
        tagger, _ = self.models()
        outcomes: list[Outcome[TagResult] | None] = [None] * len(images)
        good, tensors = [], []
        for i, image in enumerate(images):
            try:
                tensors.append(preprocess(image, self.settings.max_image_pixels, self.settings.max_image_side,
                                          tagger.input_size))  # (3, S, S)
                good.append(i)
            except InvalidImage as exc:  # this post's fault only
                outcomes[i] = exc
        if tensors:
            with torch.inference_mode():
                feats = tagger.encode(torch.stack(tensors), chunk=ENCODE_CHUNK)  # (B, L, D)
                decoded = tagger.decode(feats, k)  # B emitted tag sets, one batched beam search
            for i, d in zip(good, decoded):
                outcomes[i] = TagResult(hashtags=[_hashtag(p) for p in d.tags], model_name=tagger.name,
                                        model_version=tagger.version)
        return outcomes

    def write_story(self, request: StoryRequest) -> StoryResult:
        return only(self.write_stories([request]))

    def write_stories(self, requests: list[StoryRequest]) -> list[Outcome[StoryResult]]:
        from hashtale.models.storyteller_runtime import StorySpec

        _, writer = self.models()
        specs = [StorySpec(hashtags=tuple(r.hashtags), length=r.length, temperature=r.temperature, top_k=r.top_k,
                           random_seed=r.random_seed) for r in requests]
        with torch.inference_mode():
            texts = writer.write(specs)  # one pass for all; each story depends only on its own spec
        return [StoryResult(text=text, model_name=writer.name, model_version=writer.version) for text in texts]


def _hashtag(p) -> SuggestedHashtag:
    if p.attention is None:  # baselines without attention
        return SuggestedHashtag(text=p.text, score=float(p.score), attention=(), attention_shape=NO_ATTENTION)
    return SuggestedHashtag(text=p.text, score=float(p.score), attention=tuple(float(a) for a in p.attention.ravel()),
                            attention_shape=tuple(p.attention.shape))
