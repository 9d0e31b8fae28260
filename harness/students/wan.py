"""The student adapter for diffusers' Wan family (Wan2.2-TI2V-5B, its distilled variants, the micro student).

Differentiable, hand-written sampling around ``WanTransformer3DModel`` (the diffusers pipelines run under
``no_grad``), with Wan2.2-TI2V first-frame conditioning: the first latent frame is the clean, VAE-encoded
condition image and its tokens get timestep 0. Two samplers: ``dmd`` (a distilled student's few steps,
predict x0 and re-noise, as FastVideo's DMD inference) and ``scheduler`` (the checkpoint's own diffusers
scheduler, UniPC for Wan2.2, stepped exactly as ``WanPipeline`` / ``WanImageToVideoPipeline`` step it).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import PIL.Image
import torch
import transformers
import diffusers
from diffusers import AutoencoderKLWan, SchedulerMixin, WanTransformer3DModel
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d
from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from diffusers.utils import is_ftfy_available
from diffusers.video_processor import VideoProcessor
from transformers import AutoTokenizer

from harness.loading import resolve_device, resolve_dtype, resolve_model_dir
from harness.seeding import derive_seed
from harness.students.first_frame import FIRST_FRAME_FITS, fit_first_frame
from harness.students.fp8 import fp8_base_layers
from harness.students.light_decoder import build_light_decoder
from harness.students.lora import BatchedAdapters, LoraSpec, attach_lora, batched_lora, load_adapter, reset_lora
from harness.students.schedules import check_dmd_timesteps, scheduler_schedule
from harness.types import Conditioning, Instance, UserError

SAMPLERS = ("dmd", "scheduler")

# A light decoder maps normalised latents [1, C, F, h, w] to frames [T, 3, H, W] in [0, 1], differentiably.
# The diffusers components a Wan student loads; nothing else in the repo is downloaded.
_COMPONENTS = ["model_index.json", "transformer/*", "vae/*", "text_encoder/*", "tokenizer/*", "scheduler/*"]
LightDecoder = Callable[[torch.Tensor], torch.Tensor]


def is_frame_wise(vae: AutoencoderKLWan) -> bool:
    """True for a Wan VAE without temporal compression whose causal convolutions ignore past frames (all
    past taps zero, as the micro VAE is built): each frame then decodes alone, so frames can be batched."""
    if vae.config.scale_factor_temporal != 1 or any(vae.config.temperal_downsample):
        return False
    convs = [m for m in vae.modules() if isinstance(m, WanCausalConv3d) and m.weight.shape[2] > 1]
    return all(not m.weight[:, :, :-1].any() for m in convs)


def frames_as_batch(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` of a frame-wise VAE ([B, C, 1, H, W] -> [B, C', 1, H', W']) on every frame of ``x``
    [N, C, T, H, W] as one batch: [N, C', T, H', W'], the frames the VAE's own frame loop gives."""
    n, c, t = x.shape[:3]
    out = fn(x.transpose(1, 2).reshape(n * t, c, 1, *x.shape[-2:]))
    return out[:, :, 0].reshape(n, t, *out.shape[1:2], *out.shape[-2:]).transpose(1, 2)


def checkpoint_blocks(transformer: WanTransformer3DModel, skip_first: int = 0) -> None:
    """Gradient checkpointing on every DiT block but the first ``skip_first`` (memory for speed: an
    uncheckpointed block keeps its activations instead of recomputing them in the backward)."""
    num_blocks = len(transformer.blocks)
    if not 0 <= skip_first <= num_blocks:
        raise ValueError(f"student.uncheckpointed_blocks must be in [0, {num_blocks}], got {skip_first}")
    plain = set(map(id, transformer.blocks[:skip_first]))

    def checkpoint(block: torch.nn.Module, *args: Any) -> Any:
        if id(block) in plain:
            return block(*args)
        return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)

    transformer.enable_gradient_checkpointing(gradient_checkpointing_func=checkpoint)


class WanStudent:
    """A Wan transformer + Wan VAE + T5-family text encoder, sampled with DMD re-noising or the checkpoint's
    own scheduler (``scheduler``, required for ``sampler="scheduler"``)."""

    def __init__(
        self,
        *,
        transformer: WanTransformer3DModel,
        vae: AutoencoderKLWan,
        text_encoder: transformers.PreTrainedModel,
        tokenizer: Any,
        device: str = "auto",
        sampler: str = "dmd",
        dmd_timesteps: list[int] | None = None,
        num_steps: int = 4,
        shift: float = 5.0,
        scheduler: SchedulerMixin | None = None,
        first_frame_fit: str = "crop",
        guidance_scale: float = 1.0,
        negative_prompt: str = "",
        lora: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        uncheckpointed_blocks: int = 0,
        compile: bool = False,
        fp8: bool = False,
        offload_text_encoder: bool = True,
        max_text_len: int = 512,
        light_decoder: dict[str, Any] | None = None,
    ) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"student.sampler must be one of {SAMPLERS}, got {sampler!r}")
        if first_frame_fit not in FIRST_FRAME_FITS:
            raise ValueError(f"student.first_frame_fit must be one of {FIRST_FRAME_FITS}, got {first_frame_fit!r}")
        if not is_ftfy_available():
            raise UserError("the Wan students clean prompts with ftfy as the official pipelines do: pip install ftfy")
        self.device = resolve_device(device, config_key="student.device")
        self.sampler = sampler
        self.first_frame_fit = first_frame_fit
        self.scheduler = None
        if sampler == "scheduler":
            if dmd_timesteps is not None:
                raise ValueError("student.dmd_timesteps applies to the dmd sampler only; the scheduler sampler "
                                 "uses num_steps and shift")
            if scheduler is None:
                raise UserError("student.sampler=scheduler needs the checkpoint's scheduler/ folder")
            # The checkpoint's scheduler class and settings; only flow_shift comes from the config.
            self.scheduler = type(scheduler).from_config(scheduler.config, flow_shift=shift)
            self.timesteps, self.sigmas = scheduler_schedule(self.scheduler, num_steps)
        else:
            self.timesteps = self._dmd_timesteps(dmd_timesteps, num_steps)
            self.sigmas = [t / 1000.0 for t in self.timesteps]  # flow matching: t = 1000 * sigma
        self.guidance_scale = float(guidance_scale)
        self.negative_prompt = negative_prompt
        self.offload_text_encoder = offload_text_encoder
        self.max_text_len = max_text_len

        # Dtypes are set at load time (from_pretrained keeps diffusers' fp32 modules); here only the device moves.
        self.transformer = transformer.to(self.device).eval().requires_grad_(False)
        self.dtype = self.transformer.patch_embedding.weight.dtype
        self.vae = vae.to(self.device).eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.text_encoder.to(torch.device("cpu") if offload_text_encoder else self.device)
        self.tokenizer = tokenizer
        if gradient_checkpointing:
            checkpoint_blocks(self.transformer, skip_first=uncheckpointed_blocks)
        elif uncheckpointed_blocks:
            raise ValueError("student.uncheckpointed_blocks needs student.gradient_checkpointing: true")

        self.lora_spec = LoraSpec(**lora) if lora is not None else None
        self._lora_params = attach_lora(self.transformer, self.lora_spec) if self.lora_spec else []
        if self._lora_params:
            self.transformer.disable_adapters()  # B = 0: inactive until lora_parameters() is asked for
        if fp8:
            fp8_base_layers(self.transformer, self.device)
        if compile:
            # Regional compilation (diffusers): every DiT block shares one compiled graph, LoRA included;
            # compiled lazily at the first call, so once per process and shape.
            self.transformer.compile_repeated_blocks()
        self._prompt_cache: dict[str, torch.Tensor] = {}

        z_dim = self.vae.config.z_dim
        self._latents_mean = torch.tensor(self.vae.config.latents_mean).view(1, z_dim, 1, 1, 1).to(self.device)
        self._latents_std = torch.tensor(self.vae.config.latents_std).view(1, z_dim, 1, 1, 1).to(self.device)
        self._scale_t = self.vae.config.scale_factor_temporal
        self._scale_s = self.vae.config.scale_factor_spatial
        self._video_processor = VideoProcessor(vae_scale_factor=self._scale_s)
        self._frame_wise = is_frame_wise(self.vae)
        # The ``light_decoder`` block ({kind, path, latent_convention, dtype, revision}); None decodes with the VAE.
        self.light_decoder: LightDecoder | None = None
        if light_decoder is not None:
            self.light_decoder = build_light_decoder(
                **light_decoder, latents_mean=self.vae.config.latents_mean, latents_std=self.vae.config.latents_std,
                vae_scales=(self._scale_t, self._scale_s), device=self.device,
            )

    @classmethod
    def from_pretrained(cls, *, path: str, dtype: str = "float32", vae_dtype: str = "float32",
                        revision: str | None = None, **settings: Any) -> WanStudent:
        """Load every component from a diffusers-format directory or hub id (``student.path``, at ``revision``:
        a branch, tag or commit; None: the hub's default branch).

        ``dtype`` is the transformer's and text encoder's, ``vae_dtype`` the Wan VAE's (fp32, as diffusers
        advises; bf16 decodes the final video faster); ``settings`` are ``__init__``'s keyword arguments.
        """
        root = resolve_model_dir(path, config_key="student.path", marker="model_index.json", allow_patterns=_COMPONENTS,
                                 revision=revision)
        index_file = root / "model_index.json"
        if not index_file.is_file():
            raise UserError(f"{root} has no model_index.json: student.path must be a diffusers-format folder")
        index = json.loads(index_file.read_text())
        library, class_name = index["text_encoder"]
        if library != "transformers" or not hasattr(transformers, class_name):
            raise UserError(f"{index_file}: unsupported text encoder {library}.{class_name}")
        scheduler = None
        if settings.get("sampler") == "scheduler":
            library, scheduler_name = index.get("scheduler") or (None, None)
            if library != "diffusers" or not hasattr(diffusers, scheduler_name or ""):
                raise UserError(f"{index_file}: student.sampler=scheduler needs a diffusers scheduler, "
                                f"got {library}.{scheduler_name}")
            scheduler = getattr(diffusers, scheduler_name).from_pretrained(root, subfolder="scheduler")
        torch_dtype = resolve_dtype(dtype, config_key="student.dtype")
        vae_torch_dtype = resolve_dtype(vae_dtype, config_key="student.vae_dtype")
        resolve_device(settings.get("device", "auto"), config_key="student.device")  # fail before loading GBs
        text_encoder_cls = getattr(transformers, class_name)
        return cls(
            transformer=WanTransformer3DModel.from_pretrained(root, subfolder="transformer", torch_dtype=torch_dtype),
            vae=AutoencoderKLWan.from_pretrained(root, subfolder="vae", torch_dtype=vae_torch_dtype),
            text_encoder=text_encoder_cls.from_pretrained(root, subfolder="text_encoder", dtype=torch_dtype),
            tokenizer=AutoTokenizer.from_pretrained(root, subfolder="tokenizer"),
            scheduler=scheduler,
            **settings,
        )

    @staticmethod
    def _dmd_timesteps(timesteps: list[int] | None, num_steps: int) -> list[int]:
        if timesteps is None:  # evenly spaced, e.g. 4 steps -> [1000, 750, 500, 250]
            timesteps = [1000 - 1000 * k // num_steps for k in range(num_steps)]
        if len(timesteps) != num_steps:
            raise ValueError(f"student.num_steps={num_steps} but student.dmd_timesteps has {len(timesteps)} values: "
                             f"{list(timesteps)}")
        return check_dmd_timesteps(timesteps)

    # ----- conditioning -----

    @torch.no_grad()
    def encode(self, instance: Instance) -> Conditioning:
        latent_shape = self.latent_shape(instance.num_frames, instance.height, instance.width)
        extra: dict[str, Any] = {}
        if self.guidance_scale > 1.0:
            extra["negative_prompt_embeds"] = self._embed_prompt(self.negative_prompt)
        first_latent = None
        if instance.first_frame is not None:
            first_latent = self._encode_first_frame(instance.first_frame, instance.height, instance.width)
        return Conditioning(
            prompt_embeds=self._embed_prompt(instance.prompt),
            first_latent=first_latent,
            latent_shape=latent_shape,
            extra=extra,
        )

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int, int]:
        _, p_h, p_w = self.transformer.config.patch_size
        if (num_frames - 1) % self._scale_t:
            raise ValueError(f"num_frames must be {self._scale_t}k+1 for this VAE, got {num_frames}")
        if height % (self._scale_s * p_h) or width % (self._scale_s * p_w):
            raise ValueError(
                f"height and width must be multiples of {self._scale_s * p_h} (VAE x patch), got {height}x{width}"
            )
        z_dim = self.vae.config.z_dim
        return (1, z_dim, (num_frames - 1) // self._scale_t + 1, height // self._scale_s, width // self._scale_s)

    def _embed_prompt(self, prompt: str) -> torch.Tensor:
        """T5 embeddings as Wan's pipeline builds them: padded to max_text_len, zero past the prompt."""
        if prompt not in self._prompt_cache:
            tokens = self.tokenizer(
                [prompt_clean(prompt)],
                padding="max_length",
                max_length=self.max_text_len,
                truncation=True,
                add_special_tokens=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            self.text_encoder.to(self.device)
            hidden = self.text_encoder(
                tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
            ).last_hidden_state
            if self.offload_text_encoder:
                self.text_encoder.to("cpu")
            keep = tokens.attention_mask.to(self.device, hidden.dtype).unsqueeze(-1)
            self._prompt_cache[prompt] = (hidden * keep).to(self.dtype)
        return self._prompt_cache[prompt]

    def _encode_first_frame(self, frame: np.ndarray, height: int, width: int) -> torch.Tensor:
        """uint8 [H, W, 3] -> normalised latent [1, C, 1, h, w] (VAE mode, then (z - mean) / std)."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"first_frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        # Fitted to the generation size (student.first_frame_fit), then the pipeline's own preprocessing
        # (a no-op resize at that size, map to [-1, 1]).
        fitted = fit_first_frame(PIL.Image.fromarray(frame), height, width, self.first_frame_fit)
        image = self._video_processor.preprocess(fitted, height=height, width=width)
        video = image.to(self.device, torch.float32).unsqueeze(2)
        latent = self.vae.encode(video.to(self.vae.dtype)).latent_dist.mode().float()
        return (latent - self._latents_mean) / self._latents_std

    # ----- sampling -----

    def make_noise(self, cond: Conditioning, seed: int) -> torch.Tensor:
        """Gaussian noise of the latent shape, drawn on CPU so a seed means the same noise on every device."""
        generator = torch.Generator(device="cpu").manual_seed(seed)
        return torch.randn(cond.latent_shape, generator=generator, dtype=torch.float32).to(self.device)

    def predict_x0(self, cond: Conditioning, latents: torch.Tensor, sigma: float) -> torch.Tensor:
        """x0 = x_t - sigma * v; the first latent frame is the condition in I2V mode."""
        x_t = self._with_condition(cond, latents)
        return self._with_condition(cond, x_t - sigma * self.velocity(cond, x_t, self.timestep_of(sigma)))

    def timestep_of(self, sigma: float) -> float:
        """The transformer's timestep at noise level ``sigma``: the schedule's own (the scheduler's integer
        timesteps, DMD's configured ones) at its levels, 1000 * sigma elsewhere."""
        for level, timestep in zip(self.sigmas, self.timesteps):
            if level == sigma:
                return float(timestep)
        return 1000.0 * sigma

    def velocity(self, cond: Conditioning, x_t: torch.Tensor, timestep: float) -> torch.Tensor:
        """The (guided) flow velocity v = eps - x0 predicted at transformer timestep ``timestep`` (fp32)."""
        timestep = self._token_timesteps(cond, timestep)
        v = self._transformer_call(x_t, timestep, cond.prompt_embeds)
        if self.guidance_scale > 1.0:
            negative = cond.extra["negative_prompt_embeds"]
            v_uncond = self._transformer_call(x_t, timestep, negative.expand(len(x_t), *negative.shape[1:]))
            v = v_uncond + self.guidance_scale * (v - v_uncond)
        return v

    def renoise(self, x0: torch.Tensor, sigma: float, seed: int, step: int) -> torch.Tensor:
        """DMD re-noising to ``sigma`` with fresh noise drawn from (seed, step)."""
        generator = torch.Generator(device="cpu").manual_seed(derive_seed(seed, "renoise", step))
        eps = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device)
        return (1.0 - sigma) * x0 + sigma * eps

    def step(self, cond: Conditioning, x_t: torch.Tensor, k: int, seed: int) -> torch.Tensor:
        """DMD sampling step ``k`` from noise level sigmas[k]; the last step returns clean latents."""
        if self.sampler != "dmd":
            raise UserError("single sampling steps (vlmteach opt_step=last/all) need student.sampler=dmd; the "
                            "scheduler sampler is a multistep solver whose steps depend on the steps before")
        x0 = self.predict_x0(cond, x_t, self.sigmas[k])
        return x0 if k == len(self.sigmas) - 1 else self.renoise(x0, self.sigmas[k + 1], seed, k + 1)

    def sample(self, cond: Conditioning, noise: torch.Tensor, seed: int) -> torch.Tensor:
        """All steps from ``noise``; gradient mode is the caller's choice."""
        if self.sampler == "scheduler":
            return self._sample_with_scheduler(cond, noise)
        x = noise
        for k in range(len(self.sigmas)):
            x = self.step(cond, x, k, seed)
        return x

    def _sample_with_scheduler(self, cond: Conditioning, noise: torch.Tensor) -> torch.Tensor:
        """The diffusers Wan pipelines' loop: the scheduler steps the whole latent, the model sees it with the
        condition frame in place, and the condition replaces the first frame of the result."""
        scheduler = copy.deepcopy(self.scheduler)  # a multistep solver keeps state: a fresh one per sample
        scheduler.set_timesteps(len(self.timesteps), device=self.device)
        latents = noise
        for t in scheduler.timesteps:
            v = self.velocity(cond, self._with_condition(cond, latents), float(t))
            latents = scheduler.step(v, t, latents, return_dict=False)[0]
        return self._with_condition(cond, latents)

    def _with_condition(self, cond: Conditioning, x: torch.Tensor) -> torch.Tensor:
        if cond.first_latent is None:
            return x
        return torch.cat([cond.first_latent.to(x.dtype), x[:, :, 1:]], dim=2)

    def _token_timesteps(self, cond: Conditioning, timestep: float) -> torch.Tensor:
        """Per-token timesteps [B, seq_len] as Wan2.2-TI2V builds them: 0 on first-frame tokens in I2V mode."""
        _, _, frames, height, width = cond.latent_shape
        p_t, p_h, p_w = self.transformer.config.patch_size
        mask = torch.ones(frames, height, width, device=self.device)
        if cond.first_latent is not None:
            mask[0] = 0.0
        per_token = (mask[::p_t, ::p_h, ::p_w] * timestep).flatten()
        return per_token.unsqueeze(0).expand(cond.latent_shape[0], -1)

    def _transformer_call(self, x_t: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        out = self.transformer(
            hidden_states=x_t.to(self.dtype), timestep=timestep, encoder_hidden_states=text, return_dict=False
        )[0]
        return out.float()

    # ----- decoding -----

    def decode(self, latents: torch.Tensor, light: bool = False) -> torch.Tensor:
        """Normalised latents -> frames [T, 3, H, W] in [0, 1]; ``light`` uses ``light_decoder`` when set."""
        if light and self.light_decoder is not None:
            return self.light_decoder(latents)
        z = (latents.float() * self._latents_std + self._latents_mean).to(self.vae.dtype)
        def decode(latents: torch.Tensor) -> torch.Tensor:
            return self.vae.decode(latents, return_dict=False)[0]

        # [1, 3, T, H, W] in [-1, 1]; the VAE's clamp gives zero gradient on saturated pixels.
        video = (frames_as_batch(decode, z) if self._frame_wise else decode(z)).float()
        return (video[0].transpose(0, 1) + 1.0) / 2.0

    # ----- LoRA -----

    def lora_parameters(self) -> list[torch.nn.Parameter]:
        """The adapter's trainable parameters. Asking for them activates the adapter: the caller trains it."""
        if self._lora_params:
            self.transformer.enable_adapters()
        return list(self._lora_params)

    def reset_lora(self, seed: int) -> None:
        """Re-draw A, zero B and deactivate the adapter: with B = 0 it adds exactly nothing, so the base model
        alone gives the same outputs at a fraction of the cost (the LoRA layers were half a micro DiT
        forward for the methods that never train them)."""
        reset_lora(self.transformer, self._required_lora_spec(), seed)
        self.transformer.disable_adapters()

    def batched_lora(self, seeds: Sequence[int]) -> AbstractContextManager[BatchedAdapters]:
        """A context with one fresh adapter per batch element (``lora.batched_lora``), the i-th as
        ``reset_lora(seeds[i])`` draws it; yields their ``BatchedAdapters``. Run a batched ``Conditioning``
        (``stack_conditions``) through it to optimise several instances' LoRAs at once."""
        spec = self._required_lora_spec()
        self.transformer.disable_adapters()
        return batched_lora(self.transformer, spec, seeds)

    @staticmethod
    def stack_conditions(conds: Sequence[Conditioning]) -> Conditioning:
        """One batched conditioning from single ones of one latent shape (and one negative prompt, if any)."""
        shape = conds[0].latent_shape
        if any(c.latent_shape != shape for c in conds):
            raise ValueError(f"only conditionings of one latent shape stack, got {sorted({c.latent_shape for c in conds})}")
        first = None if conds[0].first_latent is None else torch.cat([c.first_latent for c in conds])
        return replace(conds[0], prompt_embeds=torch.cat([c.prompt_embeds for c in conds]), first_latent=first,
                       latent_shape=(len(conds), *shape[1:]))

    def load_lora(self, weights: Sequence[torch.Tensor]) -> None:
        """Activate the adapter with ``weights``: one adapter of a ``batched_lora`` (``BatchedAdapters.adapter``),
        to sample with it as the ordinary adapter."""
        self._required_lora_spec()
        load_adapter(self.transformer, weights)
        self.transformer.enable_adapters()

    def _required_lora_spec(self) -> LoraSpec:
        if self.lora_spec is None:
            raise UserError("this method needs a LoRA on the student: set student.lora (rank, scale, ...)")
        return self.lora_spec

    def set_lora_enabled(self, enabled: bool) -> None:
        if self.lora_spec is None:
            raise UserError("the student has no LoRA: set student.lora to use one")
        if enabled:
            self.transformer.enable_adapters()
        else:
            self.transformer.disable_adapters()
