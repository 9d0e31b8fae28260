"""How big the browser previews are against the lossless videos: ``python scripts/preview_size.py [RUN_DIR...]``.

Prints MB of preview per MB of lossless video for the given runs (their previews/ beside videos/; a missing one
is made) and for three synthetic 512x512 clips of 49 frames at 16 fps: smooth motion, the same with sensor-like
noise (sigma 8), and uniform noise (the worst case for any codec).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from harness.rundir import RunDir
from harness.video import preview_problem, write_mp4, write_preview


def ratio(pairs: list[tuple[Path, Path]]) -> tuple[float, float, float]:
    lossless = sum(v.stat().st_size for v, _ in pairs) / 2**20
    preview = sum(p.stat().st_size for _, p in pairs) / 2**20
    return lossless, preview, preview / lossless


def synthetic(kind: str, frames: int = 49, size: int = 512) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "uniform noise":
        return rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    clip = np.empty((frames, size, size, 3), np.float32)
    for t in range(frames):
        clip[t, ..., 0] = 128 + 100 * np.sin((x + 6 * t) / 40)
        clip[t, ..., 1] = 128 + 100 * np.cos((y - 4 * t) / 55)
        clip[t, ..., 2] = 255 * ((x - 120 - 5 * t) ** 2 + (y - 256) ** 2 < 60**2)
    if kind == "smooth + noise":
        clip += rng.normal(0, 8, clip.shape)
    return clip.clip(0, 255).astype(np.uint8)


def main(run_dirs: list[str]) -> None:
    for path in run_dirs:
        run, pairs = RunDir(path), []
        for video in sorted(run.videos.rglob("*.mp4")):
            if preview_problem(run.preview_of(video)):
                write_preview(video, run.preview_of(video))
            pairs.append((video, run.preview_of(video)))
        if pairs:
            lossless, preview = ratio(pairs)[:2]
            print(f"{path}: {len(pairs)} videos, lossless {lossless:.3f} MB, preview {preview:.3f} MB, "
                  f"{preview / lossless:.3f} MB per lossless MB")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("smooth", "smooth + noise", "uniform noise"):
            video, preview = Path(tmp) / "v.mp4", Path(tmp) / "p.mp4"
            write_mp4(video, synthetic(kind), fps=16)
            write_preview(video, preview)
            lossless, size, per = ratio([(video, preview)])
            print(f"512x512x49 {kind}: lossless {lossless:.2f} MB, preview {size:.2f} MB, {per:.3f} MB per lossless MB")


if __name__ == "__main__":
    main(sys.argv[1:])
