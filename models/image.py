"""Decoding and preprocessing of posted images: the one code path used by the webhook's validation,
the in-process backend and the Triton model (so all three see the same pixels)."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
INPUT_SIZE = 224  # px, the default encoder input side (Lite0); a Tagger knows its own (`Tagger.input_size`)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_SIDE = 12_000


class InvalidImage(ValueError):
    """The bytes are not an acceptable image; the message says why, for the sender."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied
    format: str  # "JPEG", "PNG" or "WEBP"


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE) -> DecodedImage:
    """Fully decode `data`, refusing other formats, decompression bombs and truncated files.

    The size check happens on the header, before any pixel is decoded, so a bomb costs nothing.
    """
    if not data:
        raise InvalidImage("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=None)
            fmt = img.format
            if fmt not in ALLOWED_FORMATS:
                raise InvalidImage(f"unsupported image format {fmt}; send JPEG, PNG or WebP")
            width, height = img.size
            if width * height > max_pixels or max(width, height) > max_side:
                raise InvalidImage(
                    f"image too large: {width}x{height} px (limit {max_pixels} pixels, {max_side} px a side)"
                )
            img.load()  # full decode: raises on truncated data (LOAD_TRUNCATED_IMAGES stays False)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"image too large: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise InvalidImage("not an image (or an unrecognised format); send JPEG, PNG or WebP") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"corrupt or truncated image: {exc}") from exc
    img = ImageOps.exif_transpose(img)
    return DecodedImage(image=img.convert("RGB"), format=fmt)


def to_tensor(image: Image.Image, size: int = INPUT_SIZE) -> torch.Tensor:
    """RGB PIL image -> (3, size, size) float tensor, ImageNet-normalised.

    Resize the short side to `size` then centre-crop, as in the encoder's training.
    """
    import torch  # here, not at the top: the webhook validates images with decode_image and never loads PyTorch
    w, h = image.size
    scale = size / min(w, h)
    resized = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    crop = resized.crop((left, top, left + size, top + size))
    arr = np.asarray(crop, dtype=np.float32) / 255.0  # (H, W, 3)
    arr = (arr - np.array(IMAGENET_MEAN, dtype=np.float32)) / np.array(IMAGENET_STD, dtype=np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())  # (3, H, W)


def preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE,
               size: int = INPUT_SIZE) -> torch.Tensor:
    """Encoded image bytes -> (3, size, size) encoder input. Raises InvalidImage."""
    return to_tensor(decode_image(data, max_pixels, max_side).image, size)
