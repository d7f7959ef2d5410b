"""Encoder activations computed once and cached, so decoders (and the encoder's top stages) train fast on a CPU.

The cache holds what ENTERS the encoder's last `CACHE_TOP_STAGES` stages (`Encoder.trunk`): the annotation
vectors are `Encoder.top` of it, a small fraction of the encoder's work, so a frozen encoder and one whose top
stages are fine-tuned train from the same cache. Images are decoded with the service's own `decode_image`
(EXIF orientation applied) at the backbone's input size.

A store is a folder per backbone (`var/features/<backbone>-top<k>/`) of shards: `<name>.npy` holds float16
activations (N, C, h, w) and `<name>.txt` the N resolved image paths. Lookup is by image path, so any
HARRISON-format folder over the same images (a held-out split, an admin export) reuses the cache and
only new images are encoded. A store with `hflip` (`var/features/<backbone>-top<k>-hflip/`) holds the same
images mirrored left to right: a training-time augmentation paid for once, at extraction, not every epoch.
A store with `crop` n >= 1 (`var/features/<backbone>-top<k>-crop<n>[-bf16]/`) holds view n of each image: a random
crop of 35-100 % of its area (aspect 3:4..4:3), mirrored half the time, drawn from a generator seeded by the image's
path and n, so the same view comes back on every machine; `precision` "bf16" computes such views in bfloat16
autocast, faster on CPUs with native bfloat16 (the served views stay float32, so that validation figures compare
across runs).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from hashtale.models.encoder import BACKBONES, DEFAULT_BACKBONE, Encoder, EncoderConfig
from hashtale.models.image import decode_image, to_tensor
from hashtale.settings import PROJECT_ROOT
from hashtale.training.harrison import read_split

DEFAULT_STORE = PROJECT_ROOT / "var" / "features"
BATCH_SIZE = 32
SHARD_ROWS = 512  # images per shard file: what an interruption can cost
ORDER_SEED = 0
CACHE_TOP_STAGES = 2  # the Lite encoders' last MBConv block and 1x1 head convolution run from the cache
HFLIP_SUFFIX = "-hflip"  # of the store folder holding the mirrored views
CROP_AREA = (0.35, 1.0)  # of the photo's area kept by a random crop view
CROP_ASPECT = (3 / 4, 4 / 3)  # width / height of a random crop, drawn log-uniformly
STORE_PRECISIONS = ("fp32", "bf16")


class Images(Dataset):
    """Image files -> (3, size, size) encoder inputs, decoded as the service decodes uploads (then mirrored left
    to right if `hflip`; with `crop` n >= 1, view n of `random_crop`)."""

    def __init__(self, paths: list[Path], size: int, hflip: bool = False, crop: int = 0):
        self.paths, self.size, self.hflip, self.crop = paths, size, hflip, crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = decode_image(self.paths[i].read_bytes()).image
        if self.hflip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.crop:
            image = random_crop(image, random.Random(f"{self.paths[i]}|{self.crop}"))
        return to_tensor(image, self.size)  # (3, S, S)


def random_crop(image: Image.Image, rng: random.Random) -> Image.Image:
    """A crop of CROP_AREA of the image's area with a width/height ratio in CROP_ASPECT (kept inside the image),
    mirrored left to right half the time: the Inception-style training view, drawn from `rng`."""
    w, h = image.size
    area = w * h * rng.uniform(*CROP_AREA)
    aspect = math.exp(rng.uniform(*map(math.log, CROP_ASPECT)))
    cw, ch = min(w, max(1, round(math.sqrt(area * aspect)))), min(h, max(1, round(math.sqrt(area / aspect))))
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    image = image.crop((left, top, left + cw, top + ch))
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


class FeatureStore:
    def __init__(self, root: str | Path = DEFAULT_STORE, backbone: str = DEFAULT_BACKBONE,
                 top_stages: int = CACHE_TOP_STAGES, hflip: bool = False, crop: int = 0, precision: str = "fp32"):
        if precision not in STORE_PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {STORE_PRECISIONS}")
        view = (HFLIP_SUFFIX if hflip else "") + (f"-crop{crop}" if crop else "")
        view += "-bf16" if precision == "bf16" else ""
        self.dir = Path(root) / f"{backbone}-top{top_stages}{view}"
        self.backbone, self.top_stages, self.hflip = backbone, top_stages, hflip
        self.crop, self.precision = crop, precision
        self._rows: dict[str, tuple[Path, int]] = {}
        self._arrays: dict[Path, np.ndarray] = {}
        for txt in sorted(self.dir.glob("*.txt")):
            npy = txt.with_suffix(".npy")
            if npy.exists():
                for row, path in enumerate(txt.read_text().splitlines()):
                    self._rows[path] = (npy, row)

    def missing(self, paths: list[Path]) -> list[Path]:
        return [p for p in dict.fromkeys(paths) if str(p) not in self._rows]

    def extract(self, paths: list[Path], encoder: Encoder | None = None, workers: int = 1) -> int:
        """Encode the images not cached yet; returns how many were encoded."""
        todo = self.missing(paths)
        if not todo:
            return 0
        # a random order makes an interrupted cache a random subset rather than the first classes
        random.Random(ORDER_SEED).shuffle(todo)
        # a private fused copy: the caller's encoder keeps trainable top stages
        encoder = Encoder(encoder.config if encoder is not None else EncoderConfig(backbone=self.backbone))
        encoder = encoder.fuse_for_inference().eval()
        encoder = encoder.to(memory_format=torch.channels_last)  # faster depthwise convolutions on CPU
        self.dir.mkdir(parents=True, exist_ok=True)
        view = (", mirrored" if self.hflip else "") + (f", crop {self.crop}" if self.crop else "")
        bar = tqdm(total=len(todo), desc=f"encoding ({self.backbone}{view}, {self.precision})", unit="img")
        for start in range(0, len(todo), SHARD_ROWS):
            chunk = todo[start:start + SHARD_ROWS]
            loader = DataLoader(Images(chunk, encoder.input_size, self.hflip, self.crop), batch_size=BATCH_SIZE,
                                num_workers=workers)
            parts = []
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                for images in loader:
                    images = images.contiguous(memory_format=torch.channels_last)  # (B, 3, S, S)
                    parts.append(encoder.trunk(images, self.top_stages).contiguous().half().numpy())  # (B, C, h, w)
                    bar.update(len(images))
            name = hashlib.sha256("\n".join(map(str, chunk)).encode()).hexdigest()[:16]
            npy, txt = self.dir / f"{name}.npy", self.dir / f"{name}.txt"
            np.save(npy, np.concatenate(parts))
            txt.write_text("".join(f"{p}\n" for p in chunk))  # written last: a shard counts once complete
            for row, p in enumerate(chunk):
                self._rows[str(p)] = (npy, row)
        bar.close()
        return len(todo)

    def load(self, paths: list[Path]) -> torch.Tensor:
        """(N, C, h, w) float16 activations of `paths`, in order. Every path must be cached."""
        missing = self.missing(paths)
        if missing:
            raise KeyError(f"{len(missing)} images have no cached features (first: {missing[0]}); run extract first")
        first = self._array(self._rows[str(paths[0])][0])
        out = np.empty((len(paths), *first.shape[1:]), dtype=np.float16)
        for i, p in enumerate(paths):
            npy, row = self._rows[str(p)]
            out[i] = self._array(npy)[row]
        return torch.from_numpy(out)

    @torch.no_grad()
    def annotations(self, paths: list[Path], encoder: Encoder, batch: int = 256) -> torch.Tensor:
        """(N, L, D) float16 annotation vectors of `paths`: the cached activations through `encoder`'s top stages
        in inference mode (batch norms on their running statistics, as served)."""
        encoder.eval()
        acts = self.load(paths)
        return torch.cat([encoder.top(acts[i:i + batch].float(), self.top_stages).half()
                          for i in range(0, len(acts), batch)])

    def _array(self, npy: Path) -> np.ndarray:
        if npy not in self._arrays:
            self._arrays[npy] = np.load(npy, mmap_mode="r")
        return self._arrays[npy]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="HARRISON-format folder (data_list.txt + tag_list.txt)")
    parser.add_argument("--store", default=str(DEFAULT_STORE), help="feature cache root (default var/features)")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=sorted(BACKBONES))
    parser.add_argument("--weights", default=None, help="local weights file for a torchvision backbone")
    parser.add_argument("--workers", type=int, default=1, help="image-decoding worker processes")
    parser.add_argument("--hflip", action="store_true",
                        help="also cache each image mirrored left to right (for train-hashtagger --hflip)")
    parser.add_argument("--crops", type=int, default=0,
                        help="also cache this many random-crop views of each image (for train-hashtagger --crops)")
    parser.add_argument("--crop-precision", default="fp32", choices=STORE_PRECISIONS,
                        help="arithmetic of the random-crop views (bf16: fast on CPUs with native bfloat16)")


def run(args: argparse.Namespace) -> int:
    paths = [e.image for e in read_split(args.data)]
    encoder = Encoder(EncoderConfig(backbone=args.backbone, weights=args.weights))
    stores = [FeatureStore(args.store, args.backbone, hflip=hflip)
              for hflip in ((False, True) if args.hflip else (False,))]
    stores += [FeatureStore(args.store, args.backbone, crop=n, precision=args.crop_precision)
               for n in range(1, args.crops + 1)]
    for store in stores:
        done = store.extract(paths, encoder, workers=args.workers)
        print(f"{done} images encoded, {len(paths) - done} already cached, store {store.dir}")
    return 0
