"""The pure steps of the pipeline: a post's inputs in, the model requests; the models' results in, the rows to
write out.

No session, no broker and no model call here: the tasks in hashtale/worker/tasks.py read the inputs in one short
transaction, call the models outside any transaction (batched across posts: hashtale/worker/batching.py) and write what
these functions return in another.
"""
from __future__ import annotations

import zlib
from pathlib import Path

from hashtale.db.schema import Hashtag, Story
from hashtale.inference import StoryRequest, StoryResult, TagResult
from hashtale.settings import Settings

SEED_MASK = 0x7FFFFFFF  # keeps a seed within a signed 32-bit INTEGER column


class NothingToSeed(ValueError):
    """The tagger returned no hashtag, so there is nothing to write the story about."""


def story_seed(post_id: int) -> int:
    """The story's sampling seed: a function of the post id only, so a rerun writes the same story."""
    return zlib.crc32(f"hashtale-story-{post_id}".encode()) & SEED_MASK


def read_image(settings: Settings, image_path: str) -> bytes:
    """The stored upload (image_path is relative to settings.media_dir)."""
    return (Path(settings.media_dir) / image_path).read_bytes()


def hashtag_rows(post_id: int, result: TagResult) -> list[Hashtag]:
    """A post's emitted hashtags (at most k), as rows in the model's order (rank 1 = the first emitted, or the
    surest for a set read off the beam by marginal probability)."""
    return [
        Hashtag(
            post_id=post_id,
            rank=rank,
            text=tag.text,
            score=float(tag.score),
            attention=[float(a) for a in tag.attention],
            attention_shape=list(tag.attention_shape),
            model_name=result.model_name,
            model_version=result.model_version,
        )
        for rank, tag in enumerate(result.hashtags, start=1)
    ]


def story_request(post_id: int, hashtags: list[str], settings: Settings,
                  random_seed: int | None = None) -> StoryRequest:
    """The story a post asks for: about its hashtags (all of them, in rank order), sampled with its own seed
    (unless given one)."""
    if not hashtags:
        raise NothingToSeed(f"post {post_id} has no hashtag to write its story about")
    return StoryRequest(
        hashtags=tuple(hashtags),
        length=settings.story_length,
        temperature=settings.story_temperature,
        top_k=settings.story_top_k,
        random_seed=story_seed(post_id) if random_seed is None else random_seed,
    )


def story_row(post_id: int, request: StoryRequest, result: StoryResult) -> Story:
    return Story(
        post_id=post_id,
        seed_hashtag=request.hashtags[0],
        hashtags=list(request.hashtags),
        text=result.text,
        length=request.length,
        temperature=request.temperature,
        top_k=request.top_k,
        random_seed=request.random_seed,
        model_name=result.model_name,
        model_version=result.model_version,
    )
