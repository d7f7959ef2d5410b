"""A hashtag's attention map, drawn as a transparent overlay of the whole photo.

The encoder saw the centre square of the photo (short side resized to its input side, then centre-cropped, see
hashtale.models.image.to_tensor), so the (rows, cols) grid covers that square, row-major, weights summing to 1. The
overlay has the photo's aspect ratio, so the post page lays it over the photo at the photo's display size: the square
the model saw carries the colour map, the strips it never saw are greyed out.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

OVERLAY_MAX_SIDE = 1024  # px, the overlay's long side (the browser scales it with the photo)
OVERLAY_ALPHA = 0.55  # opacity of the colour map over the square the model saw
UNSEEN_ALPHA = 0.6  # opacity of the grey over the strips it did not see
UNSEEN_GREY = 40  # 0..255
# A blue → cyan → yellow → red colour map (like matplotlib's "jet"), as anchor points on 0..1.
_ANCHORS = np.array([0.0, 0.35, 0.65, 1.0])
_COLOURS = np.array([[0, 0, 160], [0, 200, 255], [255, 230, 0], [220, 0, 0]], dtype=np.float32)


def overlay_size(width: int, height: int) -> tuple[int, int]:
    """The overlay's (width, height): the photo's aspect ratio, long side at most OVERLAY_MAX_SIDE."""
    scale = min(1.0, OVERLAY_MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def seen_square(width: int, height: int) -> tuple[int, int, int]:
    """(left, top, side) of the centre square the encoder saw, in a (width, height) picture."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def colourize(weights: np.ndarray) -> np.ndarray:
    """(H, W) values in 0..1 -> (H, W, 3) float32 RGB in 0..255."""
    return np.stack([np.interp(weights, _ANCHORS, _COLOURS[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def render_overlay(photo_size: tuple[int, int], attention: list[float], shape: tuple[int, int]) -> bytes:
    """PNG bytes (RGBA) of the attention grid over the square the model saw, for a photo of `photo_size` px."""
    width, height = overlay_size(*photo_size)
    left, top, side = seen_square(width, height)
    rows, cols = shape
    grid = np.asarray(attention, dtype=np.float32).reshape(rows, cols)  # (rows, cols)
    peak = float(grid.max())
    grid = grid / peak if peak > 0 else grid  # the hottest cell is red whatever the spread
    # Bilinear upsampling of the grid, as in the paper's figures.
    upsampled = np.asarray(Image.fromarray(grid, mode="F").resize((side, side), Image.BILINEAR),
                           dtype=np.float32)  # (side, side)
    rgba = np.empty((height, width, 4), dtype=np.float32)  # (H, W, 4)
    rgba[..., :3] = UNSEEN_GREY
    rgba[..., 3] = 255 * UNSEEN_ALPHA
    rgba[top:top + side, left:left + side, :3] = colourize(np.clip(upsampled, 0, 1))
    rgba[top:top + side, left:left + side, 3] = 255 * OVERLAY_ALPHA
    buf = io.BytesIO()
    Image.fromarray(rgba.round().astype(np.uint8), mode="RGBA").save(buf, format="PNG", optimize=False)
    return buf.getvalue()
