"""Teacher training data from per-instance LoRA descents on the student: vlmteach's own loop against the
teacher, and an oracle's path to the correct video; the one-step predictions they pass through, labelled by
the scorer.

A teacher trained only on the student's unadapted outputs is fooled by the loop: on 16 evaluation
instances (lr 3e-4, 40 steps) its goal P(Yes) rose from 0.37 to 0.73 on average while the scorer,
reading the very frames the teacher saw, found the goal reached in 3 of them (2 before). Reward models
are made robust by training on the samples optimised against them; ``loop_clips`` makes those samples
(``pipeline.py --adversarial-kind loop``).

An honest teacher is not yet a useful one: along the oracle's path (pixel MSE to the correct video, which
does reach the goal) the robust teacher's goal P(Yes) stays a flat "no" until the goal is reached, so near
the frozen prediction its gradient does not say where the goal lies. ``path_clips`` makes that path's
snapshots, and ``goal_credit`` gives a clip whose goal the scorer rejects a graded goal target, its share of
the way from the frozen prediction to the correct video (below 0.5, so the answer stays "no").

Many instances run at once, each with its own LoRA (``WanStudent.batched_lora``): one at a time the loop
took 2.9 s per instance on an H200.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from harness.frames import clip_to_frames, frames_to_clip
from harness.seeding import derive_seed
from harness.students.wan import WanStudent
from harness.teachers import QwenVLTeacher
from harness.types import Instance
from harness.vlmteach.batched import adapter_grad_norms, clip_per_adapter
from harness.vlmteach.method import OPTIMIZERS, OptimisationDiverged, VlmTeach
from lab.micro.training import data
from lab.micro.training.adversarial import yes_loss

# A descent's loss on the light-decoded one-step predictions of its batch (one clip [T, 3, H, W] per
# instance, with the correct videos' frames): summed over instances, and a per-instance statistic to keep.
Objective = Callable[[list[torch.Tensor], list[Instance], torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def loop_clips(student: WanStudent, teacher: QwenVLTeacher, instances: Sequence[Instance], *,
               lrs: Sequence[float] = (1e-4, 3e-4, 1e-3), snapshots: Sequence[int] = (5, 15, 30),
               seed: int = 0, batch: int = 64, goal_credit: float = 0.0, log=print
               ) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray], torch.Tensor]:
    """For each instance, vlmteach's loop (``VlmTeach.optimise`` with template questions, lambda 0.5, a
    learning rate drawn from ``lrs``, AdamW with clipping as configured, no early stop) from a noise and a
    LoRA of its own; ``batch`` instances of one learning rate run together. Returns the light-decoded
    one-step predictions after each of ``snapshots`` updates, frames [N, T, 3, H, W] (half), the instance
    index of each, the scorer's labels per ``questions_for`` (``graded_labels``) and the teacher's goal
    P(Yes) on each."""
    teacher.model.requires_grad_(False)

    def objective(decoded, members, correct):
        return yes_loss(teacher, decoded, members)  # summed: each LoRA gets its own gradient

    return _descents(student, instances, objective, "loop", lrs, snapshots, seed, batch, goal_credit, log)


def path_clips(student: WanStudent, instances: Sequence[Instance], *, lrs: Sequence[float] = (3e-4, 1e-3),
               snapshots: Sequence[int] = (2, 5, 10, 15, 20, 30, 40), seed: int = 0, batch: int = 64,
               goal_credit: float = 0.0, log=print) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """As ``loop_clips``, with the oracle's loss instead of the teacher's (``measure.py --oracle``): pixel
    MSE of the light-decoded one-step prediction to the instance's correct video. At lr 1e-3 that path
    reaches the goal in most instances within 40 steps, through predictions part-way there."""

    def objective(decoded, members, correct):
        errors = torch.stack([(d - c).square().mean() for d, c in zip(decoded, correct, strict=True)])
        return errors.sum(), errors.detach()

    frames, owners, labels, _ = _descents(student, instances, objective, "path", lrs, snapshots, seed, batch,
                                          goal_credit, log)
    return frames, owners, labels


def graded_labels(instance: Instance, frames: torch.Tensor, progress: float, goal_credit: float) -> np.ndarray:
    """The scorer's labels on ``frames`` [T, 3, H, W]; where it rejects the goal, the goal's target is
    ``goal_credit`` times ``progress`` (clamped to [0, 1]): partial credit for a prediction part-way to the
    correct video, so that the teacher's P(Yes) can rise before the goal is reached."""
    labels = data.question_labels(instance, frames_to_clip(frames.float()))
    if labels[0] < 0.5:
        labels[0] = goal_credit * min(max(progress, 0.0), 1.0)
    return labels


def _descents(student: WanStudent, instances: Sequence[Instance], objective: Objective, kind: str,
              lrs: Sequence[float], snapshots: Sequence[int], seed: int, batch: int, goal_credit: float, log):
    draws = np.random.default_rng(seed).choice(len(lrs), size=len(instances))
    frames, owners, progress, stats = [], [], [], []
    done = 0
    for k, lr in enumerate(lrs):
        members = np.flatnonzero(draws == k).tolist()
        for start in range(0, len(members), batch):
            ids = members[start:start + batch]
            clips, part, stat = _batched_descent(student, [instances[i] for i in ids], ids, objective, kind,
                                                 VlmTeach(lr=float(lr), early_stop=False, num_steps=max(snapshots)),
                                                 snapshots, seed)
            frames.append(clips)
            owners.append(torch.tensor(ids).repeat(len(snapshots)))  # snapshot-major, as the clips
            progress.append(part)
            stats.append(stat)
            done += len(ids)
            log(f"{kind} clips: {done}/{len(instances)} instances")
    student.reset_lora(seed)
    frames_all, owners_all, progress_all = torch.cat(frames), torch.cat(owners), torch.cat(progress)
    labels = [graded_labels(instances[int(i)], c, float(p), goal_credit)
              for i, c, p in zip(owners_all, frames_all, progress_all)]
    return frames_all, owners_all, labels, torch.cat(stats)


def _batched_descent(student: WanStudent, instances: list[Instance], ids: list[int], objective: Objective,
                     kind: str, method: VlmTeach, snapshots: Sequence[int], seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``method``'s optimiser on ``objective`` for several instances at once. Returns the light-decoded
    clips at ``snapshots`` (snapshot-major), each one's progress towards the correct video (1 - its pixel
    MSE to it over the frozen prediction's) and the objective's statistic on each."""
    conds = [student.encode(x) for x in instances]
    cond = student.stack_conditions(conds)
    noise = torch.cat([student.make_noise(c, derive_seed(seed, kind, i)) for c, i in zip(conds, ids)])
    correct = [clip_to_frames(data.behaviour_clips(x)[0]).to(noise.device) for x in instances]
    kept, progress, stats = [], [], []
    with student.batched_lora([derive_seed(seed, "lora", i) for i in ids]) as adapters:
        params = adapters.params
        optimizer = OPTIMIZERS[method.optimizer](params, **method.optimizer_kwargs)  # element-wise: one per LoRA
        for step in range(method.num_steps + 1):
            x0 = student.predict_x0(cond, noise, student.sigmas[0])
            decoded = [student.decode(x0[j:j + 1], light=True) for j in range(len(instances))]
            loss, stat = objective(decoded, instances, correct)
            if step == 0 or step in snapshots:
                with torch.no_grad():
                    errors = torch.stack([(d.clamp(0, 1) - c).square().mean() for d, c in zip(decoded, correct)])
                if step == 0:
                    frozen_errors = errors
            if step in snapshots:
                kept.append(torch.stack(decoded).detach().clamp(0, 1).half())
                progress.append((1 - errors / frozen_errors.clamp(min=1e-8)).cpu())
                stats.append(stat.cpu())
            if step == method.num_steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norms = adapter_grad_norms(params)  # each clipped by its own norm, as VlmTeach clips one LoRA
            if not torch.isfinite(norms).all():
                raise OptimisationDiverged(f"{kind} clips: gradient norm {norms.tolist()} at step {step}")
            if method.grad_clip is not None:
                clip_per_adapter(params, method.grad_clip, norms)
            optimizer.step()
    return torch.cat(kept), torch.cat(progress), torch.cat(stats)
