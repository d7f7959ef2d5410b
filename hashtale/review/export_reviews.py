"""`hashtale export-reviews OUT`: approved posts with their reviewed hashtags as a HARRISON-format split.

OUT gets `data_list.txt` (image paths relative to OUT), `tag_list.txt` (space-separated hashtags) and the photos
under `images/` (copied, or symlinked with --link), so `hashtale train-hashtagger --data OUT` trains on it.
A post's hashtags are those of the review that approved it (its newest state change): the suggested hashtags
minus those the reviewer removed, plus those they added (on the review page: the ticked suggestions and the
hashtags typed beside them, see hashtale.webhook.admin.posts.training_tags).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hashtale.db.reviews import Review, ReviewState, ReviewStateChange
from hashtale.db.schema import Post
from hashtale.db.arguments import add_database_url, database_url
from hashtale.db.session import session_factory_for
from hashtale.models.image import FORMATS
from hashtale.review.history import newest_state_changes
from hashtale.settings import Settings
from hashtale.training.harrison import Example, write_split

IMAGES_DIR = "images"


def approved_examples(session: Session) -> list[tuple[Post, list[str]]]:
    """(post, hashtags) of every approved post with at least one hashtag, by post id."""
    approvals = newest_state_changes().where(ReviewStateChange.state == ReviewState.APPROVED).subquery()
    rows = session.execute(
        select(Post, Review)
        .join(approvals, approvals.c.post_id == Post.id)
        .join(Review, Review.id == approvals.c.review_id)
        .options(selectinload(Review.verdicts), selectinload(Review.tag_changes))
        .order_by(Post.id)
    ).all()
    return [(post, tags) for post, review in rows if (tags := review.corrected_tags())]


def export_reviews(session: Session, media_dir: Path, out: Path, link: bool = False) -> int:
    """Write the split to `out` (which must not exist yet) and return its number of images.

    Built in a temporary sibling folder and renamed at the end: `out` is complete or absent."""
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / IMAGES_DIR).mkdir()
        examples = []
        for post, tags in approved_examples(session):
            source = (media_dir / post.image_path).resolve()
            fmt = FORMATS.get(post.image_format)
            name = f"{post.id}{fmt.suffix if fmt else Path(post.image_path).suffix}"
            if link:
                os.symlink(source, staging / IMAGES_DIR / name)
            else:
                shutil.copyfile(source, staging / IMAGES_DIR / name)
            # Paths are written relative to the folder, so they stay right after the rename below.
            examples.append(Example(image=staging / IMAGES_DIR / name, tags=tags))
        write_split(staging, examples)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(examples)


def add_arguments(parser) -> None:
    parser.add_argument("out", type=Path, help="new folder for the split")
    parser.add_argument("--link", action="store_true", help="symlink the photos instead of copying them")
    add_database_url(parser)
    parser.add_argument("--media-dir", type=Path, default=None, help="default: $MEDIA_DIR or var/media")


def run(args) -> int:
    settings = Settings.from_env()
    try:
        with session_factory_for(database_url(args)) as sessions, sessions() as session:
            count = export_reviews(session, args.media_dir or Path(settings.media_dir), args.out, args.link)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"exported {count} approved posts to {args.out}")
    return 0
