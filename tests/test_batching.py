"""worker/batching.py's Gathering: the model calls of one batch job's requests, made as one call, in threads as the
pool job runs them (the Celery side is exercised by tests/test_tasks.py, test_resilience.py and test_monitoring.py)."""
from __future__ import annotations

import threading

import pytest

from inference import InferenceUnavailable, InvalidImage
from worker.batching import Gathering, submit


def run_job(gathering: Gathering, work) -> list:
    """Run `work(i)` for every request of the job in a thread of its own, as run_batch does; their outcomes."""
    outcomes: list = [None] * gathering._pending

    def one(i: int) -> None:
        try:
            outcomes[i] = work(i)
        except Exception as exc:
            outcomes[i] = exc
        finally:
            gathering.end()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(outcomes))]
    for t in threads:
        t.start()
    gathering.run()
    for t in threads:
        t.join()
    return outcomes


def test_one_call_for_every_request_that_submits_and_each_gets_its_own_outcome():
    calls = []

    def call(items):
        calls.append(list(items))
        return [InvalidImage(f"bad {x}") if x == 2 else x * 10 for x in items]

    gathering = Gathering(4)
    # Request 3 ends without a model call (a duplicate message, say): the call does not wait for it.
    outcomes = run_job(gathering, lambda i: None if i == 3 else gathering.submit(call, i))
    assert len(calls) == 1 and sorted(calls[0]) == [0, 1, 2]
    assert outcomes[0] == 0 and outcomes[1] == 10 and outcomes[3] is None
    assert isinstance(outcomes[2], InvalidImage)  # only its own request fails


def test_a_failed_call_raises_in_every_request_that_submitted():
    def call(items):
        raise InferenceUnavailable("the models are away")

    gathering = Gathering(3)
    outcomes = run_job(gathering, lambda i: gathering.submit(call, i))
    assert all(isinstance(o, InferenceUnavailable) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 3  # each request raises an exception of its own


def test_a_job_without_model_calls_makes_none():
    gathering = Gathering(2)
    assert run_job(gathering, lambda i: i) == [0, 1]


def test_outside_a_batch_job_submit_calls_for_its_one_item():
    assert submit(lambda items: [x + 1 for x in items], 1) == 2
    with pytest.raises(InvalidImage):
        submit(lambda items: [InvalidImage("bad")], 1)


def test_triton_batched_calls_give_each_item_its_own_outcome():
    """The Triton backend sends a batch's requests concurrently; a server that cannot be reached is each request's
    own InferenceUnavailable (its post parks), not an error of the call."""
    from inference.triton import TritonBackend
    from tests.worker_process import free_port

    backend = TritonBackend(f"127.0.0.1:{free_port()}", timeout=2.0)  # nothing listens there
    try:
        outcomes = backend.suggest_hashtags_batch([b"one", b"two", b"three"], 5)
    finally:
        backend.close()
    assert len(outcomes) == 3 and all(isinstance(o, InferenceUnavailable) for o in outcomes)
