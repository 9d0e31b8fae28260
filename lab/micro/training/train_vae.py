"""Fit the micro student's ``AutoencoderKLWan`` to reconstruct micro clips (flat colours, sharp cells).

The VAE keeps the builder's shape (8x spatial, frame-wise: latents [16, 17, 4, 4]) and trains on single
frames, which is exact for a frame-wise VAE (``weights_student.build_vae``) and avoids the causal chunk loop
that made clip training slow; after training its ``latents_mean`` / ``latents_std`` are set from the data,
as Wan's own config carries them.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan

from harness.students.patch_linear import PatchLinearDecoder
from harness.students.wan import frames_as_batch, is_frame_wise
from lab.micro.training.loop import fit
from lab.micro.weights_student import LATENT_CHANNELS, build_vae

KL_WEIGHT = 1e-6  # a little pull to N(0, 1) keeps latents bounded without blurring reconstructions
# Latent noise during training, relative to each channel's spread: the decoder learns to snap latents
# that are a little off (a one-step prediction's error, ~0.1 MSE in normalised units) back to clean
# frames, as a real VAE's decoder tolerates its DiT's errors. Without it, 0.01 MSE already breaks cells.
LATENT_NOISE = 0.35
# A patch-linear head reconstructs every frame from the posterior mean beside the decoder: it makes the encoder's
# latents linearly decodable per cell, which the loop's light decoder relies on (train_light_decoder). The head
# itself is dropped; the light decoder is refitted in closed form on the normalised latents.
LINEAR_WEIGHT = 2.0


def new_vae(seed: int) -> AutoencoderKLWan:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_vae()


def to_video(clips: torch.Tensor) -> torch.Tensor:
    """uint8 clips [B, T, H, W, 3] -> VAE input [B, 3, T, H, W] in [-1, 1]."""
    return clips.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def new_linear_head(vae: AutoencoderKLWan) -> PatchLinearDecoder:
    return PatchLinearDecoder(latent_channels=LATENT_CHANNELS, patch_size=vae.config.scale_factor_spatial)


def vae_loss(vae: AutoencoderKLWan, head: PatchLinearDecoder, clips: torch.Tensor,
             generator: torch.Generator) -> torch.Tensor:
    """L1 + MSE reconstruction of a sampled posterior latent with ``LATENT_NOISE`` added, a small KL term, and
    ``LINEAR_WEIGHT`` times the MSE of ``head``'s reconstruction from the posterior mean."""
    video = to_video(clips)
    posterior = vae.encode(video).latent_dist
    eps = torch.randn(posterior.mean.shape, generator=generator).to(video.device)
    spread = posterior.mean.detach().transpose(0, 1).flatten(1).std(1).view(1, -1, 1, 1, 1)
    eps2 = torch.randn(posterior.mean.shape, generator=generator).to(video.device)
    z = posterior.mean + posterior.std * eps + LATENT_NOISE * spread * eps2
    # and shrunk towards the channel means for half the clips, as a regression that hedges between outcomes
    centre = posterior.mean.detach().mean((0, 2, 3, 4), keepdim=True)
    shrink = torch.where(torch.rand(len(z), generator=generator) < 0.5, 0.75 + 0.25 * torch.rand(len(z), generator=generator),
                         torch.ones(len(z))).view(-1, 1, 1, 1, 1).to(z.device)
    z = centre + shrink * (z - centre)
    err = vae.decode(z).sample - video
    linear = head.project(posterior.mean.transpose(1, 2)).transpose(1, 2) - video  # unclamped, in [-1, 1] units
    return (err.abs().mean() + err.pow(2).mean() + KL_WEIGHT * posterior.kl().mean()
            + LINEAR_WEIGHT * linear.pow(2).mean())


def train_vae(vae: AutoencoderKLWan, clips: torch.Tensor, *, steps: int, batch: int, lr: float, seed: int,
              time_cap_s: float | None = None, log=print) -> AutoencoderKLWan:
    """Fit on random single frames of ``clips`` (uint8 [N, T, H, W, 3] on the training device); ``batch`` frames
    per step. Only valid for the frame-wise micro VAE: its past taps receive no gradient and stay zero."""
    vae.train().requires_grad_(True)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = new_linear_head(vae).to(clips.device)
    frames = clips.reshape(-1, 1, *clips.shape[2:])

    def loss_fn(step: int):
        idx = torch.randint(len(frames), (batch,), generator=generator).to(frames.device)
        loss = vae_loss(vae, head, frames[idx], generator)
        return loss, f"loss {loss.item():.4f}"

    fit([*vae.parameters(), *head.parameters()], loss_fn, steps=steps, lr=lr, name="vae", time_cap_s=time_cap_s, log=log)
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def encode_clips(vae: AutoencoderKLWan, clips: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Raw (unnormalised) posterior modes [N, C, F, h, w] of uint8 clips."""
    def encode(video: torch.Tensor) -> torch.Tensor:
        return vae.encode(video).latent_dist.mode()

    frame_wise = is_frame_wise(vae)
    out = []
    for i in range(0, len(clips), batch):
        video = to_video(clips[i:i + batch])
        out.append(frames_as_batch(encode, video) if frame_wise else encode(video))
    return torch.cat(out)


@torch.no_grad()
def set_latent_stats(vae: AutoencoderKLWan, raw_latents: torch.Tensor) -> None:
    """Per-channel mean/std of the data's latents into the VAE config (the student works in (z - mean) / std)."""
    channels = raw_latents.transpose(0, 1).flatten(1)
    vae.register_to_config(latents_mean=channels.mean(1).tolist(), latents_std=channels.std(1).clamp_min(1e-3).tolist())


def normalise(vae: AutoencoderKLWan, raw_latents: torch.Tensor) -> torch.Tensor:
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, device=raw_latents.device).view(shape)
    std = torch.tensor(vae.config.latents_std, device=raw_latents.device).view(shape)
    return (raw_latents - mean) / std


def denormalise(vae: AutoencoderKLWan, latents: torch.Tensor) -> torch.Tensor:
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, device=latents.device).view(shape)
    std = torch.tensor(vae.config.latents_std, device=latents.device).view(shape)
    return latents * std + mean


def decode_frames(vae: AutoencoderKLWan, latents: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Normalised latents [N, C, F, h, w] -> frames [N, T, 3, H, W] in [0, 1] (as WanStudent.decode)."""
    def decode(z: torch.Tensor) -> torch.Tensor:
        return vae.decode(z).sample

    frame_wise = is_frame_wise(vae)
    out = []
    for i in range(0, len(latents), batch):
        z = denormalise(vae, latents[i:i + batch])
        video = frames_as_batch(decode, z) if frame_wise else decode(z)
        out.append(((video + 1.0) / 2.0).transpose(1, 2))
    return torch.cat(out)
