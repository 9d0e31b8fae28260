"""Building the judge request for one generated video, in the official content order.

Order (eval/eval.py, ``qwen_vl_processor``): input image, prompt, ground-truth image, implicit
explanation, input-video frames, frames of the video to evaluate, then the checklist questions
(numbered; the metric names are not shown). Videos are sampled every ``int(fps / 2)``-th frame
(about 2 fps) and shrunk to a longest side of at most 512 pixels with OpenCV's INTER_AREA, as
upstream. Frames are decoded by PyAV, which gives the same pixels as upstream's cv2.VideoCapture on
the harness's H.264 files, and JPEG-encoded by Pillow at quality 95 (harness.chat_api), which gives
the same bytes as upstream's ``cv2.imencode('.jpg')`` (both checked in tests/test_ruler_judge.py).
Files (input and ground-truth images) are sent byte for byte as upstream; upstream labels every one
``image/jpeg``, the harness names the type its bytes declare (PNG for PNG).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from harness.types import Instance, ScoringError
from harness.video import CorruptVideoError, read_mp4, video_fps

MAX_SIDE = 512
SAMPLE_FPS = 2


@dataclass(frozen=True, eq=False)
class ImageInput:
    """One image of the request: a file sent as it is, or a decoded video frame (uint8 [H, W, 3])."""

    path: Path | None = None
    array: np.ndarray | None = None

    def sha256(self) -> str:
        if self.path is not None:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        arr = np.ascontiguousarray(self.array)
        return hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).hexdigest()

    def to_array(self) -> np.ndarray:
        return self.array if self.array is not None else load_rgb(self.path)


Part = str | ImageInput


@dataclass(frozen=True, eq=False)
class JudgeRequest:
    """The user-message parts of one judge call, plus what the reply must match."""

    parts: tuple[Part, ...]
    n_questions: int
    video_sha256: str

    def digest(self) -> str:
        """A content hash: texts, image bytes and the evaluated video's sha256."""
        items = [p if isinstance(p, str) else {"image_sha256": p.sha256()} for p in self.parts]
        blob = json.dumps({"parts": items, "n": self.n_questions, "video": self.video_sha256}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def n_images(self) -> int:
        return sum(isinstance(p, ImageInput) for p in self.parts)


def build_request(instance: Instance, video: Path) -> JudgeRequest:
    """The official request for ``video`` generated for ``instance`` (whose ``reference`` holds
    the checklist and the judge-only files)."""
    ref = instance.reference
    checklist = ref["checklist"]
    parts: list[Part] = []
    if ref.get("input_image"):
        parts += ["\n## Input Image:\n", ImageInput(path=Path(ref["input_image"]))]
    parts.append(f"\n## Input Prompt:\n{instance.prompt}\n")
    if ref.get("gt_image"):
        parts += ["\n## Ground truth Image:\n", ImageInput(path=Path(ref["gt_image"]))]
    if ref.get("implicit_explanation"):
        parts.append(f"\n## Implicit Explanation:\n{ref['implicit_explanation']}\n")
    if ref.get("input_video"):
        parts.append("\n## Input Video:\n")
        parts += [ImageInput(array=f) for f in sample_frames(Path(ref["input_video"]))]
    parts.append("\n## Video to evaluate:\n")
    parts += [ImageInput(array=f) for f in sample_frames(video)]
    parts.append("\n## CheckList Questions:\n")
    parts += [f"\n# Question {i}:\n{question}\n" for i, (_metric, question) in enumerate(checklist, start=1)]
    return JudgeRequest(parts=tuple(parts), n_questions=len(checklist), video_sha256=file_sha256(video))


def sample_frames(video: Path, max_side: int = MAX_SIDE) -> list[np.ndarray]:
    """Every ``int(fps / 2)``-th frame (from frame 0), shrunk to a longest side <= ``max_side``."""
    try:
        clip = read_mp4(video)  # first: it turns a missing or undecodable file into CorruptVideoError
        fps = video_fps(video)
    except (CorruptVideoError, OSError) as exc:
        raise ScoringError(f"cannot read video for the judge: {exc}") from exc
    step = int(fps / SAMPLE_FPS) if fps > 0 else 1
    if step == 0:
        # The official sampler divides by zero here; say what to do instead.
        raise ScoringError(f"{video} is saved at {fps:g} fps; RULER's frame sampler needs >= 2 fps: re-save it")
    return [shrink(frame, max_side) for frame in clip[::step]]


def shrink(frame: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Scale down with OpenCV's INTER_AREA, as upstream, so the longest side is <= ``max_side``."""
    h, w = frame.shape[:2]
    if max(h, w) <= max_side:
        return frame
    scale = max_side / max(h, w)
    # Pillow's BOX filter differs from INTER_AREA at non-integer scales (up to 18 levels on 720p frames).
    return cv2.resize(frame, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)


def load_rgb(path: str | Path) -> np.ndarray:
    """An image file as a writable uint8 [H, W, 3] array (torch.from_numpy warns on read-only ones)."""
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
