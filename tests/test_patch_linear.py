"""Patch-linear light decoder: checkpoint layout and loading through ``student.light_decoder``, the per-patch
linear map it computes, its two latent conventions, its errors, and the closed-form fit the micro world uses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from harness.students.light_decoder import build_light_decoder
from harness.students.patch_linear import PatchLinearDecoder
from harness.types import UserError
from lab.micro.training.train_light_decoder import fit_light_decoder, save_light_decoder

CHANNELS, PATCH = 16, 8


def random_state(seed: int = 0, scale: float = 0.02) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"proj.weight": scale * torch.randn(3 * PATCH**2, CHANNELS, 1, 1, generator=gen),
            "proj.bias": 0.5 + scale * torch.randn(3 * PATCH**2, generator=gen)}


def build(path, convention="normalized", mean=None, std=None, **kw):
    return build_light_decoder(kind="patch_linear", path=str(path), latent_convention=convention,
                               latents_mean=mean or [0.0] * CHANNELS, latents_std=std or [1.0] * CHANNELS, **kw)


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "patch_linear_micro.safetensors"
    save_file(random_state(), str(path))
    return path


def test_each_patch_is_a_linear_map_of_its_own_latent_pixel(ckpt):
    light = build(ckpt, vae_scales=(1, 8))
    state = random_state()
    z = torch.randn(1, CHANNELS, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    frames = light(z)
    assert frames.shape == (3, 3, 32, 40)
    # Pixel (y, x) of frame t, channel c, is row c*64 + (y%8)*8 + x%8 of the weight applied to latent pixel (y//8, x//8).
    t, y, x, c = 2, 13, 30, 1
    row = c * PATCH**2 + (y % PATCH) * PATCH + x % PATCH
    expected = state["proj.weight"][row, :, 0, 0] @ z[0, :, t, y // PATCH, x // PATCH] + state["proj.bias"][row]
    torch.testing.assert_close(frames[t, c, y, x], expected)
    # Linear in the latents inside [0, 1]: a blend of two latents decodes to the same blend of their frames.
    z2 = torch.randn_like(z)
    assert 0 < frames.min() and light(z2).max() < 1
    torch.testing.assert_close(light(0.3 * z + 0.7 * z2), 0.3 * frames + 0.7 * light(z2), atol=1e-5, rtol=1e-5)
    # Outside it, clamped as a video is.
    far = light(30 * z2)
    assert far.min() == 0 and far.max() == 1


def test_raw_convention_denormalises_first(ckpt):
    gen = torch.Generator().manual_seed(2)
    mean, std = torch.randn(CHANNELS, generator=gen), torch.rand(CHANNELS, generator=gen) + 0.5
    raw = build(ckpt, "raw", mean.tolist(), std.tolist())
    normalized = build(ckpt, "normalized", mean.tolist(), std.tolist())
    z = torch.randn(1, CHANNELS, 2, 4, 4, generator=gen)
    torch.testing.assert_close(raw(z), normalized(z * std.view(1, -1, 1, 1, 1) + mean.view(1, -1, 1, 1, 1)))


def test_decode_is_differentiable_into_the_latents(ckpt):
    z = torch.randn(1, CHANNELS, 2, 4, 4, requires_grad=True)
    build(ckpt)(z).square().mean().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_wrong_checkpoints_and_configs_are_rejected(tmp_path, ckpt):
    taehv_like = tmp_path / "taew2_2.safetensors"
    save_file({"decoder.1.weight": torch.zeros(8, 48, 3, 3)}, str(taehv_like))
    with pytest.raises(UserError, match="not a patch-linear decoder checkpoint"):
        build(taehv_like)
    odd = tmp_path / "odd.safetensors"
    save_file({"proj.weight": torch.zeros(10, CHANNELS, 1, 1), "proj.bias": torch.zeros(10)}, str(odd))
    with pytest.raises(UserError, match="3 \\* patch"):
        build(odd)
    with pytest.raises(UserError, match="upscales"):
        build(ckpt, vae_scales=(4, 16))  # a Wan2.2 VAE
    with pytest.raises(UserError, match="reads 16-channel latents but the student.s VAE has 48"):
        build(ckpt, mean=[0.0] * 48, std=[1.0] * 48)
    with pytest.raises(UserError, match="light_decoder.kind must be one of"):
        build_light_decoder(kind="tae", path=str(ckpt), latent_convention="normalized", latents_mean=[0.0] * 16,
                            latents_std=[1.0] * 16)


def test_closed_form_fit_recovers_a_linear_renderer_and_loads_through_the_config(tmp_path):
    """Clips drawn by a known patch-linear map (rounded to uint8, as rendered clips are) are fitted back to
    within rounding, and the saved file decodes identically through ``student.light_decoder``."""
    truth = PatchLinearDecoder(latent_channels=CHANNELS, patch_size=PATCH)
    truth.load_state_dict(random_state(3))
    latents = torch.randn(6, CHANNELS, 5, 4, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        frames = truth(latents.transpose(1, 2))  # [N, F, 3, H, W]
    assert 0 < frames.min() and frames.max() < 1
    clips = (frames * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2)
    fitted = fit_light_decoder(latents, clips, patch=PATCH)
    with torch.no_grad():
        error = (fitted(latents.transpose(1, 2)) - frames).abs().max()
    assert error < 2 / 255
    assert F.mse_loss(fitted.proj.weight, truth.proj.weight) < 1e-6
    light = build(save_light_decoder(fitted, tmp_path / "student"), vae_scales=(1, 8))
    with torch.no_grad():
        torch.testing.assert_close(light(latents[:1]), fitted(latents[:1].transpose(1, 2))[0])
