"""When the frames shown to a teacher were taken: what the official Qwen-VL processors read from a video's
``VideoMetadata`` to stamp time (Qwen3-VL's "<t seconds>" text, Qwen2.5-VL's ``second_per_grid_ts``)."""

from __future__ import annotations

from collections.abc import Sequence

from transformers.video_utils import VideoMetadata


def frame_clock(fps: float, indices: Sequence[int], total_frames: int) -> VideoMetadata:
    """The clock of ``indices`` (the shown frames' positions) picked from a ``total_frames``-frame clip at ``fps``."""
    indices = [int(i) for i in indices]
    if fps <= 0 or not indices or min(indices) < 0 or max(indices) >= total_frames:
        raise ValueError(f"a frame clock needs fps > 0 and indices in [0, {total_frames}), got {fps}, {indices}")
    return VideoMetadata(total_num_frames=total_frames, fps=float(fps), frames_indices=indices)


def consecutive_clock(num_frames: int, fps: float) -> VideoMetadata:
    """``num_frames`` consecutive frames of a clip at ``fps`` (a teacher's fixed presentation rate)."""
    return frame_clock(fps, range(num_frames), num_frames)
