"""The one optimisation loop every micro model uses: AdamW, warm-up + cosine decay, clipping, a time cap."""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

WARMUP = 0.05


def fit(params: list[torch.nn.Parameter], loss_fn: Callable[[int], tuple[torch.Tensor, str]], *, steps: int, lr: float,
        name: str, weight_decay: float = 0.0, time_cap_s: float | None = None, log: Callable[[str], None] = print
        ) -> int:
    """Run up to ``steps`` updates of ``loss_fn(step) -> (loss, message)``; returns the number run.

    Progress is the larger of the step fraction and the fraction of ``time_cap_s`` used, and the learning
    rate follows it (warm-up, then cosine to 0): a time-capped run still anneals before it stops. Step
    counts (and so results) are exactly reproducible only when the cap is not reached.
    """
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    start = time.perf_counter()
    progress, step = 0.0, 0
    while step < steps and progress < 1.0:
        factor = progress / WARMUP if progress < WARMUP else 0.5 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr * max(factor, 0.01)
        loss, message = loss_fn(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: loss is {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        elapsed = time.perf_counter() - start
        progress = max(step / steps, elapsed / time_cap_s if time_cap_s else 0.0)
        if step % max(1, steps // 10) == 1 or progress >= 1.0 or step == steps:
            log(f"{name} step {step}/{steps} {message} ({elapsed:.0f}s)")
    if step < steps:
        log(f"{name}: time cap {time_cap_s:.0f}s reached after {step}/{steps} steps")
    return step
