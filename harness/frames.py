"""Frames: a clip as the torch tensor the student decodes to and the teacher reads (``[T, 3, H, W]`` in [0, 1],
harness.types), and which of a clip's frames a VLM is shown."""

from __future__ import annotations

import numpy as np
import torch


def frames_to_clip(frames: torch.Tensor) -> np.ndarray:
    """Frames [T, 3, H, W] in [0, 1] -> uint8 clip [T, H, W, 3]."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected frames [T, 3, H, W], got {tuple(frames.shape)}")
    clip = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return clip.permute(0, 2, 3, 1).cpu().numpy()


def clip_to_frames(clip: np.ndarray) -> torch.Tensor:
    """uint8 clip [T, H, W, 3] -> frames [T, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).float() / 255.0


def uniform_frame_indices(num_frames: int, k: int) -> list[int]:
    """``k`` frame indices spread evenly over ``num_frames`` (first and last included).

    With ``k >= num_frames`` every frame is used once: a teacher is never shown duplicates (repeats
    would stretch time in its eyes; in the paper K=24 is well below the 89 generated frames).
    """
    if num_frames < 1 or k < 1:
        raise ValueError(f"need at least one frame and k >= 1, got num_frames={num_frames}, k={k}")
    if k >= num_frames:
        return list(range(num_frames))
    if k == 1:
        return [num_frames - 1]
    return [round(i * (num_frames - 1) / (k - 1)) for i in range(k)]
