"""Qwen3-VL / Qwen2.5-VL as the teacher: query synthesis, a differentiable -log P("Yes"), generation.

The official processors are not used at run time (their video side needs torchvision, and they
would cut the gradient): the prompt comes from the checkpoint's chat template, placeholder tokens
are expanded per grid exactly as ``Qwen3VLProcessor`` / ``Qwen2_5_VLProcessor`` do, and pixels come
from ``harness.teachers.preprocess``.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import torch
from transformers.video_utils import VideoMetadata
from transformers import (
    AutoConfig,
    AutoTokenizer,
    GenerationConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLForConditionalGeneration,
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
from harness.teachers.clock import consecutive_clock
from harness.teachers.packed_attention import use_packed_vision_attention
from harness.teachers.preprocess import VisionSpec, image_pixels, video_pixels
from harness.teachers.shared_prefix import answer_positions, block_mask, segment_ids
from harness.types import UserError


_TEACHER_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]


@dataclasses.dataclass(frozen=True)
class _Family:
    model_class: type
    video_budget: str  # how the official video processor counts min/max pixels
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    image_pixels: tuple[int, int]  # class defaults of the image processor (min, max)
    video_pixels: tuple[int, int]  # class defaults of the video processor (min, max)


_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FAMILIES = {
    "qwen3_vl": _Family(Qwen3VLForConditionalGeneration, "per_video", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                        (56 * 56, 28 * 28 * 1280), (128 * 32 * 32, 768 * 32 * 32)),
    "qwen2_5_vl": _Family(Qwen2_5_VLForConditionalGeneration, "per_frame", _CLIP_MEAN, _CLIP_STD,
                          (56 * 56, 28 * 28 * 1280), (128 * 28 * 28, 768 * 28 * 28)),
}


@dataclasses.dataclass
class EncodedVideo:
    """One video through the vision tower, ready to be asked several questions."""

    features: object  # the model's get_video_features output (pooled tokens, Qwen3-VL deepstack features)
    grid: tuple[int, int, int]  # video_grid_thw
    clock: VideoMetadata  # when the given frames were taken (before temporal padding)


ROW_CACHE_SIZE = 8  # shared-prefix rows kept: one per instance while a batch of up to 8 is judged in turn


class QwenVLTeacher(ChatTeacher):
    """A frozen Qwen-VL teacher (``harness.types.Teacher``). Build it with ``from_pretrained``."""

    def __init__(self, *, model: torch.nn.Module, tokenizer, chat_template: str, spec: VisionSpec,
                 video_fps: float | None, question_suffix: str, system_prompt: str | None, max_new_tokens: int,
                 synthesis_retries: int, shared_prefix: bool = True, synthesis_cache_len: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.spec = spec
        self.family = model.config.model_type
        self.video_fps = None if video_fps is None else float(video_fps)
        self.question_suffix = question_suffix
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.synthesis_retries = synthesis_retries
        self.shared_prefix = shared_prefix
        if synthesis_cache_len is not None and synthesis_cache_len < 1:
            raise UserError(f"teacher.synthesis_cache_len must be a positive token count or null, "
                            f"got {synthesis_cache_len}")
        self.synthesis_cache_len = synthesis_cache_len
        self._rows: dict[tuple, dict[str, torch.Tensor]] = {}  # score_video_shared_prefix's rows, oldest first
        cfg = model.config
        self.video_token = tokenizer.convert_ids_to_tokens(cfg.video_token_id)
        self.image_token = tokenizer.convert_ids_to_tokens(cfg.image_token_id)
        self.vision_start = tokenizer.convert_ids_to_tokens(cfg.vision_start_token_id)
        self.vision_end = tokenizer.convert_ids_to_tokens(cfg.vision_end_token_id)
        self._set_answer_tokens(model, tokenizer)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_pretrained(
        cls, *, path: str, device: str = "auto", dtype: str = "float32", max_pixels: int | None = None,
        min_pixels: int | None = None, video_fps: float | None = 2.0, question_suffix: str = " Answer with Yes or No.",
        system_prompt: str | None = None, gradient_checkpointing: bool = False, max_new_tokens: int = 256,
        synthesis_retries: int = 2, shared_prefix: bool = True, synthesis_cache_len: int | None = None,
        compile: bool = False, packed_vision_attention: bool = True, revision: str | None = None,
    ) -> QwenVLTeacher:
        """Load a Qwen3-VL or Qwen2.5-VL checkpoint (folder or hub id) as a frozen teacher.

        ``min_pixels`` / ``max_pixels`` override the video pixel budget, read as the official video
        processor reads it (Qwen3-VL: all frames together; Qwen2.5-VL: per frame). The time the teacher is
        told (Qwen3-VL timestamps, Qwen2.5-VL ``second_per_grid_ts``) is the ``clock`` given to ``yes_nll``
        (the source clip's fps and the shown frames' indices), as the official processors read a video's
        ``VideoMetadata``, when ``video_fps`` is None (the real teachers' configs); a number presents every
        video as consecutive frames at that rate, ignoring the clock (the default 2.0 is the micro teacher's
        training convention, which its callers rely on). ``shared_prefix`` runs the system + video prefix once per ``yes_nll`` call, the
        questions after it in the same row (``score_video_shared_prefix``); off, every question is a full row.
        ``compile`` compiles the language model's decoder layers for the loss (``prepare_frozen``).
        ``packed_vision_attention`` runs the vision tower's per-frame-pair attention as one SDPA call
        (``harness.teachers.packed_attention``; exact) instead of one call per pair.
        ``synthesis_cache_len`` gives question synthesis a static KV cache of that many tokens (at least prompt +
        ``max_new_tokens``), which ``generate`` compiles on a GPU: one decoding graph for every prompt up to that
        length (a cache sized per prompt would recompile per prompt length); ``None``: a dynamic cache, eager.
        """
        torch_dtype = resolve_dtype(dtype, config_key="teacher.dtype")
        hint = " Build the micro teacher with `python -m lab.micro.weights_teacher`." if "micro" in path else ""
        local = resolve_model_dir(path, config_key="teacher.path", marker="config.json", allow_patterns=_TEACHER_FILES, hint=hint,
                                  revision=revision)  # a hub id at revision (branch, tag, commit; None: default branch)
        torch_device = resolve_device(device, config_key="teacher.device")
        config = AutoConfig.from_pretrained(local)
        family = FAMILIES.get(config.model_type)
        if family is None:
            raise UserError(f"{path}: model_type {config.model_type!r} is not a supported Qwen-VL teacher "
                            f"(supported: {sorted(FAMILIES)}).")
        tokenizer = AutoTokenizer.from_pretrained(local)
        spec = _vision_spec(local, config, family, min_pixels=min_pixels, max_pixels=max_pixels)
        model = family.model_class.from_pretrained(local, dtype=torch_dtype).to(torch_device)
        if packed_vision_attention:
            use_packed_vision_attention(model)
        prepare_frozen(model, gradient_checkpointing=gradient_checkpointing, compile=compile)
        return cls(model=model, tokenizer=tokenizer, chat_template=chat_template(local, tokenizer), spec=spec,
                   video_fps=video_fps, question_suffix=question_suffix, system_prompt=system_prompt,
                   max_new_tokens=max_new_tokens, synthesis_retries=synthesis_retries, shared_prefix=shared_prefix,
                   synthesis_cache_len=synthesis_cache_len)

    # ---------------------------------------------------------------- the loss
    def yes_nll(self, frames: torch.Tensor, questions: list[str], clock: VideoMetadata | None = None) -> torch.Tensor:
        """-log P("Yes") per question, [Q] float32, under the full-vocabulary softmax at the first answer
        position (teacher-forced over every "Yes" token). ``frames [T, 3, H, W]`` in [0, 1] are ONE video
        input, taken at ``clock`` (``harness.teachers.clock.frame_clock``); the vision tower runs once and
        its features are shared by the batched questions."""
        if not questions:
            raise ValueError("yes_nll needs at least one question")
        video = self.encode_video(frames, clock)
        return self.score_video(video, questions)

    def clock(self, num_frames: int, given: VideoMetadata | None = None) -> VideoMetadata:
        """The clock the teacher is told for ``num_frames`` frames: ``given``, or the fixed ``video_fps``."""
        if self.video_fps is not None:
            return consecutive_clock(num_frames, self.video_fps)
        if given is None:
            raise UserError("the teacher needs the frames' clock (source fps and frame indices) to tell the model "
                            "their time; pass clock=frame_clock(...) or set teacher.video_fps")
        if len(given.frames_indices) != num_frames:
            raise ValueError(f"the clock has {len(given.frames_indices)} frame indices for {num_frames} frames")
        return given

    def encode_video(self, frames: torch.Tensor, clock: VideoMetadata | None = None) -> EncodedVideo:
        """Pixels, grid and vision-tower features of one video; reusable for several question batches."""
        clock = self.clock(frames.shape[0], clock)
        frames = frames.to(self.device)
        pixels, grid = video_pixels(frames, self.spec)
        grid_thw = torch.tensor([grid], device=self.device)
        features = self.model.get_video_features(pixel_values_videos=pixels.to(self.dtype), video_grid_thw=grid_thw,
                                                 return_dict=True)
        return EncodedVideo(features=features, grid=grid, clock=clock)

    def score_video(self, video: EncodedVideo, questions: list[str]) -> torch.Tensor:
        """-log P("Yes") of each question about an ``encode_video`` result (``shared_prefix`` picks the path)."""
        if self.shared_prefix:
            return self.score_video_shared_prefix(video, questions)
        return self.score_video_batched(video, questions)

    def _question_texts(self, video: EncodedVideo, questions: list[str]) -> list[str]:
        placeholder = self.video_placeholder(video.grid, video.clock)
        return [self.chat_text([{"type": "video"}, {"type": "text", "text": q + self.question_suffix}])
                .replace(self.video_token, placeholder, 1) for q in questions]

    def _grid_extra(self, n: int, clock: VideoMetadata) -> dict[str, torch.Tensor]:
        """Qwen2.5-VL's seconds per temporal patch, as its processor computes them from the clock (the rate at
        which the shown frames were sampled: fps * shown / total)."""
        if self.family != "qwen2_5_vl":
            return {}
        return {"second_per_grid_ts": torch.full((n,), self.spec.temporal_patch_size / clock.sampled_fps,
                                                 device=self.device)}

    def score_video_batched(self, video: EncodedVideo, questions: list[str]) -> torch.Tensor:
        """The reference path: every question a full row (video included), one batched forward."""
        texts = self._question_texts(video, questions)
        answer = self.yes_ids
        batch = self._tokenize(texts, suffix=answer[:-1])  # teacher forcing: feed all but the last answer token
        n = len(questions)
        extra = self._grid_extra(n, video.clock)
        out = self.model(
            **batch, video_grid_thw=torch.tensor([video.grid] * n, device=self.device),
            mm_encoder_outputs={"video": _repeat_features(video.features, n)},
            logits_to_keep=len(answer), use_cache=False, **extra,
        )
        return self._answer_nll(out.logits)

    def _full_rows(self, prefix: list[int], tails: list[list[int]], video: EncodedVideo):
        """Right-padded full rows (prefix + tail) with their modality types and mRoPE positions: each token's
        position is the one it has in the batched path."""
        n = len(tails)
        ids, mask = pad_rows([prefix + tail for tail in tails], self.pad_id, left=False)
        ids, mask = ids.to(self.device), mask.to(self.device)
        types = (ids == self.model.config.video_token_id).int() * 2
        grids = torch.tensor([video.grid] * n, device=self.device)
        positions, _ = self.model.model.get_rope_index(input_ids=ids, mm_token_type_ids=types, video_grid_thw=grids,
                                                       attention_mask=mask, **self._grid_extra(n, video.clock))
        return ids, types, positions

    def score_video_shared_prefix(self, video: EncodedVideo, questions: list[str]) -> torch.Tensor:
        """Same loss as ``score_video_batched`` with the system + video prefix computed once: one row holds the
        prefix, then every question's tail (its text and the answer), each tail seeing the prefix and itself
        only (a block mask) at the positions of its own full row. No KV cache, so the decoder layers compile
        (``teacher.compile``) and checkpoint like those of any forward."""
        texts = self._question_texts(video, questions)
        # Everything but the features is fixed by the texts (questions, grid, clock), the rope's time scale
        # (Qwen2.5-VL's, from the sampled fps) and the mask format: the steps of one instance build it once.
        key = (tuple(texts), video.grid, video.clock.sampled_fps, self.model.config.text_config._attn_implementation)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = self._prefix_row(texts, video)
            if len(self._rows) > ROW_CACHE_SIZE:  # a batch of instances judged in turn keeps one row each
                del self._rows[next(iter(self._rows))]
        out = self.model(**row, mm_encoder_outputs={"video": video.features}, use_cache=False)
        return self._answer_nll(out.logits.view(len(questions), len(self.yes_ids), -1))

    def _prefix_row(self, texts: list[str], video: EncodedVideo) -> dict[str, torch.Tensor]:
        """The shared-prefix row's model inputs but the video features: ids, modality types, mRoPE positions,
        block mask, grid and the positions whose logits are kept."""
        prefix, tails = self._prefix_and_tails(texts, self.vision_end)
        ids, types, positions = self._full_rows(prefix, tails, video)
        p, lengths = len(prefix), [len(t) for t in tails]
        pieces = [slice(0, p)] + [slice(p, p + n) for n in lengths]
        rows = [0] + list(range(len(tails)))
        return {
            "input_ids": torch.cat([ids[r, s] for r, s in zip(rows, pieces)])[None],
            "mm_token_type_ids": torch.cat([types[r, s] for r, s in zip(rows, pieces)])[None],
            "position_ids": torch.cat([positions[:, r, s] for r, s in zip(rows, pieces)], dim=-1)[:, None],
            "attention_mask": block_mask(self.model.config.text_config, segment_ids(p, lengths, self.device),
                                         self.dtype),
            "video_grid_thw": torch.tensor([video.grid], device=self.device),
            "logits_to_keep": answer_positions(p, lengths, len(self.yes_ids), self.device),
        }

    # ---------------------------------------------------------------- text
    def chat_text(self, content: list[dict]) -> str:
        """One user turn (plus the optional system turn) through the chat template, generation prompt open."""
        text = self._apply_chat_template(content)
        placeholders = sum(c["type"] in ("image", "video") for c in content)
        if text.count(self.video_token) + text.count(self.image_token) != placeholders:
            raise UserError("The teacher's chat template does not emit one vision placeholder per image/video.")
        return text

    def video_placeholder(self, grid: tuple[int, int, int], clock: VideoMetadata) -> str:
        """What the official processor puts in place of the video token for this grid and clock."""
        per_group = grid[1] * grid[2] // self.spec.merge_size**2
        if self.family != "qwen3_vl":
            return self.video_token * (grid[0] * per_group)
        # Qwen3-VL: a "<t seconds>" stamp (mean time of the frames in the temporal patch) per group.
        tp = self.spec.temporal_patch_size
        indices = list(clock.frames_indices)
        indices += [indices[-1]] * (-len(indices) % tp)
        seconds = [i / clock.fps for i in indices]  # same arithmetic order as the processor
        stamps = [(seconds[i] + seconds[i + tp - 1]) / 2 for i in range(0, len(seconds), tp)]
        return "".join(f"<{t:.1f} seconds>{self.vision_start}{self.video_token * per_group}{self.vision_end}"
                       for t in stamps)

    def _tokenize(self, texts: list[str], suffix: list[int] = ()) -> dict[str, torch.Tensor]:
        """Left-padded ids, attention mask and modality types (0 text, 1 image, 2 video)."""
        ids, mask = pad_rows([self.tokenizer(t)["input_ids"] + list(suffix) for t in texts], self.pad_id, left=True)
        types = torch.zeros_like(ids, dtype=torch.int)
        types[ids == self.model.config.image_token_id] = 1
        types[ids == self.model.config.video_token_id] = 2
        types[mask == 0] = 0
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device),
                "mm_token_type_ids": types.to(self.device)}

    # ---------------------------------------------------------------- generation
    def _generate(self, prompt: str, images: list[np.ndarray] | None, max_new_tokens: int,
                  sample_seed: int | None) -> str:
        images = images or []
        text = self.chat_text([*({"type": "image"} for _ in images), {"type": "text", "text": prompt}])
        kwargs = {}
        if images:
            pixels, grids = zip(*(image_pixels(_image_tensor(img, self.device), self.spec) for img in images))
            parts = text.split(self.image_token)  # one placeholder per image, expanded in order
            counts = [int(np.prod(grid)) // self.spec.merge_size**2 for grid in grids]
            text = parts[0] + "".join(self.image_token * n + part for n, part in zip(counts, parts[1:]))
            kwargs = {"pixel_values": torch.cat(pixels).to(self.dtype),
                      "image_grid_thw": torch.tensor(grids, device=self.device)}
        batch = self._tokenize([text])
        sampled = {"do_sample": True, "temperature": 0.7, "top_p": 0.9}  # retries only, seeded
        decoding = {"do_sample": False} if sample_seed is None else sampled
        cache = {} if self.synthesis_cache_len is None else {"cache_implementation": "static",
                                                               "max_cache_len": self.synthesis_cache_len}
        config = GenerationConfig(max_new_tokens=max_new_tokens, eos_token_id=self.eos_ids, pad_token_id=self.pad_id,
                                  **decoding, **cache)
        with torch.no_grad(), eval_mode(self.model), seeded(sample_seed, self.device):
            out = self.model.generate(**batch, **kwargs, generation_config=config)
        return self.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip()


# -------------------------------------------------------------------- loading helpers
def _vision_spec(local: Path, config, family: _Family, *, min_pixels: int | None, max_pixels: int | None) -> VisionSpec:
    """Patch sizes from the model config; mean/std and pixel budgets from the preprocessing files, read
    as the official processors read them (video config falls back to the image one, then to defaults)."""
    image_cfg = read_json(local / "preprocessor_config.json")
    video_cfg = read_json(local / "video_preprocessor_config.json") or image_cfg
    image_min, image_max = _pixel_budget(image_cfg, family.image_pixels)
    video_min, video_max = _pixel_budget(video_cfg, family.video_pixels)
    vision = config.vision_config
    return VisionSpec(
        patch_size=vision.patch_size, temporal_patch_size=vision.temporal_patch_size,
        merge_size=vision.spatial_merge_size,
        image_mean=tuple(video_cfg.get("image_mean", family.image_mean)),
        image_std=tuple(video_cfg.get("image_std", family.image_std)),
        image_min_pixels=image_min, image_max_pixels=image_max,
        video_min_pixels=min_pixels or video_min, video_max_pixels=max_pixels or video_max,
        video_budget=family.video_budget,
    )


def _pixel_budget(cfg: dict, default: tuple[int, int]) -> tuple[int, int]:
    size = cfg.get("size") or {}
    low = cfg.get("min_pixels") or size.get("shortest_edge") or default[0]
    high = cfg.get("max_pixels") or size.get("longest_edge") or default[1]
    return int(low), int(high)


def _repeat_features(features, n: int):
    """The vision tower's output for one video, as if the video had been given once per question."""
    repeated = copy.copy(features)
    repeated.pooler_output = tuple(features.pooler_output) * n
    if getattr(features, "deepstack_features", None) is not None:  # Qwen3-VL's per-layer visual features
        repeated.deepstack_features = [tuple(f) * n for f in features.deepstack_features]
    return repeated


def _image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"images must be uint8 [H, W, 3] arrays, got {getattr(image, 'dtype', type(image))} "
                         f"{getattr(image, 'shape', '')}")
    # np.array copies: inputs may be read-only arrays, which torch would share and warn about
    return torch.as_tensor(np.array(image), device=device).permute(2, 0, 1).float() / 255.0


