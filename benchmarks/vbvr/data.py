"""Reading the released VBVR-Bench-Data: ``VBVR-Bench.json`` plus the GT folder tree.

::

    <root>/VBVR-Bench.json    list of {id, prompt, first_image (base64 PNG), first_frame_path,
                              final_frame_path, prompt_path, ground_truth_video_path}
    <root>/{In-Domain_50,Out-of-Domain_50}/<task>/<00000..>/{first_frame.png, final_frame.png,
                              ground_truth.mp4, prompt.txt}

Split, task and sample index come from the relative paths, as in the official tools. Without the
JSON index the tree alone is read.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.vbvr.tasks import FOLDER_SPLITS, TASK_SPLIT
from harness.types import UserError

INDEX_FILE = "VBVR-Bench.json"
HUB_ID = "Video-Reason/VBVR-Bench-Data"
DOWNLOAD_HINT = (
    f"download it with `make data BENCH=vbvr` or `hf download {HUB_ID} --repo-type dataset --local-dir data/vbvr` "
    "and set bench.data_dir=data/vbvr (or VBVR_DATA_DIR)"
)
_PATH_KEYS = ("first_frame_path", "final_frame_path", "prompt_path", "ground_truth_video_path")
_DATA_URL_PREFIX = re.compile(r"^data:image/[^;]+;base64,", re.IGNORECASE)
_SAMPLE_DIR = re.compile(r"^\d{5}$")


@dataclass(frozen=True)
class Sample:
    """One released sample, before any generation setting is applied."""

    split: str  # id | ood
    task: str
    index: int
    prompt: str
    sample_dir: Path  # holds first_frame.png, final_frame.png, ground_truth.mp4, prompt.txt
    first_image_b64: str | None  # the index's inline first frame, used when the PNG is absent
    source_id: str | None  # the index's own ``id`` field

    @property
    def first_frame_path(self) -> Path:
        return self.sample_dir / "first_frame.png"

    @property
    def final_frame_path(self) -> Path:
        return self.sample_dir / "final_frame.png"

    @property
    def gt_video_path(self) -> Path:
        return self.sample_dir / "ground_truth.mp4"

    def first_frame(self) -> np.ndarray:
        """uint8 RGB [H, W, 3] from first_frame.png, else from the index's base64 copy."""
        if self.first_frame_path.is_file():
            return _rgb(self.first_frame_path, self.first_frame_path)
        if self.first_image_b64:
            payload = _DATA_URL_PREFIX.sub("", self.first_image_b64)
            return _rgb(io.BytesIO(base64.b64decode(payload)), f"the first_image of {self.task}/{self.index:05d} in {INDEX_FILE}")
        raise UserError(
            f"no first frame for {self.task}/{self.index:05d}: {self.first_frame_path} missing; {DOWNLOAD_HINT}"
        )


def _rgb(source: Path | io.BytesIO, name: object) -> np.ndarray:
    """Read before any model loads: an image PIL cannot or will not open (truncated, not an image, over PIL's
    decompression-bomb limit) stops the run here, named, instead of failing deep inside it."""
    try:
        with Image.open(source) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read the first frame {name}: {type(exc).__name__}: {exc}; {DOWNLOAD_HINT}") from None


def resolve_root(data_dir: str | Path | None, hub_id: str | None, hub_revision: str | None) -> Path:
    """The local data root: ``data_dir`` if given, else a snapshot of ``hub_id`` (cache or download)."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise UserError(f"VBVR-Bench data directory {root} does not exist; {DOWNLOAD_HINT}")
        return root
    if hub_id is None:
        raise UserError(f"set bench.data_dir or bench.hub_id for VBVR-Bench; {DOWNLOAD_HINT}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=hub_id, repo_type="dataset", revision=hub_revision))
    except Exception as exc:  # offline, not cached, no access: all fixed the same way
        raise UserError(
            f"cannot get the hub dataset {hub_id} ({type(exc).__name__}: {exc}); {DOWNLOAD_HINT}"
        ) from exc


def read_samples(root: Path) -> list[Sample]:
    """All samples under ``root``, from the JSON index when present, else from the folder tree."""
    index = root / INDEX_FILE
    samples = _from_index(root, index) if index.is_file() else _from_tree(root)
    if not samples:
        raise UserError(f"no VBVR-Bench samples found under {root}; {DOWNLOAD_HINT}")
    seen: set[tuple[str, int]] = set()
    for s in samples:
        if (s.task, s.index) in seen:
            raise UserError(f"{root}: sample {s.task}/{s.index:05d} listed twice")
        seen.add((s.task, s.index))
    return samples


def _from_index(root: Path, index: Path) -> list[Sample]:
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{index} is not valid JSON ({exc}); {DOWNLOAD_HINT}") from exc
    if not isinstance(entries, list):
        raise UserError(f"{index} must hold a list of samples, got {type(entries).__name__}")
    samples = []
    for n, entry in enumerate(entries):
        locations = {_parse_location(entry[k], index) for k in _PATH_KEYS if entry.get(k)}
        if len(locations) != 1:
            raise UserError(f"{index} entry {n}: its paths name {len(locations)} samples: {sorted(locations)}")
        folder, task, index_str = locations.pop()
        samples.append(
            _sample(folder, task, index_str, root / folder / task / index_str,
                    entry.get("prompt"), entry.get("first_image"), entry.get("id"))
        )
    return samples


def _parse_location(rel_path: str, index: Path) -> tuple[str, str, str]:
    """(split folder, task, sample dir) from ``[...]/<split folder>/<task>/<00000>/<file>``."""
    parts = [p for p in str(rel_path).replace("\\", "/").split("/") if p]
    start = next((n for n, p in enumerate(parts) if p in FOLDER_SPLITS), None)
    if start is None or len(parts) - start < 4 or not _SAMPLE_DIR.match(parts[start + 2]):
        raise UserError(f"{index}: path {rel_path!r} is not <In-Domain_50|Out-of-Domain_50>/<task>/<00000>/<file>")
    return parts[start], parts[start + 1], parts[start + 2]


def _from_tree(root: Path) -> list[Sample]:
    samples = []
    for folder in FOLDER_SPLITS:
        for sample_dir in sorted((root / folder).glob("*/*")):
            if sample_dir.is_dir() and _SAMPLE_DIR.match(sample_dir.name):
                samples.append(_sample(folder, sample_dir.parent.name, sample_dir.name, sample_dir, None, None, None))
    return samples


def _sample(folder: str, task: str, index_str: str, sample_dir: Path, prompt: str | None,
            first_image_b64: str | None, source_id: object) -> Sample:
    split = FOLDER_SPLITS[folder]
    if task not in TASK_SPLIT:
        raise UserError(f"{sample_dir}: unknown VBVR-Bench task {task!r} (not one of VBVR-EvalKit's 100 tasks)")
    if TASK_SPLIT[task] != split:
        raise UserError(f"{sample_dir}: task {task} is in split {TASK_SPLIT[task]!r}, not in folder {folder}")
    prompt_file = sample_dir / "prompt.txt"
    if prompt_file.is_file():  # what the official inference script conditions on
        prompt = prompt_file.read_text(encoding="utf-8")
    if not prompt or not prompt.strip():
        raise UserError(f"{sample_dir}: no prompt (prompt.txt missing and none in the index); {DOWNLOAD_HINT}")
    return Sample(
        split=split,
        task=task,
        index=int(index_str),
        prompt=prompt.strip(),
        sample_dir=sample_dir,
        first_image_b64=first_image_b64,
        source_id=None if source_id is None else str(source_id),
    )
