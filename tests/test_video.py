import numpy as np
import pytest
import torch

from harness.frames import clip_to_frames, frames_to_clip
from harness.video import CorruptVideoError, preview_problem, read_mp4, video_fps, write_mp4, write_preview


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


def _top_level_boxes(path):
    """The mp4's top-level box types in file order (size, type headers; 64-bit sizes followed)."""
    data, boxes, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        boxes.append(kind)
        at += size if size else len(data)
    return boxes


def _stream_format(path):
    import av

    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        return ctx.profile, ctx.pix_fmt


def _smooth_clip(t=17, h=64, w=96):
    """Gradients and a moving block: what a video model writes, not noise."""
    y, x = np.mgrid[0:h, 0:w]
    clip = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        clip[i, ..., 0] = (x * 255 // (w - 1) + 3 * i) % 256
        clip[i, ..., 1] = y * 255 // (h - 1)
        clip[i, ..., 2] = 128
        clip[i, 10:26, 4 * i % (w - 16) : 4 * i % (w - 16) + 16] = (250, 30, 30)
    return clip


def test_preview_is_browser_playable_h264_high_420_faststart_and_close_to_the_video(tmp_path):
    clip = _smooth_clip()
    video, preview = tmp_path / "videos" / "v.mp4", tmp_path / "previews" / "v.mp4"
    write_mp4(video, clip, fps=8)
    assert _stream_format(video) == ("High 4:4:4 Predictive", "yuv420p")  # lossless: what browsers refuse
    assert preview_problem(preview) == "no preview"

    write_preview(video, preview)
    assert _stream_format(preview) == ("High", "yuv420p")
    boxes = _top_level_boxes(preview)
    assert boxes.index("moov") < boxes.index("mdat")  # faststart: playable before the whole file arrives
    assert "moov" in _top_level_boxes(video) and _top_level_boxes(video).index("moov") > _top_level_boxes(video).index("mdat")
    back, original = read_mp4(preview), read_mp4(video)
    assert back.shape == original.shape and video_fps(preview) == pytest.approx(8)
    # crf 18 ("visually lossless"): mean absolute error under 3/255 against the scored file's own frames
    assert np.abs(back.astype(int) - original.astype(int)).mean() < 3
    assert preview_problem(preview) is None
    assert sorted(p.name for p in preview.parent.iterdir()) == ["v.mp4"]  # written atomically, no temp left


def test_preview_of_an_odd_sized_video_is_padded_to_even_sizes(tmp_path):
    import av

    video = tmp_path / "odd.mp4"
    with av.open(str(video), mode="w", format="mp4") as container:  # yuv444p: odd sizes are legal there
        stream = container.add_stream("libx264", rate=8)
        stream.height, stream.width, stream.pix_fmt = 33, 47, "yuv444p"
        for frame in _smooth_clip(5, 33, 47):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    write_preview(video, tmp_path / "p.mp4")
    back = read_mp4(tmp_path / "p.mp4")
    assert back.shape == (5, 34, 48, 3)
    # the source's full-resolution chroma (4:4:4) is halved in the preview (4:2:0): sharp colour edges blur a little
    error = np.abs(back[:, :33, :47].astype(int) - read_mp4(video).astype(int))
    assert error.mean() < 8 and np.abs(back[:, 33].astype(int) - back[:, 32].astype(int)).mean() < 8  # edge repeated


def test_a_truncated_or_foreign_preview_is_reported(tmp_path):
    video, preview = tmp_path / "v.mp4", tmp_path / "p.mp4"
    write_mp4(video, _smooth_clip(), fps=8)
    preview.write_bytes(video.read_bytes())  # the lossless file itself is no preview
    assert preview_problem(preview) == "the preview is High 4:4:4 Predictive yuv420p, not High yuv420p"
    preview.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100)
    assert preview_problem(preview).startswith("unreadable preview")
