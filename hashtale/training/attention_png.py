"""Draw where the hashtagger looked: the photo, then one panel per emitted hashtag with its attention
map (the encoder's grid, e.g. 7x7 or 9x9) upsampled over the image.

    hashtale attention PHOTO.jpg --out var/attention.png [--checkpoint PATH] [-k 5]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from hashtale.models.image import decode_image, to_tensor
from hashtale.models.hashtagger_runtime import TagPrediction, Tagger

HEAT_ALPHA = 0.55  # opacity of the heat map over the photo


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="a JPEG, PNG or WebP photo")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--checkpoint", default=None, help="hashtagger checkpoint (default: the shipped one)")
    p.add_argument("-k", type=int, default=5, help="at most this many hashtags")


def draw(image: Image.Image, predictions: list[TagPrediction], path: str | Path, title: str, size: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    crop = _centre_crop(image, size)
    fig, axes = plt.subplots(1, len(predictions) + 1, figsize=(3 * (len(predictions) + 1), 3.4))
    axes = np.atleast_1d(axes)
    axes[0].imshow(crop)
    axes[0].set_title(title, fontsize=8)
    for ax, pred in zip(axes[1:], predictions):
        ax.imshow(crop)
        if pred.attention is not None:
            heat = Image.fromarray(pred.attention.astype(np.float32)).resize(crop.size, Image.BICUBIC)
            ax.imshow(np.asarray(heat), cmap="jet", alpha=HEAT_ALPHA)
        ax.set_title(f"#{pred.text}  p={pred.score:.2f}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> int:
    image = decode_image(Path(args.image).read_bytes()).image
    tagger = Tagger.load(args.checkpoint)
    predictions = tagger.suggest(to_tensor(image, tagger.input_size).unsqueeze(0), k=args.k)[0]
    draw(image, predictions, args.out, f"{tagger.name} {tagger.version}", tagger.input_size)
    print(f"{args.out}: " + ", ".join(f"#{p.text} {p.score:.2f}" for p in predictions))
    return 0


def _centre_crop(image: Image.Image, size: int) -> Image.Image:
    """The same square the encoder sees (hashtale.models.image.to_tensor), at `size` px."""
    w, h = image.size
    scale = size / min(w, h)
    resized = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))
