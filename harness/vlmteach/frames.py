"""Uniform frame selection for the teacher, keeping the autograd graph."""

from __future__ import annotations

import torch

from harness.frames import uniform_frame_indices


def select_frames(frames: torch.Tensor, k: int) -> tuple[torch.Tensor, list[int]]:
    """Pick ``min(k, T)`` uniformly spaced frames of ``frames [T, 3, H, W]``; gradients flow through."""
    indices = uniform_frame_indices(frames.shape[0], k)
    return frames[torch.tensor(indices, device=frames.device)], indices
