"""hashtale/worker/batching.py's gathering: the model calls of one batch job's requests, made as one call, in threads as
the pool job runs them (the Celery side is exercised by tests/test_tasks.py, test_resilience.py and
test_monitoring.py)."""
from __future__ import annotations

import functools

import pytest

from hashtale.inference import InferenceUnavailable, InvalidImage
from hashtale.worker.batching import run_gathered, share, submit


def outcome(work, i):
    """What a request's task ends with: its return, or the exception it raised."""
    try:
        return work(i)
    except Exception as exc:
        return exc


def run_job(size: int, work) -> list:
    """`work(i)` for every request i of a batch job of `size`, each in a thread of its own, as run_batch runs them."""
    return run_gathered([functools.partial(outcome, work, i) for i in range(size)])


def test_one_call_for_every_request_that_submits_and_each_gets_its_own_outcome():
    calls = []

    def call(items):
        calls.append(list(items))
        return [InvalidImage(f"bad {x}") if x == 2 else x * 10 for x in items]

    # Request 3 ends without a model call (a duplicate message, say): the call does not wait for it.
    outcomes = run_job(4, lambda i: None if i == 3 else submit(call, i))
    assert len(calls) == 1 and sorted(calls[0]) == [0, 1, 2]
    assert outcomes[0] == 0 and outcomes[1] == 10 and outcomes[3] is None
    assert isinstance(outcomes[2], InvalidImage)  # only its own request fails


def test_a_failed_call_raises_in_every_request_that_submitted():
    def call(items):
        raise InferenceUnavailable("the models are away")

    outcomes = run_job(3, lambda i: submit(call, i))
    assert all(isinstance(o, InferenceUnavailable) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 3  # each request raises an exception of its own


def test_steps_in_sequence_are_one_call_each_and_a_request_that_ends_between_them_holds_up_none():
    """A stage's steps (start, model call, finish) are rounds: each made once for the requests still running."""
    starts, finishes = [], []

    def start(items):
        starts.append(list(items))
        return items

    def finish(items):
        finishes.append(list(items))
        return [x * 2 for x in items]

    def work(i):
        submit(start, i)
        if i == 1:  # its post needs nothing more (a duplicate message, say)
            return None
        return submit(finish, i)

    assert run_job(3, work) == [0, None, 4]
    assert len(starts) == 1 and sorted(starts[0]) == [0, 1, 2]
    assert len(finishes) == 1 and sorted(finishes[0]) == [0, 2]


def test_different_calls_in_one_round_are_made_each_for_its_own_items():
    def double(items):
        return [x * 2 for x in items]

    def negate(items):
        return [-x for x in items]

    def work(i):
        # Partials built per request, as the tasks build them, share the call when they bind the same arguments.
        result = submit(functools.partial(double) if i % 2 else functools.partial(negate), i)
        return result, share().posts  # the items of its own call

    assert run_job(4, work) == [(0, 2), (2, 2), (-2, 2), (6, 2)]


def test_a_job_without_model_calls_makes_none():
    assert run_job(2, lambda i: i) == [0, 1]


def test_outside_a_batch_job_submit_calls_for_its_one_item():
    assert submit(lambda items: [x + 1 for x in items], 1) == 2
    with pytest.raises(InvalidImage):
        submit(lambda items: [InvalidImage("bad")], 1)


def test_triton_batched_calls_give_each_item_its_own_outcome():
    """The Triton backend sends a batch's requests concurrently; a server that cannot be reached is each request's
    own InferenceUnavailable (its post parks), not an error of the call."""
    from hashtale.inference.triton import TritonBackend
    from hashtale.inference.tritonserver import free_port

    backend = TritonBackend(f"127.0.0.1:{free_port()}", timeout=2.0)  # nothing listens there
    try:
        outcomes = backend.suggest_hashtags_batch([b"one", b"two", b"three"], 5)
    finally:
        backend.close()
    assert len(outcomes) == 3 and all(isinstance(o, InferenceUnavailable) for o in outcomes)


def test_a_post_is_gathered_once_per_batched_stage_and_the_stages_share_the_wait():
    import hashtale.worker.tasks  # noqa: F401  (registers the tasks, as the worker does)
    from hashtale.worker.batching import BATCHED_STAGES, STRATEGY
    from hashtale.worker.celery_app import celery

    gathering = [name for name, task in celery.tasks.items() if getattr(task, "Strategy", None) == STRATEGY]
    assert sorted(gathering) == ["worker.tasks.suggest_hashtags", "worker.tasks.write_story"]
    assert len(gathering) == BATCHED_STAGES  # so a lone post waits BATCH_WAIT_MS at most in all
