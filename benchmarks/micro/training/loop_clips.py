"""Teacher training data from vlmteach's own loop: the one-step predictions a LoRA reaches by optimising
against the teacher, labelled by the scorer.

A teacher trained only on the student's unadapted outputs is fooled by the loop: on 16 evaluation
instances (lr 3e-4, 40 steps) its goal P(Yes) rose from 0.37 to 0.73 on average while the scorer,
reading the very frames the teacher saw, found the goal reached in 3 of them (2 before). Reward models
are made robust by training on the samples optimised against them; this module makes those samples
(``pipeline.py --loop-per-family N``). Two rounds weakened the attack but did not stop it
(docs/micro-world.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from benchmarks.micro.training import data
from harness.method import derive_seed
from harness.students.wan import WanStudent
from harness.teachers import QwenVLTeacher
from harness.types import Instance, Queries
from harness.video import frames_to_clip
from harness.vlmteach.loss import weigh_questions
from harness.vlmteach.method import VlmTeach


def _template_queries(instance: Instance) -> Queries:
    goal, *process = (q.text for q in data.questions(instance))
    return Queries(goal=goal, process=process)


def loop_clips(student: WanStudent, teacher: QwenVLTeacher, instances: Sequence[Instance], *,
               lrs: Sequence[float] = (1e-4, 3e-4, 1e-3), snapshots: Sequence[int] = (5, 15, 30),
               seed: int = 0, log=print) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """For each instance, vlmteach's loop (``VlmTeach.optimise``: template questions, lambda 0.5, a learning rate
    drawn from ``lrs``, AdamW with clipping as configured, no early stop) from a noise of its own; the
    light-decoded one-step prediction after each of ``snapshots`` updates. Returns frames [N, T, 3, H, W]
    (half), the instance index of each, and the scorer's labels per ``data.questions``."""
    rng = np.random.default_rng(seed)
    frames, owners, labels = [], [], []
    for i, x in enumerate(instances):
        method = VlmTeach(lr=float(rng.choice(lrs)), early_stop=False, num_steps=max(snapshots))

        def keep(step: int, decoded: torch.Tensor, i: int = i, x: Instance = x) -> None:
            if step in snapshots:
                clip = decoded.float().clamp(0, 1)
                frames.append(clip.half())
                owners.append(i)
                labels.append(data.question_labels(x, frames_to_clip(clip)))

        cond = student.encode(x)
        noise = student.make_noise(cond, derive_seed(seed, "loop", i))
        method.optimise(student, teacher, cond, noise, seed, derive_seed(seed, "lora", i),
                        weigh_questions(_template_queries(x), method.goal_weight), {"per_step": []}, observe=keep)
        if (i + 1) % 16 == 0:
            log(f"loop clips: {i + 1}/{len(instances)} instances")
    student.reset_lora(seed)
    return torch.stack(frames), torch.tensor(owners), labels
