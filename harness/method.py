"""What a method is: ``run(instance, ctx) -> MethodOutput``; plus the one shared generation helper."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from harness.frames import frames_to_clip
from harness.types import Benchmark, Instance, MethodOutput, Student, Teacher, Trace


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
    # The dataclass of its traces (harness.types.Trace), which also names their audit. The runner writes its import
    # path into the run's manifests, so tables read the traces back typed without importing the method; None: the
    # records keep their traces as dicts.
    trace_type: ClassVar[type[Trace] | None] = None

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

