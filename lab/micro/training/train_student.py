"""Train the micro student: a step-distilled Wan (transformer + UMT5 text encoder) over the trained VAE.

What it learns (docs/micro-world.md):
- at sigma = 1 (the first step of the 4-step sampler, from pure noise), a deterministic, sharp map from
  the noise to ONE behaviour of the task (``data.behaviour_from_noise``): the instruction is followed for
  a ``p_correct`` minority of noise draws, a plausible wrong solution otherwise. This is the direct
  x0 regression a distilled model's first step realises; it makes one-step predictions sharp;
- at sigma < 1 (the re-noised later steps), plain flow matching with independent noise: a denoiser that
  completes whatever behaviour the signal already shows.
Conditioning is Wan2.2-TI2V's: the first latent frame is the clean first-frame latent with timestep 0.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.func import functional_call
from diffusers import UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from transformers import PreTrainedTokenizerFast, UMT5EncoderModel

from benchmarks.micro import vocabulary
from lab.micro.training.data import behaviour_from_noise
from lab.micro.training.loop import fit
from lab.micro.weights_student import (
    MAX_TEXT_LEN,
    TRANSFORMER_CONFIG,
    build_text_encoder,
    build_tokenizer,
)

LATER_SIGMAS = (0.25, 0.1, 0.05)  # the micro sampler's re-noised levels (conf/student/micro.yaml)
NUDGE_SIZES = (0.05, 0.4)  # L2 size range of coherence_loss's weight nudge (the weights' norm is about 90)
# lora_coherence_loss's adapters, as conf/student/micro.yaml's student.lora (rank 16, scale 1), and
# their fit: Adam at a learning rate that covers in a few steps what 40 of vlmteach's loop at 1e-3 do.
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2")
LORA_RANK = 16
LORA_FIT_LR = 4e-3


def new_student(seed: int) -> tuple[WanTransformer3DModel, UMT5EncoderModel, PreTrainedTokenizerFast]:
    tokenizer = build_tokenizer(vocabulary())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return WanTransformer3DModel(**TRANSFORMER_CONFIG), build_text_encoder(len(tokenizer)), tokenizer


def tokenize_prompts(tokenizer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and mask exactly as WanStudent._embed_prompt builds them."""
    tokens = tokenizer([prompt_clean(p) for p in prompts], padding="max_length", max_length=MAX_TEXT_LEN,
                       truncation=True, add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    return tokens.input_ids, tokens.attention_mask


def embed(text_encoder: UMT5EncoderModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    hidden = text_encoder(ids, mask).last_hidden_state
    return hidden * mask.unsqueeze(-1).to(hidden.dtype)


def token_timesteps(sigma: torch.Tensor, latent_shape: tuple[int, ...]) -> torch.Tensor:
    """[B, seq] timesteps (1x1x1 patches): sigma * 1000, 0 on the condition frame's tokens."""
    _, _, frames, h, w = latent_shape
    mask = torch.ones(frames, h, w, device=sigma.device)
    mask[0] = 0.0
    return sigma.view(-1, 1) * 1000.0 * mask.flatten().unsqueeze(0)


def predict_x0(transformer, x_t: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    v = transformer(hidden_states=x_t, timestep=token_timesteps(sigma, x_t.shape), encoder_hidden_states=text,
                    return_dict=False)[0]
    return x_t - sigma.view(-1, 1, 1, 1, 1) * v


def target_behaviours(noise: torch.Tensor, first: torch.Tensor, num_wrong: torch.Tensor, p_correct: float,
                      generator: torch.Generator) -> torch.Tensor:
    """Which behaviour each row regresses to: the noise's own (``behaviour_from_noise``) on ``first`` rows
    (sigma = 1), one drawn uniformly from the instance's 1 + ``num_wrong`` behaviours on the others."""
    uniform = (torch.rand(len(noise), generator=generator) * (num_wrong.cpu() + 1)).long().to(noise.device)
    return torch.where(first, behaviour_from_noise(noise, p_correct, num_wrong), uniform)


def student_loss(transformer, text: torch.Tensor, latents: torch.Tensor, num_wrong: torch.Tensor, p_correct: float,
                 generator: torch.Generator, first_step_fraction: float = 0.5) -> torch.Tensor:
    """x0 regression on the generated frames for one batch.

    ``latents`` [B, M, C, F, h, w] are the normalised latents of each instance's behaviours (0 = correct).
    Rows before ``first_step_fraction * B`` train the sigma = 1 map (target = the noise's behaviour);
    the rest train a later sigma with independent noise and a behaviour drawn uniformly: the later steps
    learn no preference of their own, so they complete whatever behaviour the signal shows (with the
    ``p_correct`` prior they pulled a sample that a LoRA had turned correct back to a wrong behaviour).
    """
    b = latents.shape[0]
    device = latents.device
    noise = torch.randn(latents[:, 0].shape, generator=generator).to(device)
    n_first = int(round(first_step_fraction * b))
    first = torch.arange(b, device=device) < n_first
    chosen = target_behaviours(noise, first, num_wrong, p_correct, generator)
    x0 = latents[torch.arange(b, device=device), chosen]
    pick = torch.randint(len(LATER_SIGMAS), (b,), generator=generator)
    later = torch.tensor(LATER_SIGMAS)[pick]
    uniform = torch.rand(b, generator=generator).clamp(0.05, 0.95)  # between the fixed levels, for robustness
    later = torch.where(torch.rand(b, generator=generator) < 0.7, later, uniform)
    sigma = torch.where(first.cpu(), torch.ones(b), later).to(device)
    x_t = (1 - sigma.view(-1, 1, 1, 1, 1)) * x0 + sigma.view(-1, 1, 1, 1, 1) * noise
    x_t = torch.cat([x0[:, :, :1], x_t[:, :, 1:]], dim=2)  # the clean condition frame
    x0_hat = predict_x0(transformer, x_t, sigma, text)
    return (x0_hat[:, :, 1:] - x0[:, :, 1:]).pow(2).mean()


def coherence_loss(transformer, text: torch.Tensor, latents: torch.Tensor, generator: torch.Generator
                   ) -> torch.Tensor:
    """Keep what a goal-only signal reaches a coherent video. For first-step rows (sigma = 1), the weights are
    nudged by one normalised gradient step (size drawn from ``NUDGE_SIZES``) that moves the LAST frame of the
    prediction towards a random behaviour's last frame, as a LoRA fitted to an end state would; the nudged
    model's whole prediction is then regressed to the behaviour whose last frame it is nearest, so that a
    changed end comes with its path (docs/micro-world.md, The student). The nudge itself is a
    constant: the gradient reaches the weights through the nudged forward only."""
    b, device = latents.shape[0], latents.device
    noise = torch.randn(latents[:, 0].shape, generator=generator).to(device)
    x_t = torch.cat([latents[:, 0, :, :1], noise[:, :, 1:]], dim=2)  # the clean condition frame
    sigma = torch.ones(b, device=device)
    params = {name: p for name, p in transformer.named_parameters() if p.requires_grad}
    goal = latents[torch.arange(b, device=device),
                   torch.randint(latents.shape[1], (b,), generator=generator).to(device)]
    pull = predict_x0(transformer, x_t, sigma, text.detach())[:, :, -1:] - goal[:, :, -1:]  # text detached: this graph is freed
    grads = torch.autograd.grad(pull.square().mean(), list(params.values()), allow_unused=True)
    norm = torch.sqrt(sum(g.square().sum() for g in grads if g is not None)).clamp_min(1e-12)
    size = NUDGE_SIZES[0] + (NUDGE_SIZES[1] - NUDGE_SIZES[0]) * float(torch.rand((), generator=generator))
    nudged = {name: p if g is None else p - (size / norm) * g.detach() for (name, p), g in zip(params.items(), grads)}
    x0_hat = predict_x0(lambda **inputs: functional_call(transformer, nudged, args=(), kwargs=inputs), x_t, sigma, text)
    with torch.no_grad():
        nearest = (x0_hat[:, None, :, -1] - latents[:, :, :, -1]).square().flatten(2).mean(2).argmin(1)
    target = latents[torch.arange(b, device=device), nearest]
    return (x0_hat[:, :, 1:] - target[:, :, 1:]).square().mean()


@contextmanager
def row_adapters(transformer, batch: int, generator: torch.Generator, rank: int = LORA_RANK):
    """``batch`` fresh LoRAs, the i-th on batch row i, on ``LORA_TARGETS`` (A gaussian with std 1/rank as peft's
    ``gaussian`` init, B zero; scaling 1), added by forward hooks; yields their [A, B, ...] stacks ([batch, r, in],
    [batch, out, r])."""
    layers = [m for name, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)
              and any(name == t or name.endswith("." + t) for t in LORA_TARGETS)]
    device = next(transformer.parameters()).device
    stacks, handles = [], []
    for layer in layers:
        a = (torch.randn(batch, rank, layer.in_features, generator=generator) / rank).to(device).requires_grad_(True)
        b = a.new_zeros(batch, layer.out_features, rank).requires_grad_(True)
        handles.append(layer.register_forward_hook(lambda module, args, out, a=a, b=b: out + (args[0] @ a.mT) @ b.mT))
        stacks += [a, b]
    try:
        yield stacks
    finally:
        for handle in handles:
            handle.remove()


def fit_end_state(transformer, stacks: list[torch.Tensor], x_t: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor,
                  goal: torch.Tensor, steps: int) -> None:
    """What a goal-only judge asks of vlmteach's loop: Adam on ``row_adapters``' ``stacks`` for ``steps`` steps,
    moving each row's predicted LAST frame towards its ``goal`` latents [B, C, h, w]."""
    optimizer = torch.optim.Adam(stacks, lr=LORA_FIT_LR)
    for _ in range(steps):
        last = predict_x0(transformer, x_t, sigma, text.detach())[:, :, -1]
        pull = (last - goal).square().flatten(1).mean(1).sum()  # a sum: each row's adapter sees its own loss
        optimizer.zero_grad(set_to_none=True)
        for stack, grad in zip(stacks, torch.autograd.grad(pull, stacks)):
            stack.grad = grad
        optimizer.step()


def lora_coherence_loss(transformer, text: torch.Tensor, latents: torch.Tensor, generator: torch.Generator,
                        max_steps: int) -> torch.Tensor:
    """``coherence_loss`` with the nudge vlmteach's loop makes: for first-step rows, a fresh LoRA per row is fitted
    for 1..``max_steps`` steps towards a random behaviour's last frame (``fit_end_state``); the adapted
    prediction is then regressed to the behaviour whose last frame it is nearest. The fitted adapters are
    constants: the gradient reaches the weights through the adapted forward only (first order, as MAML's cheap
    variant)."""
    b, device = latents.shape[0], latents.device
    noise = torch.randn(latents[:, 0].shape, generator=generator).to(device)
    x_t = torch.cat([latents[:, 0, :, :1], noise[:, :, 1:]], dim=2)  # the clean condition frame
    sigma = torch.ones(b, device=device)
    goal = latents[torch.arange(b, device=device),
                   torch.randint(latents.shape[1], (b,), generator=generator).to(device)][:, :, -1]
    steps = int(torch.randint(1, max_steps + 1, (), generator=generator))
    with row_adapters(transformer, b, generator) as stacks:
        fit_end_state(transformer, stacks, x_t, sigma, text, goal, steps)
        for stack in stacks:
            stack.requires_grad_(False)
        x0_hat = predict_x0(transformer, x_t, sigma, text)
    with torch.no_grad():
        nearest = (x0_hat[:, None, :, -1] - latents[:, :, :, -1]).square().flatten(2).mean(2).argmin(1)
    target = latents[torch.arange(b, device=device), nearest]
    return (x0_hat[:, :, 1:] - target[:, :, 1:]).square().mean()


def train_student(transformer, text_encoder, *, ids: torch.Tensor, mask: torch.Tensor, latents: torch.Tensor,
                  num_wrong: torch.Tensor, p_correct: float, steps: int, batch: int, lr: float, seed: int,
                  time_cap_s: float | None = None, coherence: float = 0.0, coherence_lora_steps: int = 0,
                  log=print) -> None:
    """Fit transformer and text encoder on random instances (prompts ``ids``/``mask``, latents [N, M, C, F, h, w]);
    with ``coherence``, plus that weight times ``coherence_loss`` on a quarter of each batch
    (``lora_coherence_loss`` with up to ``coherence_lora_steps`` adapter steps when that is set)."""
    transformer.train().requires_grad_(True)
    text_encoder.train().requires_grad_(True)
    generator = torch.Generator().manual_seed(seed)

    def loss_fn(step: int):
        idx = torch.randint(len(latents), (batch,), generator=generator).to(latents.device)
        text = embed(text_encoder, ids[idx], mask[idx])
        loss = student_loss(transformer, text, latents[idx], num_wrong[idx], p_correct, generator)
        if not coherence:
            return loss, f"loss {loss.item():.4f}"
        quarter = max(1, batch // 4)
        if coherence_lora_steps:
            extra = lora_coherence_loss(transformer, text[:quarter], latents[idx[:quarter]], generator,
                                        coherence_lora_steps)
        else:
            extra = coherence_loss(transformer, text[:quarter], latents[idx[:quarter]], generator)
        return loss + coherence * extra, f"loss {loss.item():.4f} coherence {extra.item():.4f}"

    fit([*transformer.parameters(), *text_encoder.parameters()], loss_fn, steps=steps, lr=lr, name="student",
        weight_decay=0.01, time_cap_s=time_cap_s, log=log)
    transformer.eval().requires_grad_(False)
    text_encoder.eval().requires_grad_(False)


def save_student(out_dir, *, transformer, text_encoder, vae) -> None:
    """The diffusers WanPipeline folder the micro builder writes, with trained components (and a fresh
    tokenizer: a used fast tokenizer would save its last padding and truncation settings)."""
    pipeline = WanPipeline(
        tokenizer=build_tokenizer(vocabulary()), text_encoder=text_encoder.cpu(), transformer=transformer.cpu(),
        vae=vae.cpu(),
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                          num_train_timesteps=1000, flow_shift=5.0),
        transformer_2=None, boundary_ratio=None, expand_timesteps=True,
    )
    pipeline.save_pretrained(out_dir, safe_serialization=True)
