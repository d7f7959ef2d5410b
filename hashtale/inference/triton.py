"""The `triton` backend: the models run in a Triton Inference Server (triton_repo/), called with tritonclient
over HTTP or gRPC.

Fault mapping (what the Celery tasks rely on):
- the server's "invalid image: ..." errors (the model refused the bytes) -> `InvalidImage` (the post fails);
- the server's "invalid request: ..." errors (bad arguments: a client bug) -> `ValueError`;
- anything else: connection refused, timeouts, server stopping, model not ready -> `InferenceUnavailable`
  (transient: the task retries later).

A tritonclient client is not shared between threads or processes (the HTTP one is gevent-based): each
thread of each process builds its own on first use, so a backend built before Celery forks stays valid.

The batched calls send one request per item, all in flight together from a thread pool, so the server's dynamic
batcher has them to group; each item's outcome is its own (a bad image, or a timeout, fails only its request).
"""
from __future__ import annotations

import http.client
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import numpy as np

from hashtale.inference import InferenceUnavailable, Outcome, StoryRequest, StoryResult, SuggestedHashtag, TagResult
from hashtale.models.image import InvalidImage
from hashtale.models.serving import INVALID_IMAGE_PREFIX, INVALID_REQUEST_PREFIX, hashtags_field
from hashtale.settings import Settings

HASHTAGGER = "hashtagger"  # model names in triton_repo/
STORYTELLER = "storyteller"
PROTOCOLS = ("http", "grpc")
# What tritonclient.http lets through from geventhttpclient (the gRPC client raises InferenceServerException only).
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
MAX_IN_FLIGHT = 32  # requests one process keeps in flight for a batched call (the largest worker batch)

Item = TypeVar("Item")
Result = TypeVar("Result")


class TritonBackend:
    def __init__(self, url: str, protocol: str = "http", timeout: float = 30.0):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown Triton protocol {protocol!r}; use 'http' or 'grpc'")
        self.url = url
        self.protocol = protocol
        self.timeout = timeout  # seconds, per call
        self._local = threading.local()
        self._clients: list = []  # every client this backend made, so close() reaches other threads' too
        self._clients_lock = threading.Lock()
        self._senders: tuple[int, ThreadPoolExecutor] | None = None  # (pid, threads): made anew after a fork

    @classmethod
    def from_settings(cls, settings: Settings) -> "TritonBackend":
        return cls(settings.triton_url, settings.triton_protocol, settings.triton_timeout)

    @property
    def module(self):
        if self.protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
        return module

    def client(self):
        """This thread's client (a new one after a fork)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            if self.protocol == "grpc":
                local.client = self.module.InferenceServerClient(self.url)
            else:
                local.client = self.module.InferenceServerClient(
                    self.url, connection_timeout=self.timeout, network_timeout=self.timeout)
            local.pid = os.getpid()
            with self._clients_lock:
                self._clients.append(local.client)
        return local.client

    def close(self) -> None:
        """Close every connection (an open HTTP keep-alive connection delays a tritonserver shutdown)."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._local = threading.local()

    def _call(self, method: str, *args, **kwargs):
        """Call a client method, mapping faults as the module docstring says."""
        from tritonclient.utils import InferenceServerException

        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout
        try:
            return getattr(self.client(), method)(*args, **kwargs)
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            if INVALID_IMAGE_PREFIX in message:
                raise InvalidImage(message.split(INVALID_IMAGE_PREFIX, 1)[1]) from exc
            if INVALID_REQUEST_PREFIX in message:
                raise ValueError(message.split(INVALID_REQUEST_PREFIX, 1)[1]) from exc
            raise InferenceUnavailable(f"Triton at {self.url}: {message}") from exc
        except TRANSPORT_ERRORS as exc:  # the HTTP client's: refused/reset connections, timeouts, cut responses
            self._local.pid = None  # a new connection on the next call
            raise InferenceUnavailable(f"Triton at {self.url} unreachable: {exc!r}") from exc

    def check_ready(self) -> None:
        if not self._call("is_server_ready"):
            raise InferenceUnavailable(f"Triton at {self.url} is not ready")
        for model in (HASHTAGGER, STORYTELLER):
            if not self._call("is_model_ready", model):
                raise InferenceUnavailable(f"Triton model {model} at {self.url} is not ready")

    def warm_up(self, max_batch: int) -> None:
        """Nothing to do here: the server warms its own models up."""

    def _concurrently(self, call: Callable[[Item], Result], items: list[Item]) -> list[Outcome[Result]]:
        """`call` on every item at once, from this process's sender threads (each with its own client)."""
        if self._senders is None or self._senders[0] != os.getpid():
            self._senders = (os.getpid(), ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="triton"))

        def outcome(item: Item) -> Outcome[Result]:
            try:
                return call(item)
            except Exception as exc:  # the item's own outcome: its task raises it
                return exc

        return list(self._senders[1].map(outcome, items))

    def suggest_hashtags_batch(self, images: list[bytes], k: int) -> list[Outcome[TagResult]]:
        return self._concurrently(lambda image: self.suggest_hashtags(image, k), images)

    def write_stories(self, requests: list[StoryRequest]) -> list[Outcome[StoryResult]]:
        return self._concurrently(self.write_story, requests)

    def _input(self, name: str, value, datatype: str, dtype):
        tensor = self.module.InferInput(name, [1, 1], datatype)
        tensor.set_data_from_numpy(np.array([[value]], dtype=dtype))  # (1, 1): a batch of one
        return tensor

    def suggest_hashtags(self, image: bytes, k: int) -> TagResult:
        inputs = [self._input("IMAGE", image, "BYTES", np.object_), self._input("K", k, "INT32", np.int32)]
        result = self._call("infer", HASHTAGGER, inputs)
        texts = result.as_numpy("HASHTAGS")[0]  # (n,) bytes
        scores = result.as_numpy("SCORES")[0]  # (n,)
        attention = result.as_numpy("ATTENTION")[0]  # (n, rows, cols)
        name, version = _model_version(result)
        hashtags = [
            SuggestedHashtag(text=text.decode(), score=float(score), attention=tuple(float(a) for a in grid.ravel()),
                             attention_shape=(int(grid.shape[0]), int(grid.shape[1])))
            for text, score, grid in zip(texts, scores, attention)
            if text  # rows of a multi-image request are padded with empty strings; ours has one row
        ]
        return TagResult(hashtags=hashtags, model_name=name, model_version=version)

    def write_story(self, request: StoryRequest) -> StoryResult:
        inputs = [
            self._input("HASHTAGS", hashtags_field(request.hashtags), "BYTES", np.object_),
            self._input("LENGTH", request.length, "INT32", np.int32),
            self._input("TEMPERATURE", request.temperature, "FP64", np.float64),
            self._input("TOP_K", request.top_k, "INT32", np.int32),
            self._input("RANDOM_SEED", request.random_seed, "INT64", np.int64),
        ]
        result = self._call("infer", STORYTELLER, inputs)
        name, version = _model_version(result)
        return StoryResult(text=result.as_numpy("STORY")[0, 0].decode(), model_name=name, model_version=version)


def _model_version(result) -> tuple[str, str]:
    name, _, version = result.as_numpy("MODEL_VERSION")[0, 0].decode().rpartition(":")
    return name, version
