"""One small client interface to the models, with two backends chosen by settings:
`local` (models run in-process with PyTorch) and `triton` (tritonclient to a Triton server)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar, Union

from hashtale.models.image import InvalidImage


class InferenceUnavailable(RuntimeError):
    """A transient fault (server down, timeout): the caller should retry later."""


@dataclass(frozen=True)
class SuggestedHashtag:
    text: str
    score: float  # model probability of the tag, 0..1
    attention: tuple[float, ...]  # row-major grid, sums to 1 (empty for models without attention)
    attention_shape: tuple[int, int]  # (rows, cols), e.g. (7, 7)


@dataclass(frozen=True)
class TagResult:
    hashtags: list[SuggestedHashtag]  # ranked, best first, distinct texts
    model_name: str
    model_version: str


@dataclass(frozen=True)
class StoryRequest:
    hashtags: tuple[str, ...]  # the post's hashtag set, best first: the story is conditioned on it
    length: int  # characters, approximate: the story ends on a sentence boundary near it
    temperature: float
    top_k: int
    random_seed: int


@dataclass(frozen=True)
class StoryResult:
    text: str
    model_name: str
    model_version: str


T = TypeVar("T")
Outcome = Union[T, Exception]  # one item's result in a batched call, or the error of that item alone


class InferenceBackend(Protocol):
    def check_ready(self) -> None:
        """Raise InferenceUnavailable unless the models can serve now."""

    def warm_up(self, max_batch: int) -> None:
        """Pay the first-call costs of every batch size up to `max_batch` now, not in a post's latency."""

    def suggest_hashtags(self, image: bytes, k: int) -> TagResult:
        """Encoded image bytes -> ranked hashtags. Raises InvalidImage or InferenceUnavailable."""

    def suggest_hashtags_batch(self, images: list[bytes], k: int) -> list[Outcome[TagResult]]:
        """One outcome per image, in order: a bad image gets its InvalidImage, the others their hashtags.
        Raises InferenceUnavailable when the call as a whole cannot run."""

    def write_story(self, request: StoryRequest) -> StoryResult:
        """Raises InferenceUnavailable."""

    def write_stories(self, requests: list[StoryRequest]) -> list[Outcome[StoryResult]]:
        """One outcome per request, in order. Raises InferenceUnavailable when the call as a whole cannot run."""


def only(outcomes: list[Outcome[T]]) -> T:
    """The result of a batched call of one item (its error raised)."""
    (outcome,) = outcomes
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def make_backend(settings) -> InferenceBackend:
    if settings.inference_backend == "local":
        from hashtale.inference.local import LocalBackend

        return LocalBackend.from_settings(settings)
    if settings.inference_backend == "triton":
        from hashtale.inference.triton import TritonBackend

        return TritonBackend.from_settings(settings)
    raise ValueError(f"unknown inference backend {settings.inference_backend!r}; use 'local' or 'triton'")


__all__ = [
    "InferenceBackend", "InferenceUnavailable", "InvalidImage", "Outcome", "StoryRequest", "StoryResult",
    "SuggestedHashtag", "TagResult", "make_backend", "only",
]
