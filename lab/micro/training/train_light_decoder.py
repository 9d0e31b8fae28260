"""Fit the micro light decoder: a patch-linear decoder (``harness.students.patch_linear``) for the micro VAE's
latents, used inside vlmteach's loop, as the paper's loop uses a light TAE (the full VAE makes the final video).

It is the least-squares map from a latent pixel's normalised channels to its 8x8 RGB patch on rendered clips,
in closed form. The VAE was trained with such a head beside its decoder (``train_vae.LINEAR_WEIGHT``), so its
latents are linearly decodable; the four neural light decoders tried before (docs/micro-world.md) let a pixel
loss lead the LoRA to off-data latents that draw nearly the right frames and make the wrong final video.
Saved in the student folder, loaded through ``student.light_decoder`` (``kind: patch_linear``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from harness.students.patch_linear import PatchLinearDecoder

FILE = Path("light_decoder") / "patch_linear_micro.safetensors"  # inside the student folder


def light_decode(decoder: PatchLinearDecoder, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents [N, C, F, h, w] -> frames [N, F, 3, H, W] in [0, 1]."""
    return decoder(latents.transpose(1, 2))


def patch_rows(latents: torch.Tensor, clips: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents [N, C, F, h, w] and uint8 clips [N, F, H, W, 3] -> one row per latent pixel: its channels [M, C]
    and its patch [M, 3 * patch**2] in [0, 1], in ``pixel_shuffle``'s channel order."""
    features = latents.transpose(1, 2).flatten(0, 1)  # [N*F, C, h, w]
    frames = clips.flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0  # [N*F, 3, H, W]
    patches = F.pixel_unshuffle(frames, patch)  # [N*F, 3*p*p, h, w]
    return (features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]),
            patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1]))


@torch.no_grad()
def fit_light_decoder(latents: torch.Tensor, clips: torch.Tensor, patch: int = 8) -> PatchLinearDecoder:
    """Least squares (with a bias) from normalised ``latents`` [N, C, F, h, w] to ``clips`` uint8 [N, F, H, W, 3]."""
    x, y = patch_rows(latents, clips, patch)
    x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1).double()
    solution = torch.linalg.lstsq(x.cpu(), y.double().cpu(), driver="gelsd").solution.float()  # [C + 1, 3*p*p]
    decoder = PatchLinearDecoder(latent_channels=latents.shape[1], patch_size=patch)
    decoder.proj.weight.copy_(solution[:-1].T[:, :, None, None])
    decoder.proj.bias.copy_(solution[-1])
    return decoder.eval().requires_grad_(False).to(latents.device)


def save_light_decoder(decoder: PatchLinearDecoder, student_dir: Path) -> Path:
    path = Path(student_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in decoder.state_dict().items()}, str(path))
    return path
