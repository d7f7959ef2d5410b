"""Triton serving throughput and latency, dynamic batching on vs off, against in-process batched inference.

    .venv/bin/python -m bench.triton [--protocol grpc|http] [--photos N] [--story-length CHARS]

Two tritonservers run side by side: the shipped triton_repo/ (dynamic batching on) and the same repository
with the `dynamic_batching` block removed (off). Each model gets requests from 1, 8 and 32 concurrent clients
(threads, each with its own connection), on and off measured alternately at each level. Printed per model: throughput (requests/s),
p50/p99 latency (ms), the on/off ratio at concurrency 8 and Triton's best throughput as a fraction of the
in-process batched throughput (one batch of 32 through the same code, decoding included, in this process with
the server's thread count).
"""
from __future__ import annotations

import argparse
import contextlib
import re
import tempfile
import threading
import time
from pathlib import Path

from bench import machine
from hashtale.inference import StoryRequest
from hashtale.inference.repository import REPOSITORY, config_parameter, weights_path
from hashtale.inference.triton import TritonBackend
from hashtale.inference.tritonserver import TritonServer
from tests.support.data import PHOTOS_DIR
from tests.support.triton import executions_by_batch_size, variant_repository

CONCURRENCY = (1, 8, 32)
MIN_REQUESTS = 16  # per measurement
IN_PROCESS_BATCH = 32  # the repository's max_batch_size
IN_PROCESS_REPEATS = 2  # the best of these is reported
K = 5
STORY_TAG_SETS = (("beach", "sea"), ("pizza", "food"), ("dalmatian",), ("sunset", "sky"), ("kids", "people"),
                  ("cup",), ("airplane", "sky"), ("city", "street"))
DYNAMIC_BATCHING = re.compile(r"\ndynamic_batching \{.*?\n\}\n", re.DOTALL)
MS = 1000.0


def batching_off(model: str, config: str) -> str:
    stripped = DYNAMIC_BATCHING.sub("\n", config)
    assert stripped != config, f"{model}: no dynamic_batching block to remove"
    return stripped


def unchanged(model: str, config: str) -> str:
    return config


def measure(call, connect, payloads: list, concurrency: int) -> tuple[float, list[float]]:
    """Send every payload, `concurrency` at a time; (requests per second, latencies in seconds).

    Each client thread first opens its connection (`connect`), and the clock starts when all have: connection
    set-up is not what is measured, and it would spread the first wave of requests so that the dynamic batcher
    splits it (a split of a closed loop of clients persists: while one part runs, the other queues)."""
    latencies: list[float] = []
    lock = threading.Lock()
    next_index = iter(range(len(payloads)))
    connected = threading.Barrier(concurrency + 1)

    def client() -> None:
        connect()
        connected.wait()
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            began = time.perf_counter()
            call(payloads[i])
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    connected.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return len(payloads) / (time.perf_counter() - began), latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench(servers: dict[str, TritonServer], protocol: str, workloads: dict, references: dict, rounds: int) -> dict:
    """{(variant, model, concurrency): (throughput, p50, p99)} and {(model, reference): req/s}.

    The variants' servers run side by side and are measured alternately at each level, and each model's
    in-process reference right after its Triton runs, so a change in the shared machine's load hits all alike."""
    results = {}
    backends = {label: TritonBackend(server.url(protocol), protocol, timeout=600.0) for label, server in servers.items()}
    for model, (call, payloads) in workloads.items():
        for backend in backends.values():
            call(backend, payloads[0])  # warm-up: first-call allocations
        for concurrency in CONCURRENCY:
            n = max(MIN_REQUESTS, rounds * concurrency)
            batch = [payloads[i % len(payloads)] for i in range(n)]
            for label, backend in backends.items():
                throughput, latencies = measure(lambda p: call(backend, p), backend.check_ready, batch, concurrency)
                p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
                results[label, model, concurrency] = (throughput, p50, p99)
                print(f"{model:<11} batching {label:<3} concurrency {concurrency:>2}: {n:>3} requests, "
                      f"{throughput:7.2f} req/s, p50 {p50 * MS:7.0f} ms, p99 {p99 * MS:7.0f} ms", flush=True)
        for name, run in references[model].items():
            run()  # warm-up
            rate = max(IN_PROCESS_BATCH / timed(run) for _ in range(IN_PROCESS_REPEATS))
            results[model, name] = rate
            print(f"{model:<11} in-process, one batch of {IN_PROCESS_BATCH}, {name}: {rate:.2f} req/s", flush=True)
    for backend in backends.values():
        backend.close()
    for model in workloads:
        print(f"{model:<11} batching on, executions by batch size: {executions_by_batch_size(servers['on'], model)}")
    return results


def timed(run) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def in_process_references(images: list[bytes], stories: list[StoryRequest], threads: int) -> dict:
    """model -> {name: run one batch of IN_PROCESS_BATCH in this process}, decoding included. The hashtagger
    twice, with the served encoder precision: `Tagger.suggest` on the whole batch, and as the Triton model runs
    it (the encoder in chunks of `encode_chunk` images, one batched beam search)."""
    import torch

    from hashtale.models.image import preprocess
    from hashtale.models.hashtagger_runtime import Tagger
    from hashtale.models.storyteller_runtime import StorySpec, StoryWriter

    torch.set_num_threads(threads)
    tagger = Tagger.load(weights_path(REPOSITORY, "hashtagger"),
                         precision=config_parameter(REPOSITORY, "hashtagger", "precision"))
    chunk = int(config_parameter(REPOSITORY, "hashtagger", "encode_chunk")) or IN_PROCESS_BATCH
    writer = StoryWriter.load(weights_path(REPOSITORY, "storyteller"))
    batch = [images[i % len(images)] for i in range(IN_PROCESS_BATCH)]
    specs = [StorySpec(s.hashtags, s.length, s.temperature, s.top_k, s.random_seed)
             for s in (stories[i % len(stories)] for i in range(IN_PROCESS_BATCH))]

    @torch.inference_mode()
    def suggest() -> None:
        tagger.suggest(torch.stack([preprocess(b, size=tagger.input_size) for b in batch]), K)  # (32, 3, S, S)

    @torch.inference_mode()
    def suggest_encoder_in_chunks() -> None:
        x = torch.stack([preprocess(b, size=tagger.input_size) for b in batch])  # (32, 3, S, S)
        tagger.decode(tagger.encode(x, chunk), K)  # (32, L, D) -> tags

    return {"hashtagger": {"Tagger.suggest": suggest, f"encoder in chunks of {chunk}": suggest_encoder_in_chunks},
            "storyteller": {"StoryWriter.write": lambda: writer.write(specs)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--photos", type=int, default=32, help="distinct real photos to send")
    parser.add_argument("--story-length", type=int, default=100, help="characters per story")
    parser.add_argument("--rounds", type=int, default=6, help="requests per client at each concurrency")
    args = parser.parse_args()

    paths = [PHOTOS_DIR / line for line in (PHOTOS_DIR / "data_list.txt").read_text().split()]
    images = [p.read_bytes() for p in paths[:: len(paths) // args.photos][: args.photos]]
    stories = [StoryRequest(hashtags=tags, length=args.story_length, temperature=0.8, top_k=20, random_seed=i)
               for i, tags in enumerate(STORY_TAG_SETS)]
    workloads = {
        "hashtagger": (lambda backend, image: backend.suggest_hashtags(image, K), images),
        "storyteller": (lambda backend, request: backend.write_story(request), stories),
    }
    threads = int(config_parameter(REPOSITORY, "hashtagger", "torch_threads"))
    print(machine.describe())
    print(f"{len(images)} photos, stories of {args.story_length} chars, protocol {args.protocol}, "
          f"torch threads per instance {threads}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-triton-") as tmp, contextlib.ExitStack() as stack:
        servers = {}
        for label, edit in (("on", unchanged), ("off", batching_off)):
            servers[label] = stack.enter_context(TritonServer(variant_repository(Path(tmp) / label, edit)))
            print(f"batching {label}: tritonserver ready in {servers[label].startup_seconds:.1f} s", flush=True)
        references = in_process_references(images, stories, threads)
        results = bench(servers, args.protocol, workloads, references, args.rounds)

    print()
    for model in workloads:
        best_reference = max(results[model, name] for name in references[model])
        best = max(results["on", model, c][0] for c in CONCURRENCY)
        print(f"{model}: batching on/off at concurrency 8: "
              f"{results['on', model, 8][0] / results['off', model, 8][0]:.2f}x; "
              f"Triton best (batching on) / best in-process batched: {best / best_reference:.0%}")


if __name__ == "__main__":
    main()
