"""Sampling schedules for the Wan students: a diffusers scheduler's, or a DMD student's timesteps."""

from __future__ import annotations

import copy

from diffusers import SchedulerMixin


def scheduler_schedule(scheduler: SchedulerMixin, num_steps: int) -> tuple[list[int], list[float]]:
    """The integer timesteps and the sigmas (final 0 left out) of ``num_steps`` steps of ``scheduler``,
    read from the scheduler itself so they are exactly what the diffusers pipelines use."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    probe = copy.deepcopy(scheduler)  # set_timesteps changes the scheduler's state
    probe.set_timesteps(num_steps)
    return [int(t) for t in probe.timesteps], [float(s) for s in probe.sigmas[:len(probe.timesteps)]]


def check_dmd_timesteps(timesteps: list[int]) -> list[int]:
    """Validate a few-step DMD schedule: strictly decreasing integers in (0, 1000]."""
    if not timesteps:
        raise ValueError("the dmd sampler needs a non-empty student.dmd_timesteps list, e.g. [1000, 757, 522]")
    if any(int(t) != t or not 0 < t <= 1000 for t in timesteps):
        raise ValueError(f"dmd timesteps must be integers in (0, 1000], got {list(timesteps)}")
    values = [int(t) for t in timesteps]
    if any(a <= b for a, b in zip(values, values[1:])):
        raise ValueError(f"dmd timesteps must be strictly decreasing, got {values}")
    return values
