"""The Wan students sample as their references do, on tiny random Wan2.2-TI2V-shaped weights:
the undistilled student as diffusers' WanPipeline / WanImageToVideoPipeline (the checkpoint's UniPC
scheduler, integer timesteps, expand_timesteps), the DMD student as FastVideo describes its DMD inference,
the first frame fitted as official Wan2.2 fits it, and prompts cleaned with ftfy as the pipelines clean them."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline, WanPipeline
from test_student_wan import make_instance, micro, ti2v, ti2v_dir  # noqa: F401  (ti2v_dir: the fixture)

from harness.seeding import derive_seed

PROMPT = "move the “red” agent to the green target"  # curly quotes: the cleaning differs with and without ftfy
NEGATIVE = "blurry static"
# fp32 on CPU: the same operations in a different order (pipeline vs student) agree to float rounding.
PIPELINE_ATOL = 1e-5


@pytest.mark.parametrize("i2v", [False, True], ids=["t2v", "i2v"])
def test_scheduler_sampler_equals_the_diffusers_pipeline(ti2v_dir, i2v):
    steps, shift, cfg = 6, 5.0, 5.0
    student = ti2v(ti2v_dir, sampler="scheduler", dmd_timesteps=None, num_steps=steps, shift=shift,
                   guidance_scale=cfg, negative_prompt=NEGATIVE)
    instance = make_instance(9, 64, i2v=i2v, prompt=PROMPT)
    cond = student.encode(instance)
    noise = student.make_noise(cond, seed=3)
    with torch.no_grad():
        ours = student.sample(cond, noise, seed=3)

    scheduler = UniPCMultistepScheduler.from_pretrained(ti2v_dir, subfolder="scheduler", flow_shift=shift)
    parts = dict(tokenizer=student.tokenizer, text_encoder=student.text_encoder, transformer=student.transformer,
                 vae=student.vae, scheduler=scheduler, expand_timesteps=True)
    call = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=64, width=64, num_frames=9, num_inference_steps=steps,
                guidance_scale=cfg, latents=noise.clone(), output_type="latent", max_sequence_length=16)
    if i2v:
        pipe = WanImageToVideoPipeline(image_encoder=None, image_processor=None, **parts)
        reference = pipe(image=PIL.Image.fromarray(instance.first_frame), **call).frames
    else:
        reference = WanPipeline(**parts)(**call).frames
    assert reference.shape == ours.shape
    torch.testing.assert_close(ours, reference, atol=PIPELINE_ATOL, rtol=0)


def test_dmd_sampler_follows_fastvideos_dmd_loop(ti2v_dir):
    """FastVideo's DMD inference (DmdStrategy): at each configured integer timestep t the transformer predicts
    v, x0 = x_t - sigma_t * v, and x0 is re-noised to the next timestep with fresh noise,
    (1 - sigma) * x0 + sigma * eps; flow matching's sigma_t = t / 1000. TI2V: the first latent frame is the
    clean condition, its tokens at timestep 0."""
    timesteps = [1000, 757, 522]
    student = ti2v(ti2v_dir, dmd_timesteps=timesteps, num_steps=3)
    cond = student.encode(make_instance(9, 64, i2v=True))
    noise = student.make_noise(cond, seed=5)

    def condition(x):
        return torch.cat([cond.first_latent, x[:, :, 1:]], dim=2)

    x = noise
    with torch.no_grad():
        for k, t in enumerate(timesteps):
            x = condition(x)
            per_token = torch.tensor([[0.0] * 4 + [float(t)] * 8])  # 3 latent frames of 2x2 tokens
            v = student.transformer(x, per_token, cond.prompt_embeds, return_dict=False)[0]
            x0 = condition(x - t / 1000 * v)
            if k == len(timesteps) - 1:
                x = x0
                break
            sigma_next = timesteps[k + 1] / 1000
            eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(derive_seed(5, "renoise", k + 1)))
            x = (1 - sigma_next) * x0 + sigma_next * eps
        ours = student.sample(cond, noise, seed=5)
    assert student.timesteps == timesteps
    torch.testing.assert_close(ours, x, atol=1e-6, rtol=0)


def test_first_frame_is_fitted_as_official_wan22(ti2v_dir):
    """Official Wan2.2 (TI2V i2v): scale to cover the target keeping the aspect (LANCZOS), centre-crop, map
    to [-1, 1]; then the VAE posterior's mode, normalised. ``stretch`` keeps diffusers' plain resize."""
    image = np.random.default_rng(1).integers(0, 256, (48, 96, 3), dtype=np.uint8)  # 1:2, target 1:1
    instance = make_instance(9, 64, i2v=True)
    instance = type(instance)(**{**vars(instance), "first_frame": image})
    student = ti2v(ti2v_dir)

    pil = PIL.Image.fromarray(image)
    scale = max(64 / 96, 64 / 48)
    covered = pil.resize((round(96 * scale), round(48 * scale)), PIL.Image.LANCZOS)
    left, top = (covered.width - 64) // 2, (covered.height - 64) // 2
    cropped = np.asarray(covered.crop((left, top, left + 64, top + 64)))
    pixels = (torch.from_numpy(cropped).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        raw = student.vae.encode(pixels[None, :, None]).latent_dist.mode()
    mean = torch.tensor(student.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(student.vae.config.latents_std).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(student.encode(instance).first_latent, (raw - mean) / std, atol=1e-5, rtol=1e-5)

    stretched = ti2v(ti2v_dir, first_frame_fit="stretch").encode(instance).first_latent
    assert not torch.allclose(stretched, (raw - mean) / std, atol=1e-3)


def test_prompts_are_cleaned_with_ftfy():
    """The official Wan pipelines clean prompts with ftfy.fix_text before tokenising: curly quotes become
    straight ones and mojibake is repaired ("â€™" is a UTF-8 right quote read as cp1252)."""
    student = micro()
    seen = []
    tokenizer = student.tokenizer
    student.tokenizer = lambda texts, **kwargs: seen.extend(texts) or tokenizer(texts, **kwargs)
    student._embed_prompt("move the “red” agent to the agentâ€™s  target ")
    assert seen == ['move the "red" agent to the agent\'s target']
