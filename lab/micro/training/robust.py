"""Robust training of the teacher: yes/no rows moved, within a small L2 ball, the way that raises the teacher's
loss against their own label (projected gradient ascent, as Madry et al. train robust classifiers), and trained
on with that label.

vlmteach follows the teacher's input gradient. A classifier trained only on clean inputs has gradients that
look like noise; one trained this way is known to have "perceptually aligned gradients" (Tsipras et al.,
Santurkar et al., 2019): its gradient changes the input towards what the other answer would look like. The
ball is small beside the distance between two behaviours of one instance (pixel L2 about 29 over a 17-frame
clip), so the label stays the scorer's. Unlike the adversarial rounds (``adversarial.py``), whose unbounded
attacks are relabelled by the scorer, nothing here changes what the clip shows.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from harness.teachers import QwenVLTeacher
from lab.micro.training.train_teacher import yes_no_loss

STEPS = 3  # ascent steps per batch, each of 2.5 * epsilon / STEPS (Madry et al.'s ratio)
SHARE = 0.5  # share of each batch's rows that are moved; the rest stay clean


def perturb_rows(teacher: QwenVLTeacher, videos: list[torch.Tensor], questions: list[str], labels: torch.Tensor, *,
                 epsilon: float, steps: int = STEPS) -> list[torch.Tensor]:
    """Each row's video [T, 3, H, W] in [0, 1] plus its own offset of L2 norm at most ``epsilon`` (frame 0, the
    condition the student never changes, stays), found by ``steps`` normalised ascent steps on ``yes_no_loss``
    against the row's label; returned detached and clamped to [0, 1]."""
    clean = [v.detach().float() for v in videos]
    offsets = [torch.zeros_like(v, requires_grad=True) for v in clean]
    step_size = 2.5 * epsilon / steps
    for _ in range(steps):
        loss, _ = yes_no_loss(teacher, [(v + d).clamp(0, 1) for v, d in zip(clean, offsets)], questions, labels)
        grads = torch.autograd.grad(loss, offsets)
        with torch.no_grad():
            for d, g in zip(offsets, grads):
                g[0] = 0
                d += step_size * g / g.norm().clamp_min(1e-12)
                d *= (epsilon / d.norm().clamp_min(1e-12)).clamp(max=1.0)
    return [(v + d.detach()).clamp(0, 1) for v, d in zip(clean, offsets)]


def robust_stream(teacher: QwenVLTeacher, batches: Iterator, *, epsilon: float, seed: int, share: float = SHARE
                  ) -> Iterator[tuple[list[torch.Tensor], list[str], torch.Tensor]]:
    """``batches`` (``yes_no_stream``'s (videos, questions, labels)) with a ``share`` of each batch's rows
    replaced by ``perturb_rows`` of them, against the teacher as it is at that step."""
    if epsilon <= 0:
        raise ValueError(f"the robust ball's radius must be positive, got {epsilon}")
    generator = torch.Generator().manual_seed(seed)
    for videos, questions, labels in batches:
        moved = torch.nonzero(torch.rand(len(videos), generator=generator) < share).flatten().tolist()
        if moved:
            new = perturb_rows(teacher, [videos[i] for i in moved], [questions[i] for i in moved], labels[moved],
                               epsilon=epsilon)
            videos = list(videos)
            for i, video in zip(moved, new):
                videos[i] = video
        yield videos, questions, labels
