"""The tasks' logic, run in this process (Task.apply) against a real SQLite database and the real local
models: state machine, idempotent reruns, redeliveries, permanent and transient faults, the sweep."""
from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from db.schema import Hashtag, Post, PostStatus, Story, utcnow
from db.session import migrate
from settings import Settings
from worker import pipeline
from worker.celery_app import make_celery
from worker.sweep import claim_stuck_posts
from worker.tasks import runtime

K = 5
STORY_LENGTH = 80  # characters: enough to exercise the writer, short enough to keep the module fast


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("tasks")
    s = Settings(database_url=f"sqlite:///{root / 'db.sqlite'}", broker_url=f"sqla+sqlite:///{root / 'broker.sqlite'}",
                 media_dir=str(root / "media"), hashtags_per_post=K, story_length=STORY_LENGTH,
                 task_max_retries=2, retry_backoff=0.01, task_queue=f"tasks-{uuid.uuid4().hex[:8]}")
    migrate(s.database_url)
    return s


@pytest.fixture(scope="module")
def app(settings):
    return make_celery(settings)


@pytest.fixture(autouse=True)
def current(app):
    app.set_current()  # the tasks enqueue their successor through the current app


@pytest.fixture(scope="module")
def sessions(settings):
    return runtime(settings).session_factory


def insert_post(settings: Settings, sessions, image: bytes, status: PostStatus = PostStatus.RECEIVED) -> int:
    sha = hashlib.sha256(image).hexdigest()
    relative = f"{sha[:2]}/{sha}.jpg"
    path = Path(settings.media_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image)
    with sessions.begin() as session:
        post = Post(external_id=uuid.uuid4().hex, image_sha256=sha, image_path=relative, image_format="JPEG",
                    width=1, height=1, status=status, attempts=0)
        session.add(post)
        session.flush()
        return post.id


def load(sessions, post_id: int) -> tuple[Post, list[Hashtag], list[Story]]:
    with sessions() as session:
        post = session.get(Post, post_id)
        tags = list(session.scalars(select(Hashtag).where(Hashtag.post_id == post_id).order_by(Hashtag.rank)))
        stories = list(session.scalars(select(Story).where(Story.post_id == post_id)))
    return post, tags, stories


def run(app, name: str, post_id: int):
    return app.tasks[f"worker.tasks.{name}"].apply(args=[post_id])


def test_a_post_goes_through_both_stages(app, settings, sessions, coffee_jpeg):
    post_id = insert_post(settings, sessions, coffee_jpeg)

    run(app, "suggest_hashtags", post_id)
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.TAGGED and post.attempts == 1 and not stories
    assert [t.rank for t in tags] == list(range(1, K + 1))
    assert len({t.text for t in tags}) == K
    assert all(0.0 <= t.score <= 1.0 for t in tags)
    assert tags[0].attention_shape == [7, 7] and sum(tags[0].attention) == pytest.approx(1.0, abs=1e-4)

    run(app, "write_story", post_id)
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.DONE and post.attempts == 2 and post.error is None
    (story,) = stories
    assert story.seed_hashtag == tags[0].text and story.hashtags == [t.text for t in tags]
    assert story.random_seed == pipeline.story_seed(post_id)
    assert 0 < len(story.text) <= 2 * STORY_LENGTH


def test_duplicate_messages_and_redeliveries_leave_one_set_of_rows(app, settings, sessions, coffee_jpeg):
    post_id = insert_post(settings, sessions, coffee_jpeg)
    run(app, "suggest_hashtags", post_id)
    run(app, "write_story", post_id)
    _, tags_before, (story_before,) = load(sessions, post_id)

    # Duplicate messages for a post that is past their stage change nothing.
    run(app, "suggest_hashtags", post_id)
    run(app, "write_story", post_id)
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.DONE and post.attempts == 2
    assert [t.id for t in tags] == [t.id for t in tags_before] and [s.id for s in stories] == [story_before.id]

    # A worker died mid-story: the post sits in `writing` and the message is redelivered.
    with sessions.begin() as session:
        session.get(Post, post_id).status = PostStatus.WRITING
    run(app, "write_story", post_id)
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.DONE and post.attempts == 3
    (story,) = stories
    assert story.text == story_before.text  # the seed is the post's: a rerun writes the same story


def test_a_requeued_post_replaces_its_hashtags(app, settings, sessions, coffee_jpeg):
    post_id = insert_post(settings, sessions, coffee_jpeg)
    run(app, "suggest_hashtags", post_id)
    with sessions.begin() as session:  # it failed later; an admin requeues it
        post = session.get(Post, post_id)
        post.move_to(PostStatus.FAILED)
        post.move_to(PostStatus.RECEIVED)
    run(app, "suggest_hashtags", post_id)
    run(app, "write_story", post_id)
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.DONE
    assert [t.rank for t in tags] == list(range(1, K + 1)) and len(stories) == 1


def test_a_corrupt_image_fails_the_post_at_once(app, settings, sessions, coffee_jpeg):
    post_id = insert_post(settings, sessions, coffee_jpeg[: len(coffee_jpeg) // 2])  # truncated on disk
    run(app, "suggest_hashtags", post_id)
    post, tags, _ = load(sessions, post_id)
    assert post.status == PostStatus.FAILED and post.attempts == 1 and not tags
    assert "InvalidImage" in post.error and "truncated" in post.error


def test_an_unavailable_backend_is_retried_then_fails_the_post(settings, sessions, coffee_jpeg, tmp_path):
    broken = settings.with_(hashtagger_checkpoint=str(tmp_path / "missing.pt"))
    app = make_celery(broken)
    post_id = insert_post(settings, sessions, coffee_jpeg)
    run(app, "suggest_hashtags", post_id)  # eager: each retry runs at once
    post, tags, _ = load(sessions, post_id)
    assert post.status == PostStatus.FAILED and not tags
    assert post.attempts == broken.task_max_retries + 1
    assert post.error.startswith(f"gave up after {broken.task_max_retries} retries: InferenceUnavailable")


def test_a_missing_post_is_ignored(app):
    assert run(app, "suggest_hashtags", 10**9).successful()


def test_the_sweep_claims_stuck_posts_once(app, settings, sessions, coffee_jpeg):
    received = insert_post(settings, sessions, coffee_jpeg, PostStatus.RECEIVED)
    tagged = insert_post(settings, sessions, coffee_jpeg, PostStatus.TAGGED)
    done = insert_post(settings, sessions, coffee_jpeg, PostStatus.DONE)
    later = utcnow() + timedelta(seconds=settings.stuck_after + 1)

    claimed = dict(claim_stuck_posts(sessions, settings.stuck_after, now=later))
    assert claimed[received] == PostStatus.RECEIVED and claimed[tagged] == PostStatus.TAGGED
    assert done not in claimed
    assert not claim_stuck_posts(sessions, settings.stuck_after, now=later)  # touched: not again so soon
    assert not claim_stuck_posts(sessions, settings.stuck_after)  # nothing is stuck yet at the real now


def test_the_sweep_task_enqueues_the_next_task(app, settings, sessions, coffee_jpeg):
    post_id = insert_post(settings, sessions, coffee_jpeg, PostStatus.RECEIVED)
    with sessions.begin() as session:  # its message was lost long ago
        session.get(Post, post_id).updated_at = utcnow() - timedelta(seconds=2 * settings.stuck_after)
    app.conf.task_always_eager = True  # the re-enqueued tasks run here at once, so their effect shows
    try:
        assert app.tasks["worker.tasks.sweep_stuck_posts"].apply().get() == 1
    finally:
        app.conf.task_always_eager = False
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.DONE and len(tags) == K and len(stories) == 1
