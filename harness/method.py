"""What a method is: ``run(instance, ctx) -> MethodOutput``; plus the one shared generation helper."""

from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from harness.types import Benchmark, Instance, MethodOutput, Student, Teacher
from harness.video import frames_to_clip


def derive_seed(base_seed: int, *parts: object) -> int:
    """A 31-bit seed from a base seed and stable parts (instance id, sample index, ...).

    Independent of shard order, world size and process: the same inputs give the same seed.
    """
    text = "/".join([str(base_seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class MethodContext:
    student: Student
    teacher: Teacher | None
    bench: Benchmark
    seed: int  # the instance seed, derived from (base seed, instance id)


class Method(abc.ABC):
    """A method declares, on its class, what the runner needs to know before it builds anything."""

    needs_teacher: ClassVar[bool] = False  # the runner loads the run's teacher (and hashes its config) only then
    is_oracle: ClassVar[bool] = False  # reads the answer key (the benchmark's scorer): an upper bound, marked in tables

    @abc.abstractmethod
    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput: ...


def generate_clip(student: Student, instance: Instance, seed: int) -> np.ndarray:
    """One plain generation: encode, fixed noise from ``seed``, full sampling, full decode."""
    cond = student.encode(instance)
    noise = student.make_noise(cond, seed)
    with torch.no_grad():
        latents = student.sample(cond, noise, seed=seed)
        frames = student.decode(latents, light=False)
    return frames_to_clip(frames)


def uniform_frame_indices(num_frames: int, k: int) -> list[int]:
    """``k`` frame indices spread evenly over ``num_frames`` (first and last included).

    With ``k >= num_frames`` every frame is used once: a teacher is never shown duplicates (repeats
    would stretch time in its eyes; in the paper K=24 is well below the 89 generated frames).
    """
    if num_frames < 1 or k < 1:
        raise ValueError(f"need at least one frame and k >= 1, got num_frames={num_frames}, k={k}")
    if k >= num_frames:
        return list(range(num_frames))
    if k == 1:
        return [num_frames - 1]
    return [round(i * (num_frames - 1) / (k - 1)) for i in range(k)]
