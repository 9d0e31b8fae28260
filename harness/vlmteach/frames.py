"""Uniform frame selection for the teacher, keeping the autograd graph."""

from __future__ import annotations

import torch


def uniform_indices(num_frames: int, k: int) -> list[int]:
    """``k`` frame indices spread evenly over ``num_frames``, first and last included.

    A clip shorter than ``k`` is shown whole (no frame is repeated): repeating frames would stretch
    time in the teacher's eyes, unlike the paper, where K=24 is well below the 89 generated frames.
    """
    if num_frames < 1 or k < 1:
        raise ValueError(f"need at least one frame and k >= 1, got num_frames={num_frames}, k={k}")
    if num_frames <= k:
        return list(range(num_frames))
    return torch.linspace(0, num_frames - 1, k).round().long().tolist()


def select_frames(frames: torch.Tensor, k: int) -> tuple[torch.Tensor, list[int]]:
    """Pick ``min(k, T)`` uniformly spaced frames of ``frames [T, 3, H, W]``; gradients flow through."""
    indices = uniform_indices(frames.shape[0], k)
    return frames[torch.tensor(indices, device=frames.device)], indices
