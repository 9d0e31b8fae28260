"""Teacher training data from attacks on the teacher itself: clips optimised to raise its P(Yes), labelled
by the scorer.

vlmteach's loop is a gradient attack on the teacher through the light decoder: a LoRA moves the one-step
latents wherever the teacher's P(Yes) rises, and a small teacher says yes to clips the scorer rejects
(docs/micro-world.md, The teacher). Clips of the loop itself (``loop_clips``) are few and costly (a student
forward and backward per step) and did not make the teacher robust in one or two rounds. The loop can
only show the teacher what the patch-linear decoder draws, an affine image of each latent pixel clamped
to [0, 1]; here the attacker moves those latents freely (a superset of what any LoRA reaches), so every
clip of the teacher's data can seed an attack, many at once, with no student. Labelled by the scorer,
the attacked clips teach the teacher what the loop will try; as in adversarial training, the rounds
alternate with training, each attacking the teacher the last round produced.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.micro.questions import questions_for
from harness.students.patch_linear import PatchLinearDecoder
from harness.teachers import QwenVLTeacher
from harness.types import Instance
from harness.frames import frames_to_clip
from lab.micro.training import data
from lab.micro.training.train_teacher import answer_ids, yes_no_inputs

GOAL_WEIGHT = 0.5  # vlmteach's lambda


@torch.no_grad()
def to_latents(decoder: PatchLinearDecoder, frames: torch.Tensor) -> torch.Tensor:
    """Frames [N, T, 3, H, W] -> the latents [N, T, C, h, w] whose (unclamped) decoding is nearest them in
    least squares: the decoder is injective, so these are the frames' own coordinates in what it draws."""
    weight = decoder.proj.weight[:, :, 0, 0].float()  # [3*s*s, C]
    patches = F.pixel_unshuffle(frames.flatten(0, 1).float(), decoder.s_upscale)  # [NT, 3*s*s, h, w]
    rows = patches.permute(0, 2, 3, 1) - decoder.proj.bias.float()  # [NT, h, w, 3*s*s]
    latents = rows @ torch.linalg.pinv(weight).T  # [NT, h, w, C]
    return latents.permute(0, 3, 1, 2).unflatten(0, frames.shape[:2])


@torch.no_grad()
def latent_clutter(decoder: PatchLinearDecoder, frames: torch.Tensor, generator: torch.Generator,
                   max_scale: float = 3.0) -> torch.Tensor:
    """Clip ``frames`` [T, 3, H, W] in [0, 1] redrawn by the decoder from its latents plus a random offset in
    a random share of cells, from a random frame on (frame 0, the condition, stays), the same offset in
    every frame give or take a little: the whole-cell repaints of vlmteach's loop (background, outline and
    solid at once, in any colour the decoder can draw, in every frame). Attacks find one such clip at a time;
    these sample the decoder's range broadly. Clamped as the loop's frames are."""
    latents = to_latents(decoder, frames[None].float())[0]  # [T, C, h, w]
    steps, channels, h, w = latents.shape
    spread = latents.std()
    start = int(torch.randint(1, steps, (1,), generator=generator))
    scale = spread * (0.5 + (max_scale - 0.5) * float(torch.rand(1, generator=generator)))
    cells = torch.rand(h, w, generator=generator) < 0.25 + 0.75 * float(torch.rand(1, generator=generator))
    offset = torch.randn(channels, h, w, generator=generator) * scale
    wobble = torch.randn(steps - start, channels, h, w, generator=generator) * scale * 0.25 * float(
        torch.rand(1, generator=generator))
    latents[start:] += ((offset + wobble) * cells).to(latents.device)
    return decoder(latents[None])[0]


def yes_loss(teacher: QwenVLTeacher, videos: list[torch.Tensor], instances: Sequence[Instance]
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip, vlmteach's loss on the template questions (lambda * goal NLL + (1 - lambda) * mean process
    NLL of "Yes"), summed over clips so that each clip's gradient is its own; also each clip's goal P(Yes)."""
    rows_video, rows_text, weights, goal_rows = [], [], [], []
    for video, x in zip(videos, instances, strict=True):
        goal, *process = questions_for(x)
        goal_rows.append(len(rows_text))
        for q, w in [(goal, GOAL_WEIGHT), *[(p, (1 - GOAL_WEIGHT) / len(process)) for p in process]]:
            rows_video.append(video)
            rows_text.append(q.text)
            weights.append(w)
    yes, _ = answer_ids(teacher)
    logits = teacher.model(**yes_no_inputs(teacher, rows_video, rows_text), logits_to_keep=1, use_cache=False).logits
    nll = -logits[:, -1].float().log_softmax(-1)[:, yes]
    return (nll * torch.tensor(weights, device=nll.device)).sum(), (-nll[goal_rows]).exp().detach()


def attack_clips(teacher: QwenVLTeacher, decoder: PatchLinearDecoder, frames: torch.Tensor,
                 instances: Sequence[Instance], *, steps: int, lr: float, snapshots: Sequence[int]
                 ) -> tuple[torch.Tensor, list[np.ndarray], torch.Tensor]:
    """Attack clips ``frames`` [N, T, 3, H, W] in [0, 1] (one instance each): Adam on their latents (frame 0,
    the condition, stays) to lower ``yes_loss`` for ``steps`` steps. Returns the decoded clips after each of
    ``snapshots`` updates, [len(snapshots) * N, T, 3, H, W] (half, snapshot-major), the scorer's question
    labels on each (``data.question_labels`` of the rounded clip) and the teacher's goal P(Yes) on each."""
    frames = frames.float()
    latents = to_latents(decoder, frames)
    condition, free = latents[:, :1], latents[:, 1:].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([free], lr=lr)
    kept, owners, p_goal = [], [], []
    teacher.model.requires_grad_(False)
    decoder.requires_grad_(False)
    for step in range(steps + 1):
        decoded = decoder(torch.cat([condition, free], dim=1))
        loss, p_yes = yes_loss(teacher, list(decoded), instances)
        if step in snapshots:
            kept.append(decoded.detach().half())
            owners.extend(instances)
            p_goal.append(p_yes)
        if step == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    clips = torch.cat(kept)
    labels = [data.question_labels(x, frames_to_clip(c.float())) for x, c in zip(owners, clips, strict=True)]
    return clips, labels, torch.cat(p_goal)
