"""Reading a micro-world video back into cell labels: nearest-palette colours, cell-level majority.

Thresholds (calibrated on mp4 round-trips and Gaussian blur up to sigma 0.7 px; stronger blur
smears a bright outline into the core of its cell, which then reads as a grey solid):
- a pixel takes the nearest palette colour if it lies within ``MAX_COLOR_DISTANCE`` (RGB
  Euclidean) of it, else it is "unknown" (counts for no colour);
- a cell holds a solid of colour c if at least ``CORE_MIN_FRACTION`` of its 4x4 core is c;
- a cell shows a marker of colour c if at least ``OUTLINE_MIN_FRACTION`` of its outline is c
  (only meaningful while no solid covers the cell).
"""

from __future__ import annotations

import numpy as np

from benchmarks.micro.world import BACKGROUND, CELL, COLOR_NAMES, GRID, PALETTE, core_mask, outline_mask

MAX_COLOR_DISTANCE = 110.0
CORE_MIN_FRACTION = 0.5
OUTLINE_MIN_FRACTION = 0.5
NONE = -1  # label of a cell with no colour in the majority
UNKNOWN = -1  # label of a pixel far from every palette colour

_PALETTE = np.array([PALETTE[name] for name in COLOR_NAMES], dtype=np.float32)
_BACKGROUND = COLOR_NAMES.index(BACKGROUND)


def color_index(name: str) -> int:
    return COLOR_NAMES.index(name)


def classify_pixels(clip: np.ndarray) -> np.ndarray:
    """uint8 clip [T, H, W, 3] -> palette index per pixel [T, H, W] (UNKNOWN if no colour is close)."""
    dist = np.linalg.norm(clip[..., None, :].astype(np.float32) - _PALETTE, axis=-1)
    labels = dist.argmin(axis=-1)
    return np.where(dist.min(axis=-1) <= MAX_COLOR_DISTANCE, labels, UNKNOWN)


def _cell_majority(pixels: np.ndarray, mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """pixels [T, GRID, GRID, CELL, CELL] of labels -> [T, GRID, GRID] majority non-background label."""
    selected = pixels[..., mask]  # [T, GRID, GRID, n]
    counts = np.stack([(selected == k).sum(-1) for k in range(len(COLOR_NAMES))], axis=-1)
    counts[..., _BACKGROUND] = 0
    best = counts.argmax(-1)
    enough = counts.max(-1) >= min_fraction * mask.sum()
    return np.where(enough, best, NONE)


def cell_labels(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """clip [T, 32, 32, 3] -> (solid labels, marker labels), each int [T, GRID, GRID] (NONE = empty)."""
    labels = classify_pixels(clip)
    t = labels.shape[0]
    cells = labels.reshape(t, GRID, CELL, GRID, CELL).transpose(0, 1, 3, 2, 4)
    return _cell_majority(cells, core_mask(), CORE_MIN_FRACTION), _cell_majority(cells, outline_mask(), OUTLINE_MIN_FRACTION)
