"""Fitting a condition image to the generation size before it is VAE-encoded."""

from __future__ import annotations

import PIL.Image

# crop: official Wan2.2 (TI2V i2v): scale to cover the target, aspect kept, LANCZOS, then a centre crop.
# stretch: diffusers' Wan pipelines: resize straight to the target size, aspect not kept.
FIRST_FRAME_FITS = ("crop", "stretch")


def fit_first_frame(image: PIL.Image.Image, height: int, width: int, fit: str) -> PIL.Image.Image:
    """``image`` at ``height`` x ``width``; ``stretch`` leaves the resize to the pipeline's preprocessing."""
    if fit not in FIRST_FRAME_FITS:
        raise ValueError(f"first-frame fit must be one of {FIRST_FRAME_FITS}, got {fit!r}")
    if fit == "stretch" or image.size == (width, height):
        return image
    scale = max(width / image.width, height / image.height)
    covered = image.resize((round(image.width * scale), round(image.height * scale)), PIL.Image.LANCZOS)
    left, top = (covered.width - width) // 2, (covered.height - height) // 2
    return covered.crop((left, top, left + width, top + height))
