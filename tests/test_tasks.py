"""The tasks' logic, run in this process (Task.apply) against a real SQLite database and the real local
models: state machine, idempotent reruns, redeliveries, permanent and transient faults, the sweep."""
from __future__ import annotations

import hashlib
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, select

from hashtale.db.schema import Hashtag, Post, PostStatus, Story, utcnow
from hashtale.db.session import migrate
from hashtale.settings import Settings
from hashtale.worker import batching, pipeline
from hashtale.worker.celery_app import make_celery
from hashtale.worker.sweep import claim_due_retries, claim_lost_posts, lost_posts
from hashtale.worker.tasks import PostFailed, runtime

K = 5
STORY_LENGTH = 80  # characters: enough to exercise the writer, short enough to keep the module fast


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("tasks")
    s = Settings(database_url=f"sqlite:///{root / 'db.sqlite'}", broker_url=f"sqla+sqlite:///{root / 'broker.sqlite'}",
                 media_dir=str(root / "media"), hashtags_per_post=K, story_length=STORY_LENGTH,
                 retry_backoff=0.01, task_queue=f"tasks-{uuid.uuid4().hex[:8]}")
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


def _runs(task: str, outcome: str) -> float:
    """This process's hashtale_task_runs_total{task, outcome} (tests run without a multiprocess directory)."""
    return REGISTRY.get_sample_value("hashtale_task_runs_total", {"task": task, "outcome": outcome}) or 0.0


def run(app, name: str, post_id: int):
    return app.tasks[f"worker.tasks.{name}"].apply(args=[post_id])


def test_a_post_goes_through_both_stages(app, settings, sessions, coffee_jpeg):
    post_id = insert_post(settings, sessions, coffee_jpeg)
    done_before = _runs("write_story", "done")

    run(app, "suggest_hashtags", post_id)
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.TAGGED and post.attempts == 1 and not stories
    assert 1 <= len(tags) <= K and [t.rank for t in tags] == list(range(1, len(tags) + 1))  # the emitted set
    assert len({t.text for t in tags}) == len(tags)
    assert all(0.0 <= t.score <= 1.0 for t in tags)
    rows, cols = tags[0].attention_shape
    assert len(tags[0].attention) == rows * cols and sum(tags[0].attention) == pytest.approx(1.0, abs=1e-4)

    run(app, "write_story", post_id)
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.DONE and post.attempts == 2 and post.error is None
    (story,) = stories
    assert story.seed_hashtag == tags[0].text and story.hashtags == [t.text for t in tags]
    assert story.random_seed == pipeline.story_seed(post_id)
    assert 0 < len(story.text) <= 2 * STORY_LENGTH
    assert _runs("write_story", "done") == done_before + 1
    # A task outside a batch job (batching off): no batch wait, a model call of its own.
    for stage in ("tagging", "writing"):
        assert post.timings[stage]["batch_wait_ms"] == 0 and post.timings[stage]["batch_size"] == 1
        assert post.timings[stage]["run_ms"] > 0


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
    assert 1 <= len(tags) <= K and [t.rank for t in tags] == list(range(1, len(tags) + 1)) and len(stories) == 1


def test_a_corrupt_image_fails_the_post_at_once(app, settings, sessions, coffee_jpeg):
    post_id = insert_post(settings, sessions, coffee_jpeg[: len(coffee_jpeg) // 2])  # truncated on disk
    failed_before = _runs("suggest_hashtags", "failed")
    result = run(app, "suggest_hashtags", post_id)
    post, tags, _ = load(sessions, post_id)
    assert post.status == PostStatus.FAILED and post.attempts == 1 and not tags
    assert "InvalidImage" in post.error and "truncated" in post.error
    # Celery sees the failure too, with the post's reason (Flower's "Failed" view, `celery events`).
    assert result.state == "FAILURE" and isinstance(result.result, PostFailed) and str(result.result) == post.error
    assert _runs("suggest_hashtags", "failed") == failed_before + 1


def test_an_unavailable_backend_parks_the_post_until_it_is_back(app, settings, sessions, coffee_jpeg, tmp_path):
    broken = make_celery(settings.with_(hashtagger_checkpoint=str(tmp_path / "missing.pt")))
    post_id = insert_post(settings, sessions, coffee_jpeg)
    parked_before = _runs("suggest_hashtags", "parked")
    for attempt in range(1, 4):  # an outage: each run parks the post again, for longer
        result = broken.tasks["worker.tasks.suggest_hashtags"].apply(args=[post_id])
        post, tags, _ = load(sessions, post_id)
        assert result.state == "SUCCESS"  # acknowledged: no message waits in the broker for the retry
        assert post.status == PostStatus.TAGGING and post.retry_at is not None and not tags
        assert post.attempts == 0 and post.transient_failures == attempt  # a parked run does not count
        assert post.error.startswith("waiting") and "InferenceUnavailable" in post.error
        with sessions.begin() as session:  # its retry is due
            session.get(Post, post_id).retry_at = utcnow() - timedelta(seconds=1)
        assert claim_due_retries(sessions) == [(post_id, PostStatus.TAGGING)]
        assert load(sessions, post_id)[0].retry_at is None and not claim_due_retries(sessions)
    assert _runs("suggest_hashtags", "parked") == parked_before + 3

    other = insert_post(settings, sessions, coffee_jpeg)  # parked too, its retry far off (a long outage's backoff)
    broken.tasks["worker.tasks.suggest_hashtags"].apply(args=[other])
    with sessions.begin() as session:
        session.get(Post, other).retry_at = utcnow() + timedelta(minutes=5)
    assert not claim_due_retries(sessions)

    app.set_current()
    run(app, "suggest_hashtags", post_id)  # the backend is back: the post goes on, no failure on its record
    assert claim_due_retries(sessions) == [(other, PostStatus.TAGGING)]  # ...and the other need not wait 5 minutes
    run(app, "write_story", post_id)
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.DONE and post.error is None and post.transient_failures == 0
    assert 1 <= len(tags) <= K and len(stories) == 1


def test_a_missing_post_is_ignored(app):
    assert run(app, "suggest_hashtags", 10**9).successful()


def _stamp(sessions, post_id: int, age: float) -> None:
    """The post was enqueued, and last touched, `age` seconds ago."""
    with sessions.begin() as session:
        post = session.get(Post, post_id)
        post.enqueued_at = post.updated_at = utcnow() - timedelta(seconds=age)


def test_the_sweep_takes_only_posts_whose_message_left_the_queue(app, settings, sessions, coffee_jpeg):
    with sessions.begin() as session:  # other tests' posts are not this test's business
        session.query(Post).delete()
    old = settings.stuck_after + 10  # seconds
    waiting = [insert_post(settings, sessions, coffee_jpeg, status) for status in
               (PostStatus.RECEIVED, PostStatus.TAGGED, PostStatus.RECEIVED, PostStatus.RECEIVED)]
    for age, post_id in zip((old + 4, old + 3, old + 2, old + 1), waiting):  # enqueued in this order, FIFO
        _stamp(sessions, post_id, age)
    dead_run = insert_post(settings, sessions, coffee_jpeg, PostStatus.TAGGING)
    _stamp(sessions, dead_run, old)
    parked = insert_post(settings, sessions, coffee_jpeg, PostStatus.WRITING)
    _stamp(sessions, parked, old)
    with sessions.begin() as session:
        session.get(Post, parked).retry_at = utcnow() + timedelta(minutes=1)
    fresh = insert_post(settings, sessions, coffee_jpeg)  # just enqueued: in the queue whatever its length
    insert_post(settings, sessions, coffee_jpeg, PostStatus.DONE)

    def lost(queued):
        with sessions() as session:
            return lost_posts(session, settings.stuck_after, queued, utcnow())

    # A backlog: the queue holds the fresh post's message and all four old ones: nothing is lost.
    assert lost(5) == [dead_run]
    # Three messages left in the queue: those of the three newest waiting posts (the fresh one among them).
    assert lost(3) == [dead_run, waiting[0], waiting[1]]
    # An empty queue (a broker restart lost everything), or one that cannot be read: every old waiting post.
    assert lost(0) == lost(None) == [dead_run, *waiting]
    assert fresh not in lost(0) and parked not in lost(0)

    claimed = claim_lost_posts(sessions, lost(0), settings.stuck_after)
    assert dict(claimed) == {dead_run: PostStatus.TAGGING, waiting[0]: PostStatus.RECEIVED,
                             waiting[1]: PostStatus.TAGGED, waiting[2]: PostStatus.RECEIVED,
                             waiting[3]: PostStatus.RECEIVED}
    assert lost(0) == [] and claim_lost_posts(sessions, [p for p, _ in claimed], settings.stuck_after) == []


def test_a_post_that_started_meanwhile_is_not_claimed(app, settings, sessions, coffee_jpeg):
    post_id = insert_post(settings, sessions, coffee_jpeg)
    _stamp(sessions, post_id, settings.stuck_after + 10)
    with sessions() as session:
        assert post_id in lost_posts(session, settings.stuck_after, 0, utcnow())
    with sessions.begin() as session:  # a worker had reserved its message and starts it now
        session.get(Post, post_id).move_to(PostStatus.TAGGING)
    assert claim_lost_posts(sessions, [post_id], settings.stuck_after) == []


def test_the_sweep_task_enqueues_the_next_task(app, settings, sessions, coffee_jpeg):
    with sessions.begin() as session:
        session.query(Post).delete()
    with app.connection_for_write() as connection:  # earlier tests' successor messages: nobody consumes them
        connection.default_channel.queue_purge(settings.task_queue)
    post_id = insert_post(settings, sessions, coffee_jpeg, PostStatus.RECEIVED)
    _stamp(sessions, post_id, 2 * settings.stuck_after)  # its message was lost long ago: the queue is empty
    app.conf.task_always_eager = True  # the re-enqueued tasks run here at once, so their effect shows
    try:
        assert app.tasks["worker.tasks.sweep_stuck_posts"].apply().get() == 1
    finally:
        app.conf.task_always_eager = False
    post, tags, stories = load(sessions, post_id)
    assert post.status == PostStatus.DONE and 1 <= len(tags) <= K and len(stories) == 1


def test_beat_removes_photo_files_no_post_references(app, settings, sessions, coffee_jpeg):
    kept = insert_post(settings, sessions, coffee_jpeg)
    with sessions() as session:
        kept_path = Path(settings.media_dir) / session.get(Post, kept).image_path
    orphan_sha = hashlib.sha256(b"a photo whose post was never committed").hexdigest()
    orphan = Path(settings.media_dir) / orphan_sha[:2] / orphan_sha[2:4] / f"{orphan_sha}.jpg"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left by a commit that failed with the database gone")
    assert app.tasks["worker.tasks.collect_media_garbage"].apply().get() >= 1  # others: posts earlier tests deleted
    assert not orphan.exists() and kept_path.exists()


def _message(app, name: str, post_id: int) -> tuple:
    """What the worker's main process sends a pool process for one message (hashtale/worker/batching.py's run_batch)."""
    task_id = uuid.uuid4().hex
    return (f"worker.tasks.{name}", task_id, {"id": task_id, "task": f"worker.tasks.{name}"},
            ((post_id,), {}, {}), None, None)


@contextmanager
def _commits(sessions):
    """The transactions committed meanwhile on the worker runtime's engine (one list entry each)."""
    commits = []

    def count(_conn):
        commits.append(1)

    engine = sessions.kw["bind"]
    event.listen(engine, "commit", count)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", count)


def _batch_sizes(model: str) -> tuple[float, float]:
    """(calls, posts) of `model` in this process's hashtale_model_batch_size."""
    labels = {"model": model, "backend": "local"}
    return (REGISTRY.get_sample_value("hashtale_model_batch_size_count", labels) or 0.0,
            REGISTRY.get_sample_value("hashtale_model_batch_size_sum", labels) or 0.0)


def test_a_batch_job_runs_one_model_call_and_a_bad_photo_fails_only_its_post(app, settings, sessions, coffee_jpeg,
                                                                            photo_paths):
    good = [insert_post(settings, sessions, path.read_bytes()) for path in photo_paths[:3]]
    bad = insert_post(settings, sessions, coffee_jpeg[: len(coffee_jpeg) // 2])  # truncated on disk
    gone = insert_post(settings, sessions, coffee_jpeg, PostStatus.DONE)  # a duplicate message: skipped
    calls, posts = _batch_sizes("hashtagger")

    waits = [0.001, 0.002, 0.003, 0.004, 0.005]  # seconds each message waited for the batch (the main process's)
    with _commits(sessions) as commits:
        results = batching.run_batch(False, [_message(app, "suggest_hashtags", i) for i in [*good, bad, gone]], waits)
    assert len(commits) == 3  # the batch's start, the bad photo's failure, the batch's finish
    assert [failed for failed, _, _ in results] == [0, 0, 0, 1, 0]
    assert isinstance(results[3][1].exception, PostFailed) and "InvalidImage" in str(results[3][1].exception)
    assert _batch_sizes("hashtagger") == (calls + 1, posts + 4)  # the bad photo was in the call, alone refused
    for post_id, waited in zip(good, waits):
        post, tags, _ = load(sessions, post_id)
        assert post.status == PostStatus.TAGGED and 1 <= len(tags) <= K
        # The post's timing shows its own wait and the call it shared (the bad photo was in it).
        timing = post.timings["tagging"]
        assert timing["batch_wait_ms"] == 1000 * waited and timing["batch_size"] == 4
        assert timing["queued_ms"] >= 0 and timing["run_ms"] > 0
    assert load(sessions, bad)[0].status == PostStatus.FAILED

    calls, posts = _batch_sizes("storyteller")
    with _commits(sessions) as commits:
        results = batching.run_batch(False, [_message(app, "write_story", i) for i in good], [0.0] * len(good))
    assert [failed for failed, _, _ in results] == [0, 0, 0] and len(commits) == 2  # its start, its finish
    assert _batch_sizes("storyteller") == (calls + 1, posts + 3)
    for post_id in good:  # the same stories as alone: each depends only on its own request
        post, tags, (story,) = load(sessions, post_id)
        assert post.status == PostStatus.DONE and post.attempts == 2
        assert set(post.timings) == {"tagging", "writing"} and post.timings["writing"]["batch_size"] == 3
        request = pipeline.story_request(post_id, [t.text for t in tags], settings)
        assert story.text == runtime(settings).backend.write_story(request).text


def test_a_post_twice_in_one_batch_job_is_done_once_and_its_second_run_is_skipped_not_failed(app, settings, sessions,
                                                                                             coffee_jpeg):
    post_id = insert_post(settings, sessions, coffee_jpeg)
    run(app, "suggest_hashtags", post_id)
    skipped = _runs("write_story", "skipped")
    results = batching.run_batch(False, [_message(app, "write_story", post_id)] * 2, [0.0, 0.0])
    assert [failed for failed, _, _ in results] == [0, 0]
    assert _runs("write_story", "skipped") == skipped + 1  # the run whose finish found the post already done
    post, _, stories = load(sessions, post_id)
    assert post.status == PostStatus.DONE and len(stories) == 1
