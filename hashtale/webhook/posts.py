"""Read side of the webhook: a post's status and results, and its stored photo.

Both need the post's read token (`?token=`, see hashtale/webhook/read_token.py); without the right one the answer is
404, the same as for a post that does not exist, so ids reveal nothing.
"""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_from_directory, url_for
from sqlalchemy.orm import selectinload

from hashtale.db.schema import Hashtag, Post, Story, as_utc
from hashtale.models.image import FORMATS
from hashtale.webhook.database import db
from hashtale.webhook.read_token import is_valid, read_token
from hashtale.webhook.storage import MediaStore

IMAGE_MAX_AGE = 24 * 60 * 60  # seconds; a post's photo never changes

bp = Blueprint("posts", __name__, url_prefix="/posts")


def post_url(endpoint: str, post_id: int) -> str:
    """The URL of a read endpoint ("posts.get_post", "posts.get_image") of a post, with its read token."""
    return url_for(endpoint, post_id=post_id, token=read_token(current_app.secret_key, post_id))


def _readable_post(post_id: int, **options) -> Post:
    post = None
    if is_valid(current_app.secret_key, post_id, request.args.get("token")):
        post = db.session.get(Post, post_id, **options)
    if post is None:
        abort(404, f"no post with id {post_id}, or not the token of its status URL")
    return post


@bp.get("/<int:post_id>")
def get_post(post_id: int) -> Response:
    post = _readable_post(post_id, options=[selectinload(Post.hashtags), selectinload(Post.story)])
    return jsonify(post_json(post))


@bp.get("/<int:post_id>/image")
def get_image(post_id: int) -> Response:
    post = _readable_post(post_id)
    # Absolute: send_from_directory would take a relative folder as relative to the package, not the working dir.
    media_dir = MediaStore(current_app.config["SETTINGS"].media_dir).root
    return send_from_directory(media_dir, post.image_path, mimetype=FORMATS[post.image_format].mimetype, max_age=IMAGE_MAX_AGE)


def post_json(post: Post) -> dict:
    return {
        "id": post.id,
        "external_id": post.external_id,
        "status": post.status.value,
        "error": post.error,
        "attempts": post.attempts,
        "caption": post.caption,
        "author": post.author,
        "created_at": _iso(post.created_at),
        "updated_at": _iso(post.updated_at),
        "timings": post.timings or {},
        "image_url": post_url("posts.get_image", post.id),
        "hashtags": [_hashtag_json(tag) for tag in post.hashtags],
        "story": None if post.story is None else _story_json(post.story),
    }


def _hashtag_json(tag: Hashtag) -> dict:
    return {
        "rank": tag.rank,
        "text": tag.text,
        "score": tag.score,
        "attention": tag.attention,
        "attention_shape": tag.attention_shape,
        "model_name": tag.model_name,
        "model_version": tag.model_version,
    }


def _story_json(story: Story) -> dict:
    return {
        "text": story.text,
        "seed_hashtag": story.seed_hashtag,
        "hashtags": story.hashtags,
        "temperature": story.temperature,
        "top_k": story.top_k,
        "length": story.length,
        "model_name": story.model_name,
        "model_version": story.model_version,
    }


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat()
