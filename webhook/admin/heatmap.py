"""A hashtag's attention map drawn over the part of the photo the model saw.

The encoder saw the centre square of the photo (short side resized to 224 px, then centre-cropped, see
models.image.to_tensor), so the (rows, cols) grid covers that square, row-major, weights summing to 1.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

HEATMAP_SIDE = 224  # px, the model's input side: one grid cell is 32 px at 7x7
OVERLAY_ALPHA = 0.55  # share of the colour map in the blend
# A blue → cyan → yellow → red colour map (like matplotlib's "jet"), as anchor points on 0..1.
_ANCHORS = np.array([0.0, 0.35, 0.65, 1.0])
_COLOURS = np.array([[0, 0, 160], [0, 200, 255], [255, 230, 0], [220, 0, 0]], dtype=np.float32)


def centre_square(image: Image.Image, side: int = HEATMAP_SIDE) -> Image.Image:
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return image.crop((left, top, left + s, top + s)).resize((side, side), Image.BICUBIC)


def colourize(weights: np.ndarray) -> np.ndarray:
    """(H, W) values in 0..1 -> (H, W, 3) float32 RGB in 0..255."""
    return np.stack([np.interp(weights, _ANCHORS, _COLOURS[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def render_heatmap(image: Image.Image, attention: list[float], shape: tuple[int, int]) -> bytes:
    """PNG bytes of the centre square of `image` (RGB) with the attention grid blended over it."""
    rows, cols = shape
    grid = np.asarray(attention, dtype=np.float32).reshape(rows, cols)  # (rows, cols)
    peak = float(grid.max())
    grid = grid / peak if peak > 0 else grid  # the hottest cell is red whatever the spread
    # Bilinear upsampling of the grid, as in the paper's figures.
    upsampled = np.asarray(
        Image.fromarray(grid, mode="F").resize((HEATMAP_SIDE, HEATMAP_SIDE), Image.BILINEAR), dtype=np.float32
    )  # (224, 224)
    photo = np.asarray(centre_square(image), dtype=np.float32)  # (224, 224, 3)
    blended = (1 - OVERLAY_ALPHA) * photo + OVERLAY_ALPHA * colourize(np.clip(upsampled, 0, 1))  # (224, 224, 3)
    buf = io.BytesIO()
    Image.fromarray(blended.round().astype(np.uint8)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()
