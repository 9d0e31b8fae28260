"""A patch-linear light decoder: every latent pixel's channels map linearly onto its own s x s RGB patch.

The micro world draws each grid cell as flat colour regions (an outline, a solid square), so a frame is
linear in a few colours per cell; its VAE is trained with this head beside its decoder
(``lab.micro.training.train_vae``), and the loop decodes through it. A pixel loss through a linear
decoder is a quadratic function of the latents, so descent heads for the latents of the frames it asks for;
through neural light decoders it found off-data latents that draw nearly the right frames and make the
wrong video (docs/micro-world.md). Checkpoint: ``proj.weight`` [3 * s * s, C, 1, 1] and ``proj.bias``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.types import UserError


class PatchLinearDecoder(nn.Module):
    """Latents [N, T, C, h, w] -> frames [N, T, 3, s*h, s*w] in [0, 1]; no temporal upscaling."""

    t_upscale = 1

    def __init__(self, *, latent_channels: int, patch_size: int):
        super().__init__()
        self.latent_channels = latent_channels
        self.s_upscale = patch_size
        self.proj = nn.Conv2d(latent_channels, 3 * patch_size**2, 1)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> PatchLinearDecoder:
        weight = state.get("proj.weight")
        if weight is None or weight.ndim != 4 or weight.shape[2:] != (1, 1) or set(state) != {"proj.weight", "proj.bias"}:
            raise UserError(f"not a patch-linear decoder checkpoint: expected proj.weight [3*s*s, C, 1, 1] and "
                            f"proj.bias, found {sorted(state)}")
        patch = round((weight.shape[0] / 3) ** 0.5)
        if 3 * patch**2 != weight.shape[0]:
            raise UserError(f"not a patch-linear decoder checkpoint: {weight.shape[0]} outputs, not 3 * patch**2")
        model = cls(latent_channels=weight.shape[1], patch_size=patch)
        model.load_state_dict(state)
        return model

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        # Clamped as TAEHV is: the teacher never sees values no video holds. The micro palette lies in
        # [16, 240] / 255, so on the data the clamp does not bind and the map stays linear.
        return self.project(latents).clamp(0.0, 1.0)

    def project(self, latents: torch.Tensor) -> torch.Tensor:
        """The linear map itself, unclamped (what a head trained beside a VAE fits)."""
        if latents.ndim != 5 or latents.shape[2] != self.latent_channels:
            raise ValueError(f"expected latents [N, T, {self.latent_channels}, h, w], got {tuple(latents.shape)}")
        frames = F.pixel_shuffle(self.proj(latents.flatten(0, 1)), self.s_upscale)
        return frames.unflatten(0, latents.shape[:2])
