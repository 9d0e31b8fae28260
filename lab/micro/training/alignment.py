"""Gradient alignment: train the teacher so that, on a one-step prediction the student can reach, the
gradient of vlmteach's loss points the way the oracle's does (towards the instance's correct video).

vlmteach follows the teacher's gradient, not its answers. A teacher trained only on answers (robust ones
included) has input gradients that say nothing about where the goal lies: at the frozen predictions of 16
evaluation instances the cosine between the gradient of vlmteach's loss and that of the pixel MSE to the
correct video averaged 0.01 (docs/micro-world.md). Robust classifiers are known to have gradients that
point at the data ("perceptually aligned gradients"); here the alignment is asked for directly, by double
backpropagation: the loss is 1 - that cosine, on the generated frames (frame 0 is the condition), for clips
whose correct video the training set knows. The evaluation instances' correct videos are never seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from harness.teachers import QwenVLTeacher
from harness.types import Instance
from harness.frames import clip_to_frames
from lab.micro.training import data
from lab.micro.training.adversarial import yes_loss

MIN_DISTANCE = 1e-4  # pixel MSE to the correct video below which a clip is the correct video: no way to point


def gradient_cosine(teacher: QwenVLTeacher, frames: torch.Tensor, correct: torch.Tensor,
                    instances: Sequence[Instance], create_graph: bool = False) -> torch.Tensor:
    """Per clip of ``frames`` [N, T, 3, H, W], the cosine between the gradient of vlmteach's loss on the
    template questions (``adversarial.yes_loss``) and ``frames - correct`` (the pixel MSE's gradient), over
    frames 1 on. ``create_graph`` keeps the graph for training on it (double backpropagation: the fused
    attention kernels have no second derivative, so attention runs as plain matrix products)."""
    pixels = frames.detach().float().clone().requires_grad_(True)
    with sdpa_kernel(SDPBackend.MATH):
        loss, _ = yes_loss(teacher, list(pixels), instances)
        grad, = torch.autograd.grad(loss, pixels, create_graph=create_graph)
    toward = (pixels - correct.to(pixels.device)).detach()
    return F.cosine_similarity(grad[:, 1:].flatten(1), toward[:, 1:].flatten(1), dim=1)


def alignment_loss(teacher: QwenVLTeacher, batches, weight: float):
    """``train_teacher``'s ``extra_loss``: ``weight`` times the mean of 1 - ``gradient_cosine`` on the next
    of ``batches`` (``alignment_stream``)."""

    def loss():
        cos = gradient_cosine(teacher, *next(batches), create_graph=True)
        return weight * (1 - cos).mean(), f"alignment cos {cos.mean().item():.3f}"

    return loss


def alignment_stream(frames: torch.Tensor, owner: torch.Tensor, instances: Sequence[Instance], clips: int,
                     seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[Instance]]]:
    """Batches (clips, their instances' correct videos, instances) of ``clips`` random clips of ``frames``
    [N, T, 3, H, W] (instance ``owner[i]``) that are not already their correct video."""
    correct = {}

    def correct_video(i: int) -> torch.Tensor:
        if i not in correct:
            correct[i] = clip_to_frames(data.behaviour_clips(instances[i])[0]).to(frames.device)
        return correct[i]

    generator = torch.Generator().manual_seed(seed)
    while True:
        picked = torch.randint(len(frames), (4 * clips,), generator=generator)
        batch = frames[picked.to(frames.device)].float()
        target = torch.stack([correct_video(int(owner[i])) for i in picked])
        keep = ((batch - target)[:, 1:].square().flatten(1).mean(1) > MIN_DISTANCE).nonzero().flatten()[:clips]
        if not len(keep):
            continue
        yield batch[keep], target[keep], [instances[int(owner[picked[k]])] for k in keep]
