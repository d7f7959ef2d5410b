"""The `local` backend: both models run in this process with PyTorch.

The models are loaded once, on first use, under a lock: Celery's prefork children and gunicorn's threads
may call in concurrently, and the first call must not load them twice. Forward passes run without the lock
(the models are in eval mode and keep no state between calls).
"""
from __future__ import annotations

import logging
import threading

import torch

from inference import InferenceUnavailable, StoryRequest, StoryResult, SuggestedHashtag, TagResult
from models.image import preprocess
from settings import Settings

logger = logging.getLogger(__name__)

NO_ATTENTION = (0, 0)  # the attention grid's shape for models that have none


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
                from models.tagger import Tagger
                from models.writer import StoryWriter

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

    def suggest_hashtags(self, image: bytes, k: int) -> TagResult:
        tagger, _ = self.models()
        x = preprocess(image, self.settings.max_image_pixels, self.settings.max_image_side)  # (3, 224, 224)
        with torch.inference_mode():
            predictions = tagger.suggest(x.unsqueeze(0), k)[0]  # batch of one
        hashtags = [
            SuggestedHashtag(text=p.text, score=float(p.score), attention=(), attention_shape=NO_ATTENTION)
            if p.attention is None  # baselines without attention
            else SuggestedHashtag(text=p.text, score=float(p.score), attention=tuple(float(a) for a in p.attention.ravel()),
                                  attention_shape=tuple(p.attention.shape))
            for p in predictions
        ]
        return TagResult(hashtags=hashtags, model_name=tagger.name, model_version=tagger.version)

    def write_story(self, request: StoryRequest) -> StoryResult:
        from models.writer import StorySpec

        _, writer = self.models()
        spec = StorySpec(hashtags=tuple(request.hashtags), length=request.length, temperature=request.temperature,
                         top_k=request.top_k, random_seed=request.random_seed)
        with torch.inference_mode():
            (text,) = writer.write([spec])
        return StoryResult(text=text, model_name=writer.name, model_version=writer.version)
