"""Video I/O through PyAV (FFmpeg): H.264 mp4 written atomically, read back as uint8 clips, and a
browser-playable preview of a saved video."""

from __future__ import annotations

import os
import secrets
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


class CorruptVideoError(ValueError):
    """The file is missing, empty or cannot be decoded as a video."""


def write_mp4(path: str | Path, clip: np.ndarray, fps: int, crf: int = 0) -> None:
    """Write ``clip`` as H.264 mp4. The file appears only when complete (temp file + rename).

    ``crf=0`` is lossless luma; chroma is 4:2:0 so OpenCV and the scorers read it. Lossless H.264 is the
    "High 4:4:4 Predictive" profile, which browsers do not play: ``write_preview`` makes a copy they do.
    Odd sizes are padded by one pixel by the encoder's requirement and cropped again by ``read_mp4``
    callers only if they ask; the benchmarks here use even sizes.
    """
    if fps < 2:
        raise ValueError(f"fps must be >= 2 (RULER's frame sampler divides by int(fps/2)); got {fps}")
    _check_clip(clip)
    _encode(Path(path), clip, fps, {"crf": str(crf), "preset": "medium"})


# A browser-playable copy: H.264 High (8-bit 4:2:0), the index (moov) before the data, and crf 18, x264's
# "visually lossless" setting; a score never reads it.
PREVIEW_CRF = 18
PREVIEW_OPTIONS = {"crf": str(PREVIEW_CRF), "preset": "medium", "profile": "high"}


def write_preview(video: str | Path, preview: str | Path) -> None:
    """Re-encode the saved ``video`` as a browser-playable mp4 at ``preview`` (same frames and rate; an odd
    height or width is padded by repeating the last row or column, as 4:2:0 needs even sizes)."""
    clip = read_mp4(video)
    pad = ((0, 0), (0, clip.shape[1] % 2), (0, clip.shape[2] % 2), (0, 0))
    if any(after for _, after in pad):
        clip = np.pad(clip, pad, mode="edge")
    fps = video_fps(video)
    _encode(Path(preview), clip, fps, PREVIEW_OPTIONS, container_options={"movflags": "+faststart"})


def preview_problem(preview: str | Path) -> str | None:
    """Why ``preview`` cannot stand for its video in a browser (missing, undecodable, not High 4:2:0), or None."""
    preview = Path(preview)
    if not preview.is_file() or preview.stat().st_size == 0:
        return "no preview"
    try:
        with av.open(str(preview)) as container:
            ctx = container.streams.video[0].codec_context
            profile, pix_fmt = ctx.profile, ctx.pix_fmt
            decoded = next(container.decode(video=0), None)
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        return f"unreadable preview ({exc})"
    if decoded is None:
        return "the preview has no frames"
    if profile != "High" or pix_fmt != "yuv420p":
        return f"the preview is {profile} {pix_fmt}, not High yuv420p"
    return None


def _check_clip(clip: np.ndarray) -> None:
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a uint8 clip [T, H, W, 3], got {clip.dtype} {clip.shape}")


def _encode(path: Path, clip: np.ndarray, fps: float, options: dict[str, str],
            container_options: dict[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name that the encoder creates, as any new file, with the user's umask (mkstemp's are 0600).
    tmp = str(path.parent / f"{temp_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}.mp4")
    try:
        with av.open(tmp, mode="w", format="mp4", options=container_options or {}) as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.height, stream.width = clip.shape[1], clip.shape[2]
            stream.pix_fmt = "yuv420p"
            stream.options = dict(options)
            for frame in clip:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def temp_prefix(path: Path) -> str:
    """Prefix of the temporary files a writer of ``path`` creates (a killed writer leaves one)."""
    return f".tmp-{path.stem}-"


def read_mp4(path: str | Path) -> np.ndarray:
    """Decode every frame of a video file into a uint8 clip [T, H, W, 3]."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise CorruptVideoError(f"video file missing or empty: {path}")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            # One decoder thread: the same frames, and on cores kept busy by the harness's other jobs (make
            # eval's pool) twice as fast (scripts/bench_video_io.py --busy 2; results/perf/README.md, CPU).
            stream.codec_context.thread_type, stream.codec_context.thread_count = "NONE", 1
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise CorruptVideoError(f"cannot decode video {path}: {exc}") from exc
    if not frames:
        raise CorruptVideoError(f"video has no frames: {path}")
    return np.stack(frames)


def video_fps(path: str | Path) -> float:
    with av.open(str(path)) as container:
        return float(container.streams.video[0].average_rate)
