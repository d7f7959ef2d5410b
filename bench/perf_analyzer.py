"""Triton's own perf_analyzer against both models, batched and concurrent, on a tritonserver of ours.

    .venv/bin/python -m bench.perf_analyzer                     # batch size 8, concurrency 1 and 4, gRPC
    .venv/bin/python -m bench.perf_analyzer --batch-size 1 --concurrency 1:8:2

perf_analyzer runs through scripts/perf-analyzer.sh (its wheel needs a newer glibc than these machines have; the
script explains). Inputs are real: a photo from the shared set for the hashtagger, a hashtag set for the
storyteller (perf_analyzer's random bytes would only measure the refusal of an invalid image).
"""
from __future__ import annotations

import argparse
import base64
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import machine
from hashtale.inference.tritonserver import TritonServer
from hashtale.settings import PROJECT_ROOT
from tests.support.data import PHOTOS_DIR

PERF_ANALYZER = PROJECT_ROOT / "scripts" / "perf-analyzer.sh"
K = 5
PHOTOS_IN_DATA = 64  # distinct photos perf_analyzer cycles through
STORY = {"LENGTH": [500], "TEMPERATURE": [0.6], "TOP_K": [20], "RANDOM_SEED": [7]}
STORY_HASHTAGS = "leopard wildcat"
MEASUREMENT_MS = 10_000  # per concurrency level: stories of 500 characters take seconds in batches


def serialized_bytes_element(data: bytes) -> str:
    """A TYPE_STRING element as perf_analyzer's "b64" wants it: the tensor's wire form (a little-endian uint32
    length, then the bytes), base64. Raw bytes are read as a malformed element; a JSON string cannot hold them."""
    return base64.b64encode(struct.pack("<I", len(data)) + data).decode()


def input_files(folder: Path) -> dict[str, Path]:
    photos = [PHOTOS_DIR / name for name in (PHOTOS_DIR / "data_list.txt").read_text().split()[:PHOTOS_IN_DATA]]
    files = {
        "hashtagger": {"data": [{"IMAGE": {"b64": serialized_bytes_element(photo.read_bytes())}, "K": [K]}
                                for photo in photos]},
        "storyteller": {"data": [{"HASHTAGS": [STORY_HASHTAGS], **STORY}]},
    }
    paths = {}
    for model, data in files.items():
        paths[model] = folder / f"{model}.json"
        paths[model].write_text(json.dumps(data))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--concurrency", default="1:4:3", help="perf_analyzer's --concurrency-range start:end:step")
    parser.add_argument("--models", default="hashtagger,storyteller")
    args = parser.parse_args()
    print(machine.describe())
    work = Path(tempfile.mkdtemp(prefix="bench-perf-analyzer-"))
    inputs = input_files(work)
    with TritonServer(log_path=work / "triton.log") as server:
        for model in args.models.split(","):
            command = [str(PERF_ANALYZER), "-m", model, "-u", server.grpc_url, "-i", "grpc",
                       "-b", str(args.batch_size), "--concurrency-range", args.concurrency,
                       "--input-data", str(inputs[model]), "--measurement-interval", str(MEASUREMENT_MS)]
            print(f"\n$ scripts/perf-analyzer.sh {' '.join(command[1:])}", flush=True)
            done = subprocess.run(command, capture_output=True, text=True)
            print(done.stdout[done.stdout.find("*** Measurement Settings ***"):] or done.stdout, done.stderr, flush=True)
            if done.returncode:
                return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
