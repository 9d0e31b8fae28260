"""Teacher training data from vlmteach's own loop: the one-step predictions a LoRA reaches by optimising
against the teacher, labelled by the scorer.

A teacher trained only on the student's unadapted outputs is fooled by the loop: on 16 evaluation
instances (lr 3e-4, 40 steps) its goal P(Yes) rose from 0.37 to 0.73 on average while the scorer,
reading the very frames the teacher saw, found the goal reached in 3 of them (2 before). Reward models
are made robust by training on the samples optimised against them; this module makes those samples
(``pipeline.py --adversarial-kind loop``). Many instances run at once, each with its own LoRA
(``WanStudent.batched_lora``): one at a time the loop took 2.9 s per instance on an H200.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from benchmarks.micro.training import data
from benchmarks.micro.training.adversarial import yes_loss
from harness.method import derive_seed
from harness.students.wan import WanStudent
from harness.teachers import QwenVLTeacher
from harness.types import Conditioning, Instance
from harness.video import frames_to_clip
from harness.vlmteach.method import OPTIMIZERS, OptimisationDiverged, VlmTeach


def loop_clips(student: WanStudent, teacher: QwenVLTeacher, instances: Sequence[Instance], *,
               lrs: Sequence[float] = (1e-4, 3e-4, 1e-3), snapshots: Sequence[int] = (5, 15, 30),
               seed: int = 0, batch: int = 64, log=print
               ) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray], torch.Tensor]:
    """For each instance, vlmteach's loop (``VlmTeach.optimise`` with template questions, lambda 0.5, a
    learning rate drawn from ``lrs``, AdamW with clipping as configured, no early stop) from a noise and a
    LoRA of its own; ``batch`` instances of one learning rate run together. Returns the light-decoded
    one-step predictions after each of ``snapshots`` updates, frames [N, T, 3, H, W] (half), the instance
    index of each, the scorer's labels per ``data.questions`` and the teacher's goal P(Yes) on each."""
    draws = np.random.default_rng(seed).choice(len(lrs), size=len(instances))
    frames, owners, p_goal = [], [], []
    done = 0
    for k, lr in enumerate(lrs):
        members = np.flatnonzero(draws == k).tolist()
        for start in range(0, len(members), batch):
            ids = members[start:start + batch]
            clips, p_yes = _batched_loop(student, teacher, [instances[i] for i in ids], ids,
                                         VlmTeach(lr=float(lr), early_stop=False, num_steps=max(snapshots)),
                                         snapshots, seed)
            frames.append(clips)
            owners.append(torch.tensor(ids).repeat(len(snapshots)))  # snapshot-major, as the clips
            p_goal.append(p_yes)
            done += len(ids)
            log(f"loop clips: {done}/{len(instances)} instances")
    student.reset_lora(seed)
    frames_all, owners_all = torch.cat(frames), torch.cat(owners)
    labels = [data.question_labels(instances[int(i)], frames_to_clip(c.float())) for i, c in zip(owners_all, frames_all)]
    return frames_all, owners_all, labels, torch.cat(p_goal)


def _batched_loop(student: WanStudent, teacher: QwenVLTeacher, instances: list[Instance], ids: list[int],
                  method: VlmTeach, snapshots: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``method``'s loop for several instances at once; the light-decoded clips at ``snapshots`` (snapshot-
    major) and the teacher's goal P(Yes) on each."""
    conds = [student.encode(x) for x in instances]
    cond = _stacked(conds)
    noise = torch.cat([student.make_noise(c, derive_seed(seed, "loop", i)) for c, i in zip(conds, ids)])
    teacher.model.requires_grad_(False)
    kept, p_goal = [], []
    with student.batched_lora([derive_seed(seed, "lora", i) for i in ids]) as params:
        optimizer = OPTIMIZERS[method.optimizer](params, **method.optimizer_kwargs)  # element-wise: one per LoRA
        for step in range(method.num_steps + 1):
            x0 = student.predict_x0(cond, noise, student.sigmas[0])
            decoded = [student.decode(x0[j:j + 1], light=True) for j in range(len(instances))]
            loss, p_yes = yes_loss(teacher, decoded, instances)  # summed: each LoRA gets its own gradient
            if step in snapshots:
                kept.append(torch.stack(decoded).detach().clamp(0, 1).half())
                p_goal.append(p_yes)
            if step == method.num_steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _clip_per_instance(params, method.grad_clip, step)
            optimizer.step()
    return torch.cat(kept), torch.cat(p_goal).cpu()


def _stacked(conds: list[Conditioning]) -> Conditioning:
    """One batched conditioning from single ones (same latent shape)."""
    shape = conds[0].latent_shape
    if any(c.latent_shape != shape for c in conds):
        raise ValueError("loop clips batch instances of one latent shape only")
    first = None if conds[0].first_latent is None else torch.cat([c.first_latent for c in conds])
    return replace(conds[0], prompt_embeds=torch.cat([c.prompt_embeds for c in conds]), first_latent=first,
                   latent_shape=(len(conds), *shape[1:]))


def _clip_per_instance(params: list[torch.Tensor], max_norm: float | None, step: int) -> None:
    """Each adapter's gradient clipped by its own total norm, as ``VlmTeach`` clips one adapter's."""
    norms = torch.stack([p.grad.flatten(1).square().sum(1) for p in params]).sum(0).sqrt()  # [N]
    if not torch.isfinite(norms).all():
        raise OptimisationDiverged(f"loop clips: gradient norm {norms.tolist()} at step {step}", {"per_step": []})
    if max_norm is None:
        return
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # torch's clip_grads_with_norm_ formula
    for p in params:
        p.grad.mul_(coef.view(-1, *[1] * (p.ndim - 1)))
