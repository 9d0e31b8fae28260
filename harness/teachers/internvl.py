"""InternVL3 (transformers' ``InternVLForConditionalGeneration``, the ``-hf`` checkpoints) as the teacher.

Same API as ``QwenVLTeacher``. Frames reach the model as the official video path sends them: one
448x448 tile per frame (bicubic resize, the checkpoint's ImageNet mean/std), each frame written as
``Frame{i}: <img><IMG_CONTEXT>*256</img>`` on its own line, as ``InternVLProcessor`` expands ``<video>``.
The resize and normalisation are torch ops, so the loss is differentiable w.r.t. the frames. Images
for generation (no gradient) go through the official PIL image processor, dynamic tiling included.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoTokenizer,
    GenerationConfig,
    InternVLForConditionalGeneration,
)
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import (
    GotOcr2ImageProcessorPil,
)

from harness.loading import resolve_device, resolve_dtype, resolve_model_dir
from harness.teachers.base import (
    ChatTeacher,
    chat_template,
    eval_mode,
    pad_rows,
    prepare_frozen,
    read_json,
    seeded,
)
from harness.teachers.shared_prefix import answer_positions, block_mask, segment_ids
from harness.types import UserError


_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]
# The tokenizer attribute names InternVLProcessor reads, with the InternVL3 strings as defaults.
_SPECIAL = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>"}


class InternVLTeacher(ChatTeacher):
    """A frozen InternVL3 teacher (``harness.types.Teacher``). Build it with ``from_pretrained``."""

    def __init__(self, *, model: InternVLForConditionalGeneration, tokenizer, chat_template: str,
                 image_processor: GotOcr2ImageProcessorPil, frame_size: tuple[int, int],
                 frame_mean: tuple[float, ...], frame_std: tuple[float, ...], question_suffix: str,
                 system_prompt: str | None, max_new_tokens: int, synthesis_retries: int, shared_prefix: bool):
        self.model = model
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.image_processor = image_processor
        self.frame_size = frame_size
        self.frame_mean, self.frame_std = frame_mean, frame_std
        self.question_suffix = question_suffix
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.synthesis_retries = synthesis_retries
        self.shared_prefix = shared_prefix
        self.tokens = {name: getattr(tokenizer, name, None) or default for name, default in _SPECIAL.items()}
        for name, token in self.tokens.items():
            if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id):
                raise UserError(f"the teacher's tokenizer has no {name} {token!r}: not an InternVL -hf checkpoint")
        if tokenizer.convert_tokens_to_ids(self.tokens["context_image_token"]) != model.config.image_token_id:
            raise UserError("the tokenizer's <IMG_CONTEXT> id differs from config.image_token_id")
        self.tokens_per_tile = model.config.image_seq_length
        self._set_answer_tokens(model, tokenizer)

    @classmethod
    def from_pretrained(cls, *, path: str, device: str = "auto", dtype: str = "float32",
                        question_suffix: str = " Answer with Yes or No.", system_prompt: str | None = None,
                        max_new_tokens: int = 256, synthesis_retries: int = 2, shared_prefix: bool = True,
                        gradient_checkpointing: bool = False, compile: bool = False,
                        revision: str | None = None) -> InternVLTeacher:
        """Load an InternVL ``-hf`` checkpoint (folder or hub id, e.g. ``OpenGVLab/InternVL3-8B-hf``).

        ``shared_prefix``: the chat head and the video once per loss, the questions after them in one row;
        ``gradient_checkpointing`` / ``compile``: as ``QwenVLTeacher`` (``prepare_frozen``)."""
        torch_dtype = resolve_dtype(dtype, config_key="teacher.dtype")
        local = resolve_model_dir(path, config_key="teacher.path", marker="config.json", allow_patterns=_FILES,
                                  revision=revision)  # a hub id at revision (branch, tag, commit; None: default branch)
        torch_device = resolve_device(device, config_key="teacher.device")
        config = AutoConfig.from_pretrained(local)
        if config.model_type != "internvl":
            raise UserError(f"{path}: model_type {config.model_type!r} is not 'internvl'; use an InternVL -hf "
                            "checkpoint (the plain OpenGVLab repos need trust_remote_code and are not supported)")
        if not (local / "preprocessor_config.json").is_file():
            raise UserError(f"{local} has no preprocessor_config.json (the -hf checkpoints ship one)")
        image_processor = GotOcr2ImageProcessorPil.from_pretrained(local)
        video_cfg = read_json(local / "video_preprocessor_config.json")  # frames: the official video settings
        size = video_cfg.get("size") or image_processor.size
        tile = tuple(config.vision_config.image_size)
        if (size["height"], size["width"]) != tile:
            raise UserError(f"{local}: preprocessing size {size} differs from the vision tower's {tile}")
        mean = tuple(video_cfg.get("image_mean") or image_processor.image_mean)
        std = tuple(video_cfg.get("image_std") or image_processor.image_std)
        tokenizer = AutoTokenizer.from_pretrained(local)
        model = InternVLForConditionalGeneration.from_pretrained(local, dtype=torch_dtype).to(torch_device)
        prepare_frozen(model, gradient_checkpointing=gradient_checkpointing, compile=compile)
        return cls(model=model, tokenizer=tokenizer, chat_template=chat_template(local, tokenizer),
                   image_processor=image_processor, frame_size=tile, frame_mean=mean, frame_std=std,
                   question_suffix=question_suffix, system_prompt=system_prompt, max_new_tokens=max_new_tokens,
                   synthesis_retries=synthesis_retries, shared_prefix=shared_prefix)

    # ---------------------------------------------------------------- the loss
    def frame_tiles(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [T, 3, H, W] in [0, 1] -> normalised tiles [T, 3, 448, 448] (float32, differentiable)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be [T, 3, H, W], got {tuple(frames.shape)}")
        tiles = frames.float()
        if tuple(tiles.shape[-2:]) != self.frame_size:
            tiles = F.interpolate(tiles, size=self.frame_size, mode="bicubic", antialias=True, align_corners=False)
        mean = tiles.new_tensor(self.frame_mean).view(1, 3, 1, 1)
        std = tiles.new_tensor(self.frame_std).view(1, 3, 1, 1)
        return (tiles - mean) / std

    def yes_nll(self, frames: torch.Tensor, questions: list[str], clock=None) -> torch.Tensor:
        """-log P("Yes") per question, [Q] float32 (full-vocabulary softmax, teacher-forced over the "Yes"
        tokens). ``frames [T, 3, H, W]`` in [0, 1] are ONE video; the vision tower runs once. ``clock`` is
        not read: InternVL's video prompt numbers the frames ("Frame1: ...") and carries no time."""
        if not questions:
            raise ValueError("yes_nll needs at least one question")
        tiles = self.frame_tiles(frames.to(self.device)).to(self.dtype)
        features = self.model.get_image_features(pixel_values=tiles, return_dict=True)
        texts = [self.chat_text([{"type": "video"}, {"type": "text", "text": q + self.question_suffix}])
                 .replace(self.tokens["video_token"], self.video_placeholder(tiles.shape[0]), 1) for q in questions]
        if self.shared_prefix:
            return self._score_shared_prefix(texts, features)
        return self._score_batched(texts, features)

    def video_placeholder(self, num_frames: int) -> str:
        """What InternVLProcessor writes in place of ``<video>`` for ``num_frames`` frames."""
        t = self.tokens
        tile = f"{t['start_image_token']}{t['context_image_token'] * self.tokens_per_tile}{t['end_image_token']}"
        return "\n".join(f"Frame{i + 1}: {tile}" for i in range(num_frames))

    def _score_batched(self, texts: list[str], features) -> torch.Tensor:
        """Reference path: every question a full row, video included, one left-padded batch."""
        rows = [self.tokenizer(t)["input_ids"] + self.yes_ids[:-1] for t in texts]
        ids, mask = pad_rows(rows, self.pad_id, left=True)
        repeated = copy.copy(features)  # the tower's output as if the video had been given once per question
        repeated.pooler_output = features.pooler_output.repeat(len(rows), 1, 1)
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                         position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(self.device),
                         mm_encoder_outputs={"image": repeated}, logits_to_keep=len(self.yes_ids), use_cache=False)
        return self._answer_nll(out.logits)

    def _score_shared_prefix(self, texts: list[str], features) -> torch.Tensor:
        """Same loss as ``_score_batched`` with the chat head + video once: one row holds the prefix, then every
        question's tail at the positions of its own full row, each tail seeing the prefix and itself only."""
        prefix, tails = self._prefix_and_tails(texts, self.tokens["end_image_token"])
        p, lengths, answer = len(prefix), [len(t) for t in tails], self.yes_ids
        ids = torch.tensor([prefix + [token for tail in tails for token in tail]], device=self.device)
        positions = torch.cat([torch.arange(p)] + [torch.arange(p, p + n) for n in lengths])[None].to(self.device)
        mask = block_mask(self.model.config.text_config, segment_ids(p, lengths, self.device), self.dtype)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         mm_encoder_outputs={"image": features},
                         logits_to_keep=answer_positions(p, lengths, len(answer), self.device), use_cache=False)
        return self._answer_nll(out.logits.view(len(tails), len(answer), -1))

    # ---------------------------------------------------------------- text
    def chat_text(self, content: list[dict]) -> str:
        """One user turn (plus the optional system turn) through the chat template, generation prompt open."""
        text = self._apply_chat_template(content)
        videos = sum(c["type"] == "video" for c in content)
        images = sum(c["type"] == "image" for c in content)
        if text.count(self.tokens["video_token"]) != videos or \
                text.count(self.tokens["context_image_token"]) != images:
            raise UserError("The teacher's chat template does not emit one placeholder per image/video.")
        return text

    # ---------------------------------------------------------------- generation
    def _generate(self, prompt: str, images: list[np.ndarray] | None, max_new_tokens: int,
                  sample_seed: int | None) -> str:
        images = images or []
        text = self.chat_text([*({"type": "image"} for _ in images), {"type": "text", "text": prompt}])
        kwargs = {}
        if images:
            for image in images:
                if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3):
                    raise ValueError(f"images must be uint8 [H, W, 3] arrays, got {getattr(image, 'shape', image)}")
            # The official processor call for images: dynamic tiling plus a thumbnail.
            processed = self.image_processor(images=list(images), crop_to_patches=True, return_tensors="pt")
            t = self.tokens
            parts = text.split(t["context_image_token"])
            expanded = [f"{t['start_image_token']}{t['context_image_token'] * self.tokens_per_tile * int(n)}"
                        f"{t['end_image_token']}" for n in processed["num_patches"]]
            text = parts[0] + "".join(e + part for e, part in zip(expanded, parts[1:]))
            kwargs = {"pixel_values": processed["pixel_values"].to(self.device, self.dtype)}
        ids = torch.tensor([self.tokenizer(text)["input_ids"]], device=self.device)
        sampled = {"do_sample": True, "temperature": 0.7, "top_p": 0.9}  # retries only, seeded
        decoding = {"do_sample": False} if sample_seed is None else sampled
        config = GenerationConfig(max_new_tokens=max_new_tokens, eos_token_id=self.eos_ids, pad_token_id=self.pad_id,
                                  **decoding)
        with torch.no_grad(), eval_mode(self.model), seeded(sample_seed, self.device):
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs,
                                      generation_config=config)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

