"""Both models served by a real tritonserver (from the nvidia-pytriton wheel) on triton_repo/, called through
the `triton` backend over HTTP and gRPC: results equal the in-process models' on the same weights file, a
malformed image fails only its own request inside a batch, faults map to the exceptions the tasks expect.

One server for the whole module (start-up imports torch in each model's stub process: tens of seconds).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from hashtale.inference import InferenceUnavailable, StoryRequest
from hashtale.inference.repository import REPOSITORY, config_parameter, weights_path
from hashtale.inference.triton import HASHTAGGER, TritonBackend
from hashtale.inference.tritonserver import TritonServer, free_port
from hashtale.models.checkpoint import file_version
from hashtale.models.image import InvalidImage, preprocess
from tests.support.triton import executions_by_batch_size, variant_repository

pytestmark = pytest.mark.slow  # a tritonserver of its own (each model instance imports torch)

K = 5
PHOTOS = 3  # real photos from the shared set, plus skimage's coffee
SCORE_TOLERANCE = 1e-4
STORY_LENGTH = 40  # characters: the storyteller takes one LSTM step per character
STORY_SEEDS = (1, 2, 3)
BATCH = 8  # concurrent requests: the first preferred batch size of the config
TEST_QUEUE_DELAY_US = 1_000_000  # 1 s for the batcher to collect concurrent test requests
TIMEOUT = 120.0  # seconds per call: the CPU is shared


def patient_batcher(model: str, config: str) -> str:
    """The shipped config with a long queue delay, so the test's concurrent requests land in one execute
    whatever the machine's speed (the batcher still fires as soon as a preferred batch size is queued)."""
    return re.sub(r"max_queue_delay_microseconds: \d+", f"max_queue_delay_microseconds: {TEST_QUEUE_DELAY_US}", config)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repository = variant_repository(tmp_path_factory.mktemp("triton") / "repo", patient_batcher)
    with TritonServer(repository) as server:
        print(f"tritonserver ready in {server.startup_seconds:.1f} s")
        yield server


@pytest.fixture(scope="module", params=["http", "grpc"])
def backend(request, server) -> TritonBackend:
    backend = TritonBackend(server.url(request.param), request.param, TIMEOUT)
    yield backend
    backend.close()  # an open HTTP connection would hold the server's shutdown for its exit timeout


@pytest.fixture(scope="module")
def images(photo_paths, coffee_jpeg) -> list[bytes]:
    return [p.read_bytes() for p in photo_paths[:PHOTOS]] + [coffee_jpeg]


@pytest.fixture(scope="module")
def tagger(server):
    from hashtale.models.hashtagger_runtime import Tagger

    return Tagger.load(weights_path(REPOSITORY, "hashtagger"),
                       precision=config_parameter(REPOSITORY, "hashtagger", "precision"))


@pytest.fixture(scope="module")
def writer(server):
    from hashtale.models.storyteller_runtime import StoryWriter

    return StoryWriter.load(weights_path(REPOSITORY, "storyteller"))


def in_process(tagger, image: bytes):
    return tagger.suggest(preprocess(image, size=tagger.input_size).unsqueeze(0), K)[0]  # (1, 3, S, S) -> one image's tags


@pytest.fixture(scope="module")
def expected(tagger, images):
    """The in-process tags of each image, alone."""
    with one_thread():
        return [in_process(tagger, image) for image in images]


@contextlib.contextmanager
def one_thread():
    """PyTorch on one thread, as the server's instances: much faster than two spinning threads on a busy host."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def assert_same_tags(result, expected):
    assert [h.text for h in result.hashtags] == [p.text for p in expected]
    for got, want in zip(result.hashtags, expected):
        assert got.score == pytest.approx(want.score, abs=SCORE_TOLERANCE)
        assert got.attention_shape == want.attention.shape
        np.testing.assert_allclose(np.array(got.attention).reshape(got.attention_shape), want.attention,
                                   atol=SCORE_TOLERANCE)


def test_ready(backend):
    backend.check_ready()


def test_hashtags_equal_in_process_results(backend, tagger, images, expected):
    with ThreadPoolExecutor(len(images)) as pool:  # concurrent: batched on the server
        results = list(pool.map(lambda image: backend.suggest_hashtags(image, K), images))
    for result, want in zip(results, expected):
        assert 1 <= len(result.hashtags) <= K
        assert_same_tags(result, want)
        assert (result.model_name, result.model_version) == (tagger.name, tagger.version)
    assert tagger.version == file_version(weights_path(REPOSITORY, "hashtagger"))


def test_stories_equal_in_process_results(backend, writer):
    from hashtale.models.storyteller_runtime import StorySpec

    requests = [StoryRequest(hashtags=("beach", "sea"), length=STORY_LENGTH, temperature=0.8, top_k=20, random_seed=seed)
                for seed in STORY_SEEDS]
    with ThreadPoolExecutor(len(requests)) as pool:  # batched on the server; each story must not notice
        results = list(pool.map(backend.write_story, requests))
    for request, result in zip(requests, results):
        with one_thread():
            (alone,) = writer.write([StorySpec(request.hashtags, request.length, request.temperature, request.top_k,
                                               request.random_seed)])
        assert result.text == alone
        assert (result.model_name, result.model_version) == (writer.name, writer.version)
    assert len({r.text for r in results}) == len(results)  # different seeds, different stories


def test_malformed_image_fails_alone_inside_a_batch(server, images, expected):
    backend = TritonBackend(server.http_url, "http", TIMEOUT)
    truncated = images[0][: len(images[0]) // 2]
    batch = [images[i % len(images)] for i in range(BATCH - 1)] + [truncated]
    wanted = [expected[i % len(images)] for i in range(BATCH - 1)]
    before = executions_by_batch_size(server, HASHTAGGER)
    with ThreadPoolExecutor(BATCH) as pool:
        futures = [pool.submit(backend.suggest_hashtags, image, K) for image in batch]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except InvalidImage as exc:
                outcomes.append(exc)
    backend.close()
    after = executions_by_batch_size(server, HASHTAGGER)
    executions = {size: after[size] - before.get(size, 0) for size in after if after[size] != before.get(size, 0)}
    assert executions == {BATCH: 1}  # all BATCH requests, the bad one included, in one execute
    assert isinstance(outcomes[-1], InvalidImage)
    assert "truncated" in str(outcomes[-1]) or "corrupt" in str(outcomes[-1])
    for result, want in zip(outcomes[:-1], wanted):
        assert_same_tags(result, want)


def test_bad_arguments_are_client_errors(backend, images):
    with pytest.raises(ValueError, match="K must"):
        backend.suggest_hashtags(images[0], 0)
    with pytest.raises(ValueError, match="LENGTH must"):
        backend.write_story(StoryRequest(hashtags=("x",), length=10**6, temperature=0.8, top_k=20, random_seed=0))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_no_server_is_unavailable(protocol):
    backend = TritonBackend(f"127.0.0.1:{free_port()}", protocol, timeout=5.0)
    with pytest.raises(InferenceUnavailable):
        backend.check_ready()
    with pytest.raises(InferenceUnavailable):
        backend.write_story(StoryRequest(hashtags=("x",), length=10, temperature=0.8, top_k=20, random_seed=0))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_timeout_is_unavailable(server, images, protocol):
    backend = TritonBackend(server.url(protocol), protocol, timeout=0.01)  # far shorter than one forward pass
    with pytest.raises(InferenceUnavailable):
        backend.suggest_hashtags(images[0], K)
    backend.close()


def test_export_copies_the_checkpoint_and_notices_a_newer_one(tmp_path):
    from hashtale.settings import Settings
    from hashtale.inference.repository import export_weights, is_stale

    repository = tmp_path / "repo"
    (repository / "storyteller").mkdir(parents=True)
    shutil.copy(REPOSITORY / "storyteller" / "config.pbtxt", repository / "storyteller" / "config.pbtxt")
    source = tmp_path / "trained.pt"
    shutil.copy(weights_path(REPOSITORY, "storyteller"), source)
    settings = Settings(storyteller_checkpoint=str(source))

    assert is_stale(repository, "storyteller", settings)  # nothing exported yet
    exported = export_weights(repository, "storyteller", settings)
    assert exported == repository / "storyteller" / "1" / "storyteller.pt"
    assert file_version(exported) == file_version(source)  # byte for byte: the same model version both ways
    assert not is_stale(repository, "storyteller", settings)
    os.utime(source, (exported.stat().st_mtime + 1,) * 2)  # a newer checkpoint (e.g. after training)
    assert is_stale(repository, "storyteller", settings)


def test_the_server_is_the_release_compose_runs(server):
    import json
    import urllib.request

    from hashtale.inference.tritonserver import WHEEL_TRITON_VERSION

    with urllib.request.urlopen(f"http://{server.http_url}/v2", timeout=10) as response:
        assert json.load(response)["version"] == WHEEL_TRITON_VERSION


def test_a_request_may_carry_a_batch_of_images(server, images, expected):
    """[B, 1] inputs give B rows (what perf_analyzer's --batch-size sends); each row equals its image alone."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url, connection_timeout=TIMEOUT, network_timeout=TIMEOUT)
    try:
        batch = images[:3]
        image_input = httpclient.InferInput("IMAGE", [len(batch), 1], "BYTES")
        image_input.set_data_from_numpy(np.array([[image] for image in batch], dtype=np.object_))
        k_input = httpclient.InferInput("K", [len(batch), 1], "INT32")
        k_input.set_data_from_numpy(np.full((len(batch), 1), K, dtype=np.int32))
        result = client.infer("hashtagger", [image_input, k_input])
    finally:
        client.close()
    texts = result.as_numpy("HASHTAGS")  # (B, n), padded with empty strings
    assert texts.shape[0] == len(batch) and result.as_numpy("MODEL_VERSION").shape == (len(batch), 1)
    for row, want in zip(texts, expected[:3]):
        assert [t.decode() for t in row if t] == [p.text for p in want]


def test_failed_requests_are_counted_where_triton_counts_them_as_successes(server, backend):
    import urllib.request

    from hashtale.models.serving import FAILURES_METRIC

    def failures() -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.ports['metrics']}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines
                   if line.startswith(FAILURES_METRIC + "{") and 'model="hashtagger"' in line
                   and 'reason="invalid_image"' in line)

    before = failures()
    with pytest.raises(InvalidImage):
        backend.suggest_hashtags(b"not an image", K)
    assert failures() == before + 1


def test_a_story_request_may_carry_a_batch_of_specs(server, writer):
    import tritonclient.http as httpclient

    from hashtale.models.serving import hashtags_field
    from hashtale.models.storyteller_runtime import StorySpec

    specs = [StorySpec(("beach", "sea"), STORY_LENGTH, 0.8, 20, seed) for seed in STORY_SEEDS]
    columns = {"HASHTAGS": ("BYTES", np.object_, [hashtags_field(s.hashtags) for s in specs]),
               "LENGTH": ("INT32", np.int32, [s.length for s in specs]),
               "TEMPERATURE": ("FP64", np.float64, [s.temperature for s in specs]),
               "TOP_K": ("INT32", np.int32, [s.top_k for s in specs]),
               "RANDOM_SEED": ("INT64", np.int64, [s.random_seed for s in specs])}
    inputs = []
    for name, (datatype, dtype, values) in columns.items():
        tensor = httpclient.InferInput(name, [len(specs), 1], datatype)
        tensor.set_data_from_numpy(np.array([[v] for v in values], dtype=dtype))
        inputs.append(tensor)
    client = httpclient.InferenceServerClient(server.http_url, connection_timeout=TIMEOUT, network_timeout=TIMEOUT)
    try:
        result = client.infer("storyteller", inputs)
    finally:
        client.close()
    with one_thread():
        alone = [writer.write([spec])[0] for spec in specs]
    assert [row[0].decode() for row in result.as_numpy("STORY")] == alone  # (B, 1): each as if alone
