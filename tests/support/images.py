"""Photos of every kind for tests: small noise images in each format, EXIF-rotated ones, broken EXIF, PNG bombs."""
from __future__ import annotations

import io
import struct
import uuid
import zlib

import numpy as np
from PIL import Image

from hashtale.models.image import EXIF_ORIENTATION

BOMB_SIDE = 20_000  # px: a 400-megapixel PNG that compresses to a few kilobytes
NOISE_SIZE = (64, 48)  # px, small photos that differ from test to test
ROTATED_90 = 6  # EXIF orientation: the camera was turned; viewers rotate the pixels 90° clockwise


def jpeg(array: np.ndarray, **save_args) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", **save_args)
    return buf.getvalue()


def encoded(fmt: str, seed: int | None = None, size: tuple[int, int] = NOISE_SIZE) -> bytes:
    """A small noise photo in `fmt`, different for every seed (so tests never share an image hash)."""
    rng = np.random.default_rng(seed if seed is not None else uuid.uuid4().int % 2**32)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def rotated_jpeg(width: int = 40, height: int = 20) -> bytes:
    """A width x height JPEG whose EXIF says "rotate 90°": upright it is height x width."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


EXIF_TIFF_MAGIC_AT = 9  # the "*" of b"Exif\0\0MM\0*" (Exif.tobytes()): without it the block is unreadable
EXIF_FIRST_TAG_TYPE_AT = 17  # the type of the first tag (Make, ASCII): 0 is no type, so the tag cannot be written back


def photo_with_exif(fmt: str, broken_byte: int | None = None) -> bytes:
    """A 30x20 photo in `fmt` whose EXIF says "rotate 90°" and names a camera; `broken_byte` set to 0 corrupts it."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90
    exif[0x010F] = "Canon"  # Make
    block = bytearray(exif.tobytes())
    if broken_byte is not None:
        block[broken_byte] = 0
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt, exif=bytes(block))
    return buf.getvalue()


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid side x side 1-bit PNG of zeros: a few kB on the wire, `side`² pixels once decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
