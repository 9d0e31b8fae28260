"""Generation settings per protocol: how many frames, what size and fps a student generates.

- ``official`` (VBVR-Wan2.2's ``eval_vbvr_bench.py``): the GT video's frame count, the first
  frame's size, 16 fps. It runs DiffSynth's ``WanVideoPipeline``, which rounds the frame count up
  to 4k+1 and height/width up to its size multiple; ``frames_4k1`` and ``size_multiple`` do the
  same here (Wan2.2-TI2V-5B needs multiples of 32: VAE 16 x patch 2).
- ``paper`` (VLM-as-Teacher): 89 frames; 512x512 at 16 fps as on the project page (the paper
  states only the frame count).

The scorer resizes every generated frame to the GT first-frame size, so any size is scorable;
matching the GT aspect ratio is safer (the scorers undo letterboxing by a heuristic crop).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import av

from harness.types import UserError

SIZE_FIRST_FRAME = "first_frame"
_FIXED_SIZE = re.compile(r"^(\d+)x(\d+)$")  # "HxW"


@dataclass(frozen=True)
class GenerationProtocol:
    name: str  # label recorded with every score, e.g. "official" or "paper"
    num_frames: int | None  # None: the GT video's frame count
    frames_4k1: bool  # round the frame count up to the next 4k+1 (Wan VAE: 4x temporal compression)
    size: str  # first_frame | "<H>x<W>"
    size_multiple: int  # round height and width up to a multiple of this (1: unchanged)
    fps: int

    def __post_init__(self) -> None:
        if self.num_frames is not None and self.num_frames < 1:
            raise UserError(f"bench.num_frames must be >= 1 or null (GT frame count); got {self.num_frames}")
        if self.size != SIZE_FIRST_FRAME and not _FIXED_SIZE.match(self.size):
            raise UserError(f"bench.size must be '{SIZE_FIRST_FRAME}' or '<H>x<W>'; got {self.size!r}")
        if self.size_multiple < 1:
            raise UserError(f"bench.size_multiple must be >= 1; got {self.size_multiple}")
        if self.fps < 2:
            raise UserError(f"bench.fps must be >= 2; got {self.fps}")

    def frame_count(self, gt_video: Path) -> int:
        n = self.num_frames if self.num_frames is not None else gt_frame_count(gt_video)
        return 4 * math.ceil((n - 1) / 4) + 1 if self.frames_4k1 else n

    def frame_size(self, first_height: int, first_width: int) -> tuple[int, int]:
        if self.size == SIZE_FIRST_FRAME:
            height, width = first_height, first_width
        else:
            height, width = map(int, _FIXED_SIZE.match(self.size).groups())
        m = self.size_multiple
        return m * math.ceil(height / m), m * math.ceil(width / m)

    def describe(self) -> str:
        frames = "GT frame count" if self.num_frames is None else f"{self.num_frames} frames"
        frames += " (up to 4k+1)" if self.frames_4k1 else ""
        size = self.size + (f" (up to x{self.size_multiple})" if self.size_multiple > 1 else "")
        return f"{self.name}: {frames}, size {size}, {self.fps} fps"


def gt_frame_count(path: Path) -> int:
    """Frame count of a GT video: the container's count, else decode (ffprobe-equivalent)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            return sum(1 for _ in container.decode(stream))
    except (av.error.FFmpegError, IndexError) as exc:
        raise UserError(f"cannot read the GT video {path} ({exc}); re-download VBVR-Bench-Data") from exc
