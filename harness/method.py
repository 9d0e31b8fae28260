"""What a method is: ``run(instance, ctx) -> MethodOutput``; plus the one shared generation helper."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

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
    # Method settings left out of the config hash at these values: keys added later that, at these values, compute
    # what runs made before them computed, so those runs keep their hash (harness.config.generation_view).
    unhashed_defaults: ClassVar[dict[str, Any]] = {}
    # How many consecutive instances of one generation shape the runner hands ``run_many`` at once (a method's own
    # setting, where it has one: vlmteach's ``method.batch_instances``).
    batch_instances: int = 1

    @abc.abstractmethod
    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput: ...

    def run_many(self, instances: list[Instance], ctxs: list[MethodContext]) -> list[MethodOutput | Exception]:
        """Instances of one generation shape (frames, size, first frame or none) at once: per instance its output,
        or the exception its own run raised (recorded as its error). An exception raised out of ``run_many`` hits
        the whole batch: the runner then runs each instance alone. Here: one after another."""
        outcomes: list[MethodOutput | Exception] = []
        for instance, ctx in zip(instances, ctxs, strict=True):
            try:
                outcomes.append(self.run(instance, ctx))
            except Exception as exc:  # noqa: BLE001 - this instance's own failure, recorded as its error
                outcomes.append(exc)
        return outcomes


def generate_clip(student: Student, instance: Instance, seed: int) -> np.ndarray:
    """One plain generation: encode, fixed noise from ``seed``, full sampling, full decode."""
    cond = student.encode(instance)
    noise = student.make_noise(cond, seed)
    with torch.no_grad():
        latents = student.sample(cond, noise, seed=seed)
        frames = student.decode(latents, light=False)
    return frames_to_clip(frames)

