"""The torch preprocessing reproduces transformers' Qwen-VL processors (sizes, layout, pixel values)."""

import numpy as np
import pytest
import torch
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as official_image_resize
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize as official_qwen3_video_resize

from harness.teachers.preprocess import (
    VisionSpec,
    image_pixels,
    patchify,
    smart_resize,
    smart_resize_video_total,
    video_pixels,
)

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
QWEN25 = VisionSpec(14, 2, 2, CLIP_MEAN, CLIP_STD, 56 * 56, 28 * 28 * 30, 56 * 56, 28 * 28 * 30, "per_frame")
QWEN3 = VisionSpec(16, 2, 2, (0.5,) * 3, (0.5,) * 3, 32 * 32, 32 * 32 * 30, 32 * 32, 32 * 32 * 60, "per_video")
SIZES = [(32, 32), (50, 75), (56, 84), (100, 30), (224, 224), (480, 832), (704, 1280), (17, 400), (1000, 999)]


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A fixed uint8 image with natural-image smoothness plus mild noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([np.sin(xx / 9.0), np.cos(yy / 7.0), np.sin((xx + yy) / 11.0)], -1) * 90 + 128
    noise = np.random.default_rng(seed).normal(0, 8, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def as_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255.0


@pytest.mark.parametrize("factor,low,high",
                         [(28, 56 * 56, 28 * 28 * 1280), (32, 32 * 32, 32 * 32 * 64), (16, 256, 4096)])
def test_smart_resize_matches_official_image_rule(factor, low, high):
    for h, w in SIZES:
        assert smart_resize(h, w, factor=factor, min_pixels=low, max_pixels=high) == official_image_resize(
            h, w, factor=factor, min_pixels=low, max_pixels=high), (h, w)


@pytest.mark.parametrize("frames", [2, 5, 16, 17, 24])
def test_smart_resize_matches_official_qwen3_video_rule(frames):
    for h, w in SIZES:
        kwargs = dict(temporal_factor=2, factor=32, min_pixels=128 * 32 * 32, max_pixels=768 * 32 * 32)
        assert smart_resize_video_total(frames, h, w, **kwargs) == official_qwen3_video_resize(frames, h, w, **kwargs)


@pytest.mark.parametrize("spec", [QWEN25, QWEN3], ids=["qwen2.5", "qwen3"])
def test_image_pixels_match_pil_processor(spec):
    processor = Qwen2VLImageProcessorPil(
        patch_size=spec.patch_size, merge_size=spec.merge_size, temporal_patch_size=spec.temporal_patch_size,
        image_mean=list(spec.image_mean), image_std=list(spec.image_std),
        min_pixels=spec.image_min_pixels, max_pixels=spec.image_max_pixels)
    # Same size: no resize on either side, so the values agree to float precision.
    exact = smooth_image(2 * spec.factor, 3 * spec.factor)
    ref = processor(images=[exact], return_tensors="pt")
    ours, grid = image_pixels(as_tensor(exact), spec)
    assert list(grid) == ref["image_grid_thw"][0].tolist()
    torch.testing.assert_close(ours, ref["pixel_values"], atol=1e-5, rtol=0)
    # Downscale: PIL's bicubic works on uint8 and rounds/clips its output, torch's antialiased bicubic
    # does not, so values differ by a few uint8 steps at most (divided by std in normalised units).
    big = smooth_image(250, 380, seed=1)
    ref = processor(images=[big], return_tensors="pt")
    ours, grid = image_pixels(as_tensor(big), spec)
    assert list(grid) == ref["image_grid_thw"][0].tolist()
    diff = (ours - ref["pixel_values"]).abs() * min(spec.image_std)
    assert diff.max() < 6 / 255 and diff.mean() < 1 / 255


def test_video_layout_matches_official_patchify():
    # The official video patchify is plain torch (only resizing needs torchvision): call it directly.
    video = torch.randn(5, 3, 64, 96)  # odd T: the last frame is repeated to fill the temporal patch
    ref, gt, gh, gw = Qwen3VLVideoProcessor.patchify(None, video[None], patch_size=16, merge_size=2,
                                                     temporal_patch_size=2)
    ours, grid = patchify(video, QWEN3)
    assert grid == (gt, gh, gw) == (3, 4, 6)
    assert torch.equal(ours, ref[0])


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_video_pixels_match_official_video_processor(family):
    pytest.importorskip("torchvision", reason="transformers' Qwen video processors need torchvision")
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # imports torchvision

    frames = np.stack([smooth_image(64, 96, seed=s) for s in range(5)])
    spec = QWEN3 if family == "qwen3_vl" else QWEN25
    size = {"shortest_edge": spec.video_min_pixels, "longest_edge": spec.video_max_pixels}
    if family == "qwen3_vl":  # budget over the whole video
        processor = Qwen3VLVideoProcessor(size=size, do_sample_frames=False, cap_pixels_per_frame=False)
    else:  # budget per frame, CLIP normalisation, 14-pixel patches
        processor = Qwen2VLVideoProcessor(size=size, do_sample_frames=False, cap_pixels_per_frame=False,
                                          patch_size=14, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    ref = processor(videos=[frames], return_tensors="pt")
    ours, grid = video_pixels(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, spec)
    assert list(grid) == ref["video_grid_thw"][0].tolist()
    assert (ours - ref["pixel_values_videos"]).abs().max() < 0.05


def test_micro_frames_are_not_resized_and_keep_gradients():
    micro = VisionSpec(8, 2, 2, (0.5,) * 3, (0.5,) * 3, 256, 4096, 512, 64 * 32 * 32, "per_video")
    frames = torch.rand(7, 3, 32, 32, requires_grad=True)
    pixels, grid = video_pixels(frames, micro)
    assert grid == (4, 4, 4)  # 7 frames padded to 8; a 32x32 frame is 4x4 patches of 8 pixels
    # Row 0 is the top-left patch of frames 0-1; channel 0 first, then time, then the 8x8 pixels.
    torch.testing.assert_close(pixels[0, :64], (frames[0, 0, :8, :8].reshape(-1) - 0.5) / 0.5)
    pixels[-1].sum().backward()  # the last row holds the padded copy of frame 6
    assert frames.grad[6].abs().sum() > 0 and frames.grad[:6].abs().sum() == 0
    resized = VisionSpec(16, 2, 2, (0.5,) * 3, (0.5,) * 3, 256, 4096, 4 * 64 * 64, 64 * 64 * 64, "per_video")
    frames.grad = None
    pixels, grid = video_pixels(frames, resized)  # upscaled to 64x64 through the differentiable resize
    assert grid == (4, 4, 4)
    pixels.square().sum().backward()
    assert torch.isfinite(frames.grad).all() and (frames.grad != 0).float().mean() > 0.9
