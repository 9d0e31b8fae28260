"""The student's light decoder (``student.light_decoder``): the cheap, differentiable decoder vlmteach's loop
shows the teacher, as the paper's light TAE; the full VAE makes the final video.

Kinds: ``taehv`` (``harness.students.taehv``: the public ``taew2_2`` / ``lighttaew2_2`` checkpoints) and
``patch_linear`` (``harness.students.patch_linear``: the micro world's). Latent conventions differ between
the two public Wan2.2 decoders (LightX2V runs ``lighttae*`` de-normalised): ``taew2_2`` reads the DiT's normalised latents,
``lighttaew2_2`` the raw VAE latents ``z * std + mean``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file
from torch import nn

from harness.loading import PROJECT_ROOT, missing_weights, resolve_dtype
from harness.students.patch_linear import PatchLinearDecoder
from harness.students.taehv import TAEHVDecoder
from harness.types import UserError

LatentConvention = Literal["normalized", "raw"]
CONVENTIONS = ("normalized", "raw")
KINDS = {"taehv": TAEHVDecoder, "patch_linear": PatchLinearDecoder}


class LightDecoder(nn.Module):
    """Normalised latents [1, C, F, h, w] -> frames [T, 3, H, W] through ``decoder`` (a ``KINDS`` module)."""

    def __init__(self, *, decoder: nn.Module, latent_convention: LatentConvention,
                 latents_mean: list[float], latents_std: list[float]):
        super().__init__()
        if latent_convention not in CONVENTIONS:
            raise UserError(f"light_decoder.latent_convention must be one of {CONVENTIONS}, got {latent_convention!r}")
        if not len(latents_mean) == len(latents_std) == decoder.latent_channels:
            raise UserError(f"the light decoder reads {decoder.latent_channels}-channel latents but the student's VAE "
                            f"has {len(latents_mean)}: pick the checkpoint made for this VAE")
        self.decoder = decoder.eval().requires_grad_(False)
        self.latent_convention = latent_convention
        self.register_buffer("mean", torch.tensor(latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 5 or latents.shape[0] != 1:
            raise ValueError(f"expected latents [1, C, F, h, w], got {tuple(latents.shape)}")
        z = latents.float()
        if self.latent_convention == "raw":  # LightX2V's lighttae*: de-normalise first
            z = z * self.std + self.mean
        dtype = next(self.decoder.parameters()).dtype
        return self.decoder(z.transpose(1, 2).to(dtype))[0].float()


def build_light_decoder(*, kind: str, path: str, latent_convention: LatentConvention, latents_mean: list[float],
                        latents_std: list[float], vae_scales: tuple[int, int] | None = None,
                        device: torch.device | str = "cpu", dtype: str = "float32",
                        revision: str | None = None) -> LightDecoder:
    """The ``student.light_decoder`` config block -> a ready decoder on ``device``.

    ``path``: a local ``.safetensors`` / ``.pth`` file, or ``<owner>/<repo>/<file>`` on the Hugging Face hub
    (e.g. ``madebyollin/taehv/safetensors/taew2_2.safetensors``, ``lightx2v/Autoencoders/lighttaew2_2.safetensors``),
    read at ``revision`` (a branch, tag or commit of that repo; None: its default branch).
    ``vae_scales`` (temporal, spatial) of the student's VAE are checked against the decoder's upscaling.
    """
    if kind not in KINDS:
        raise UserError(f"light_decoder.kind must be one of {sorted(KINDS)}, got {kind!r}")
    torch_dtype = resolve_dtype(dtype, config_key="student.light_decoder.dtype")
    decoder = KINDS[kind].from_state_dict(load_checkpoint(path, revision))
    if vae_scales is not None and tuple(vae_scales) != (decoder.t_upscale, decoder.s_upscale):
        raise UserError(f"light decoder {path} upscales (time, space) by {(decoder.t_upscale, decoder.s_upscale)} but "
                        f"the student's VAE by {tuple(vae_scales)}: pick the checkpoint made for this VAE")
    module = LightDecoder(decoder=decoder, latent_convention=latent_convention, latents_mean=latents_mean,
                          latents_std=latents_std)
    module.decoder.to(torch_dtype)
    return module.to(device)


def load_checkpoint(path: str, revision: str | None = None) -> dict[str, torch.Tensor]:
    """A light decoder state dict from a local file or a hub file, with a download hint when neither is there."""
    file = _resolve_file(path, revision)
    if file.suffix == ".safetensors":
        return load_file(str(file))
    if file.suffix in (".pth", ".pt"):
        return torch.load(file, map_location="cpu", weights_only=True)
    raise UserError(f"light_decoder.path {path!r}: expected a .safetensors or .pth file")


def _resolve_file(path: str, revision: str | None) -> Path:
    for candidate in (Path(path).expanduser(), PROJECT_ROOT / path):
        if candidate.is_file():
            return candidate
    parts = path.split("/")
    if len(parts) < 3 or path.startswith(("/", ".", "~")):
        raise UserError(f"light_decoder.path {path!r} is not a file. Download a TAEHV checkpoint, e.g.\n"
                        "  hf download lightx2v/Autoencoders lighttaew2_2.safetensors "
                        "--local-dir weights\n"
                        "and set student.light_decoder.path=weights/lighttaew2_2.safetensors")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, revision=revision))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError) as err:
        raise UserError(missing_weights(repo, revision, "student.light_decoder.path", err, filename)) from err
