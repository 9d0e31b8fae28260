"""Video I/O through PyAV (FFmpeg): H.264 mp4 written atomically, read back as uint8 clips."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import av
import numpy as np


class CorruptVideoError(ValueError):
    """The file is missing, empty or cannot be decoded as a video."""


def write_mp4(path: str | Path, clip: np.ndarray, fps: int, crf: int = 0) -> None:
    """Write ``clip`` as H.264 mp4. The file appears only when complete (temp file + rename).

    ``crf=0`` is lossless luma; chroma is 4:2:0 so every player and OpenCV read it. Odd sizes are
    padded by one pixel by the encoder's requirement and cropped again by ``read_mp4`` callers
    only if they ask; the benchmarks here use even sizes.
    """
    if fps < 2:
        raise ValueError(f"fps must be >= 2 (RULER's frame sampler divides by int(fps/2)); got {fps}")
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a uint8 clip [T, H, W, 3], got {clip.dtype} {clip.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name that the encoder creates, as any new file, with the user's umask (mkstemp's are 0600).
    tmp = str(path.parent / f"{temp_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}.mp4")
    try:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.height, stream.width = clip.shape[1], clip.shape[2]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium"}
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
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise CorruptVideoError(f"cannot decode video {path}: {exc}") from exc
    if not frames:
        raise CorruptVideoError(f"video has no frames: {path}")
    return np.stack(frames)


def video_fps(path: str | Path) -> float:
    with av.open(str(path)) as container:
        return float(container.streams.video[0].average_rate)
