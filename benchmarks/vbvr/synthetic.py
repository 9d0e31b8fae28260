"""A tiny VBVR-Bench-Data copy in the released format, for tests and smoke runs without the download.

Each sample is a coloured square sliding right on a white canvas: the GT video, its first and final
frames, a prompt, and an index entry with the first frame inline as base64 PNG (every other entry
with a ``data:image/png;base64,`` prefix, as seen in the release). Sizes and frame counts vary per
task and sample so that the generation protocols have something to read.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from benchmarks.vbvr.data import INDEX_FILE
from benchmarks.vbvr.tasks import SPLIT_FOLDERS, TASK_SPLIT
from harness.video import write_mp4

_COLOURS = ((220, 40, 40), (40, 160, 60), (40, 70, 220), (230, 160, 20))


def synthetic_clip(height: int, width: int, num_frames: int, seed: int) -> np.ndarray:
    """uint8 [T, H, W, 3]: a square (a third of the short side) moving from left to right."""
    side = min(height, width) // 3
    top = (height - side) // 2 + (seed % 3) - 1
    clip = np.full((num_frames, height, width, 3), 255, dtype=np.uint8)
    for t, left in enumerate(np.linspace(2, width - side - 2, num_frames).round().astype(int)):
        clip[t, top : top + side, left : left + side] = _COLOURS[seed % len(_COLOURS)]
    return clip


def write_synthetic_bench(
    root: str | Path,
    tasks: Sequence[str],
    *,
    samples_per_task: int = 2,
    sizes: dict[str, tuple[int, int]] | None = None,
    base_frames: int = 9,
    fps: int = 16,
    write_index: bool = True,
) -> Path:
    """Write ``tasks`` x ``samples_per_task`` samples under ``root``; sample k has ``base_frames + 2k`` frames.

    ``sizes`` maps a task to its (height, width); default 96 x 128.
    """
    root = Path(root)
    entries = []
    for t_idx, task in enumerate(tasks):
        height, width = (sizes or {}).get(task, (96, 128))
        for idx in range(samples_per_task):
            rel = f"{SPLIT_FOLDERS[TASK_SPLIT[task]]}/{task}/{idx:05d}"
            sample_dir = root / rel
            sample_dir.mkdir(parents=True, exist_ok=True)
            clip = synthetic_clip(height, width, base_frames + 2 * idx, seed=t_idx + idx)
            write_mp4(sample_dir / "ground_truth.mp4", clip, fps=fps)
            Image.fromarray(clip[0]).save(sample_dir / "first_frame.png")
            Image.fromarray(clip[-1]).save(sample_dir / "final_frame.png")
            prompt = f"Move the square to the right edge without changing its colour ({task}, sample {idx})."
            (sample_dir / "prompt.txt").write_text(prompt + "\n", encoding="utf-8")
            buf = io.BytesIO()
            Image.fromarray(clip[0]).save(buf, format="PNG")
            b64 = base64.b64encode(buf.getvalue()).decode("ascii")
            entries.append({
                "id": f"{task}_{idx:05d}",
                "prompt": prompt,
                "first_image": ("data:image/png;base64," + b64) if len(entries) % 2 else b64,
                "first_frame_path": f"{rel}/first_frame.png",
                "final_frame_path": f"{rel}/final_frame.png",
                "prompt_path": f"{rel}/prompt.txt",
                "ground_truth_video_path": f"{rel}/ground_truth.mp4",
            })
    if write_index:
        (root / INDEX_FILE).write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return root
