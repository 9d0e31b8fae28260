"""What every chat-VLM teacher shares: device/dtype, P(Yes), greedy generation, question synthesis
with retries and fallback, and the small loading helpers. Subclasses implement ``yes_nll`` (the
differentiable loss) and ``_generate`` (text generation with optional images)."""

from __future__ import annotations

import dataclasses
import json
import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from harness.seeding import derive_seed
from harness.teachers.shared_prefix import compile_decoder_layers
from harness.teachers.queries import (
    build_synthesis_prompt,
    fallback_queries,
    parse_queries,
)
from harness.types import Instance, Queries, UserError

log = logging.getLogger(__name__)


class ChatTeacher:
    model: torch.nn.Module
    tokenizer: object
    chat_template: str
    system_prompt: str | None
    yes_ids: list[int]
    max_new_tokens: int
    synthesis_retries: int

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _set_answer_tokens(self, model: torch.nn.Module, tokenizer) -> None:
        """Padding, "Yes" and end-of-turn token ids, checked once at construction."""
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.yes_ids = tokenizer.encode("Yes", add_special_tokens=False)
        if not self.yes_ids or tokenizer.unk_token_id in self.yes_ids:
            raise UserError(f"The teacher's tokenizer cannot encode 'Yes' (got ids {self.yes_ids}).")
        self.eos_ids = eos_ids(model, tokenizer)

    def yes_nll(self, frames: torch.Tensor, questions: list[str], clock=None) -> torch.Tensor:
        raise NotImplementedError

    def _generate(self, prompt: str, images: list[np.ndarray] | None, max_new_tokens: int,
                  sample_seed: int | None) -> str:
        raise NotImplementedError

    def p_yes(self, frames: torch.Tensor, questions: list[str], clock=None) -> list[float]:
        with torch.no_grad():
            return torch.exp(-self.yes_nll(frames, questions, clock)).tolist()

    def _prefix_and_tails(self, texts: list[str], prefix_end: str) -> tuple[list[int], list[list[int]]]:
        """Token ids of the chat head + video the question ``texts`` share (up to the last ``prefix_end``), and
        of each question's tail: its text and the teacher-forced answer tokens but the last."""
        prefix_text = texts[0][:texts[0].rindex(prefix_end) + len(prefix_end)]
        if not all(t.startswith(prefix_text) for t in texts):
            raise RuntimeError("the questions do not share the chat prefix; set teacher.shared_prefix=false")
        prefix = self.tokenizer(prefix_text)["input_ids"]
        answer = self.yes_ids
        tails = [self.tokenizer(t[len(prefix_text):], add_special_tokens=False)["input_ids"] + answer[:-1]
                 for t in texts]
        if prefix + tails[0][:len(tails[0]) - len(answer) + 1] != self.tokenizer(texts[0])["input_ids"]:
            raise RuntimeError("the tokenizer merges tokens across the end of the video; "
                               "set teacher.shared_prefix=false")
        return prefix, tails

    def _answer_nll(self, logits: torch.Tensor) -> torch.Tensor:
        """Summed -log P of the answer tokens from their logits [Q, L, V] (full-vocabulary softmax)."""
        logp = logits.float().log_softmax(-1)
        target = torch.tensor(self.yes_ids, device=self.device).expand(logits.shape[0], -1)
        return -logp.gather(-1, target[..., None]).squeeze(-1).sum(-1)

    def _apply_chat_template(self, content: list[dict]) -> str:
        """One user turn (plus the optional system turn) through the chat template, generation prompt open."""
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": content})
        return self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, tokenize=False,
                                                  add_generation_prompt=True)

    def generate(self, prompt: str, images: list[np.ndarray] | None = None, max_new_tokens: int | None = None) -> str:
        """Greedy answer to ``prompt`` with optional uint8 [H, W, 3] images, through the chat template."""
        return self._generate(prompt, images, max_new_tokens or self.max_new_tokens, sample_seed=None)

    def synthesize_queries(self, instance: Instance, max_process: int = 3) -> Queries:
        """One goal and 1..max_process process questions written by the teacher from the task prompt and
        first frame; retries (sampled, seeded by the instance id) then a deterministic fallback."""
        images = [instance.first_frame] if instance.first_frame is not None else None
        replies = []
        for attempt in range(1 + self.synthesis_retries):
            prompt = build_synthesis_prompt(instance.prompt, max_process=max_process, has_image=images is not None,
                                            strict=attempt > 0)
            seed = None if attempt == 0 else derive_seed(attempt, "synthesis", instance.id)
            replies.append(self._generate(prompt, images, self.max_new_tokens, sample_seed=seed))
            queries = parse_queries(replies[-1], max_process)
            if queries is not None:
                return queries
        log.warning("teacher wrote no parseable questions for %s after %d tries; using the fallback",
                    instance.id, len(replies))
        return dataclasses.replace(fallback_queries(instance.prompt, max_process), raw="\n---\n".join(replies))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def chat_template(local: Path, tokenizer) -> str:
    """The tokenizer's chat template, else the processor's (chat_template.jinja / chat_template.json)."""
    if tokenizer.chat_template:
        return tokenizer.chat_template
    if (local / "chat_template.jinja").is_file():
        return (local / "chat_template.jinja").read_text()
    if template := read_json(local / "chat_template.json").get("chat_template"):
        return template
    raise UserError(f"{local} has no chat template (tokenizer_config.json, chat_template.jinja or chat_template.json).")


def eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = set([ids] if isinstance(ids, int) else ids or [])
    for token in ("<|im_end|>", tokenizer.eos_token):
        tid = tokenizer.convert_tokens_to_ids(token) if token else None
        if tid is not None and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return sorted(ids)


def pad_rows(rows: list[list[int]], pad_id: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows -> padded ids [N, W] and attention mask [N, W] (``left``: padding before each row)."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row)
        mask[i, span] = 1
    return ids, mask


def prepare_frozen(model: torch.nn.Module, *, gradient_checkpointing: bool, compile: bool) -> None:
    """A frozen teacher for the loss: no weight gradients; gradient checkpointing (transformers only
    checkpoints in train mode, made safe by zeroing dropout) or eval mode; the language model's decoder
    layers compiled for the shared-prefix row (``compile_decoder_layers``)."""
    model.requires_grad_(False)
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        _zero_dropout(model)
        model.train()
    else:
        model.eval()
    if compile:
        compile_decoder_layers(model.model.language_model.layers)


def _zero_dropout(model: torch.nn.Module) -> None:
    """Force every dropout to 0 so that train mode (needed for checkpointing) computes what eval does."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if "dropout" in name and isinstance(value, float):
                setattr(module, name, 0.0)
    for cfg in (model.config, getattr(model.config, "text_config", None), getattr(model.config, "vision_config", None)):
        if cfg is not None and getattr(cfg, "attention_dropout", 0.0):
            cfg.attention_dropout = 0.0


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Generation in eval mode (a checkpointing teacher sits in train mode and would disable the KV cache)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextmanager
def seeded(seed: int | None, device: torch.device):
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
