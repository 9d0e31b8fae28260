"""The micro world's fixed geometry, palette and drawing: scenes of flat-coloured cells on a 4x4 grid.

A frame is 32x32 RGB: a 4x4 grid of 8x8-pixel cells on a dark background. A cell can hold
- a *solid* (an object: agent, distractor, light): a filled 6x6 square, 1 px margin;
- a *marker* (target, colour marker, forbidden cell): a 2 px outline along the cell border.
A solid drawn on a marker leaves the marker's outermost pixel row visible around it.
Edges and outlines are aligned to the 2x2 chroma blocks of yuv420p where it matters: the 4x4
"core" of a cell (what the scorer reads for solids) and the outline are never mixed with other
colours by H.264 4:2:0 subsampling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

NUM_FRAMES = 17  # 4k+1, as Wan's VAE needs
FPS = 8
GRID = 4
CELL = 8
SIZE = GRID * CELL  # 32

Cell = tuple[int, int]  # (row, column), 0-based from the top left

BACKGROUND = "background"
# Saturated colours far apart in RGB (and in YUV) so nearest-colour classification survives
# compression and blur. Order is fixed: detection labels are indices into it.
PALETTE: dict[str, tuple[int, int, int]] = {
    BACKGROUND: (16, 16, 16),
    "red": (230, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 80, 240),
    "yellow": (240, 220, 30),
    "magenta": (220, 40, 220),
    "cyan": (30, 210, 220),
    "white": (240, 240, 240),
    "grey": (120, 120, 120),
}
COLOR_NAMES: list[str] = list(PALETTE)
OBJECT_COLORS: list[str] = [c for c in COLOR_NAMES if c != BACKGROUND]

SOLID_SPAN = slice(1, 7)  # pixels 1..6 inside a cell: 6x6 square, 1 px margin
CORE_SPAN = slice(2, 6)  # pixels 2..5: what detection reads for solids
OUTLINE_WIDTH = 2  # marker outline: pixels 0,1 and 6,7 of a cell


@dataclass(frozen=True)
class Solid:
    color: str
    cell: Cell


@dataclass(frozen=True)
class Marker:
    color: str
    cell: Cell


@dataclass(frozen=True)
class Scene:
    """One frame's content. Solids are drawn over markers; solid order is meaningful to tasks."""

    solids: tuple[Solid, ...]
    markers: tuple[Marker, ...] = ()

    def move(self, index: int, cell: Cell) -> Scene:
        solids = list(self.solids)
        solids[index] = replace(solids[index], cell=cell)
        return replace(self, solids=tuple(solids))

    def recolor(self, index: int, color: str) -> Scene:
        solids = list(self.solids)
        solids[index] = replace(solids[index], color=color)
        return replace(self, solids=tuple(solids))

    def without(self, index: int) -> Scene:
        return replace(self, solids=self.solids[:index] + self.solids[index + 1 :])


def all_cells() -> list[Cell]:
    return [(r, c) for r in range(GRID) for c in range(GRID)]


def neighbours(cell: Cell) -> list[Cell]:
    r, c = cell
    return [
        (r + dr, c + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)) if 0 <= r + dr < GRID and 0 <= c + dc < GRID
    ]


def manhattan(a: Cell, b: Cell) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def core_mask() -> np.ndarray:
    """Boolean [CELL, CELL] mask of a cell's core, what detection reads for solids."""
    mask = np.zeros((CELL, CELL), dtype=bool)
    mask[CORE_SPAN, CORE_SPAN] = True
    return mask


def outline_mask() -> np.ndarray:
    """Boolean [CELL, CELL] mask of a marker outline."""
    mask = np.zeros((CELL, CELL), dtype=bool)
    mask[:OUTLINE_WIDTH, :] = mask[-OUTLINE_WIDTH:, :] = True
    mask[:, :OUTLINE_WIDTH] = mask[:, -OUTLINE_WIDTH:] = True
    return mask


def render_scene(scene: Scene) -> np.ndarray:
    """Scene -> uint8 frame [SIZE, SIZE, 3]."""
    frame = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    frame[:] = PALETTE[BACKGROUND]
    ring = outline_mask()
    for marker in scene.markers:
        r, c = marker.cell
        frame[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL][ring] = PALETTE[marker.color]
    for solid in scene.solids:
        r, c = solid.cell
        cell = frame[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL]
        cell[SOLID_SPAN, SOLID_SPAN] = PALETTE[solid.color]
    return frame


def render_clip(scenes: list[Scene]) -> np.ndarray:
    """Scenes -> uint8 clip [T, SIZE, SIZE, 3]."""
    return np.stack([render_scene(s) for s in scenes])


def schedule(num_events: int, num_frames: int = NUM_FRAMES, hold: int = 2) -> list[int]:
    """How many of ``num_events`` steps have happened at each frame.

    Steps are spread evenly, at most one per frame, and finish ``hold`` frames before the end so
    the final state is shown for a while (as a generated video would settle).
    """
    span = num_frames - 1 - hold
    if num_events > span:
        raise ValueError(f"{num_events} steps do not fit in {num_frames} frames (at most {span})")
    return [min(num_events, t * num_events // span) for t in range(num_frames)]
