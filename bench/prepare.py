"""What preparing one posted image for the model costs (hashtale.models.image.preprocess: decode, upright, resize,
crop), for the extreme shapes and sizes the webhook accepts or refuses.

    .venv/bin/python -m bench.prepare

Each image is prepared in a fresh process (one torch thread) so its peak resident memory is its own; prints
CPU seconds, wall seconds and the peak RSS increase over the process's start. The target: every accepted image
costs at most 0.5 s of CPU and 200 MB; what is refused costs next to nothing.
"""
from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from hashtale.models.image import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, MAX_ASPECT_RATIO

MEASURE = """
import resource, sys, time
import torch
torch.set_num_threads(1)
from hashtale.models.image import InvalidImage, preprocess
data = open(sys.argv[1], "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu = time.perf_counter(), time.process_time()
try:
    preprocess(data)
    outcome = "prepared"
except InvalidImage as exc:
    outcome = f"refused: {exc}"
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(f"{cpu:.3f}\\t{wall:.3f}\\t{peak:.0f}\\t{outcome}")
"""


def _noise_jpeg(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _blank_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def cases() -> dict[str, bytes]:
    side = DEFAULT_MAX_SIDE
    largest_4_3 = int((DEFAULT_MAX_PIXELS * 3 / 4) ** 0.5)  # the largest 4:3 photo under the pixel limit
    return {
        f"{side}x1 blank PNG": _blank_png(side, 1),
        f"{side}x{side // MAX_ASPECT_RATIO} blank PNG (widest accepted)": _blank_png(side, side // MAX_ASPECT_RATIO),
        f"{largest_4_3 * 4 // 3}x{largest_4_3} noise JPEG (most pixels)": _noise_jpeg(largest_4_3 * 4 // 3, largest_4_3),
        f"{side}x{DEFAULT_MAX_PIXELS // side} noise JPEG (longest side, most pixels)":
            _noise_jpeg(side, DEFAULT_MAX_PIXELS // side),
    }


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    print(f"{'image':<58} {'bytes':>10} {'cpu s':>7} {'wall s':>7} {'peak MB':>8}  outcome")
    with tempfile.TemporaryDirectory() as folder:
        for name, data in cases().items():
            path = Path(folder) / "image"
            path.write_bytes(data)
            out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], cwd=root, capture_output=True, text=True,
                                 env={"OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}, check=True).stdout
            cpu, wall, peak, outcome = out.strip().split("\t")
            print(f"{name:<58} {len(data):>10} {cpu:>7} {wall:>7} {peak:>8}  {outcome}")


if __name__ == "__main__":
    main()
