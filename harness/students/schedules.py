"""Sampling schedules (flow-matching sigmas) for the Wan students."""

from __future__ import annotations

from diffusers import UniPCMultistepScheduler


def shifted_flow_sigmas(num_steps: int, shift: float) -> list[float]:
    """The ``num_steps`` sigmas of Wan's diffusers scheduler (UniPC, flow sigmas, ``flow_shift=shift``).

    Taken from the scheduler itself so the schedule is exactly what ``WanPipeline`` uses; the final 0 is
    left out (the sampler appends it).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=shift
    )
    scheduler.set_timesteps(num_steps)
    return [float(s) for s in scheduler.sigmas[:-1]]


def check_dmd_sigmas(sigmas: list[float]) -> list[float]:
    """Validate a few-step DMD schedule: strictly decreasing values in (0, 1]."""
    values = [float(s) for s in sigmas]
    if not values:
        raise ValueError("the dmd sampler needs a non-empty student.sigmas list, e.g. [1.0, 0.757, 0.522]")
    if any(not 0.0 < s <= 1.0 for s in values):
        raise ValueError(f"dmd sigmas must lie in (0, 1], got {values}")
    if any(a <= b for a, b in zip(values, values[1:])):
        raise ValueError(f"dmd sigmas must be strictly decreasing, got {values}")
    return values
