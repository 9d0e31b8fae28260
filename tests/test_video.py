import numpy as np
import pytest
import torch

from harness.frames import clip_to_frames, frames_to_clip
from harness.video import CorruptVideoError, read_mp4, video_fps, write_mp4


def _clip(t=9, h=32, w=32, seed=0):
    rng = np.random.default_rng(seed)
    clip = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):  # flat coloured blocks, the kind of content the harness writes
        clip[i, 8 * (i % 4) : 8 * (i % 4) + 8, 8:16] = rng.integers(0, 256, 3)
    return clip


def test_mp4_roundtrip_keeps_frames_count_size_and_colours(tmp_path):
    clip = _clip()
    path = tmp_path / "a" / "v.mp4"
    write_mp4(path, clip, fps=8)
    back = read_mp4(path)
    assert back.shape == clip.shape
    assert video_fps(path) == pytest.approx(8)
    # crf 0 with 4:2:0 chroma: flat 8x8 blocks survive within a few levels
    assert np.abs(back.astype(int) - clip.astype(int)).mean() < 3


def test_write_is_atomic_no_temp_files_left(tmp_path):
    write_mp4(tmp_path / "v.mp4", _clip(), fps=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        write_mp4(tmp_path / "v.mp4", _clip().astype(np.float32), fps=8)
    assert list(tmp_path.iterdir()) == []


def test_fps_below_two_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fps must be >= 2"):
        write_mp4(tmp_path / "v.mp4", _clip(), fps=1)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_corrupt_or_empty_video_raises_clear_error(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(CorruptVideoError, match="bad.mp4"):
        read_mp4(path)


def test_truncated_video_raises_or_returns_fewer_frames(tmp_path):
    path = tmp_path / "v.mp4"
    write_mp4(path, _clip(t=17), fps=8)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptVideoError):
        read_mp4(path)


def test_frames_clip_conversion_roundtrip():
    clip = _clip()
    frames = clip_to_frames(clip)
    assert frames.shape == (9, 3, 32, 32) and frames.dtype == torch.float32
    assert np.array_equal(frames_to_clip(frames), clip)
