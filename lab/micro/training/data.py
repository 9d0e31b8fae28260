"""Training data from the micro generator: the scorer labels of the teacher's questions
(``benchmarks.micro.questions``), the teacher's synthesis replies, and the student's noise -> behaviour
assignment.

A question's label on a clip is the minimum of its checks as ``score_clip`` reads that clip, so teacher
labels and benchmark scores never disagree.
"""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import torch

from benchmarks.micro.corruptions import render_solution, variants
from benchmarks.micro.dataset import generate_instances
from benchmarks.micro.questions import questions_for
from benchmarks.micro.scorer import score_clip
from benchmarks.micro.sets import check_work_seed
from benchmarks.micro.world import CELL, GRID, PALETTE, SOLID_SPAN, outline_mask
from harness.types import Instance


def synthesis_reply(instance: Instance) -> str:
    """What the teacher should write for the instance's synthesis prompt (the parser's JSON format)."""
    qs = questions_for(instance)
    return json.dumps({"goal": qs[0].text, "process": [q.text for q in qs[1:]]})


def question_labels(instance: Instance, clip: np.ndarray) -> np.ndarray:
    """1.0 / 0.0 per question (``questions_for`` order): the micro scorer's verdict on this uint8 clip."""
    scores = score_clip(instance, clip).scores
    return np.array([min(scores[c] for c in q.checks) for q in questions_for(instance)], dtype=np.float32)


def training_instances(splits: tuple[str, ...], n_per_family: int, seed: int) -> list[Instance]:
    """Fresh instances for training, selection or measurement: a UserError for a committed set's seed (dev or
    evaluation; ``sets.py`` names each script's seed)."""
    return [x for split in splits for x in generate_instances(split, n_per_family, check_work_seed(seed))]


def first_per_cell(instances: list[Instance], n: int) -> list[int]:
    """Indices of the first ``n`` instances of every (split, task) cell, cell by cell in sorted order: a
    small subset that covers every family in both splits."""
    cells: dict[tuple[str, str], list[int]] = {}
    for i, x in enumerate(instances):
        cells.setdefault((x.split, x.task), []).append(i)
    return [i for key in sorted(cells) for i in cells[key][:n]]


# ---------------------------------------------------------------- the student's behaviour


# The student's behaviours per family: index 0 follows the instruction, the others are plausible
# wrong solutions with a clean process (score 0.4) or a broken rule (enter_forbidden, 0.3).
def student_behaviours(task: str) -> list[str]:
    wrong = ["wrong_target", "enter_forbidden"] if "enter_forbidden" in variants(task) else ["wrong_target"]
    return ["correct", *wrong]


MAX_BEHAVIOURS = 3


def behaviour_clips(instance: Instance) -> np.ndarray:
    """uint8 [MAX_BEHAVIOURS, T, H, W, 3]: the canonical video of each behaviour (the last one repeated)."""
    clips = [render_solution(instance, name) for name in student_behaviours(instance.task)]
    clips += [clips[-1]] * (MAX_BEHAVIOURS - len(clips))
    return np.stack(clips)


def behaviour_from_noise(noise: torch.Tensor, p_correct: float, num_wrong: torch.Tensor) -> torch.Tensor:
    """Which behaviour a noise draw [B, C, F, h, w] asks for: the deterministic map the one-step student learns.

    Correct when the mean of channel 0 over the generated frames (F >= 1; frame 0 is the condition) lies
    in its top ``p_correct`` tail; otherwise wrong behaviour 1 or, where a family has two, the sign of
    channel 1's mean picks between them.
    """
    gen = noise[:, :, 1:]
    n = gen[:, 0].numel() / gen.shape[0]
    u = gen[:, 0].flatten(1).mean(1) * math.sqrt(n)  # ~ N(0, 1)
    threshold = NormalDist().inv_cdf(1.0 - p_correct)
    second = (gen[:, 1].flatten(1).mean(1) > 0) & (num_wrong.to(noise.device) > 1)
    wrong = 1 + second.long()
    return torch.where(u > threshold, torch.zeros_like(wrong), wrong)


# ---------------------------------------------------------------- clips for the teacher


def variant_clips(instance: Instance, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Every variant of the instance (random equally short plans): uint8 clips [V, T, H, W, 3] and
    their question labels [V, Q]."""
    names = variants(instance.task)
    clips = np.stack([render_solution(instance, name, seed=int(rng.integers(2**31))) for name in names])
    return clips, np.stack([question_labels(instance, c) for c in clips])


def degrade(frames: torch.Tensor, generator: torch.Generator, max_blur: float = 1.0, max_noise: float = 0.05
            ) -> torch.Tensor:
    """Random Gaussian blur and pixel noise on frames [N, T, 3, H, W] in [0, 1] (one strength per clip),
    like an imperfect decoder or a one-step prediction."""
    n = frames.shape[0]
    sigma = torch.rand(n, generator=generator) * max_blur
    radius = 2
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None].clamp_min(1e-3) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).to(frames.device)  # [N, 5]
    x = frames.float().reshape(n, -1, *frames.shape[-2:])  # [N, T*3, H, W]
    c = x.shape[1]
    padded = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = torch.zeros_like(x)
    for i in range(n):  # separable depthwise blur, per clip strength
        k = kernel[i]
        rows = torch.nn.functional.conv2d(padded[i:i + 1], k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        out[i:i + 1] = torch.nn.functional.conv2d(rows, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    strength = (torch.rand(n, generator=generator) * max_noise).view(n, 1, 1, 1)
    noise = torch.randn(out.shape, generator=generator) * strength
    return (out + noise.to(frames.device)).clamp(0, 1).reshape(frames.shape)


def scribble(frames: torch.Tensor, generator: torch.Generator, max_cells: int = 12) -> torch.Tensor:
    """Paint 1..``max_cells`` random cells of frames [T, 3, H, W] in [0, 1] with a palette colour at a random
    opacity (0.3-1), as a solid or an outline, from a random frame to the end: the flat-colour edits a LoRA
    can make through the patch-linear light decoder. vlmteach's loop drove one-step predictions into such
    clips, cluttered with squares the teacher was never shown, and the teacher answered yes to them."""
    out = frames.float().clone()
    cells = int(torch.randint(1, max_cells + 1, (1,), generator=generator))
    palette = torch.tensor(list(PALETTE.values()), dtype=torch.float32) / 255
    solid = torch.zeros(CELL, CELL, dtype=torch.bool)
    solid[SOLID_SPAN, SOLID_SPAN] = True
    ring = torch.from_numpy(outline_mask())
    for _ in range(cells):
        r, c = (int(v) for v in torch.randint(GRID, (2,), generator=generator))
        start = int(torch.randint(frames.shape[0], (1,), generator=generator))
        color = palette[int(torch.randint(len(palette), (1,), generator=generator))].view(3, 1)
        alpha = 0.3 + 0.7 * float(torch.rand(1, generator=generator))
        mask = solid if bool(torch.rand(1, generator=generator) < 0.5) else ring
        patch = out[start:, :, r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL]
        patch[:, :, mask] = (1 - alpha) * patch[:, :, mask] + alpha * color.to(out.device)
    return out
