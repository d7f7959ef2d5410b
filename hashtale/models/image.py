"""Decoding and preprocessing of posted images: the one code path used by the webhook's validation,
the in-process backend and the Triton model (so all three see the same pixels)."""
from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ImageFormat:
    suffix: str  # of the stored file, and of an exported training image
    mimetype: str  # the Content-Type it is served with


# The accepted formats, by Pillow's name (DecodedImage.format, stored as posts.image_format).
FORMATS = {
    "JPEG": ImageFormat(".jpg", "image/jpeg"),
    "PNG": ImageFormat(".png", "image/png"),
    "WEBP": ImageFormat(".webp", "image/webp"),
}

INPUT_SIZE = 224  # px, the default encoder input side (Lite0); a Tagger knows its own (`Tagger.input_size`)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The defaults of MAX_IMAGE_PIXELS and MAX_IMAGE_SIDE (hashtale.settings.Settings), and the Triton model's limits.
DEFAULT_MAX_PIXELS = 24_000_000  # width*height (a 6000x4000 camera); a 20000x20000 PNG bomb is 400 MP
DEFAULT_MAX_SIDE = 12_000  # px
# Long side / short side. to_tensor scales the short side to INPUT_SIZE, so the long side becomes
# INPUT_SIZE * ratio px: a 12000x1 PNG (115 bytes) would be resized to 2688000x224. Panoramas stay well inside.
MAX_ASPECT_RATIO = 20
EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that makes the pixels upright (2..8; 1 or anything else: as stored).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Pillow's EXIF (TIFF) parser raises on malformed metadata besides OSError.
EXIF_ERRORS = (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error)


class InvalidImage(ValueError):
    """The bytes are not an acceptable image; the message says why, for the sender."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied
    format: str  # "JPEG", "PNG" or "WEBP"


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE) -> DecodedImage:
    """Fully decode `data`, refusing other formats, decompression bombs and truncated files.

    The size checks (pixels, side, aspect ratio) happen on the header, before any pixel is decoded, so a bomb
    costs nothing, and neither does an image whose resize for the model would be huge.
    """
    if not data:
        raise InvalidImage("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=None)
            fmt = img.format
            if fmt not in FORMATS:
                raise InvalidImage(f"unsupported image format {fmt}; send JPEG, PNG or WebP")
            width, height = img.size
            if width * height > max_pixels or max(width, height) > max_side:
                raise InvalidImage(
                    f"image too large: {width}x{height} px (limit {max_pixels} pixels, {max_side} px a side)"
                )
            if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
                raise InvalidImage(f"image too far from square: {width}x{height} px (at most {MAX_ASPECT_RATIO}:1)")
            img.load()  # full decode: raises on truncated data (LOAD_TRUNCATED_IMAGES stays False)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"image too large: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise InvalidImage("not an image (or an unrecognised format); send JPEG, PNG or WebP") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"corrupt or truncated image: {exc}") from exc
    img = _upright(img)
    return DecodedImage(image=img if img.mode == "RGB" else img.convert("RGB"), format=fmt)  # no copy if RGB


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation. Only the orientation tag is read: ImageOps.exif_transpose also rewrites the
    metadata, which raises on many malformed tags unrelated to orientation."""
    try:
        orientation = img.getexif().get(EXIF_ORIENTATION)
    except EXIF_ERRORS as exc:
        raise InvalidImage(f"corrupt EXIF metadata: {exc}") from exc
    method = UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return img if method is None else img.transpose(method)


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
