"""The micro world's instances: seeded generation, and storage as a HuggingFace ``datasets`` parquet.

One row per instance: id, task, category, split, prompt, first_frame (PNG through
``datasets.Image``), reference (the judge-only task spec as JSON text), num_frames, height,
width, fps. The committed sets (dev and evaluation) are named in ``sets.py``; ``make_data.py`` writes them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.micro.tasks import FAMILIES, SPLITS
from benchmarks.micro.world import FPS, NUM_FRAMES, SIZE, render_scene
from harness.types import Instance, UserError

if TYPE_CHECKING:
    import datasets

BENCH = "micro"
REGENERATE_COMMAND = "python -m benchmarks.micro.make_data"


@functools.cache
def features() -> datasets.Features:
    """The parquet's columns (``datasets`` is imported here: the micro world's other modules, which the GPU
    benchmarks import, run without it)."""
    import datasets

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "task": datasets.Value("string"),
            "category": datasets.Value("string"),
            "split": datasets.Value("string"),
            "prompt": datasets.Value("string"),
            "first_frame": datasets.Image(),
            "reference": datasets.Value("string"),
            "num_frames": datasets.Value("int32"),
            "height": datasets.Value("int32"),
            "width": datasets.Value("int32"),
            "fps": datasets.Value("int32"),
        }
    )


def instance_id(split: str, task: str, index: int) -> str:
    return f"{BENCH}/{split}/{task}/{index:05d}"


def _instance_rng(seed: int, split: str, task: str, index: int) -> np.random.Generator:
    # Each instance draws from its own stream: instance k is the same whatever n_per_family is.
    digest = hashlib.sha256(f"{seed}/{instance_id(split, task, index)}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def make_instance(split: str, task: str, index: int, seed: int) -> Instance:
    """Instance ``index`` of ``task`` in ``split``, a pure function of its arguments."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    family = FAMILIES[task]
    reference = family.sample(_instance_rng(seed, split, task, index), split)
    return Instance(
        id=instance_id(split, task, index),
        bench=BENCH,
        task=task,
        category=family.category,
        split=split,
        prompt=family.prompt(reference),
        num_frames=NUM_FRAMES,
        height=SIZE,
        width=SIZE,
        fps=FPS,
        first_frame=render_scene(family.start_scene(reference)),
        reference=reference,
    )


def generate_instances(split: str, n_per_family: int, seed: int, families: list[str] | None = None) -> list[Instance]:
    """``n_per_family`` fresh instances of every family (or of ``families``) in ``split``, sorted by id.

    Scripts take their seeds from ``sets.py`` (never a committed set's).
    """
    names = list(FAMILIES) if families is None else families
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown micro families {unknown}; known: {list(FAMILIES)}")
    return sorted(
        (make_instance(split, task, i, seed) for task in names for i in range(n_per_family)), key=lambda x: x.id
    )


def to_dataset(instances: list[Instance]) -> datasets.Dataset:
    import datasets

    rows = [
        {
            "id": x.id,
            "task": x.task,
            "category": x.category,
            "split": x.split,
            "prompt": x.prompt,
            "first_frame": x.first_frame,
            "reference": json.dumps(x.reference, sort_keys=True),
            "num_frames": x.num_frames,
            "height": x.height,
            "width": x.width,
            "fps": x.fps,
        }
        for x in instances
    ]
    return datasets.Dataset.from_list(rows, features=features())


def write_instances(instances: list[Instance], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_dataset(instances).to_parquet(str(path))


def read_instances(path: str | Path) -> list[Instance]:
    """Load instances written by ``write_instances``; a missing file is a UserError with the fix."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"micro benchmark data not found at {path}. `{REGENERATE_COMMAND}` regenerates the committed sets; "
            "bench.data_path must name an existing file written by benchmarks.micro.dataset.write_instances."
        )
    import datasets

    table = datasets.Dataset.from_parquet(str(path), features=features(), keep_in_memory=True)
    return [
        Instance(
            id=row["id"],
            bench=BENCH,
            task=row["task"],
            category=row["category"],
            split=row["split"],
            prompt=row["prompt"],
            num_frames=row["num_frames"],
            height=row["height"],
            width=row["width"],
            fps=row["fps"],
            first_frame=np.asarray(row["first_frame"].convert("RGB"), dtype=np.uint8),
            reference=json.loads(row["reference"]),
        )
        for row in table
    ]


def generate_set(seed: int, n_per_family: int) -> list[Instance]:
    """``n_per_family`` instances of every family in both splits, sorted by id: a committed set's layout."""
    return sorted((x for split in SPLITS for x in generate_instances(split, n_per_family, seed)), key=lambda x: x.id)
