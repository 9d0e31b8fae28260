"""Train the micro teacher (tiny Qwen3-VL) for its two jobs in the harness:

(a) answer yes/no questions about a video: the full-vocabulary next-token distribution after the
    chat prompt puts P("Yes") on the label (soft labels for blended clips), read exactly as
    ``QwenVLTeacher.yes_nll`` reads it (same chat template, suffix, timestamps, pixel preprocessing);
(b) write the goal and process questions for a task prompt and first frame: teacher-forced on the JSON
    reply ``data.synthesis_reply`` after ``build_synthesis_prompt`` (plain and strict-retry wording).

Inputs are built with the adapter's own public pieces (``chat_text``, ``video_placeholder``,
``preprocess.video_pixels`` / ``image_pixels``), so what is trained is what the harness runs.
"""

from __future__ import annotations

import functools
import inspect
import shutil
from pathlib import Path

import numpy as np
import torch

from harness.teachers import QwenVLTeacher
from harness.teachers.preprocess import image_pixels, video_pixels
from harness.teachers.queries import build_synthesis_prompt
from lab.micro.training.loop import fit
from lab.micro.weights_teacher import build_micro_teacher

IGNORE = -100


def new_teacher(folder: Path, *, seed: int, device: str, size: str = "micro") -> QwenVLTeacher:
    """The builder's random micro teacher of ``size``, written to ``folder`` and loaded through the adapter."""
    build_micro_teacher(folder, seed=seed, size=size)
    return QwenVLTeacher.from_pretrained(path=str(folder), device=device)


def _pad_left(rows: list[list[int]], pad_id: int, labels: list[list[int]] | None = None):
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    lab = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
        if labels is not None:
            lab[i, width - len(row):] = torch.tensor(labels[i])
    return ids, mask, lab


def _model_inputs(teacher: QwenVLTeacher, ids: torch.Tensor, mask: torch.Tensor, **vision) -> dict:
    cfg = teacher.model.config
    inputs = {"input_ids": ids.to(teacher.device), "attention_mask": mask.to(teacher.device), **vision}
    if "mm_token_type_ids" in inspect.signature(teacher.model.forward).parameters:  # newer transformers
        types = torch.zeros_like(ids, dtype=torch.int)
        types[ids == cfg.image_token_id] = 1
        types[ids == cfg.video_token_id] = 2
        types[mask == 0] = 0
        inputs["mm_token_type_ids"] = types.to(teacher.device)
    return inputs


@functools.lru_cache(maxsize=100_000)
def _question_ids(teacher: QwenVLTeacher, question: str, grid: tuple[int, int, int], num_frames: int) -> list[int]:
    text = teacher.chat_text([{"type": "video"}, {"type": "text", "text": question + teacher.question_suffix}])
    text = text.replace(teacher.video_token, teacher.video_placeholder(grid, teacher.clock(num_frames)), 1)
    return teacher.tokenizer(text)["input_ids"]


def yes_no_inputs(teacher: QwenVLTeacher, videos: list[torch.Tensor], questions: list[str]) -> dict:
    """One row per (video [T, 3, H, W] in [0, 1], question), prompted as ``yes_nll`` prompts it."""
    rows, pixels, grids = [], [], []
    for frames, question in zip(videos, questions, strict=True):
        pix, grid = video_pixels(frames.to(teacher.device), teacher.spec)
        rows.append(_question_ids(teacher, question, grid, frames.shape[0]))
        pixels.append(pix)
        grids.append(grid)
    ids, mask, _ = _pad_left(rows, teacher.pad_id)
    return _model_inputs(teacher, ids, mask, pixel_values_videos=torch.cat(pixels).to(teacher.dtype),
                         video_grid_thw=torch.tensor(grids, device=teacher.device))


def answer_ids(teacher: QwenVLTeacher) -> tuple[int, int]:
    yes = teacher.tokenizer.encode("Yes", add_special_tokens=False)
    no = teacher.tokenizer.encode("No", add_special_tokens=False)
    if len(yes) != 1 or len(no) != 1:
        raise ValueError(f"the micro teacher needs one-token answers, got Yes={yes} No={no}")
    return yes[0], no[0]


def yes_no_loss(teacher: QwenVLTeacher, videos: list[torch.Tensor], questions: list[str], labels: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-label cross-entropy on the answer token (full-vocabulary softmax); also returns P(Yes)."""
    yes, no = answer_ids(teacher)
    logits = teacher.model(**yes_no_inputs(teacher, videos, questions), logits_to_keep=1, use_cache=False).logits
    logp = logits[:, -1].float().log_softmax(-1)
    y = labels.to(logp.device).float()
    loss = -(y * logp[:, yes] + (1 - y) * logp[:, no]).mean()
    return loss, logp[:, yes].exp().detach()


def synthesis_inputs(teacher: QwenVLTeacher, first_frames: list[np.ndarray], prompts: list[str], replies: list[str],
                     strict: list[bool]) -> dict:
    """Teacher-forced synthesis rows: prompt (image + instructions) then the reply and <|im_end|>."""
    end = teacher.tokenizer.convert_tokens_to_ids("<|im_end|>")
    rows, labels, pixels, grids = [], [], [], []
    for frame, prompt, reply, retry in zip(first_frames, prompts, replies, strict, strict=True):
        image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div(255).to(teacher.device)
        pix, grid = image_pixels(image, teacher.spec)
        text = teacher.chat_text([{"type": "image"}, {"type": "text", "text": build_synthesis_prompt(
            prompt, max_process=3, has_image=True, strict=retry)}])
        tokens = int(np.prod(grid)) // teacher.spec.merge_size**2
        text = text.replace(teacher.image_token, teacher.image_token * tokens, 1)
        prompt_ids = teacher.tokenizer(text)["input_ids"]
        reply_ids = teacher.tokenizer(reply, add_special_tokens=False)["input_ids"] + [end]
        rows.append(prompt_ids + reply_ids)
        labels.append([IGNORE] * len(prompt_ids) + reply_ids)
        pixels.append(pix)
        grids.append(grid)
    ids, mask, lab = _pad_left(rows, teacher.pad_id, labels)
    inputs = _model_inputs(teacher, ids, mask, pixel_values=torch.cat(pixels).to(teacher.dtype),
                           image_grid_thw=torch.tensor(grids, device=teacher.device))
    return inputs, lab.to(teacher.device)


def synthesis_loss(teacher: QwenVLTeacher, first_frames, prompts, replies, strict) -> torch.Tensor:
    inputs, labels = synthesis_inputs(teacher, first_frames, prompts, replies, strict)
    logits = teacher.model(**inputs, use_cache=False).logits[:, :-1].float()
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], ignore_index=IGNORE)


def train_teacher(teacher: QwenVLTeacher, *, yes_no_batches, synthesis_batches, steps: int, lr: float,
                  time_cap_s: float | None = None, extra_loss=None, log=print) -> None:
    """Fit on the sum of both losses; the iterators yield argument tuples of the two loss functions.
    ``extra_loss()``, when given, returns one more term to add and its log message."""
    teacher.model.requires_grad_(True).train()

    def loss_fn(step: int):
        yn, _ = yes_no_loss(teacher, *next(yes_no_batches))
        syn = synthesis_loss(teacher, *next(synthesis_batches))
        message = f"yes/no {yn.item():.4f} synthesis {syn.item():.4f}"
        if extra_loss is None:
            return yn + syn, message
        extra, extra_message = extra_loss()
        return yn + syn + extra, f"{message} {extra_message}"

    fit(list(teacher.model.parameters()), loss_fn, steps=steps, lr=lr, name="teacher", weight_decay=0.01,
        time_cap_s=time_cap_s, log=log)
    teacher.model.requires_grad_(False).eval()


def save_teacher(teacher: QwenVLTeacher, init_folder: Path, out_dir: Path) -> None:
    """The builder's folder (tokenizer, chat template, preprocessing configs) with the trained weights."""
    out_dir = Path(out_dir)
    shutil.copytree(init_folder, out_dir, dirs_exist_ok=True)
    teacher.model.save_pretrained(out_dir)
