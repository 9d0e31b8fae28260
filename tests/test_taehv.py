"""TAEHV light decoder: checkpoint key layout, shapes and trimming, causality against a frame-by-frame
reference, differentiability, the two latent conventions and the WanStudent hook."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from harness.students.light_decoder import build_light_decoder
from harness.students.taehv import MemBlock, TAEHVDecoder, TGrow
from harness.types import UserError
from test_student_wan import ti2v_dir  # noqa: F401  (the tiny Wan2.2-shaped student folder fixture)

# Tiny widths; latent channels and patch size are taew2_2's (48, 2), so one latent pixel is 16x16 pixels.
WIDTHS = (8, 8, 4, 4)


def checkpoint_layout(latent: int, patch: int, widths=WIDTHS, strides=(1, 2, 2)) -> dict[str, tuple[int, ...]]:
    """Decoder keys and shapes of a public TAEHV checkpoint (madebyollin/taehv ``TAEHV.decoder``), written
    out from the architecture: 0 clamp, 1 conv, 2 relu, then per stage 3 memblocks, upsample, tgrow, conv;
    21 relu, 22 conv."""
    layout = {"decoder.1.weight": (widths[0], latent, 3, 3), "decoder.1.bias": (widths[0],)}
    for stage, start in enumerate((3, 9, 15)):
        w = widths[stage]
        for block in range(start, start + 3):
            layout |= {f"decoder.{block}.conv.0.weight": (w, 2 * w, 3, 3), f"decoder.{block}.conv.0.bias": (w,),
                       f"decoder.{block}.conv.2.weight": (w, w, 3, 3), f"decoder.{block}.conv.2.bias": (w,),
                       f"decoder.{block}.conv.4.weight": (w, w, 3, 3), f"decoder.{block}.conv.4.bias": (w,)}
        layout[f"decoder.{start + 4}.conv.weight"] = (w * strides[stage], w, 1, 1)
        layout[f"decoder.{start + 5}.weight"] = (widths[stage + 1], w, 3, 3)
    layout |= {"decoder.22.weight": (3 * patch**2, widths[3], 3, 3), "decoder.22.bias": (3 * patch**2,)}
    return layout


def fake_checkpoint(latent=48, patch=2, seed=0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=gen) * 0.3 for k, shape in checkpoint_layout(latent, patch).items()}
    state["encoder.0.weight"] = torch.randn(64, 3 * patch**2, 3, 3, generator=gen)  # ignored: decoder only
    return state


def frame_by_frame(model: TAEHVDecoder, latents: torch.Tensor) -> torch.Tensor:
    """Reference: run the decoder one frame at a time, carrying each memblock's previous input."""
    memory: dict[int, torch.Tensor] = {}
    outputs = []

    def run(x: torch.Tensor, start: int) -> None:
        for i in range(start, len(model.decoder)):
            layer = model.decoder[i]
            if isinstance(layer, MemBlock):
                past = memory.get(i, torch.zeros_like(x))
                memory[i] = x
                x = layer(x, past)
            elif isinstance(layer, TGrow):
                for frame in layer(x).split(1):  # the stride frames, in time order
                    run(frame, i + 1)
                return
            else:
                x = layer(x)
        outputs.append(torch.nn.functional.pixel_shuffle(x, model.patch_size).clamp(0, 1))

    for t in range(latents.shape[1]):
        run(latents[:, t], 0)
    return torch.stack(outputs, 1)[:, model.t_upscale - 1:]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("taehv") / "taew2_2.safetensors"
    save_file(fake_checkpoint(), str(path))
    return str(path)


@pytest.fixture(scope="module")
def model():
    return TAEHVDecoder.from_state_dict(fake_checkpoint()).eval()


def test_public_key_layout_loads_and_sets_the_architecture(tmp_path):
    state = fake_checkpoint()
    path = tmp_path / "taew2_2.safetensors"
    save_file(state, str(path))
    decoder = build_light_decoder(kind="taehv", path=str(path), latent_convention="normalized",
                                  latents_mean=[0.0] * 48, latents_std=[1.0] * 48).decoder
    loaded = decoder.state_dict()
    assert set(loaded) == set(checkpoint_layout(48, 2))
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key])
    assert (decoder.latent_channels, decoder.patch_size, decoder.t_upscale, decoder.s_upscale) == (48, 2, 4, 16)


def test_pth_checkpoint_loads_like_safetensors(tmp_path):
    state = fake_checkpoint(seed=1)
    torch.save(state, tmp_path / "lighttaew2_2.pth")
    decoder = build_light_decoder(kind="taehv", path=str(tmp_path / "lighttaew2_2.pth"), latent_convention="raw",
                                  latents_mean=[0.0] * 48, latents_std=[1.0] * 48).decoder
    torch.testing.assert_close(decoder.state_dict()["decoder.22.weight"], state["decoder.22.weight"])


def test_wrong_checkpoint_is_rejected(tmp_path):
    state = fake_checkpoint()
    del state["decoder.9.conv.2.bias"]
    with pytest.raises(UserError, match="does not match"):
        TAEHVDecoder.from_state_dict(state)
    with pytest.raises(UserError, match="not a TAEHV checkpoint"):
        TAEHVDecoder.from_state_dict({"vae.weight": torch.zeros(1)})
    state = fake_checkpoint()
    state["decoder.10.conv.2.weight"] = torch.zeros(8, 8, 1, 1)  # a 1x1 where the layout has a 3x3
    with pytest.raises(UserError, match="does not match"):
        TAEHVDecoder.from_state_dict(state)


def test_decode_shape_range_and_trim(model):
    latents = torch.randn(1, 3, 48, 2, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        frames = model(latents)
    assert frames.shape == (1, 9, 3, 32, 48)  # 4 * (3 - 1) + 1 frames, 16x pixels
    assert frames.min() >= 0 and frames.max() <= 1 and frames.std() > 0
    # Causal: decoding a prefix of latent frames gives a prefix of the frames (1 latent frame -> 1 frame).
    with torch.no_grad():
        assert model(latents[:, :1]).shape[1] == 1
        torch.testing.assert_close(model(latents[:, :2]), frames[:, :5])


def test_parallel_decode_equals_frame_by_frame(model):
    latents = torch.randn(1, 3, 48, 2, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(latents), frame_by_frame(model, latents), atol=1e-5, rtol=1e-5)


def test_decode_is_differentiable(ckpt):
    light = build_light_decoder(kind="taehv", path=ckpt, latent_convention="normalized",
                                latents_mean=[0.0] * 48, latents_std=[1.0] * 48)
    latents = (0.5 * torch.randn(1, 48, 2, 2, 2, generator=torch.Generator().manual_seed(2))).requires_grad_(True)
    frames = light(latents)
    assert frames.shape == (5, 3, 32, 32) and frames.dtype == torch.float32
    frames.mean().backward()
    assert torch.isfinite(latents.grad).all() and latents.grad.abs().sum() > 0


def test_latent_conventions_with_nontrivial_mean_std(ckpt):
    gen = torch.Generator().manual_seed(3)
    mean, std = (torch.randn(48, generator=gen)).tolist(), (torch.rand(48, generator=gen) + 0.5).tolist()
    path = ckpt
    raw = build_light_decoder(kind="taehv", path=path, latent_convention="raw", latents_mean=mean, latents_std=std)
    normalized = build_light_decoder(kind="taehv", path=path, latent_convention="normalized", latents_mean=mean,
                                     latents_std=std)
    z_n = torch.randn(1, 48, 2, 2, 2, generator=gen)
    z_raw = z_n * torch.tensor(std).view(1, -1, 1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        # lighttaew2_2 ("raw") sees z * std + mean; taew2_2 ("normalized") sees the DiT's latents as they are.
        torch.testing.assert_close(raw(z_n), normalized(z_raw))
        assert (raw(z_n) - normalized(z_n)).abs().max() > 1e-3


def test_config_errors_are_actionable(tmp_path, ckpt):
    with pytest.raises(UserError, match="hf download"):
        build_light_decoder(kind="taehv", path=str(tmp_path / "missing.safetensors"), latent_convention="raw",
                            latents_mean=[0.0] * 48, latents_std=[1.0] * 48)
    path = ckpt
    with pytest.raises(UserError, match="latent_convention"):
        build_light_decoder(kind="taehv", path=path, latent_convention="scaled", latents_mean=[0.0] * 48,
                            latents_std=[1.0] * 48)
    # A Wan2.2 decoder on a 16-channel VAE.
    with pytest.raises(UserError, match="48-channel latents but the student.s VAE has 16"):
        build_light_decoder(kind="taehv", path=path, latent_convention="raw", latents_mean=[0.0] * 16,
                            latents_std=[1.0] * 16)
    with pytest.raises(UserError, match="upscales"):
        build_light_decoder(kind="taehv", path=path, latent_convention="raw", latents_mean=[0.0] * 48,
                            latents_std=[1.0] * 48, vae_scales=(4, 8))


def test_wan_student_decodes_light_with_taehv_and_keeps_the_lora_graph(tmp_path, ti2v_dir):
    from harness.students.wan import WanStudent
    from test_student_wan import LORA, make_instance

    path = tmp_path / "taew2_2.safetensors"
    save_file(fake_checkpoint(latent=48, patch=2), str(path))  # the Wan2.2 VAE's layout: 48 channels, 16x
    block = {"kind": "taehv", "path": str(path), "latent_convention": "raw"}
    student = WanStudent.from_pretrained(path=str(ti2v_dir), device="cpu", sampler="dmd", dmd_timesteps=[1000, 500],
                                         num_steps=2, max_text_len=16, lora=LORA, light_decoder=block)
    cond = student.encode(make_instance(17, 32, i2v=True))
    params = student.lora_parameters()  # activates the adapter, as an optimiser's set-up does
    x0 = student.predict_x0(cond, student.make_noise(cond, seed=0), 1.0)
    frames = student.decode(x0, light=True)
    assert frames.shape == (17, 3, 32, 32)
    torch.testing.assert_close(frames, student.light_decoder(x0))
    frames.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
