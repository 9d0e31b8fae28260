"""Train the micro light decoder: a TAEHV decoder for the micro VAE's latents, used inside vlmteach's loop.

The paper's loop decodes the one-step prediction with a light TAE (the full VAE makes the final video);
the micro student does the same with a small ``TAEHVDecoder`` (``harness.students.taehv``; patch 1, no
temporal upscaling: normalised latents [F, 16, 4, 4] -> frames [F, 3, 32, 32]), saved in the public
checkpoints' layout and loaded through ``student.light_decoder`` like ``taew2_2``.

It is fitted by plain MSE to reconstruct rendered clips from their latents, with no latent noise. The
micro VAE's own decoder was trained to snap slightly-off latents back to clean cells, which leaves a
LoRA almost no gradient to follow: on the same 8 instances, an oracle loss in latent space makes 6 of 8
one-step predictions correct within 40 steps, the same oracle through the VAE's decoder 1 of 8
(docs/micro-world.md). This decoder is smooth off the data, as a light TAE is.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from benchmarks.micro.training.loop import fit
from benchmarks.micro.weights_student import LATENT_CHANNELS
from harness.students.taehv import TAEHVDecoder

CHANNELS = (32, 32, 16, 16)
FILE = Path("light_decoder") / "taehv_micro.safetensors"  # inside the student folder


def new_light_decoder(seed: int) -> TAEHVDecoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TAEHVDecoder(latent_channels=LATENT_CHANNELS, patch_size=1, channels=CHANNELS,
                            time_upscale=(False, False, False))


def light_decode(decoder: TAEHVDecoder, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents [N, C, F, h, w] -> frames [N, F, 3, H, W] in [0, 1]."""
    return decoder(latents.transpose(1, 2))


def train_light_decoder(decoder: TAEHVDecoder, *, latents: torch.Tensor, clips: torch.Tensor, steps: int, batch: int,
                        lr: float, seed: int, time_cap_s: float | None = None, log=print) -> TAEHVDecoder:
    """Fit on random clips: ``latents`` [N, C, F, h, w] (normalised) -> ``clips`` uint8 [N, F, H, W, 3]."""
    decoder.train().requires_grad_(True)
    generator = torch.Generator().manual_seed(seed)

    def loss_fn(step: int):
        idx = torch.randint(len(latents), (batch,), generator=generator).to(latents.device)
        target = clips[idx].permute(0, 1, 4, 2, 3).float() / 255.0
        loss = (light_decode(decoder, latents[idx]) - target).square().mean()
        return loss, f"loss {loss.item():.5f}"

    fit(list(decoder.parameters()), loss_fn, steps=steps, lr=lr, name="light decoder", time_cap_s=time_cap_s, log=log)
    return decoder.eval().requires_grad_(False)


def save_light_decoder(decoder: TAEHVDecoder, student_dir: Path) -> Path:
    """Write the decoder as a TAEHV checkpoint (``decoder.*`` keys) into the student folder."""
    path = Path(student_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}, str(path))
    return path
