"""Cross-post batching in the worker: the model calls of up to BATCH_SIZE posts of a stage run as ONE batched call,
while every message stays a per-post task with the guarantees of hashtale/worker/tasks.py.

Not celery-batches (0.11, the maintained successor of celery.contrib.batches), for what it does to those guarantees:
- process death: it sends a batch to the pool without an error callback, so when the pool process dies its messages
  are neither acknowledged nor rejected: task_reject_on_worker_lost is ignored, they stay reserved (and count
  against the prefetch window, stalling the worker) until the worker's connection closes or Redis's visibility
  timeout (an hour) restores them;
- acks_late: it acknowledges every message of a batch when the batch function returns, whatever happened to each
  post, and a batch that raised is acknowledged too;
- per item: one synthetic task id per batch; no per-message state, retry or task-succeeded/task-failed event
  (Flower and `celery events` would not see a failed post), so every task would have to be rewritten for it;
- it declares celery<5.7, and the worker runs Celery 5.7.

So this module, in two halves:
- The worker's main process (the consumer): the tasks' Strategy is Celery's default one, except that a request it
  would send to the pool joins its task's open Batch instead. A request that finds no batch of its task open or
  running goes to the pool at once: nothing of its stage is under way, so waiting would only delay it (a lone post
  waits for nothing; the first request of a burst runs alone, and the rest gather behind it). Otherwise a batch goes
  to the pool when it holds BATCH_SIZE requests, or a stage's share of BATCH_WAIT_MS after its first request came: a
  post passes BATCHED_STAGES gathers, which split BATCH_WAIT_MS between them, so a post is held BATCH_WAIT_MS at
  most in all (each wait is the `hashtale_batch_wait_seconds` metric). A batch still takes requests in while it
  waits for a free pool process, up to BATCH_SIZE: with an event loop (Redis) Celery's semaphore holds the hand-over
  back; without one (kombu's SQLite broker) the batch waits on billiard's semaphore of free processes before it is
  sealed.
  Acknowledged-late messages count against the prefetch window, so the worker reserves two batches per pool process
  (worker_prefetch_multiplier, hashtale/worker/celery_app.py): the next batch fills while one runs.
- A pool process runs a batch as one job: each request's task runs through Celery's own tracer in a thread of its
  own, as it runs alone. Its steps that can be shared it `submit`s: its start (one transaction), its model call
  and its finish (one transaction). Once every request of the job still running has submitted or ended, the job
  makes each submitted call once for all of them (a round), and each task gets back its own result or its own
  error: so a batch of posts costs one start transaction, one model call and one finish transaction, not one of
  each per post (hashtale/worker/tasks.py keeps a post's own failure its own). Parking and failing a post stay
  transactions of its own.
The job returns one trace result per request and the main process settles each request with Celery's own Request
callbacks: acknowledged once its task returned (after its commit), and when the pool process dies, every request
of the batch is requeued (reject_on_worker_lost), as a lone task's would be.

Outside a batch job (batching off, Task.apply) `submit` makes the call for its one item.
"""
from __future__ import annotations

import copy
import functools
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from billiard.einfo import ExceptionInfo
from celery import current_app
from celery.app.trace import fast_trace_task, trace_task_ret
from celery.exceptions import TaskRevokedError
from celery.worker.strategy import default as default_strategy

from hashtale.monitoring.metrics import BATCH_WAIT

BatchCall = Callable[[list[Any]], list[Any]]  # inputs -> per input, in order, its result or its own Exception

STRATEGY = "hashtale.worker.batching:strategy"  # the tasks' Celery Strategy (a name: Celery imports it in the worker)
BATCHED_STAGES = 2  # the tasks whose Strategy is STRATEGY (tag, write): a post waits for a batch once in each
# Seconds: a batch's timer fires, and its hand-over to the pool is done, up to about this much after its time, so
# the timer is set this much early: a lone post's waits stay within BATCH_WAIT_MS.
TIMER_SLACK = 0.001
# This thread's request: .gathering, the Gathering of the batch job it is part of; .waited, its seconds in the
# worker's main process waiting for its batch to go to a pool process; .posts, the posts of its model call.
_job = threading.local()


@dataclass(frozen=True)
class Share:
    """What batching did to one request: its wait for its batch and the size of the model call it was part of."""

    waited: float  # seconds, in the worker's main process before its batch went to a pool process
    posts: int  # in the model call its input was part of


def share() -> Share:
    """This thread's request's Share, once its model call returned (a request outside a batch job: no wait, a call
    of its own)."""
    return Share(getattr(_job, "waited", 0.0), getattr(_job, "posts", 1))


class _Round:
    """One batched call of a batch job: the items its requests submitted, and the call's outcomes."""

    def __init__(self, pending: int):
        self.pending = pending  # requests of the job that have neither submitted to this round nor ended
        self.calls: dict[Any, tuple[BatchCall, list[int]]] = {}  # call key -> (call, indices of its items)
        self.inputs: list[Any] = []
        self.outcomes: list[Any] | None = None

    def add(self, call: BatchCall, item: Any) -> tuple[int, list[int]]:
        """(the item's index, the indices of every item of its call so far)"""
        index = len(self.inputs)
        self.inputs.append(item)
        same_call = self.calls.setdefault(_call_key(call), (call, []))[1]
        same_call.append(index)
        return index, same_call

    def run(self) -> list[Any]:
        """Each call once, for the items submitted to it; per item its result or its own Exception (a call that
        raised as a whole: the error for each of its items)."""
        outcomes: list[Any] = [None] * len(self.inputs)
        for call, indices in self.calls.values():
            try:
                results = call([self.inputs[i] for i in indices])
                if len(results) != len(indices):
                    raise RuntimeError(f"a batched call returned {len(results)} outcomes for {len(indices)} inputs")
            except BaseException as exc:
                results = [_Raised(exc)] * len(indices)
            for i, result in zip(indices, results):
                outcomes[i] = result
        return outcomes


@dataclass(frozen=True)
class _Raised:
    """A call that raised as a whole: each of its items raises a copy of the error."""

    error: BaseException


def _call_key(call: Any) -> Any:
    """Requests that submit the same function with the same bound arguments share its call (partials are built per
    request, and compare by identity)."""
    if isinstance(call, functools.partial):
        return call.func, tuple(_call_key(arg) for arg in call.args), tuple(sorted(call.keywords.items()))
    return call


class Gathering:
    """The batched calls of one batch job's requests (`size` of them), made in rounds: a round's calls are made once
    every request still running has submitted to it or ended, so each request's task runs its stage's steps (start,
    model call, finish) in order, each step shared with the other requests'."""

    def __init__(self, size: int):
        self._ready = threading.Condition()
        self._running = size  # requests that have not ended
        self._round = _Round(size)

    def submit(self, call: BatchCall, item: Any) -> Any:
        with self._ready:
            round_ = self._round
            index, same_call = round_.add(call, item)
            self._arrive(round_)
            self._ready.wait_for(lambda: round_.outcomes is not None)
            _job.posts = len(same_call)
        outcome = round_.outcomes[index]
        if isinstance(outcome, _Raised):
            raise _own_copy(outcome.error)
        return _unwrap(outcome)

    def end(self) -> None:
        """A request's task returned: it submits nothing more."""
        with self._ready:
            self._running -= 1
            self._arrive(self._round)

    def _arrive(self, round_: _Round) -> None:
        round_.pending -= 1
        if round_.pending == 0:
            self._ready.notify_all()

    def run(self) -> None:
        """Round after round until every request has ended: wait until each running request has submitted or ended,
        then make the round's calls."""
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._round.pending == 0)
                round_ = self._round
                if not round_.inputs:  # every request ended
                    return
                self._round = _Round(self._running)  # the submitters' next step
            outcomes = round_.run()
            with self._ready:
                round_.outcomes = outcomes
                self._ready.notify_all()


def _own_copy(error: BaseException) -> BaseException:
    """An exception of its own for each task that raises the call's error (a raise adds to its traceback)."""
    try:
        return copy.copy(error)
    except Exception:  # an exception class that cannot be rebuilt from its args
        return error


def _unwrap(outcome: Any) -> Any:
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def submit(call: BatchCall, item: Any) -> Any:
    """`call([item])`'s result for `item` (its error raised), batched with the other requests of this thread's batch
    job if it runs in one."""
    gathering = getattr(_job, "gathering", None)
    if gathering is None:
        _job.posts = 1
        return _unwrap(call([item])[0])
    return gathering.submit(call, item)


def run_gathered(work: list[Callable[[], Any]]) -> list[Any]:
    """Run every callable in a thread of its own, their `submit`s made as one call; what each returned, in order
    (each callable handles its own errors)."""
    gathering = Gathering(len(work))
    returned: list[Any] = [None] * len(work)

    def one(index: int) -> None:
        _job.gathering = gathering
        try:
            returned[index] = work[index]()
        finally:
            _job.gathering = None
            gathering.end()

    threads = [threading.Thread(target=one, args=(i,), name=f"batch-{i}") for i in range(len(work))]
    for thread in threads:
        thread.start()
    gathering.run()
    for thread in threads:
        thread.join()
    return returned


def run_batch(fast_trace: bool, requests: list[tuple], waits: list[float]) -> list[tuple]:
    """A pool job: trace every request (the arguments Celery's Request sends to the pool) in a thread of its own,
    their model calls made as one; `waits`: each request's seconds waiting for the batch. Returns per request
    Celery's trace result: (failed, retval, runtime)."""
    app = current_app._get_current_object()  # the threads' own current app is the default one otherwise
    trace = fast_trace_task if fast_trace else functools.partial(trace_task_ret, app=app)

    def traced(args: tuple, waited: float) -> tuple:
        began = time.monotonic()
        _job.waited = waited
        app.set_current()  # shared tasks (the next stage's .delay) publish through it
        try:
            return trace(*args)
        except BaseException:  # the tracer handles the task's errors; this is the tracer's own
            return 1, ExceptionInfo(), time.monotonic() - began

    if len(requests) == 1:  # a lone post runs as it runs without batching: no thread hand-offs on its way
        return [traced(requests[0], waits[0])]
    return run_gathered([functools.partial(traced, args, waited) for args, waited in zip(requests, waits)])


class Batch:
    """Requests of one task gathered in the worker's main process; the pool runs them as one job. It takes the
    place of a Request in Celery's hand-over to the pool (WorkController._process_task)."""

    def __init__(self, gatherer: "Gatherer"):
        self.gatherer = gatherer
        self.requests: list = []
        self.arrived: list[float] = []  # time.monotonic() of each request's arrival
        self.handed_over = False
        self.sealed = False  # sent to the pool: takes no more requests
        self.timer = None

    def execute_using_pool(self, pool, **_kwargs):
        slots = _free_process_slots(pool)
        if slots is not None:
            slots.acquire()  # until a pool process is free; the batch takes requests in meanwhile
        try:
            return self._send(pool)
        except BaseException:  # nothing was sent (every request revoked, the pool closing): the slot stays free
            if slots is not None:
                slots.release()
            self.gatherer.ended()
            raise

    def _send(self, pool):
        now = time.monotonic()
        with self.gatherer.lock:
            self.sealed = True
        waits = [now - arrived for arrived in self.arrived]
        for waited in waits:
            BATCH_WAIT.labels(self.gatherer.task_name).observe(waited)
        # A revoked request is acknowledged and dropped.
        kept = [(r, waited) for r, waited in zip(self.requests, waits) if not r.revoked()]
        requests = [r for r, _waited in kept]
        if not requests:
            raise TaskRevokedError("every request of the batch was revoked")  # the caller frees the pool slot

        def accepted(pid: int, time_accepted: float) -> None:
            for r in requests:
                r.on_accepted(pid, time_accepted)

        def returned(results: list[tuple]) -> None:
            self.gatherer.ended()
            for r, result in zip(requests, results):
                r.on_success(result)

        def lost(exc_info) -> None:  # WorkerLostError when the pool process died: each requeued (acks_late)
            self.gatherer.ended()
            for r in requests:
                r.on_failure(exc_info)

        # TaskPool.apply_async, except that a slot taken above is not waited for twice
        return pool.on_apply(
            run_batch,
            args=(self.gatherer.fast_trace,
                  [(r.type, r.id, r.request_dict, r.body, r.content_type, r.content_encoding) for r in requests],
                  [waited for _r, waited in kept]),
            waitforslot=False, callbacks_propagate=pool.callbacks_propagate,
            accept_callback=accepted, callback=returned, error_callback=lost,
        )


def _free_process_slots(pool):
    """Without an event loop (kombu's SQLite broker), billiard's semaphore of free pool processes, which Celery's
    hand-over would wait on only after the batch is sealed: waiting on it first lets the batch fill meanwhile. It is
    released as billiard releases it for a lone task: when the job returns, or when its process is found dead.
    None with an event loop, where Celery's own semaphore holds the batch back before the hand-over, and with a pool
    other than prefork (billiard's)."""
    if not pool.putlocks:
        return None
    return getattr(getattr(pool, "_pool", None), "_putlock", None)


class Gatherer:
    """The open batch of one task in the worker's main process."""

    def __init__(self, task_name: str, consumer, size: int, wait: float):
        self.task_name = task_name.rsplit(".", 1)[-1]
        self.hand_over = consumer.on_task_request  # to the pool, once a pool process is free (Celery's semaphore)
        self.size, self.wait = size, wait  # requests, seconds
        self.fast_trace = consumer.app.use_fast_trace_task
        # With an event loop (Redis) the consumer runs in the loop's thread and the loop's timer fires on time;
        # without one (the SQLite broker) the worker's timer thread may sleep a second before it sees a new entry,
        # so each batch gets a timer thread of its own.
        self.threaded = isinstance(consumer.timer, threading.Thread)
        self.timer = consumer.timer
        self.lock = threading.Lock()
        self.open: Batch | None = None
        self.running = 0  # batches handed over whose pool job has not ended (waiting for a process, or running)

    def add(self, request) -> None:
        with self.lock:
            batch = self.open
            started = batch is None or batch.sealed or len(batch.requests) >= self.size
            if started:
                batch = self.open = Batch(self)
            batch.requests.append(request)
            batch.arrived.append(time.monotonic())
            full = len(batch.requests) >= self.size
            alone = started and self.running == 0  # nothing of this stage under way: no reason to wait
        if full:
            self._hand_over(batch)
        elif started:
            self._start_timer(batch, 0.0 if alone else self.wait)

    def _start_timer(self, batch: Batch, wait: float) -> None:
        # a timer even for no wait: without an event loop the hand-over may block on a free pool process, which
        # must not hold up the consumer's thread while the batch takes requests in
        if self.threaded:
            batch.timer = threading.Timer(wait, self._hand_over, (batch,))
            batch.timer.daemon = True
            batch.timer.start()
        else:
            batch.timer = self.timer.call_after(wait, self._hand_over, (batch,))

    def _hand_over(self, batch: Batch) -> None:
        with self.lock:
            if batch.handed_over:
                return
            batch.handed_over = True
            self.running += 1
        if batch.timer is not None:
            batch.timer.cancel()
        self.hand_over(batch)

    def ended(self) -> None:
        """A handed-over batch's pool job returned or died, or nothing of it was sent."""
        with self.lock:
            self.running -= 1


class _Redirected:
    """The consumer, as Celery's default strategy sees it, except that requests go to the gatherer."""

    def __init__(self, consumer, on_task_request):
        self._consumer = consumer
        self.on_task_request = on_task_request

    def __getattr__(self, name: str):
        return getattr(self._consumer, name)


def strategy(task, app, consumer, **kwargs):
    """The tasks' Strategy (Celery instantiates it once per task in the worker's main process)."""
    settings = app.conf.hashtale_settings
    if settings.batch_size <= 1:
        return default_strategy(task, app, consumer, **kwargs)
    stage_wait = max(0.0, settings.batch_wait_ms / 1000 / BATCHED_STAGES - TIMER_SLACK)  # seconds
    gatherer = Gatherer(task.name, consumer, settings.batch_size, stage_wait)
    return default_strategy(task, app, _Redirected(consumer, gatherer.add), **kwargs)
