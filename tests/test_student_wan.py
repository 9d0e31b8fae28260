"""WanStudent on the shipped micro student and on a tiny Wan2.2-TI2V-5B-shaped model (patch 2, VAE 16x)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from peft.tuners.lora import LoraLayer
from transformers import T5Config, T5EncoderModel

from benchmarks.micro import vocabulary
from harness.students.lora import ADAPTER_NAME
from harness.students.wan import WanStudent, is_frame_wise
from harness.types import Instance, UserError
from lab.micro.weights_student import DEFAULT_OUT as MICRO_DIR
from lab.micro.weights_student import MAX_TEXT_LEN, build_tokenizer

LORA = dict(rank=4, scale=1.0, target_modules=["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"])


def make_instance(frames: int, size: int, *, i2v: bool, prompt: str = "move the red agent to the green target"):
    first = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8) if i2v else None
    return Instance(
        id="x", bench="micro", task="t", category="c", split="id", prompt=prompt,
        num_frames=frames, height=size, width=size, fps=8, first_frame=first,
    )


def micro(**settings) -> WanStudent:
    base = dict(device="cpu", num_steps=4, max_text_len=MAX_TEXT_LEN, lora=LORA)
    return WanStudent.from_pretrained(path=str(MICRO_DIR), **{**base, **settings})


@pytest.fixture(scope="module")
def ti2v_dir(tmp_path_factory):
    """A tiny pipeline shaped like Wan2.2-TI2V-5B (48-channel residual VAE, patch 2, 16x) with a T5 encoder
    and non-trivial latent mean/std, saved in diffusers format."""
    out = tmp_path_factory.mktemp("ti2v")
    torch.manual_seed(0)
    tokenizer = build_tokenizer(vocabulary())
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4, dropout_rate=0.0)
    )
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
        latents_mean=torch.randn(48).tolist(), latents_std=(torch.rand(48) + 0.5).tolist(),
        dim_mult=[1, 1, 1, 1], num_res_blocks=1, scale_factor_spatial=16, scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=48, out_channels=48,
        text_dim=16, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    WanPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae, scheduler=scheduler,
        transformer_2=None, boundary_ratio=None, expand_timesteps=True,
    ).save_pretrained(out)
    return out


def ti2v(path, **settings) -> WanStudent:
    base = dict(device="cpu", sampler="dmd", dmd_timesteps=[1000, 500], num_steps=2, max_text_len=16, lora=LORA)
    return WanStudent.from_pretrained(path=str(path), **{**base, **settings})


@pytest.mark.parametrize("i2v", [True, False])
def test_micro_shapes(i2v):
    student = micro()
    cond = student.encode(make_instance(17, 32, i2v=i2v))
    assert cond.latent_shape == (1, 16, 17, 4, 4)
    assert cond.prompt_embeds.shape == (1, MAX_TEXT_LEN, 32)
    assert (cond.first_latent is not None) == i2v
    if i2v:
        assert cond.first_latent.shape == (1, 16, 1, 4, 4)
    noise = student.make_noise(cond, seed=0)
    assert student.predict_x0(cond, noise, 1.0).shape == noise.shape == (1, 16, 17, 4, 4)
    with torch.no_grad():
        frames = student.decode(student.sample(cond, noise, seed=0))
    assert frames.shape == (17, 3, 32, 32)
    assert 0.0 <= frames.min() and frames.max() <= 1.0


def test_prompt_embeddings_are_zero_past_the_prompt():
    student = micro()
    cond = student.encode(make_instance(17, 32, i2v=False, prompt="Move the  red square."))
    length = len(student.tokenizer("move the red square.").input_ids)  # 5 tokens + </s>
    assert length == 6
    norms = cond.prompt_embeds[0].norm(dim=-1)
    assert (norms[:length] > 0).all() and (norms[length:] == 0).all()


def test_ti2v_shapes_and_first_latent_normalisation(ti2v_dir):
    student = ti2v(ti2v_dir)
    instance = make_instance(9, 64, i2v=True)
    cond = student.encode(instance)
    assert cond.latent_shape == (1, 48, 3, 4, 4)
    # The pipeline's convention: the mode of the VAE posterior, then (z - mean) / std.
    pixels = torch.from_numpy(instance.first_frame).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1.0
    with torch.no_grad():
        raw = student.vae.encode(pixels).latent_dist.mode()
    mean = torch.tensor(student.vae.config.latents_mean).view(1, 48, 1, 1, 1)
    std = torch.tensor(student.vae.config.latents_std).view(1, 48, 1, 1, 1)
    torch.testing.assert_close(cond.first_latent, (raw - mean) / std, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        frames = student.decode(student.sample(cond, student.make_noise(cond, 0), seed=0))
    assert frames.shape == (9, 3, 64, 64)


def test_x0_matches_direct_transformer_call_with_per_token_timesteps(ti2v_dir):
    student = ti2v(ti2v_dir)
    cond = student.encode(make_instance(9, 64, i2v=True))
    x_t = student.make_noise(cond, seed=1)
    sigma = 0.7
    model_in = torch.cat([cond.first_latent, x_t[:, :, 1:]], dim=2)
    # 3 latent frames of 4x4 with 2x2 patches: 4 tokens per frame; first-frame tokens at timestep 0.
    per_token = torch.tensor([[0.0] * 4 + [sigma * 1000] * 8])
    with torch.no_grad():
        v = student.transformer(model_in, per_token, cond.prompt_embeds, return_dict=False)[0]
        uniform = torch.tensor([sigma * 1000])
        v_uniform = student.transformer(model_in, uniform, cond.prompt_embeds, return_dict=False)[0]
        x0 = student.predict_x0(cond, x_t, sigma)
    expected = model_in - sigma * v
    torch.testing.assert_close(x0[:, :, 1:], expected[:, :, 1:])
    assert not torch.allclose(x0[:, :, 1:], (model_in - sigma * v_uniform)[:, :, 1:])


def test_first_frame_is_the_condition_and_ignores_its_noise():
    student = micro()
    cond = student.encode(make_instance(17, 32, i2v=True))
    noise = student.make_noise(cond, seed=2)
    other = noise.clone()
    other[:, :, 0] = torch.randn_like(other[:, :, 0])
    with torch.no_grad():
        x0, x0_other = student.predict_x0(cond, noise, 1.0), student.predict_x0(cond, other, 1.0)
        sampled = student.sample(cond, noise, seed=2)
    assert torch.equal(x0[:, :, :1], cond.first_latent)
    assert torch.equal(sampled[:, :, :1], cond.first_latent)
    torch.testing.assert_close(x0, x0_other, atol=0, rtol=0)


def test_text_to_video_uses_all_frames_of_the_noise():
    student = micro()
    cond = student.encode(make_instance(17, 32, i2v=False))
    noise = student.make_noise(cond, seed=2)
    other = noise.clone()
    other[:, :, 0] += 1.0
    with torch.no_grad():
        assert not torch.allclose(student.predict_x0(cond, noise, 1.0), student.predict_x0(cond, other, 1.0))


def _perturb_lora_b(student: WanStudent) -> None:
    """Make B non-zero (as after some optimisation), the same way for every call."""
    student.lora_parameters()  # what an optimiser does first: activates the adapter
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in student.transformer.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1, generator=generator)


def test_gradient_reaches_every_lora_parameter_and_no_base_parameter():
    student = micro()
    _perturb_lora_b(student)  # with B = 0, A's gradient is exactly zero
    cond = student.encode(make_instance(17, 32, i2v=True))
    x0 = student.predict_x0(cond, student.make_noise(cond, 0), 1.0)
    student.decode(x0, light=True).pow(2).mean().backward()  # no light decoder yet: the full VAE
    params = student.lora_parameters()
    assert params and all(p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    lora_ids = {id(p) for p in params}
    for module in (student.transformer, student.vae, student.text_encoder):
        for p in module.parameters():
            if id(p) not in lora_ids:
                assert not p.requires_grad and p.grad is None


def test_reset_lora_restores_the_base_model_deterministically():
    student = micro()
    cond = student.encode(make_instance(17, 32, i2v=True))
    noise = student.make_noise(cond, 0)
    with torch.no_grad():
        student.set_lora_enabled(False)
        base = student.predict_x0(cond, noise, 1.0)
        student.set_lora_enabled(True)
        _perturb_lora_b(student)
        assert not torch.allclose(student.predict_x0(cond, noise, 1.0), base)
        rng = torch.get_rng_state()
        student.reset_lora(seed=5)
        assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is untouched
        torch.testing.assert_close(student.predict_x0(cond, noise, 1.0), base, atol=0, rtol=0)
    first = _lora_a(student)
    student.reset_lora(seed=5)
    assert not _active_lora_layers(student)  # B = 0 adds nothing: skipped until someone trains it
    student.lora_parameters()
    assert len(_active_lora_layers(student)) == len(_lora_a(student))
    assert all(torch.equal(a, b) for a, b in zip(first, _lora_a(student)))
    student.reset_lora(seed=6)
    assert all(not torch.equal(a, b) for a, b in zip(first, _lora_a(student)))


def _active_lora_layers(student: WanStudent) -> list[torch.nn.Module]:
    return [m for m in student.transformer.modules() if isinstance(m, LoraLayer) and not m.disable_adapters]


def _lora_a(student: WanStudent) -> list[torch.Tensor]:
    return [p.detach().clone() for n, p in student.transformer.named_parameters() if f"lora_A.{ADAPTER_NAME}" in n]


def test_sampling_is_deterministic_per_seed():
    student = micro()
    cond = student.encode(make_instance(17, 32, i2v=True))
    assert torch.equal(student.make_noise(cond, 3), student.make_noise(cond, 3))
    assert not torch.equal(student.make_noise(cond, 3), student.make_noise(cond, 4))
    noise = student.make_noise(cond, 3)
    with torch.no_grad():
        a, b, c = (student.sample(cond, noise, seed=s) for s in (3, 3, 4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)  # DMD re-noising draws from the seed


def test_dmd_step_is_predict_then_renoise():
    student = micro()
    cond = student.encode(make_instance(17, 32, i2v=False))
    x = student.make_noise(cond, 0)
    with torch.no_grad():
        x0 = student.predict_x0(cond, x, 1.0)
        torch.testing.assert_close(student.step(cond, x, 0, seed=9), student.renoise(x0, 0.75, 9, 1))
        eps = (student.renoise(x0, 0.75, 9, 1) - 0.25 * x0) / 0.75
        assert abs(eps.std().item() - 1.0) < 0.2
        torch.testing.assert_close(student.step(cond, x, 3, seed=9), student.predict_x0(cond, x, 0.25))


def test_classifier_free_guidance_combines_two_forwards():
    student = micro(guidance_scale=4.0, negative_prompt="blurry static")
    cond = student.encode(make_instance(17, 32, i2v=True))
    x = student.make_noise(cond, 0)
    calls = []
    student.transformer.register_forward_hook(lambda *_: calls.append(1))
    model_in = torch.cat([cond.first_latent, x[:, :, 1:]], dim=2)
    per_token = torch.tensor([[0.0] * 16 + [1000.0] * 16 * 16])  # 1x1x1 patches: 16 tokens per latent frame
    with torch.no_grad():
        x0 = student.predict_x0(cond, x, 1.0)
        assert len(calls) == 2  # conditional + unconditional
        v_c = student.transformer(model_in, per_token, cond.prompt_embeds, return_dict=False)[0]
        v_u = student.transformer(model_in, per_token, cond.extra["negative_prompt_embeds"], return_dict=False)[0]
    assert not torch.allclose(v_c, v_u)  # so guidance 4 differs from guidance 1
    torch.testing.assert_close(x0[:, :, 1:], (model_in - (v_u + 4.0 * (v_c - v_u)))[:, :, 1:])


def _lora_grads(student: WanStudent) -> list[torch.Tensor]:
    _perturb_lora_b(student)
    cond = student.encode(make_instance(17, 32, i2v=False))
    student.predict_x0(cond, student.make_noise(cond, 0), 1.0).square().mean().backward()
    return [p.grad for p in student.lora_parameters()]


@pytest.mark.parametrize("settings", [dict(gradient_checkpointing=True),
                                      dict(gradient_checkpointing=True, uncheckpointed_blocks=2)])
def test_gradient_checkpointing_gives_the_same_gradients(settings):
    plain = _lora_grads(micro(gradient_checkpointing=False))
    student = micro(**settings)
    assert student.transformer.is_gradient_checkpointing
    for a, b in zip(plain, _lora_grads(student), strict=True):
        torch.testing.assert_close(a, b)


def test_uncheckpointed_blocks_run_once_and_the_others_recompute():
    student = micro(gradient_checkpointing=True, uncheckpointed_blocks=1)
    calls = [0] * len(student.transformer.blocks)
    for i, block in enumerate(student.transformer.blocks):
        block.register_forward_pre_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))  # recompute stops early
    _lora_grads(student)
    assert calls == [1] + [2] * (len(calls) - 1)  # the backward re-runs every checkpointed block's forward


def test_uncheckpointed_blocks_are_checked():
    with pytest.raises(ValueError, match="uncheckpointed_blocks must be in"):
        micro(gradient_checkpointing=True, uncheckpointed_blocks=99)
    with pytest.raises(ValueError, match="needs student.gradient_checkpointing"):
        micro(uncheckpointed_blocks=1)


def test_compiled_blocks_give_the_eager_output_and_gradients():
    torch._dynamo.reset()
    eager, compiled = micro(), micro(compile=True, gradient_checkpointing=True, uncheckpointed_blocks=1)
    assert all(block._compiled_call_impl is not None for block in compiled.transformer.blocks)
    for a, b in zip(_lora_grads(eager), _lora_grads(compiled), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    cond = compiled.encode(make_instance(17, 32, i2v=True))
    noise = compiled.make_noise(cond, 3)
    with torch.no_grad():
        torch.testing.assert_close(compiled.sample(cond, noise, 3), eager.sample(cond, noise, 3), rtol=1e-4, atol=1e-5)


def test_bfloat16_base_with_float32_lora():
    try:
        student = micro(dtype="bfloat16")
    except (RuntimeError, TypeError) as err:  # pragma: no cover - depends on the CPU build
        pytest.skip(f"bfloat16 not usable on this CPU build: {err}")
    assert student.transformer.patch_embedding.weight.dtype == torch.bfloat16
    assert student.vae.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in student.lora_parameters())
    _perturb_lora_b(student)
    cond = student.encode(make_instance(17, 32, i2v=True))
    x0 = student.predict_x0(cond, student.make_noise(cond, 0), 1.0)
    assert x0.dtype == torch.float32 and torch.isfinite(x0).all()
    x0.square().mean().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in student.lora_parameters())


def test_bfloat16_vae_decodes_close_to_float32(ti2v_dir):
    try:
        fast = ti2v(ti2v_dir, vae_dtype="bfloat16")
    except (RuntimeError, TypeError) as err:  # pragma: no cover - depends on the CPU build
        pytest.skip(f"bfloat16 not usable on this CPU build: {err}")
    exact = ti2v(ti2v_dir)
    assert fast.vae.dtype == torch.bfloat16 and exact.vae.dtype == torch.float32
    cond = exact.encode(make_instance(9, 64, i2v=True))
    latents = exact.make_noise(cond, seed=0)
    with torch.no_grad():
        ref, got = exact.decode(latents), fast.decode(latents)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert 0 < (got - ref).abs().mean() < 0.01  # bf16 rounding, not a different decoder
    torch.testing.assert_close(fast.encode(make_instance(9, 64, i2v=True)).first_latent, cond.first_latent,
                               atol=0.1, rtol=0.05)
    with pytest.raises(UserError, match="student.vae_dtype"):
        ti2v(ti2v_dir, vae_dtype="float8")


def test_invalid_settings_are_rejected(ti2v_dir):
    with pytest.raises(ValueError, match="strictly decreasing"):
        micro(dmd_timesteps=[1000, 500, 500, 200])
    with pytest.raises(ValueError, match="integers"):
        micro(dmd_timesteps=[1000, 500.5, 250, 100])
    with pytest.raises(ValueError, match="num_steps"):
        micro(dmd_timesteps=[1000, 500])
    with pytest.raises(ValueError, match="dmd sampler only"):
        ti2v(ti2v_dir, sampler="scheduler", dmd_timesteps=[1000, 500])
    with pytest.raises(ValueError, match="first_frame_fit"):
        micro(first_frame_fit="pad")
    with pytest.raises(UserError, match="sampler=dmd"):
        multistep = ti2v(ti2v_dir, sampler="scheduler", dmd_timesteps=None)
        cond = multistep.encode(make_instance(9, 64, i2v=False))
        multistep.step(cond, multistep.make_noise(cond, 0), 0, seed=0)
    with pytest.raises(ValueError, match="init"):
        micro(lora={**LORA, "init": "pissa"})
    with pytest.raises(ValueError, match="dropout"):
        micro(lora={**LORA, "dropout": 0.1})
    with pytest.raises(ValueError, match="not found in the base model"):
        micro(lora={**LORA, "target_modules": ["no_such_layer"]})
    with pytest.raises(ValueError, match="4k\\+1"):  # a VAE with 4x temporal compression
        ti2v(ti2v_dir).encode(make_instance(16, 32, i2v=False))
    assert micro(dmd_timesteps=None).sigmas == [1.0, 0.75, 0.5, 0.25]
    without_lora = micro(lora=None)
    with pytest.raises(UserError, match="student.lora"):
        without_lora.reset_lora(0)
    with pytest.raises(UserError, match="student.lora"):
        without_lora.batched_lora([0, 1])


def test_missing_local_weights_name_the_config_key(tmp_path):
    with pytest.raises(UserError, match="student.path"):
        WanStudent.from_pretrained(path=str(tmp_path / "absent"), device="cpu")


def test_uncached_hub_id_offline_gives_the_download_command(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError) as err:
        WanStudent.from_pretrained(path="Wan-AI/Wan2.2-TI2V-5B-Diffusers", device="cpu")
    message = str(err.value)
    assert "hf download Wan-AI/Wan2.2-TI2V-5B-Diffusers --local-dir" in message
    assert "student.path=" in message


def test_frame_wise_vae_decodes_frames_as_one_batch_with_the_loops_result():
    student = micro()
    assert is_frame_wise(student.vae)  # the micro VAE is built with zero past taps
    latents = torch.randn(1, 16, 17, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        looped = student.vae.decode(latents * student._latents_std + student._latents_mean).sample
        batched = student.decode(latents)
    torch.testing.assert_close(batched, (looped[0].transpose(0, 1) + 1) / 2, atol=1e-4, rtol=0)


def test_a_vae_that_reads_past_frames_is_not_frame_wise():
    student = micro()
    conv = next(m for m in student.vae.decoder.modules() if getattr(m, "weight", None) is not None
                and m.weight.dim() == 5 and m.weight.shape[2] > 1)
    with torch.no_grad():
        conv.weight[:, :, 0] += 0.01
    assert not is_frame_wise(student.vae)


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_batched_lora_gives_each_batch_element_its_own_adapter(compute_dtype):
    """Two instances in one batch, adapters from seeds 3 and 4 with non-zero B: element i's prediction and
    A's gradient are those of the ordinary adapter of seed i, with the same B, on instance i alone."""
    student = micro(guidance_scale=2.0, negative_prompt="blurry static",  # guidance: both forwards batched
                    lora=LORA | {"compute_dtype": compute_dtype})
    conds = [student.encode(make_instance(17, 32, i2v=True, prompt=p)) for p in ("move red", "turn blue")]
    noises = [student.make_noise(c, i) for i, c in enumerate(conds)]
    b_values: list[list[torch.Tensor]] = []
    with student.batched_lora([3, 4]) as adapters:
        params = adapters.params
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for b in params[1::2]:
                b.normal_(std=0.1, generator=generator)
        x0 = student.predict_x0(student.stack_conditions(conds), torch.cat(noises), 1.0)
        x0.square().sum().backward()
        batched_grads = [a.grad.clone() for a in params[0::2]]
        b_values = [b.detach().clone() for b in params[1::2]]
    for i, seed in enumerate((3, 4)):
        student.reset_lora(seed)
        own = student.lora_parameters()
        with torch.no_grad():
            for b, value in zip(own[1::2], b_values):
                b.copy_(value[i])
        for p in own:
            p.grad = None
        single = student.predict_x0(conds[i], noises[i], 1.0)
        torch.testing.assert_close(x0[i:i + 1].detach(), single.detach(), atol=1e-5, rtol=1e-4)
        single.square().sum().backward()
        for a, grads in zip(own[0::2], batched_grads):  # float32 sums in another order: up to 5e-5 seen on AMD
            torch.testing.assert_close(a.grad, grads[i], atol=1e-4, rtol=1e-3)
    student.reset_lora(0)
    with torch.no_grad():
        base = student.predict_x0(conds[0], noises[0], 1.0)
    assert not torch.allclose(base, x0[:1].detach(), atol=1e-3)  # the adapters did change the prediction


def test_batched_lora_refuses_an_active_peft_adapter_and_a_wrong_batch():
    student = micro()
    cond = student.encode(make_instance(17, 32, i2v=True))
    noise = student.make_noise(cond, 0)
    with student.batched_lora([1, 2]):
        with pytest.raises(ValueError, match="holds 2 adapters but the batch has 1"):
            student.predict_x0(cond, noise, 1.0)
        student.lora_parameters()  # activates peft's adapter: two updates would add up
        with pytest.raises(RuntimeError, match="adapter inactive"):
            student.predict_x0(cond, noise, 1.0)
