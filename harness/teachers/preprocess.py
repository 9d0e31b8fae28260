"""Qwen-VL pixel preprocessing rebuilt in torch, so gradients reach the frames.

Mirrors transformers' Qwen2-VL / Qwen2.5-VL / Qwen3-VL image and video processors: ``smart_resize``
picks the target size, frames are resized (bicubic, antialiased, as PIL and torchvision do),
normalised with the model's mean/std, padded in time to a multiple of the temporal patch and
flattened into the processors' patch layout. Never feed a gradient-carrying tensor to the official
processors: they round-trip through PIL / uint8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class VisionSpec:
    """What the processors need to know about one model's vision input.

    ``video_budget`` says how the official video processor reads ``video_min/max_pixels``:
    ``"per_frame"`` (Qwen2/2.5-VL) or ``"per_video"`` (Qwen3-VL: summed over the frames).
    """

    patch_size: int
    temporal_patch_size: int
    merge_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    image_min_pixels: int
    image_max_pixels: int
    video_min_pixels: int
    video_max_pixels: int
    video_budget: Literal["per_frame", "per_video"]

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size


def smart_resize(height: int, width: int, *, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Target (h, w) of Qwen2-VL's image rule (also Qwen2/2.5-VL's per-frame video rule): multiples of
    ``factor``, area within [min_pixels, max_pixels], aspect ratio kept."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be below 200, got {height}x{width}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def smart_resize_video_total(
    num_frames: int, height: int, width: int, *, temporal_factor: int, factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Target (h, w) of Qwen3-VL's video rule, where the pixel budget covers all frames together."""
    if num_frames < temporal_factor:
        raise ValueError(f"a video needs at least {temporal_factor} frames, got {num_frames}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be below 200, got {height}x{width}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    if t_bar * h_bar * w_bar > max_pixels:
        beta = math.sqrt(num_frames * height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif t_bar * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def video_target_size(spec: VisionSpec, num_frames: int, height: int, width: int) -> tuple[int, int]:
    """The (h, w) the official video processor would resize a ``num_frames``-frame video to."""
    if spec.video_budget == "per_video":
        # The official rule rejects a 1-frame video; it is shown as two identical frames here.
        return smart_resize_video_total(
            max(num_frames, spec.temporal_patch_size), height, width, temporal_factor=spec.temporal_patch_size,
            factor=spec.factor, min_pixels=spec.video_min_pixels, max_pixels=spec.video_max_pixels,
        )
    return smart_resize(height, width, factor=spec.factor, min_pixels=spec.video_min_pixels,
                        max_pixels=spec.video_max_pixels)


def resize_normalize(frames: torch.Tensor, size: tuple[int, int], spec: VisionSpec) -> torch.Tensor:
    """[T, 3, H, W] in [0, 1] -> resized (bicubic, antialiased) and normalised [T, 3, h, w] float32."""
    frames = frames.float()
    if tuple(frames.shape[-2:]) != tuple(size):
        frames = F.interpolate(frames, size=size, mode="bicubic", antialias=True, align_corners=False)
    mean = frames.new_tensor(spec.image_mean).view(1, 3, 1, 1)
    std = frames.new_tensor(spec.image_std).view(1, 3, 1, 1)
    return (frames - mean) / std


def patchify(frames: torch.Tensor, spec: VisionSpec) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Normalised [T, C, h, w] -> (patch rows [Tg*Hg*Wg, C*tp*p*p], grid (Tg, Hg, Wg)).

    Time is padded with copies of the last frame to a multiple of the temporal patch. Rows run
    time group -> merge-block row -> merge-block column -> row and column inside the block; features
    run channel -> time -> patch row -> patch column: the processors' layout.
    """
    tp, p, m = spec.temporal_patch_size, spec.patch_size, spec.merge_size
    if pad := -frames.shape[0] % tp:
        frames = torch.cat([frames, frames[-1:].expand(pad, -1, -1, -1)], dim=0)
    t, c, h, w = frames.shape
    if h % (p * m) or w % (p * m):
        raise ValueError(f"frame size {h}x{w} is not a multiple of patch*merge = {p * m}")
    gt, gh, gw = t // tp, h // p, w // p
    patches = frames.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(gt * gh * gw, c * tp * p * p), (gt, gh, gw)


def video_pixels(frames: torch.Tensor, spec: VisionSpec) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Frames [T, 3, H, W] in [0, 1] as ONE video: ``pixel_values_videos`` rows and ``video_grid_thw``."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be [T, 3, H, W], got {tuple(frames.shape)}")
    size = video_target_size(spec, frames.shape[0], frames.shape[2], frames.shape[3])
    return patchify(resize_normalize(frames, size, spec), spec)


def image_pixels(image: torch.Tensor, spec: VisionSpec) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """One image [3, H, W] in [0, 1]: ``pixel_values`` rows and ``image_grid_thw`` (its frame repeated in time)."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3, H, W], got {tuple(image.shape)}")
    size = smart_resize(image.shape[1], image.shape[2], factor=spec.factor, min_pixels=spec.image_min_pixels,
                        max_pixels=spec.image_max_pixels)
    frame = resize_normalize(image[None], size, spec)
    return patchify(frame.expand(spec.temporal_patch_size, -1, -1, -1), spec)
